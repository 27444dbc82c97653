//! Recurring campaigns: the round of a repeating campaign in force, as the spec its task runs
//! ([`campaign::CampaignSpec::for_round`]: its own generation, its calendar from its occurrence). Shared by the
//! reconciler and by `campaignd status` and `plan`.
//!
//! With `on_next_round = "complete"` the round in force is the calendar's ([`campaign::CampaignSpec::round_at`]),
//! and the reconciler completes the earlier round's task as it does for any earlier generation. With `"keep"`, the
//! latest round that has a task stays in force while that task still has something to dial (orders planned,
//! uploading, or sent and unfinished); the next round starts once it has run out. Both readings come from the store
//! and the clock alone, so a restart or another replica finds the same round.

use campaign::{CampaignSpec, NextRound, Round};
use chrono::{DateTime, Utc};
use store::{Store, StoreError, is_terminal_task_status};

/// The spec in force, and which round it is.
#[derive(Debug, Clone)]
pub struct InForce {
    /// The file's spec, or its round's.
    pub spec: CampaignSpec,
    /// The round in force (`None`: the campaign does not repeat).
    pub round: Option<Round>,
    /// The round the calendar has reached, when `keep` holds an earlier one in force.
    pub waiting: Option<Round>,
}

impl InForce {
    /// The instant the round in force may change by itself: the next occurrence.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        self.waiting.or(self.round).and_then(|r| r.next)
    }
}

/// The spec of a repeating campaign when none of its rounds can run (past its last round): nothing to dial.
fn no_round(file: &CampaignSpec) -> CampaignSpec {
    let mut spec = file.clone();
    spec.generation = file.round_generation(campaign::MAX_ROUNDS);
    spec.schedule.end = spec.schedule.start;
    spec
}

/// The round in force at `now` (see the module docs).
pub async fn in_force(
    store: &dyn Store,
    file: &CampaignSpec,
    now: DateTime<Utc>,
) -> Result<InForce, StoreError> {
    let Some(repeat) = &file.repeat else {
        return Ok(InForce {
            spec: file.clone(),
            round: None,
            waiting: None,
        });
    };
    let Some(due) = file.round_at(now) else {
        return Ok(InForce {
            spec: no_round(file),
            round: None,
            waiting: None,
        });
    };
    if repeat.on_next_round == NextRound::Keep && due.number > 1 {
        // The latest earlier round that has a task, if it still has something to dial.
        let tasks = store.tasks(&file.id).await?;
        let earlier = tasks
            .iter()
            .filter_map(|t| {
                let n = file.round_of_generation(u32::try_from(t.generation).ok()?)?;
                (n < due.number).then_some((n, t))
            })
            .max_by_key(|(n, _)| *n);
        if let Some((n, task)) = earlier
            && !task.platform_status.is_some_and(is_terminal_task_status)
            && let Some(round) = file.round(n)
        {
            let p = store.order_progress(&task.user_task_id).await?;
            if p.planned + p.sending + p.unfinished > 0 {
                return Ok(InForce {
                    spec: file.for_round(&round),
                    round: Some(round),
                    waiting: Some(due),
                });
            }
        }
    }
    Ok(InForce {
        spec: file.for_round(&due),
        round: Some(due),
        waiting: None,
    })
}
