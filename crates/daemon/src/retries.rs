//! Retry rounds: the next attempt of each contact whose last attempt ended in an outcome the campaign's `[retry]`
//! names, planned into the contact's task once the rule's delay has passed since that attempt's last call ended
//! (see [`campaign::RetryPolicy`] for the classes and the `callStatus` codes behind them).
//!
//! A new attempt is a new order with its own deterministic ID ([`campaign::attempt_order_id`]), planned like the
//! first one and uploaded by the same outbox: it is checked against the suppression list when it is planned and
//! again when its batch is claimed, the frequency caps hold it while its number is at a cap, and the task's
//! settings keep it inside the calendar. The store's unique (task, phone, attempt) key makes planning it twice
//! plan it once, so a crash or a second replica can never make one attempt into two orders.

use campaign::{CampaignSpec, RetryClass, RetryRule, attempt_order_id};
use chrono::{DateTime, Duration, Utc};
use store::{NewOrder, OrderRecord, RetryQuery, Store, StoreError};

/// At most this many attempts of one outcome class are planned per reconcile; more wake the campaign again at once.
pub const RETRIES_PER_PASS: u32 = 5_000;

/// What one pass planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retries {
    /// Attempts planned (new orders; a suppressed number's is planned rejected and counted here too).
    pub planned: u64,
    /// When the next waiting attempt falls due.
    pub next_due: Option<DateTime<Utc>>,
    /// More attempts were due than one pass plans.
    pub more: bool,
}

/// The order of the attempt after `previous`: the same contact, task and data, the next attempt number.
pub fn next_attempt(spec: &CampaignSpec, previous: &OrderRecord) -> NewOrder {
    let attempt = previous.attempt.saturating_add(1);
    NewOrder {
        order_id: attempt_order_id(&spec.id, spec.generation, &previous.phone, attempt),
        campaign_id: previous.campaign_id.clone(),
        user_task_id: previous.user_task_id.clone(),
        phone: previous.phone.clone(),
        name: previous.name.clone(),
        customer: previous.customer.clone(),
        other: previous.other.clone(),
        variables: previous.variables.clone(),
        source_line: previous.source_line,
        attempt,
    }
}

/// The store's question for one rule at `now`.
fn query(class: RetryClass, rule: RetryRule, now: DateTime<Utc>) -> (RetryQuery, Duration) {
    let after = Duration::seconds(i64::try_from(rule.after_secs).unwrap_or(i64::MAX / 1000));
    let q = RetryQuery {
        statuses: class.statuses().to_vec(),
        max_attempts: rule.max_attempts,
        ended_by: now.checked_sub_signed(after).unwrap_or(now),
    };
    (q, after)
}

/// The attempts due now in the task `user_task_id` and when the next one falls due, without planning anything.
pub async fn due(
    store: &dyn Store,
    spec: &CampaignSpec,
    user_task_id: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<NewOrder>, Retries), StoreError> {
    let mut orders = Vec::new();
    let mut found = Retries::default();
    for (&class, &rule) in &spec.retry.rules {
        let (q, after) = query(class, rule, now);
        let r = store
            .retries_due(user_task_id, &q, RETRIES_PER_PASS)
            .await?;
        found.more |= r.due.len() >= RETRIES_PER_PASS as usize;
        orders.extend(r.due.iter().map(|o| next_attempt(spec, o)));
        if let Some(at) = r.next_ended_at.and_then(|e| e.checked_add_signed(after)) {
            found.next_due = Some(found.next_due.map_or(at, |n| n.min(at)));
        }
    }
    Ok((orders, found))
}

/// Plans every attempt due now in the task `user_task_id` (at most [`RETRIES_PER_PASS`] per class).
pub async fn plan(
    store: &dyn Store,
    spec: &CampaignSpec,
    user_task_id: &str,
    now: DateTime<Utc>,
) -> Result<Retries, StoreError> {
    if spec.retry.is_empty() {
        return Ok(Retries::default());
    }
    let (orders, mut found) = due(store, spec, user_task_id, now).await?;
    found.planned = store.insert_planned_orders(&orders, now).await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::UploadState;

    #[test]
    fn the_stores_retry_index_holds_every_status_a_class_names() {
        let mut all: Vec<i64> = RetryClass::ALL
            .iter()
            .flat_map(|c| c.statuses().iter().copied())
            .collect();
        all.sort_unstable();
        assert_eq!(all, store::RETRYABLE_STATUSES);
    }

    #[test]
    fn the_next_attempt_keeps_the_contact_and_takes_the_next_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "phone,name\n+14155550123,Ann\n").unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "scene_id = \"S\"\n[schedule]\ntimezone = \"UTC\"\nwindows = [{ days = \"mon-sun\", hours = [\"09:00-17:00\"] }]\n\
             [retry]\nbusy = { after = \"30m\", max_attempts = 3 }\n[contacts]\nfile = \"c.csv\"\n",
        )
        .unwrap();
        let spec = campaign::load_campaign(&path).unwrap();
        let first = OrderRecord {
            order_id: campaign::order_id(&spec.id, spec.generation, "14155550123"),
            campaign_id: spec.id.clone(),
            user_task_id: "t".into(),
            phone: "14155550123".into(),
            name: Some("Ann".into()),
            customer: None,
            other: Some("x".into()),
            variables: serde_json::json!({"a": 1}),
            source_line: 2,
            upload_state: UploadState::Sent,
            reject_reason: None,
            state_changed_at: None,
            finished: true,
            last_call_status: Some(10),
            last_polled_at: None,
            stop_state: None,
            stopped_at: None,
            attempt: 1,
        };
        let second = next_attempt(&spec, &first);
        assert_eq!(second.attempt, 2);
        assert_eq!(
            second.order_id,
            campaign::attempt_order_id(&spec.id, spec.generation, "14155550123", 2)
        );
        assert_ne!(second.order_id, first.order_id);
        assert_eq!(
            (
                second.phone.as_str(),
                second.source_line,
                second.user_task_id.as_str()
            ),
            ("14155550123", 2, "t")
        );
        assert_eq!((second.name, second.other), (first.name, first.other));
        assert_eq!(second.variables, first.variables);

        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 2, 10, 0, 0).unwrap();
        let (q, after) = query(
            RetryClass::Busy,
            RetryRule {
                after_secs: 1800,
                max_attempts: 3,
            },
            now,
        );
        assert_eq!(after, Duration::minutes(30));
        assert_eq!(q.ended_by, now - after);
        assert_eq!(q.statuses, vec![10, 11]);
    }
}
