//! The reconcile decision, as pure logic: desired state + observed state + `now` → the smallest safe list of actions,
//! when to look again, and why the campaign is or isn't dialling.
//!
//! Nothing here reads a clock, a file, the store or the network. The executor gathers the inputs; `status` and `plan`
//! print the output; tests check it exhaustively.

use callbot_api::wire::TaskStatus;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::settings::TaskSettings;

/// What the platform's task looks like, as far as the store knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// No task was ever asked for.
    NotCreated,
    /// A createAndCall was sent but its outcome is unknown (crash or ambiguous error): ask the platform first.
    CreateInDoubt,
    /// Created, not started (taskStatus 1).
    Pending,
    /// Running (taskStatus 2).
    Running,
    /// Paused (taskStatus 5).
    Paused,
    /// Completed (taskStatus 3): refuses every operation.
    Completed,
    /// Ended by the platform (taskStatus 4): refuses every operation.
    Failed,
}

impl TaskState {
    /// From the platform's `taskStatus`; unknown codes are treated as paused-like (not running, not terminal): the
    /// daemon will neither rely on them dialling nor give up on them.
    pub fn from_status(status: TaskStatus) -> TaskState {
        match status {
            TaskStatus::Pending => TaskState::Pending,
            TaskStatus::Running => TaskState::Running,
            TaskStatus::Completed => TaskState::Completed,
            TaskStatus::Failed => TaskState::Failed,
            TaskStatus::Paused | TaskStatus::Unknown(_) => TaskState::Paused,
        }
    }

    /// Whether the task exists on the platform and accepts operations.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TaskState::Pending | TaskState::Running | TaskState::Paused
        )
    }

    /// Completed or failed: nothing more can be done with it.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::NotCreated => "not created",
            TaskState::CreateInDoubt => "creation in doubt",
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Paused => "paused",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
        }
    }
}

/// The stretch of calendar the platform should be programmed for: the current stretch while it still has dialling
/// time left, otherwise the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Everything updateTask would send for this stretch.
    pub settings: TaskSettings,
    /// Where the stretch starts (may be after `now` when it is the next stretch).
    pub from: DateTime<Utc>,
    /// Where it ends; `None` = never.
    pub until: Option<DateTime<Utc>>,
    /// First instant in `[from, until)` the campaign allows dialling.
    pub first_open: Option<DateTime<Utc>>,
    /// End of the last allowed interval in `[from, until)`; `None` when it never closes.
    pub last_close: Option<DateTime<Utc>>,
}

impl Target {
    /// Whether any dialling is left in this stretch at `now`.
    pub fn has_dialling_left(&self, now: DateTime<Utc>) -> bool {
        self.first_open.is_some() && self.last_close.is_none_or(|close| now < close)
    }
}

/// The desired state: the campaign file and its calendar, at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub now: DateTime<Utc>,
    /// The campaign file still exists (removing it completes the task).
    pub file_present: bool,
    /// `paused = true` in the file.
    pub paused: bool,
    /// The campaign's `end`, in UTC.
    pub end: Option<DateTime<Utc>>,
    /// What to program the platform for; `None` when the calendar allows nothing ever again.
    pub target: Option<Target>,
    /// The campaign's calendar allows dialling at `now`.
    pub open_now: bool,
    /// `now` falls on one of the campaign's holidays (local date).
    pub holiday: Option<NaiveDate>,
    /// The next instant at or after `now` the campaign allows dialling (within a horizon of a few weeks).
    pub next_open: Option<DateTime<Utc>>,
    /// Complete with delCall = 1 when the file is removed (the file asked for it).
    pub delete_undialled_on_remove: bool,
    /// How long updateTask takes to apply (the vendor says about 5 minutes).
    pub apply_delay: Duration,
    /// The CSV has at least one valid contact.
    pub has_contacts: bool,
}

/// Orders of the campaign by upload state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orders {
    pub planned: u64,
    pub sending: u64,
    pub sent: u64,
    pub rejected: u64,
    /// Sent and not finished.
    pub unfinished: u64,
}

/// The observed state: what the store (and through it the platform) says.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub task: TaskState,
    /// The settings last sent are the target stretch's: every non-calendar field is what the file says, and over
    /// the target stretch they allow exactly what the campaign allows. `false` when nothing was sent yet.
    pub sent_matches_target: bool,
    /// The settings last sent allow exactly what the campaign allows from `now` to the end of the target stretch
    /// (so a task running with them dials nothing the campaign forbids). Differs from `sent_matches_target` in the
    /// gap before the next stretch, where the next stretch's settings may allow what the campaign does not.
    pub sent_safe_now: bool,
    /// When the settings last sent take effect on the platform (creation: at once; updateTask: after the delay).
    pub settings_effective_at: Option<DateTime<Utc>>,
    /// A start, pause or completion was sent and its outcome never recorded (the daemon was killed, or the answer
    /// and the `listTask` after it were lost): the platform's status may not be `task`.
    pub status_in_doubt: bool,
    pub orders: Orders,
    /// When polling is next due (`None`: nothing to poll).
    pub next_poll_at: Option<DateTime<Utc>>,
    /// When the next attempt of a contact falls due under the campaign's `[retry]` (`None`: none is waiting).
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// One platform action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Ask the platform what happened to orders left `sending` (and to the task if its creation is in doubt), before
    /// anything is resent.
    ResolveSending,
    /// createAndCall with the first batch, manual start, taskKeep on.
    CreateTask { settings: TaskSettings },
    /// addBatchCall for every planned order, batch by batch.
    UploadBatches,
    /// mgrTaskStatus pause.
    Pause,
    /// updateTask (only while paused or pending).
    UpdateSettings { settings: TaskSettings },
    /// mgrTaskStatus start.
    Start,
    /// mgrTaskStatus complete.
    Complete { delete_undialled: bool },
    /// listOrderDetail for unfinished sent orders.
    Poll,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::ResolveSending => "resolve-sending",
            Action::CreateTask { .. } => "create-task",
            Action::UploadBatches => "upload",
            Action::Pause => "pause",
            Action::UpdateSettings { .. } => "update-settings",
            Action::Start => "start",
            Action::Complete { .. } => "complete",
            Action::Poll => "poll",
        }
    }
}

/// Why the campaign is or isn't dialling, with the instants needed to say it in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Why {
    FileRemoved,
    Ended {
        at: Option<DateTime<Utc>>,
    },
    PlatformEnded,
    CompletedOnPlatform,
    NoContacts,
    CheckingInDoubt,
    PausedInFile,
    NothingLeft {
        finished: u64,
    },
    RetryWaiting {
        at: DateTime<Utc>,
    },
    Holiday {
        date: NaiveDate,
        next_open: Option<DateTime<Utc>>,
    },
    WaitingForSettings {
        effective_at: DateTime<Utc>,
    },
    ChangingSettings {
        next_open: Option<DateTime<Utc>>,
    },
    NotStarted {
        opens_at: Option<DateTime<Utc>>,
    },
    OutsideWindow {
        next_open: Option<DateTime<Utc>>,
    },
    Dialling {
        until: Option<DateTime<Utc>>,
    },
    Uploading,
}

impl Why {
    /// The reason in words; `local` renders an instant in the campaign's own time zone.
    pub fn describe(&self, local: &dyn Fn(DateTime<Utc>) -> String) -> String {
        let opt = |at: &Option<DateTime<Utc>>| at.map(local);
        match self {
            Why::FileRemoved => "the campaign file was removed: the task is completed".into(),
            Why::Ended { at: Some(at) } => format!("the campaign ended at {}", local(*at)),
            Why::Ended { at: None } => "no dialling time is left in the calendar".into(),
            Why::PlatformEnded => "the platform ended the task (taskStatus 4)".into(),
            Why::CompletedOnPlatform => {
                "the task was completed outside campaignd; bump `generation` in the file to run it again".into()
            }
            Why::NoContacts => "no contacts: the CSV has no valid row".into(),
            Why::CheckingInDoubt => {
                "checking with the platform what an interrupted upload did, before sending anything again".into()
            }
            Why::PausedInFile => "paused in the file (paused = true)".into(),
            Why::NothingLeft { finished } => format!("no contacts left: all {finished} orders are finished"),
            Why::RetryWaiting { at } => {
                format!("every order is finished; the next retry ([retry]) falls due {}", local(*at))
            }
            Why::Holiday { date, next_open } => match opt(next_open) {
                Some(at) => format!("holiday {date}; dialling resumes {at}"),
                None => format!("holiday {date}"),
            },
            Why::WaitingForSettings { effective_at } => {
                format!("waiting for updateTask to apply (the vendor needs ~5 min): until {}", local(*effective_at))
            }
            Why::ChangingSettings { next_open } => match opt(next_open) {
                Some(at) => format!("paused to change settings for the next stretch, which opens {at}"),
                None => "paused to change settings".into(),
            },
            Why::NotStarted { opens_at } => match opt(opens_at) {
                Some(at) => format!("not started yet: the campaign opens {at}"),
                None => "not started yet".into(),
            },
            Why::OutsideWindow { next_open } => match opt(next_open) {
                Some(at) => format!("outside the window until {at}"),
                None => "outside the window".into(),
            },
            Why::Dialling { until: Some(until) } => format!("dialling: window open until {}", local(*until)),
            Why::Dialling { until: None } => "dialling".into(),
            Why::Uploading => "uploading contacts".into(),
        }
    }

    /// Whether this reason means the platform may be dialling right now.
    pub fn is_dialling(&self) -> bool {
        matches!(self, Why::Dialling { .. })
    }
}

/// The decision for one campaign at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// In order; each is valid after the ones before it succeeded.
    pub actions: Vec<Action>,
    /// The next instant the decision could change by itself (besides file changes and callbacks).
    pub next_wake: Option<DateTime<Utc>>,
    pub why: Why,
}

/// Decides what to do. See the crate docs for the rules; the short version:
///
/// 1. Orders (or a creation) left in doubt are resolved before anything else touches orders.
/// 2. A removed file or the end of the calendar completes the task.
/// 3. A running task is paused when the file says so or when the settings it runs with do not fit the target stretch.
/// 4. Settings that don't fit are sent while paused or pending; a start waits until they are in effect.
/// 5. Planned orders are uploaded (the first batch creates the task).
pub fn decide(d: &Desired, o: &Observed) -> Plan {
    let now = d.now;
    let mut actions = Vec::new();
    let mut wakes: Vec<DateTime<Utc>> = Vec::new();
    let in_doubt = o.orders.sending > 0 || o.task == TaskState::CreateInDoubt || o.status_in_doubt;
    let ended = d.target.is_none() || d.end.is_some_and(|end| now >= end);

    if in_doubt {
        actions.push(Action::ResolveSending);
    }

    // Terminal: the file is gone or the calendar is over.
    if !d.file_present || ended {
        if o.task.is_live() {
            let delete_undialled = !d.file_present && d.delete_undialled_on_remove;
            actions.push(Action::Complete { delete_undialled });
        }
        if o.next_poll_at.is_some() && !in_doubt {
            push_poll(&mut actions, &mut wakes, o, now);
        }
        let why = if !d.file_present {
            Why::FileRemoved
        } else {
            Why::Ended {
                at: d.end.filter(|end| now >= *end),
            }
        };
        return finish(actions, wakes, now, why);
    }

    if o.task == TaskState::Failed {
        return finish(actions, wakes, now, Why::PlatformEnded);
    }
    if o.task == TaskState::Completed {
        // Someone completed it by hand; a completed task refuses everything. Report it, touch nothing.
        return finish(actions, wakes, now, Why::CompletedOnPlatform);
    }

    let Some(target) = d.target.as_ref() else {
        return finish(actions, wakes, now, Why::Ended { at: None });
    };
    if let Some(end) = d.end {
        wakes.push(end);
    }
    if let Some(until) = target.until {
        wakes.push(until);
    }
    if let Some(close) = target.last_close {
        wakes.push(close);
    }
    wakes.push(target.from);
    if let Some(open) = target.first_open {
        wakes.push(open);
    }
    if let Some(open) = d.next_open {
        wakes.push(open);
    }

    let dialling_left = target.has_dialling_left(now);
    let running = o.task == TaskState::Running;
    // A task whose last start or pause is in doubt may be running whatever the store says: it is paused like a
    // running one, at once, without waiting for the platform to be asked (a pause is always safe).
    let may_run = running || (o.status_in_doubt && o.task.is_live());
    // A running task is paused when the file says so, when its settings could dial what the campaign forbids, or
    // when the next stretch needs other settings (they are sent while paused, well ahead of the stretch).
    let must_pause = may_run && (d.paused || !o.sent_safe_now || !o.sent_matches_target);
    if must_pause {
        actions.push(Action::Pause);
    }
    let needs_update = !o.sent_matches_target && o.task.is_live();
    if needs_update {
        actions.push(Action::UpdateSettings {
            settings: target.settings.clone(),
        });
    }

    // Uploads: never while something is in doubt.
    let mut uploading = false;
    if !in_doubt {
        match o.task {
            TaskState::NotCreated if o.orders.planned > 0 => {
                actions.push(Action::CreateTask {
                    settings: target.settings.clone(),
                });
                uploading = true;
            }
            TaskState::Pending | TaskState::Running | TaskState::Paused if o.orders.planned > 0 => {
                actions.push(Action::UploadBatches);
                uploading = true;
            }
            _ => {}
        }
    }

    // Start: only with the target's settings, in effect, safe from now on, with dialling left.
    let in_effect = o.settings_effective_at.is_none_or(|at| at <= now);
    let settled = !needs_update && o.sent_matches_target && o.sent_safe_now && in_effect;
    let startable_state = matches!(o.task, TaskState::Pending | TaskState::Paused);
    let has_work = o.orders.unfinished > 0 || o.orders.planned > 0;
    if startable_state && !d.paused && settled && dialling_left && has_work && !in_doubt {
        actions.push(Action::Start);
    }
    if let Some(at) = o.settings_effective_at.filter(|at| *at > now) {
        wakes.push(at);
    }
    if let Some(at) = o.next_retry_at {
        wakes.push(at);
    }
    if !in_doubt {
        push_poll(&mut actions, &mut wakes, o, now);
    }

    let will_run = (running && !must_pause) || actions.contains(&Action::Start);
    let why = if in_doubt {
        Why::CheckingInDoubt
    } else if d.paused {
        Why::PausedInFile
    } else if !d.has_contacts && o.task == TaskState::NotCreated {
        Why::NoContacts
    } else if o.task != TaskState::NotCreated
        && o.orders.planned == 0
        && o.orders.unfinished == 0
        && o.orders.sent > 0
    {
        match o.next_retry_at {
            Some(at) => Why::RetryWaiting { at },
            None => Why::NothingLeft {
                finished: o.orders.sent - o.orders.unfinished,
            },
        }
    } else if let Some(date) = d.holiday {
        Why::Holiday {
            date,
            next_open: d.next_open,
        }
    } else if will_run && d.open_now {
        Why::Dialling {
            until: target.last_close.or(target.until),
        }
    } else if will_run {
        Why::OutsideWindow {
            next_open: d.next_open,
        }
    } else if needs_update || (o.task.is_live() && !o.sent_matches_target) {
        Why::ChangingSettings {
            next_open: d.next_open,
        }
    } else if o.task.is_live() && !in_effect {
        Why::WaitingForSettings {
            effective_at: o.settings_effective_at.unwrap_or(now),
        }
    } else if o.task == TaskState::NotCreated && uploading {
        Why::Uploading
    } else if o.task == TaskState::NotCreated || (o.task == TaskState::Pending && !d.open_now) {
        Why::NotStarted {
            opens_at: d.next_open,
        }
    } else {
        Why::OutsideWindow {
            next_open: d.next_open,
        }
    };
    finish(actions, wakes, now, why)
}

/// Polls when they are due and orders are unfinished, else wakes when they fall due. A task that was never started
/// (`Pending`, with no start in doubt: a start is marked before it is sent) is not polled: it was created not started
/// (`startupType` 1), so the platform has placed no call for it and a poll can only learn nothing. A campaign
/// uploaded ahead of its first window would otherwise ask for every one of its orders at every poll interval until
/// it opens (a million orders: 2,000 `listOrderDetail` requests an interval). Its polls begin once it is started.
fn push_poll(
    actions: &mut Vec<Action>,
    wakes: &mut Vec<DateTime<Utc>>,
    o: &Observed,
    now: DateTime<Utc>,
) {
    if o.task == TaskState::Pending && !o.status_in_doubt {
        return;
    }
    if let Some(at) = o.next_poll_at {
        if at <= now && o.orders.unfinished > 0 {
            actions.push(Action::Poll);
        } else if o.orders.unfinished > 0 {
            wakes.push(at);
        }
    }
}

fn finish(actions: Vec<Action>, wakes: Vec<DateTime<Utc>>, now: DateTime<Utc>, why: Why) -> Plan {
    let next_wake = wakes.into_iter().filter(|at| *at > now).min();
    Plan {
        actions,
        next_wake,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Window;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn settings(max_call: u32) -> TaskSettings {
        TaskSettings {
            window: Window {
                zone_second: 0,
                weekdays: 0b0011_1110,
                up_hours: 0x3fe00,
                down_hours: 0x3fe00,
            },
            task_name: "demo".into(),
            strategy_name: String::new(),
            max_call,
            max_ring_time: 40,
            route_id: String::new(),
            task_keep: true,
            round_redial: false,
            whole_tts: true,
            phone_encrypt: false,
            sms: vec![],
            manual_call: None,
        }
    }

    /// Monday 23rd, a stretch open 09:00-18:00 every weekday, forever.
    fn desired(now: DateTime<Utc>) -> Desired {
        Desired {
            now,
            file_present: true,
            paused: false,
            end: None,
            target: Some(Target {
                settings: settings(5),
                from: now,
                until: None,
                first_open: Some(t(23, 9, 0)),
                last_close: None,
            }),
            open_now: true,
            holiday: None,
            next_open: Some(now),
            delete_undialled_on_remove: false,
            apply_delay: Duration::minutes(5),
            has_contacts: true,
        }
    }

    fn observed(task: TaskState) -> Observed {
        Observed {
            task,
            sent_matches_target: true,
            sent_safe_now: true,
            settings_effective_at: None,
            status_in_doubt: false,
            orders: Orders {
                planned: 0,
                sending: 0,
                sent: 10,
                rejected: 0,
                unfinished: 10,
            },
            next_poll_at: None,
            next_retry_at: None,
        }
    }

    #[test]
    fn creates_task_with_first_batch_when_nothing_exists() {
        let d = desired(t(23, 10, 0));
        let mut o = observed(TaskState::NotCreated);
        o.sent_matches_target = false;
        o.sent_safe_now = false;
        o.orders = Orders {
            planned: 1200,
            ..Orders::default()
        };
        let plan = decide(&d, &o);
        assert_eq!(
            plan.actions,
            vec![Action::CreateTask {
                settings: settings(5)
            }]
        );
        assert_eq!(plan.why, Why::Uploading);
    }

    #[test]
    fn starts_pending_task_once_settings_are_in_effect() {
        let d = desired(t(23, 10, 0));
        let mut o = observed(TaskState::Pending);
        o.settings_effective_at = Some(t(23, 10, 3));
        let plan = decide(&d, &o);
        assert!(!plan.actions.contains(&Action::Start), "{plan:?}");
        assert_eq!(plan.next_wake, Some(t(23, 10, 3)));
        assert!(matches!(plan.why, Why::WaitingForSettings { .. }));

        let d = desired(t(23, 10, 3));
        let plan = decide(&d, &o);
        assert_eq!(plan.actions, vec![Action::Start]);
        assert!(plan.why.is_dialling());
    }

    #[test]
    fn resolves_sending_before_any_upload_or_start() {
        let d = desired(t(23, 10, 0));
        let mut o = observed(TaskState::Paused);
        o.orders.sending = 500;
        o.orders.planned = 100;
        let plan = decide(&d, &o);
        assert_eq!(plan.actions, vec![Action::ResolveSending]);
        assert_eq!(plan.why, Why::CheckingInDoubt);
    }

    #[test]
    fn resolves_a_creation_in_doubt_before_creating_again() {
        let d = desired(t(23, 10, 0));
        let mut o = observed(TaskState::CreateInDoubt);
        o.orders.planned = 100;
        let plan = decide(&d, &o);
        assert_eq!(plan.actions, vec![Action::ResolveSending]);
    }

    #[test]
    fn pauses_when_the_file_says_paused_and_never_starts() {
        let mut d = desired(t(23, 10, 0));
        d.paused = true;
        let plan = decide(&d, &observed(TaskState::Running));
        assert_eq!(plan.actions, vec![Action::Pause]);
        assert_eq!(plan.why, Why::PausedInFile);
        let plan = decide(&d, &observed(TaskState::Paused));
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn pauses_then_updates_when_the_next_stretch_needs_other_settings() {
        // Friday 18:00, the current stretch has no dialling left; the target is the next stretch from Monday.
        let now = t(27, 18, 0);
        let mut d = desired(now);
        d.open_now = false;
        d.target = Some(Target {
            settings: settings(7),
            from: t(30, 0, 0),
            until: None,
            first_open: Some(t(30, 9, 0)),
            last_close: None,
        });
        d.next_open = Some(t(30, 9, 0));
        let mut o = observed(TaskState::Running);
        o.sent_matches_target = false;
        o.sent_safe_now = true;
        let plan = decide(&d, &o);
        assert_eq!(
            plan.actions,
            vec![
                Action::Pause,
                Action::UpdateSettings {
                    settings: settings(7)
                }
            ]
        );

        // After the update, in the gap before the stretch: the new settings are not safe yet; wait, no loop.
        let mut o = observed(TaskState::Paused);
        o.sent_safe_now = false;
        o.settings_effective_at = Some(now + Duration::minutes(5));
        let plan = decide(&d, &o);
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert_eq!(plan.next_wake, Some(now + Duration::minutes(5)));

        // At the stretch's start the settings are safe and in effect: start.
        let mut d2 = d.clone();
        d2.now = t(30, 0, 0);
        let mut o2 = o.clone();
        o2.sent_safe_now = true;
        let plan = decide(&d2, &o2);
        assert_eq!(plan.actions, vec![Action::Start]);
    }

    #[test]
    fn a_waiting_retry_wakes_the_campaign_and_never_completes_its_task() {
        let now = t(23, 10, 0);
        let d = desired(now);
        let mut o = observed(TaskState::Paused);
        o.orders.unfinished = 0;
        let at = now + Duration::minutes(30);
        o.next_retry_at = Some(at);
        let plan = decide(&d, &o);
        assert_eq!(plan.why, Why::RetryWaiting { at });
        assert!(plan.next_wake.is_some_and(|w| w <= at), "{plan:?}");
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::Complete { .. })),
            "{plan:?}"
        );
        o.next_retry_at = None;
        assert_eq!(decide(&d, &o).why, Why::NothingLeft { finished: 10 });
    }

    #[test]
    fn completes_at_end_keeping_undialled_data() {
        let mut d = desired(t(23, 18, 0));
        d.end = Some(t(23, 18, 0));
        let plan = decide(&d, &observed(TaskState::Running));
        assert_eq!(
            plan.actions,
            vec![Action::Complete {
                delete_undialled: false
            }]
        );
    }

    #[test]
    fn removing_the_file_completes_and_deletes_only_when_asked() {
        let mut d = desired(t(23, 11, 0));
        d.file_present = false;
        let plan = decide(&d, &observed(TaskState::Paused));
        assert_eq!(
            plan.actions,
            vec![Action::Complete {
                delete_undialled: false
            }]
        );
        d.delete_undialled_on_remove = true;
        let plan = decide(&d, &observed(TaskState::Paused));
        assert_eq!(
            plan.actions,
            vec![Action::Complete {
                delete_undialled: true
            }]
        );
        let plan = decide(&d, &observed(TaskState::Completed));
        assert!(plan.actions.is_empty());
        assert_eq!(plan.why, Why::FileRemoved);
    }

    #[test]
    fn uploads_rows_appended_to_a_running_task() {
        let d = desired(t(23, 11, 0));
        let mut o = observed(TaskState::Running);
        o.orders.planned = 3;
        let plan = decide(&d, &o);
        assert_eq!(plan.actions, vec![Action::UploadBatches]);
    }

    #[test]
    fn polls_only_when_due_and_unfinished_orders_exist() {
        let d = desired(t(23, 11, 0));
        let mut o = observed(TaskState::Running);
        o.next_poll_at = Some(t(23, 10, 59));
        assert_eq!(decide(&d, &o).actions, vec![Action::Poll]);
        o.orders.unfinished = 0;
        assert!(decide(&d, &o).actions.is_empty());
        o.orders.unfinished = 3;
        o.next_poll_at = Some(t(23, 11, 1));
        let plan = decide(&d, &o);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.next_wake, Some(t(23, 11, 1)));
    }

    #[test]
    fn a_task_never_started_is_not_polled() {
        let d = desired(t(23, 11, 0));
        let mut o = observed(TaskState::Pending);
        o.next_poll_at = Some(t(23, 10, 59));
        let plan = decide(&d, &o);
        assert!(!plan.actions.contains(&Action::Poll), "{:?}", plan.actions);
        // Nor is a wake kept for its polls.
        o.next_poll_at = Some(t(23, 11, 30));
        assert_ne!(decide(&d, &o).next_wake, Some(t(23, 11, 30)));
        // Once it was started (or paused after running), its orders are polled again.
        for state in [TaskState::Running, TaskState::Paused] {
            let mut o = observed(state);
            o.next_poll_at = Some(t(23, 10, 59));
            assert!(decide(&d, &o).actions.contains(&Action::Poll), "{state:?}");
        }
    }

    #[test]
    fn says_holiday_and_when_dialling_resumes() {
        let mut d = desired(t(26, 10, 0));
        d.open_now = false;
        d.holiday = Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        d.next_open = Some(t(27, 9, 0));
        let plan = decide(&d, &observed(TaskState::Running));
        let text = plan.why.describe(&|at| at.format("%a %H:%M").to_string());
        assert_eq!(text, "holiday 2026-11-26; dialling resumes Fri 09:00");
    }

    fn arb_state() -> impl Strategy<Value = TaskState> {
        prop_oneof![
            Just(TaskState::NotCreated),
            Just(TaskState::CreateInDoubt),
            Just(TaskState::Pending),
            Just(TaskState::Running),
            Just(TaskState::Paused),
            Just(TaskState::Completed),
            Just(TaskState::Failed),
        ]
    }

    proptest! {
        /// The safety rules hold for every combination of inputs.
        #[test]
        fn never_unsafe(
            state in arb_state(),
            matches in any::<bool>(),
            safe in any::<bool>(),
            effective_in in -10i64..10,
            paused in any::<bool>(),
            present in any::<bool>(),
            ended in any::<bool>(),
            planned in 0u64..3,
            sending in 0u64..2,
            unfinished in 0u64..3,
            dialling_left in any::<bool>(),
            status_in_doubt in any::<bool>(),
        ) {
            let now = t(23, 12, 0);
            let mut d = desired(now);
            d.paused = paused;
            d.file_present = present;
            if ended { d.end = Some(now); }
            if !dialling_left && let Some(target) = d.target.as_mut() {
                target.last_close = Some(now);
            }
            let o = Observed {
                task: state,
                sent_matches_target: matches,
                sent_safe_now: safe,
                settings_effective_at: Some(now + Duration::minutes(effective_in)),
                status_in_doubt,
                orders: Orders { planned, sending, sent: 5, rejected: 0, unfinished },
                next_poll_at: Some(now),
                next_retry_at: None,
            };
            let plan = decide(&d, &o);
            let a = &plan.actions;
            let has = |x: &Action| a.contains(x);
            if has(&Action::Start) {
                // Start only with safe, matching, effective settings, while the file allows and time is left.
                prop_assert!(safe && matches && effective_in <= 0 && !paused && present && !ended && dialling_left);
                prop_assert!(sending == 0 && state != TaskState::CreateInDoubt && !status_in_doubt);
                prop_assert!(matches!(state, TaskState::Pending | TaskState::Paused));
            }
            // A task that is or may be running, with unsafe settings or paused in the file, is always paused (or
            // completed).
            let may_run = state == TaskState::Running || (status_in_doubt && state.is_live());
            if may_run && (!safe || paused || !matches) {
                let completes = a.iter().any(|x| matches!(x, Action::Complete { .. }));
                prop_assert!(has(&Action::Pause) || completes);
            }
            // updateTask only after a pause, or on a paused/pending task.
            if let Some(i) = a.iter().position(|x| matches!(x, Action::UpdateSettings { .. })) {
                let paused_before = a[..i].contains(&Action::Pause);
                prop_assert!(paused_before || matches!(state, TaskState::Pending | TaskState::Paused));
            }
            // Nothing is uploaded or created while something is in doubt, and ResolveSending comes first.
            if sending > 0 || state == TaskState::CreateInDoubt || status_in_doubt {
                prop_assert_eq!(a.first(), Some(&Action::ResolveSending));
                let uploads = a.iter().any(|x| matches!(x, Action::UploadBatches | Action::CreateTask { .. }));
                prop_assert!(!uploads);
            }
            // Never a second creation of a task that exists.
            if a.iter().any(|x| matches!(x, Action::CreateTask { .. })) {
                prop_assert_eq!(state, TaskState::NotCreated);
            }
            // Terminal tasks are never operated on (polling aside).
            if state.is_terminal() {
                prop_assert!(a.iter().all(|x| matches!(x, Action::Poll | Action::ResolveSending)));
            }
            // At most one of each action.
            for x in a {
                prop_assert_eq!(a.iter().filter(|y| y.name() == x.name()).count(), 1);
            }
            if let Some(wake) = plan.next_wake { prop_assert!(wake > now); }
        }
    }
}
