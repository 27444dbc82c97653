//! `campaignd status [CAMPAIGN]`: per campaign, its state, task, progress, the next action and when it is due, and
//! in words why it is or isn't dialling. Reads the campaign files and the store; never calls the platform.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use callbot_api::wire::TaskStatus;
use campaign::CampaignSpec;
use campaign::chrono::{DateTime, Utc};
use clock::Clock;
use daemon::{
    Action, Plan, Snapshot, TaskState, decide, desired, local_label, observed_at, snapshot,
};
use serde::Serialize;
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
    let now = match &args.now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| {
                format!("--now {s:?} is not an RFC 3339 instant such as 2026-11-23T14:00:00Z")
            })?
            .with_timezone(&Utc),
        None => clock::SystemClock.now(),
    };
    let store = crate::open_store::open_store(&url).await?;

    // The campaign set as the daemon builds it: the last good specs kept in the store (finished ones included, so
    // they can be shown), then the files as they are now.
    let records = store
        .campaigns()
        .await
        .context("cannot read the campaigns from the store")?;
    let mut set = daemon::CampaignSet::new();
    for id in set.load_stored(&records, true) {
        eprintln!("warning: the stored spec of campaign {id} cannot be read; it is left out");
    }
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

    let mut out = Vec::new();
    for (spec, present, file_error, last_error) in entries {
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
        let caps: Vec<store::Cap> = settings
            .caps
            .iter()
            .chain(&spec.caps)
            .map(|c| store::Cap {
                within: campaign::chrono::Duration::seconds(
                    i64::try_from(c.within_secs).unwrap_or(i64::MAX),
                ),
                max: c.max,
            })
            .collect();
        let held = if caps.is_empty() {
            store::Held::default()
        } else {
            store
                .held_numbers(&daemon::user_task_id(&spec), &caps, now)
                .await
                .with_context(|| format!("cannot read campaign {}'s held numbers", spec.id))?
        };
        let mut status = describe(&spec, present, file_error, last_error, &snap, apply_delay);
        status.held = held.numbers;
        status.held_until = held.until;
        out.push(status);
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
    let label = |at: DateTime<Utc>| local_label(&spec.schedule, at);
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
    }
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.name().to_owned()).collect()
}

fn print_human(c: &CampaignStatus) {
    println!("campaign {} ({})", c.id, c.file);
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
    for (ut, generation, status) in &c.other_tasks {
        let state = status.map_or("not created", |s| {
            TaskState::from_status(TaskStatus::from_code(s)).as_str()
        });
        println!("            {ut} (generation {generation}): {state}");
    }
    let o = &c.orders;
    println!(
        "  progress: {} contacts: {} uploaded, {} waiting, {} in doubt, {} rejected; {} dialled, {} answered, {} finished",
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
