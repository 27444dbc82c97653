//! `campaignd status [CAMPAIGN]`: per campaign, its state, task, progress, the next action and when it is due, and
//! in words why it is or isn't dialling. Reads the campaign files and the store; never calls the platform.
//!
//! A batch in flight (orders `sending`) is told apart by its campaign's lease: held by a live replica, it is being
//! uploaded; left by a replica whose lease expired (or with no lease at all), it was interrupted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use callbot_api::wire::TaskStatus;
use campaign::CampaignSpec;
use campaign::chrono::{DateTime, Utc};
use daemon::{
    Action, Plan, Snapshot, TaskState, Why, decide, desired, local_label, observed_at, snapshot,
};
use serde::Serialize;
use store::LeaseRecord;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// Arguments of `campaignd status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this campaign (its ID).
    pub campaign: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Store URL; defaults to `[store] url` from the configuration.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Campaigns directory; defaults to `[campaigns] dir` from the configuration.
    #[arg(long, value_name = "DIR")]
    pub campaigns_dir: Option<PathBuf>,
    /// Evaluate at this instant (RFC 3339, e.g. 2026-11-23T14:00:00Z) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Serialize)]
struct CampaignStatus {
    id: String,
    file: String,
    file_present: bool,
    file_error: Option<String>,
    state: String,
    dialling: bool,
    why: String,
    user_task_id: String,
    task_id: Option<String>,
    task_state: TaskState,
    orders: store::OrderCounts,
    /// Tasks of earlier generations: (userTaskID, generation, platform status).
    other_tasks: Vec<(String, i64, Option<i64>)>,
    next_actions_now: Vec<String>,
    next_at: Option<DateTime<Utc>>,
    next_at_local: Option<String>,
    next_actions_then: Vec<String>,
    last_error: Option<String>,
    /// Planned numbers held by a cap (not uploaded until the cap allows), and the first release when known.
    held: u64,
    held_until: Option<DateTime<Utc>>,
    /// Where the batch in flight stands, when orders are `sending`.
    upload: Option<Upload>,
    /// A repeating campaign's round in force, and the next.
    round: Option<RoundStatus>,
    /// Whose local time the task dials in, and the legal calling hours that narrow it.
    zones: ZonesStatus,
    /// With `timezone = "contact"` and several zone groups, the group this task dials (one status per task).
    zone_group: Option<String>,
}

/// The zones and legal rules the campaign's task is compiled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ZonesStatus {
    /// The zone of the task's `zoneSecond`.
    task_zone: String,
    /// The zones the file's windows are read in.
    windows_in: Vec<String>,
    /// The contacts' zone groups (zones and rules), with their contacts in the file (0: recorded for the task, no
    /// longer in the file).
    groups: Vec<(String, u64)>,
    /// Each legal rule, the zones it is read in, and its source.
    rules: Vec<String>,
    /// Contacts without a known zone: never dialled.
    unzoned: u64,
    unzoned_lines: Vec<u64>,
}

impl ZonesStatus {
    fn of(spec: &CampaignSpec) -> ZonesStatus {
        let cal = spec.calendar();
        let mut rules: Vec<(String, Vec<String>, String)> = Vec::new();
        for (zone, rule) in cal.rules() {
            match rules.iter_mut().find(|(name, ..)| *name == rule.name) {
                Some((_, zones, _)) => zones.push(zone.to_string()),
                None => rules.push((
                    rule.name.clone(),
                    vec![zone.to_string()],
                    rule.source.clone(),
                )),
            }
        }
        let audience = spec.audience.clone().unwrap_or_default();
        ZonesStatus {
            task_zone: cal.task_zone().to_string(),
            windows_in: cal.window_zones().iter().map(ToString::to_string).collect(),
            groups: audience
                .groups
                .iter()
                .map(|g| (g.group.label(), g.contacts))
                .chain(audience.recorded.iter().map(|g| (g.label(), 0)))
                .collect(),
            rules: rules
                .into_iter()
                .map(|(name, zones, source)| format!("{name} in {} ({source})", zones.join(", ")))
                .collect(),
            unzoned: audience.unzoned,
            unzoned_lines: audience.unzoned_lines,
        }
    }
}

/// The round of a repeating campaign (`[schedule] repeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct RoundStatus {
    repeat: String,
    on_next_round: &'static str,
    /// The round in force (1 for the first occurrence at or after `start`).
    number: u32,
    started_at: DateTime<Utc>,
    /// The next occurrence: when the next round is due.
    next_at: Option<DateTime<Utc>>,
    next_at_local: Option<String>,
    /// With `on_next_round = "keep"`: the round the calendar has reached, waiting for this one to run out.
    waiting: Option<u32>,
    /// Rounds that have a task so far (this one included).
    rounds_so_far: usize,
}

/// A batch in flight, as its campaign's lease tells it at the status command's `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Upload {
    /// A live replica holds the campaign's lease: the batch is being sent, or its answer awaited.
    Uploading {
        replica: String,
        lease_until: DateTime<Utc>,
    },
    /// Nobody holds the lease: the replica that sent the batch is gone. `replica` and `lease_expired_at` are those of
    /// the expired lease, or both `None` when none is stored (it was given up, or never taken).
    Interrupted {
        replica: Option<String>,
        lease_expired_at: Option<DateTime<Utc>>,
    },
}

impl Upload {
    /// The batch in flight of a campaign whose decision at `now` is `why`, from its lease: `None` unless the
    /// decision is to check with the platform what is in doubt.
    fn at(why: &Why, lease: Option<&LeaseRecord>, now: DateTime<Utc>) -> Option<Upload> {
        if *why != Why::CheckingInDoubt {
            return None;
        }
        Some(match lease {
            Some(l) if l.is_current(now) => Upload::Uploading {
                replica: l.owner.clone(),
                lease_until: l.expires_at,
            },
            Some(l) => Upload::Interrupted {
                replica: Some(l.owner.clone()),
                lease_expired_at: Some(l.expires_at),
            },
            None => Upload::Interrupted {
                replica: None,
                lease_expired_at: None,
            },
        })
    }

    /// In words, in place of the decision's own `why`; `local` renders an instant in the campaign's own time zone.
    fn describe(&self, local: &dyn Fn(DateTime<Utc>) -> String) -> String {
        const NEXT: &str =
            "the next owner checks with the platform what it did before sending anything again";
        match self {
            Upload::Uploading {
                replica,
                lease_until,
            } => format!(
                "uploading: orders are in flight, held by replica {replica} (lease until {})",
                local(*lease_until)
            ),
            Upload::Interrupted {
                replica: Some(replica),
                lease_expired_at: Some(at),
            } => format!(
                "interrupted: replica {replica} left orders in flight (its lease expired {}); {NEXT}",
                local(*at)
            ),
            Upload::Interrupted { .. } => {
                format!(
                    "interrupted: orders were left in flight and no replica holds the campaign's lease; {NEXT}"
                )
            }
        }
    }
}

pub async fn run(args: StatusArgs, _shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_cli()?;
    let url = args
        .store
        .clone()
        .unwrap_or_else(|| settings.store.url.clone());
    let dir = args
        .campaigns_dir
        .clone()
        .unwrap_or_else(|| settings.campaigns.dir.clone());
    let apply_delay = campaign::chrono::Duration::from_std(settings.reconcile.apply_delay)
        .context("[reconcile] apply_delay is too large")?;
    let now = super::instant(args.now.as_deref())?;
    let store = crate::open_store::open_store(&url).await?;

    // The campaign set as the daemon builds it: the last good specs kept in the store (finished ones included, so
    // they can be shown), then the files as they are now.
    let records = store
        .campaigns()
        .await
        .context("cannot read the campaigns from the store")?;
    let mut set = daemon::CampaignSet::with_contact_limits(settings.contacts);
    for id in set.load_stored(&records, true) {
        eprintln!("warning: the stored spec of campaign {id} cannot be read; it is left out");
    }
    // A stored audience stands for its contacts file while neither file changed: status shows the groups without
    // reading every contact again.
    set.reuse_stored_audiences();
    let diff = set.scan(&dir);
    if let Some(e) = &diff.dir_error {
        eprintln!("warning: cannot read the campaigns directory: {e}");
    }
    let file_errors: Vec<(PathBuf, String)> = set
        .apply(diff)
        .into_iter()
        .filter(|(path, ..)| !set.entries().any(|c| c.spec.source == *path))
        .map(|(path, error, _)| (path, error))
        .collect();
    let last_error = |id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.last_error.clone())
    };
    let entries: Vec<(CampaignSpec, bool, Option<String>, Option<String>)> = set
        .entries()
        .filter(|c| args.campaign.as_ref().is_none_or(|id| *id == c.spec.id))
        .map(|c| {
            (
                c.spec.clone(),
                c.file_present,
                c.file_error.map(str::to_owned),
                last_error(&c.spec.id),
            )
        })
        .collect();
    if entries.is_empty()
        && let Some(c) = &args.campaign
    {
        anyhow::bail!("no campaign `{c}` in {} or in the store", dir.display());
    }

    let ids: Vec<String> = entries.iter().map(|(spec, ..)| spec.id.clone()).collect();
    let leases: HashMap<String, LeaseRecord> = store
        .leases(&ids)
        .await
        .context("cannot read the campaigns' leases from the store")?
        .into_iter()
        .map(|l| (l.campaign_id.clone(), l))
        .collect();

    let mut out = Vec::new();
    for (file_spec, present, file_error, last_error) in entries {
        // A repeating campaign runs its round in force, as the daemon finds it.
        let in_force = daemon::round_in_force(store.as_ref(), &file_spec, now)
            .await
            .with_context(|| {
                format!(
                    "cannot read campaign {}'s rounds from the store",
                    file_spec.id
                )
            })?;
        // One status per task: the campaign's, or with `timezone = "contact"` each zone group's.
        let current = daemon::user_task_ids(&in_force.spec);
        for task_spec in in_force.spec.task_specs() {
            // The zone groups recorded for the task count as the daemon counts them: its calendar covers them all.
            let spec = daemon::with_recorded_groups(store.as_ref(), &task_spec)
                .await
                .with_context(|| format!("cannot read campaign {}'s zone groups", file_spec.id))?;
            let contacts_hint =
                u64::from(std::fs::metadata(&spec.contacts.file).is_ok_and(|m| m.len() > 0));
            let snap = snapshot(
                store.as_ref(),
                &spec,
                present,
                contacts_hint,
                now,
                apply_delay,
                None,
            )
            .await
            .with_context(|| format!("cannot read campaign {} from the store", spec.id))?;
            let caps = daemon::caps_in_force(&settings.caps, &spec);
            let held = if caps.is_empty() {
                store::Held::default()
            } else {
                store
                    .held_numbers(&daemon::user_task_id(&spec), &caps, now)
                    .await
                    .with_context(|| format!("cannot read campaign {}'s held numbers", spec.id))?
            };
            let mut status = describe(
                &spec,
                present,
                file_error.clone(),
                last_error.clone(),
                &snap,
                apply_delay,
            );
            if current.len() > 1 {
                status.zone_group = spec.task_group().map(campaign::ZoneGroup::label);
            }
            status.held = held.numbers;
            status.held_until = held.until;
            status.upload = Upload::at(&snap.plan.why, leases.get(&spec.id), now);
            let tasks = store
                .tasks(&spec.id)
                .await
                .with_context(|| format!("cannot read campaign {}'s tasks", spec.id))?;
            status.other_tasks = tasks
                .iter()
                .filter(|t| !current.contains(&t.user_task_id))
                .map(|t| (t.user_task_id.clone(), t.generation, t.platform_status))
                .collect();
            if let (Some(repeat), Some(round)) = (&file_spec.repeat, in_force.round) {
                let next = in_force.next_change();
                status.round = Some(RoundStatus {
                    repeat: repeat.cron.clone(),
                    on_next_round: repeat.on_next_round.as_str(),
                    number: round.number,
                    started_at: round.starts,
                    next_at: next,
                    next_at_local: next.map(|at| local_label(&spec, at)),
                    waiting: in_force.waiting.map(|w| w.number),
                    rounds_so_far: tasks
                        .iter()
                        .filter(|t| {
                            u32::try_from(t.generation)
                                .ok()
                                .and_then(|g| file_spec.round_of_generation(g))
                                .is_some()
                        })
                        .count(),
                });
            }
            if let Some(upload) = &status.upload {
                status.why = upload.describe(&|at| local_label(&spec, at));
            }
            out.push(status);
        }
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Human => {
            for c in &out {
                print_human(c);
            }
            for (path, e) in &file_errors {
                println!(
                    "file {} is not a valid campaign (nothing runs from it):\n{e}",
                    path.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(
    spec: &CampaignSpec,
    present: bool,
    file_error: Option<String>,
    last_error: Option<String>,
    snap: &Snapshot,
    apply_delay: campaign::chrono::Duration,
) -> CampaignStatus {
    let label = |at: DateTime<Utc>| local_label(spec, at);
    let why = snap.plan.why.describe(&label);
    // What the daemon would do at the next wake-up, if nothing else changes before then.
    let mut now_actions = names(&snap.plan.actions);
    if snap.observed.task == TaskState::NotCreated
        && snap.counts.total == 0
        && snap.desired.has_contacts
        && snap.desired.target.is_some()
        && present
    {
        // `run` reads the CSV first; with contacts there it creates the task with the first batch.
        now_actions.push("plan contacts".into());
        now_actions.push("create-task".into());
    }
    let (next_at, then) = match snap.plan.next_wake {
        Some(at) => {
            let d = desired(spec, at, present, snap.desired.has_contacts, apply_delay);
            let o = observed_at(
                spec,
                snap.task.as_ref(),
                &snap.counts,
                &d,
                apply_delay,
                None,
            );
            let plan: Plan = decide(&d, &o);
            (Some(at), names(&plan.actions))
        }
        None => (None, vec![]),
    };
    let state = if !present {
        "removed".to_owned()
    } else if file_error.is_some() {
        "file error (last good version runs)".to_owned()
    } else if snap.observed.task.is_terminal() {
        "done".to_owned()
    } else if snap.plan.why.is_dialling() {
        "dialling".to_owned()
    } else {
        "not dialling".to_owned()
    };
    CampaignStatus {
        id: spec.id.clone(),
        file: spec.source.display().to_string(),
        file_present: present,
        file_error,
        state,
        dialling: snap.plan.why.is_dialling(),
        why,
        user_task_id: daemon::user_task_id(spec),
        task_id: snap.task.as_ref().and_then(|t| t.task_id.clone()),
        task_state: snap.observed.task,
        orders: snap.counts,
        other_tasks: Vec::new(),
        next_actions_now: now_actions,
        next_at,
        next_at_local: next_at.map(label),
        next_actions_then: then,
        last_error,
        held: 0,
        held_until: None,
        upload: None,
        round: None,
        zones: ZonesStatus::of(spec),
        zone_group: None,
    }
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.name().to_owned()).collect()
}

fn print_human(c: &CampaignStatus) {
    match &c.zone_group {
        Some(g) => println!("campaign {} ({}), zone group {g}", c.id, c.file),
        None => println!("campaign {} ({})", c.id, c.file),
    }
    println!("  state:    {}", c.state);
    println!("  why:      {}", c.why);
    let task = match &c.task_id {
        Some(id) => format!(
            "{} (platform taskID {id}): {}",
            c.user_task_id,
            c.task_state.as_str()
        ),
        None => format!("{}: {}", c.user_task_id, c.task_state.as_str()),
    };
    println!("  task:     {task}");
    if let Some(r) = &c.round {
        let next = match (&r.next_at_local, r.waiting) {
            (_, Some(w)) => {
                format!("round {w} is due and starts once this one has nothing left to dial")
            }
            (Some(at), None) => format!("the next round starts {at}"),
            (None, None) => "no round after this one".to_owned(),
        };
        println!(
            "  round:    {} of `{}` (on_next_round = {}), started {}; {next}; {} round(s) so far",
            r.number,
            r.repeat,
            r.on_next_round,
            r.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            r.rounds_so_far
        );
    }
    let z = &c.zones;
    let rules = if z.rules.is_empty() {
        "none".to_owned()
    } else {
        z.rules.join("; ")
    };
    println!(
        "  zones:    task in {}, windows read in {}; legal hours: {rules}",
        z.task_zone,
        z.windows_in.join(", ")
    );
    if z.unzoned > 0 {
        let lines: Vec<String> = z.unzoned_lines.iter().map(u64::to_string).collect();
        println!(
            "            {} contact(s) without a known zone are not dialled (lines {})",
            z.unzoned,
            lines.join(", ")
        );
    }
    for (ut, generation, status) in &c.other_tasks {
        let state = status.map_or("not created", |s| {
            TaskState::from_status(TaskStatus::from_code(s)).as_str()
        });
        println!("            {ut} (generation {generation}): {state}");
    }
    let o = &c.orders;
    println!(
        "  progress: {} contacts: {} uploaded, {} waiting, {} in flight, {} rejected; {} dialled, {} answered, {} finished",
        o.total, o.sent, o.planned, o.sending, o.rejected, o.dialled, o.answered, o.finished
    );
    if c.held > 0 {
        match c.held_until {
            Some(at) => println!(
                "  held:     {} number(s) at a call cap, the first released at {}",
                c.held,
                at.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            None => println!(
                "  held:     {} number(s) at a call cap, until their orders elsewhere finish",
                c.held
            ),
        }
    }
    if !c.next_actions_now.is_empty() {
        println!("  next:     now: {}", c.next_actions_now.join(", "));
    } else if let (Some(at), Some(local)) = (c.next_at, &c.next_at_local) {
        let what = if c.next_actions_then.is_empty() {
            "look again".to_owned()
        } else {
            c.next_actions_then.join(", ")
        };
        println!(
            "  next:     {what} at {local} ({})",
            at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    } else {
        println!("  next:     no calendar change ahead");
    }
    if let Some(e) = &c.file_error {
        println!(
            "  file:     {}",
            e.trim_end().replace('\n', "\n            ")
        );
    }
    if let Some(e) = &c.last_error
        && c.file_error.as_deref() != Some(e.as_str())
    {
        println!("  error:    {e}");
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn lease(owner: &str, expires_at: DateTime<Utc>) -> LeaseRecord {
        LeaseRecord {
            campaign_id: "spring".into(),
            owner: owner.into(),
            expires_at,
        }
    }

    fn label(at: DateTime<Utc>) -> String {
        format!("L{}", at.timestamp() - 1_800_000_000)
    }

    #[test]
    fn only_orders_in_doubt_have_an_upload_whatever_the_lease() {
        let others = [
            Why::FileRemoved,
            Why::Ended { at: None },
            Why::PlatformEnded,
            Why::CompletedOnPlatform,
            Why::NoContacts,
            Why::PausedInFile,
            Why::NothingLeft { finished: 3 },
            Why::Holiday {
                date: t(0).date_naive(),
                next_open: Some(t(3600)),
            },
            Why::WaitingForSettings { effective_at: t(5) },
            Why::ChangingSettings { next_open: None },
            Why::NotStarted { opens_at: None },
            Why::OutsideWindow { next_open: None },
            Why::Dialling { until: None },
            Why::Uploading,
        ];
        let held = lease("replica-a", t(10));
        let gone = lease("replica-a", t(-10));
        for why in &others {
            for l in [None, Some(&held), Some(&gone)] {
                assert_eq!(Upload::at(why, l, t(0)), None, "{why:?} with {l:?}");
            }
        }
    }

    #[test]
    fn a_current_lease_is_uploading_until_the_instant_it_expires() {
        let l = lease("replica-a", t(10));
        for now in [t(-100), t(0), t(9)] {
            assert_eq!(
                Upload::at(&Why::CheckingInDoubt, Some(&l), now),
                Some(Upload::Uploading {
                    replica: "replica-a".into(),
                    lease_until: t(10)
                }),
                "at {now}"
            );
        }
        // From `expires_at` on another replica may take the lease over (the store's rule): its owner is gone.
        for now in [t(10), t(11), t(1000)] {
            assert_eq!(
                Upload::at(&Why::CheckingInDoubt, Some(&l), now),
                Some(Upload::Interrupted {
                    replica: Some("replica-a".into()),
                    lease_expired_at: Some(t(10))
                }),
                "at {now}"
            );
        }
    }

    #[test]
    fn no_lease_is_interrupted_by_an_unknown_replica() {
        assert_eq!(
            Upload::at(&Why::CheckingInDoubt, None, t(0)),
            Some(Upload::Interrupted {
                replica: None,
                lease_expired_at: None
            })
        );
    }

    #[test]
    fn each_upload_state_says_who_and_until_when_in_local_time() {
        let uploading = Upload::Uploading {
            replica: "replica-a".into(),
            lease_until: t(120),
        };
        assert_eq!(
            uploading.describe(&label),
            "uploading: orders are in flight, held by replica replica-a (lease until L120)"
        );
        let left = Upload::Interrupted {
            replica: Some("replica-b".into()),
            lease_expired_at: Some(t(-5)),
        };
        assert_eq!(
            left.describe(&label),
            "interrupted: replica replica-b left orders in flight (its lease expired L-5); the next owner checks \
             with the platform what it did before sending anything again"
        );
        let unknown = Upload::Interrupted {
            replica: None,
            lease_expired_at: None,
        };
        assert_eq!(
            unknown.describe(&label),
            "interrupted: orders were left in flight and no replica holds the campaign's lease; the next owner \
             checks with the platform what it did before sending anything again"
        );
    }

    #[test]
    fn the_upload_state_is_a_tagged_json_object() {
        let uploading = Upload::Uploading {
            replica: "replica-a".into(),
            lease_until: t(120),
        };
        assert_eq!(
            serde_json::to_value(&uploading).unwrap(),
            serde_json::json!({
                "state": "uploading",
                "replica": "replica-a",
                "lease_until": "2027-01-15T08:02:00Z"
            })
        );
        let unknown = Upload::Interrupted {
            replica: None,
            lease_expired_at: None,
        };
        assert_eq!(
            serde_json::to_value(&unknown).unwrap(),
            serde_json::json!({ "state": "interrupted", "replica": null, "lease_expired_at": null })
        );
    }
}
