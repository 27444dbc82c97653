//! From a campaign file (and `now`) to the inputs of the decision: the settings to program, the target stretch, and
//! whether the settings last sent still fit. Pure: `now` is an argument.

use campaign::{CampaignSpec, Schedule, Stretch, stretches};
use chrono::{DateTime, Duration, Utc};

use crate::plan::{Desired, Target};
use crate::settings::{
    ManualCallSetting, SmsSetting, TaskSettings, equivalent_in_stretch, equivalent_over_gap,
    next_open,
};

/// How many stretches ahead to look for the next one with dialling time.
const LOOKAHEAD_STRETCHES: usize = 8;
/// How far ahead `next_open` looks.
const NEXT_OPEN_HORIZON_DAYS: i64 = 35;

/// Everything but the calendar comes from the file; `taskKeep` is always on while the file exists (see crate docs).
pub fn task_settings(spec: &CampaignSpec, stretch: &Stretch) -> TaskSettings {
    TaskSettings {
        window: stretch.settings,
        task_name: spec.task_name.clone(),
        strategy_name: spec.strategy.clone(),
        max_call: spec.robots,
        max_ring_time: spec.max_ring_seconds,
        route_id: spec.route_id.clone(),
        task_keep: true,
        round_redial: spec.features.round_redial,
        whole_tts: spec.features.whole_tts,
        phone_encrypt: spec.features.phone_encrypt,
        sms: spec
            .sms
            .iter()
            .map(|r| SmsSetting {
                sms_id: r.sms_id.clone(),
                intent_ids: r.intent_ids.clone(),
                intent_names: r.intent_names.clone(),
            })
            .collect(),
        manual_call: spec.manual_call.as_ref().map(|m| {
            let dispatch_type = i64::from(m.dispatch.dispatch_type());
            ManualCallSetting {
                agent_group: m.agent_group.clone(),
                dispatch_type,
                ratio_call_rate: if dispatch_type == 1 { m.rate } else { 0.0 },
                predict_call_rate: if dispatch_type == 3 { m.rate } else { 0.0 },
            }
        }),
    }
}

fn to_target(spec: &CampaignSpec, s: &Stretch) -> Target {
    Target {
        settings: task_settings(spec, s),
        from: s.from,
        until: s.until,
        first_open: s.first_open,
        last_close: s.last_close,
    }
}

/// The stretch to program the platform for at `now`: the current one while it has dialling left, else the first
/// later one that has. `None` when the calendar allows nothing ever again.
pub fn target_at(spec: &CampaignSpec, now: DateTime<Utc>) -> Option<Target> {
    let all = stretches(&spec.schedule, now, LOOKAHEAD_STRETCHES);
    let first = all.first()?;
    let pick = all
        .iter()
        .map(|s| to_target(spec, s))
        .find(|t| t.has_dialling_left(now));
    Some(pick.unwrap_or_else(|| to_target(spec, first)))
}

/// The desired state of a campaign at `now`.
pub fn desired(
    spec: &CampaignSpec,
    now: DateTime<Utc>,
    file_present: bool,
    has_contacts: bool,
    apply_delay: Duration,
) -> Desired {
    let schedule = &spec.schedule;
    let target = target_at(spec, now);
    let open_now = schedule.allows(now);
    let local_date = schedule.zone.local(now).date();
    let holiday = schedule
        .holidays
        .contains(&local_date)
        .then_some(local_date);
    let allows = |at: DateTime<Utc>| schedule.allows(at);
    let next = next_open(&allows, now, Duration::days(NEXT_OPEN_HORIZON_DAYS));
    Desired {
        now,
        file_present,
        paused: spec.paused,
        end: schedule.end_utc(),
        target,
        open_now,
        holiday,
        next_open: next,
        delete_undialled_on_remove: spec.delete_undialled_on_remove,
        apply_delay,
        has_contacts,
    }
}

/// `(sent_matches_target, sent_safe_now)` for the settings last sent (`None`: unknown, which fits nothing).
pub fn fit(
    schedule: &Schedule,
    target: Option<&Target>,
    sent: Option<&TaskSettings>,
    now: DateTime<Utc>,
) -> (bool, bool) {
    let (Some(target), Some(sent)) = (target, sent) else {
        return (false, false);
    };
    if !sent.same_apart_from_window(&target.settings) {
        return (false, false);
    }
    let allows = |at: DateTime<Utc>| schedule.allows(at);
    let in_stretch = |from: DateTime<Utc>| {
        sent.window == target.settings.window
            || equivalent_in_stretch(&sent.window, &allows, from, target.until)
    };
    let matches = in_stretch(target.from);
    let safe = if target.from > now {
        equivalent_over_gap(&sent.window, &allows, now, target.from) && matches
    } else {
        in_stretch(now)
    };
    (matches, safe)
}

/// Renders an instant in the campaign's own zone, e.g. `Mon 2026-11-23 09:00 America/New_York`.
pub fn local_label(schedule: &Schedule, at: DateTime<Utc>) -> String {
    let local = schedule.zone.local(at);
    let zone = match schedule.zone {
        campaign::Zone::Iana(tz) => tz.name().to_owned(),
        campaign::Zone::Fixed(secs) => format!("UTC{}", campaign::format_offset(secs)),
    };
    format!("{} {zone}", local.format("%a %Y-%m-%d %H:%M"))
}
