//! The task record as the daemon reads it: the campaign's task ID, the settings last sent and how, and the task's
//! state. Pure; the writes are the store's narrow task methods, called by the actions.

use callbot_api::wire::TaskStatus;
use campaign::CampaignSpec;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use store::{TaskKey, TaskRecord};

use crate::plan::TaskState;
use crate::settings::TaskSettings;

/// The campaign's task for its generation (one task per generation): with `timezone = "contact"`, the task of the
/// file's one zone group (a campaign with several is refused when it is loaded); otherwise the generation's first
/// task, as before zone groups existed.
pub fn user_task_id(spec: &CampaignSpec) -> String {
    let group = spec
        .schedule
        .contact_zones
        .then(|| spec.audience.as_ref().and_then(|a| a.single_group()))
        .flatten();
    match group {
        Some(g) => campaign::zone_group_task_id(&spec.id, spec.generation, g),
        None => campaign::user_task_id(&spec.id, spec.generation, 0),
    }
}

/// The campaign's tasks for its generation: one per zone group with `timezone = "contact"` and several groups, else
/// the one of [`user_task_id`].
pub fn user_task_ids(spec: &CampaignSpec) -> Vec<String> {
    match &spec.audience {
        Some(a) if spec.schedule.contact_zones && a.groups.len() > 1 => a
            .groups
            .iter()
            .map(|g| campaign::zone_group_task_id(&spec.id, spec.generation, &g.group))
            .collect(),
        _ => vec![user_task_id(spec)],
    }
}

/// The store's key for the campaign's current task.
pub(crate) fn task_key(spec: &CampaignSpec) -> TaskKey {
    TaskKey {
        user_task_id: user_task_id(spec),
        campaign_id: spec.id.clone(),
        generation: i64::from(spec.generation),
        task_index: 0,
    }
}

/// How settings reached the platform, which decides when they are in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SentVia {
    /// With `createAndCall`: in effect at once.
    Create,
    /// With `updateTask`: in effect after the apply delay.
    Update,
}

/// The settings last sent, as kept in the task record (JSON: `{"settings": …, "via": "create"|"update"}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentSettings {
    pub(crate) settings: TaskSettings,
    pub(crate) via: SentVia,
}

impl SentSettings {
    pub(crate) fn new(settings: &TaskSettings, via: SentVia) -> SentSettings {
        SentSettings {
            settings: settings.clone(),
            via,
        }
    }

    /// The JSON kept in the task record.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        // A struct of plain fields, strings and numbers: serialising it cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// What the decision reads from a task record.
#[derive(Debug, Clone)]
pub(crate) struct TaskView {
    pub(crate) state: TaskState,
    /// The settings last sent, when known (`None`: never sent, or unknown after an unclear update).
    pub(crate) sent: Option<SentSettings>,
    pub(crate) sent_at: Option<DateTime<Utc>>,
    /// A start, pause or completion was sent and its outcome never recorded, so `state` may not be the platform's
    /// (only while the stored state is live: a terminal one stays terminal whatever was sent).
    pub(crate) status_in_doubt: bool,
}

impl TaskView {
    /// Reads the task record (`None`: no task was ever asked for).
    pub(crate) fn of(t: Option<&TaskRecord>) -> TaskView {
        let Some(t) = t else {
            return TaskView {
                state: TaskState::NotCreated,
                sent: None,
                sent_at: None,
                status_in_doubt: false,
            };
        };
        let sent: Option<SentSettings> = t
            .settings
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        let state = match (t.platform_status, &t.settings) {
            (Some(code), _) => TaskState::from_status(TaskStatus::from_code(code)),
            // Settings recorded (the create was about to be sent) but no status: the create is in doubt.
            (None, Some(v)) if !v.is_null() => TaskState::CreateInDoubt,
            (None, _) => TaskState::NotCreated,
        };
        TaskView {
            state,
            sent,
            sent_at: t.settings_sent_at,
            status_in_doubt: t.status_in_doubt_since.is_some() && state.is_live(),
        }
    }

    /// When the settings last sent are in effect on the platform.
    pub(crate) fn settings_effective_at(&self, apply_delay: Duration) -> Option<DateTime<Utc>> {
        match (&self.sent, self.sent_at) {
            (Some(s), Some(at)) if s.via == SentVia::Update => Some(at + apply_delay),
            (Some(_), Some(at)) => Some(at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Option<i64>, settings: Option<serde_json::Value>) -> TaskRecord {
        TaskRecord {
            user_task_id: "t".into(),
            campaign_id: "c".into(),
            generation: 1,
            task_index: 0,
            task_id: None,
            settings,
            settings_sent_at: None,
            platform_status: status,
            updated_at: DateTime::<Utc>::MIN_UTC,
            status_in_doubt_since: None,
        }
    }

    #[test]
    fn a_recorded_create_without_a_status_is_in_doubt_and_a_forgotten_one_is_not() {
        let sent = serde_json::json!({"settings": {}, "via": "create"});
        assert_eq!(
            TaskView::of(Some(&record(None, Some(sent)))).state,
            TaskState::CreateInDoubt
        );
        assert_eq!(
            TaskView::of(Some(&record(None, Some(serde_json::Value::Null)))).state,
            TaskState::NotCreated
        );
        assert_eq!(TaskView::of(None).state, TaskState::NotCreated);
        assert_eq!(
            TaskView::of(Some(&record(Some(3), None))).state,
            TaskState::Completed
        );
        assert_eq!(
            TaskView::of(Some(&record(Some(99), None))).state,
            TaskState::Paused
        );
    }

    #[test]
    fn a_toggle_in_doubt_counts_only_while_the_task_is_live() {
        let mut t = record(Some(2), None);
        assert!(!TaskView::of(Some(&t)).status_in_doubt);
        t.status_in_doubt_since = Some(DateTime::<Utc>::MIN_UTC);
        assert!(TaskView::of(Some(&t)).status_in_doubt);
        t.platform_status = Some(3);
        assert!(!TaskView::of(Some(&t)).status_in_doubt);
    }

    #[test]
    fn the_via_field_reads_the_strings_recorded_by_earlier_versions() {
        let v: SentVia = serde_json::from_value(serde_json::json!("update")).unwrap();
        assert_eq!(v, SentVia::Update);
        assert_eq!(
            serde_json::to_value(SentVia::Create).unwrap(),
            serde_json::json!("create")
        );
    }
}
