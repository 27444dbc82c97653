//! From a campaign file (and `now`) to the inputs of the decision: the settings to program, the target stretch, and
//! whether the settings last sent still fit. Pure: `now` is an argument.

use callbot_api::wire::DispatchType;
use campaign::{CampaignSpec, ContactCalendar, Stretch};
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
            let dispatch_type = DispatchType::from_code(i64::from(m.dispatch.dispatch_type()));
            ManualCallSetting {
                agent_group: m.agent_group.clone(),
                dispatch_type,
                ratio_call_rate: if dispatch_type == DispatchType::Ratio {
                    m.rate
                } else {
                    0.0
                },
                predict_call_rate: if dispatch_type == DispatchType::Predictive {
                    m.rate
                } else {
                    0.0
                },
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
/// later one that has. `None` when the calendar allows nothing ever again. The calendar is the task's
/// ([`CampaignSpec::calendar`]): the file's windows narrowed by the legal hours of every zone group of its contacts.
pub fn target_at(spec: &CampaignSpec, now: DateTime<Utc>) -> Option<Target> {
    let all = spec.calendar().stretches(now, LOOKAHEAD_STRETCHES);
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
    let calendar = spec.calendar();
    let target = target_at(spec, now);
    let open_now = calendar.allows(now);
    let zone = calendar.task_zone();
    let local_date = zone.local(now).date();
    let holiday = calendar.holiday(&zone, local_date).map(|_| local_date);
    let allows = |at: DateTime<Utc>| calendar.allows(at);
    let next = next_open(&allows, now, Duration::days(NEXT_OPEN_HORIZON_DAYS));
    Desired {
        now,
        file_present,
        paused: spec.paused,
        end: calendar.end(),
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
    calendar: &ContactCalendar<'_>,
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
    let allows = |at: DateTime<Utc>| calendar.allows(at);
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

/// Renders an instant in the zone of the campaign's task, e.g. `Mon 2026-11-23 09:00 America/New_York` (the
/// campaign's own zone, or with `timezone = "contact"` its group's first zone).
pub fn local_label(spec: &CampaignSpec, at: DateTime<Utc>) -> String {
    let task_zone = spec.calendar().task_zone();
    let local = task_zone.local(at);
    let zone = match task_zone {
        campaign::Zone::Iana(tz) => tz.name().to_owned(),
        campaign::Zone::Fixed(secs) => format!("UTC{}", campaign::format_offset(secs)),
    };
    format!("{} {zone}", local.format("%a %Y-%m-%d %H:%M"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn spec(zone: &str) -> CampaignSpec {
        let text = format!(
            r#"
scene_id = "SC"
robots = 2
[schedule]
timezone = "{zone}"
start = 2026-03-02T00:00:00
end = 2027-02-01T00:00:00
holidays = [2026-03-10, 2026-11-26, 2026-12-25]
windows = [
  {{ days = "mon-fri", hours = ["09:00-12:00", "13:30-17:00"] }},
  {{ days = "sat", hours = ["10:00-14:00"] }},
  {{ days = "sun", hours = ["22:00-02:00"] }},
]
[contacts]
file = "x.csv"
variables = []
batch_size = 10
"#
        );
        campaign::parse_campaign(std::path::Path::new("/tmp/x.toml"), &text)
            .expect("valid spec")
            .0
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        /// Whatever the daemon would send for the target stretch, `fit` only calls it safe when the platform,
        /// left alone with it, allows exactly what the campaign allows from now to the stretch's end
        /// (checked minute by minute against `Schedule::allows` over the next two days).
        #[test]
        fn safe_settings_never_allow_what_the_campaign_forbids(
            minutes in 0i64..(330 * 24 * 60),
            zone in prop_oneof![Just("America/New_York"), Just("Europe/London"), Just("Asia/Kathmandu"), Just("UTC")],
            stale in any::<bool>(),
        ) {
            let spec = spec(zone);
            let now = Utc.with_ymd_and_hms(2026, 2, 25, 0, 0, 0).unwrap() + Duration::minutes(minutes);
            let Some(target) = target_at(&spec, now) else { return Ok(()) };
            // Either the target's own settings, or the ones of the stretch before (as if not updated yet).
            let sent = if stale {
                match target_at(&spec, now - Duration::days(3)) { Some(t) => t.settings, None => return Ok(()) }
            } else {
                target.settings.clone()
            };
            let (matches, safe) = fit(&spec.calendar(), Some(&target), Some(&sent), now);
            if !stale {
                prop_assert!(matches, "the target's own settings match it");
                if target.from <= now {
                    prop_assert!(safe, "inside its stretch, the target's own settings are safe");
                }
            }
            if safe {
                let end = target.until.map_or(now + Duration::days(2), |u| u.min(now + Duration::days(2)));
                let mut at = now;
                while at < end {
                    prop_assert_eq!(sent.window.allows(at), spec.schedule.allows(at), "at {}", at);
                    at += Duration::minutes(1);
                }
            }
        }
    }

    #[test]
    fn local_label_names_the_zone() {
        let s = spec("America/New_York");
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
        assert_eq!(local_label(&s, at), "Mon 2026-11-23 09:00 America/New_York");
    }
}
