//! `campaignd validate`: lint campaign files and their contacts; exit status 1 on any error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use campaign::{
    CampaignSpec, ContactIssue, ContactIssueKind, ContactLimits, ContactReader, Diagnostic,
    Diagnostics,
};
use clock::Clock as _;
use serde_json::json;

/// Output format of `validate` and `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Compiler-style text for people.
    #[default]
    Human,
    /// One JSON document for machines.
    Json,
}

/// Arguments of `campaignd validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Campaign files to check; default: every `*.toml` in the campaigns directory.
    pub files: Vec<PathBuf>,
    /// The campaigns directory.
    #[arg(long, default_value = "campaigns", env = "CAMPAIGND_CAMPAIGNS__DIR")]
    pub campaigns_dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// How many contact issues to list per campaign.
    #[arg(long, default_value_t = 20)]
    pub max_contact_issues: usize,
    /// Also fail (exit status 1) when a contact row is left out: a bad phone, a duplicate, an empty variable.
    /// Without it such rows are reported, left out, and do not fail.
    #[arg(long)]
    pub strict_contacts: bool,
}

/// The campaign files of `dir`, by the daemon's own rule (hidden and temporary files are not campaigns), sorted.
pub(crate) fn campaign_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    daemon::campaign_files(dir).with_context(|| {
        format!(
            "cannot list the campaigns directory {} (set --campaigns-dir)",
            dir.display()
        )
    })
}

/// The files' parsed campaigns, every diagnostic (errors and warnings, including the cross-file ones and the
/// warnings that depend on `now`) and the texts for quoting source lines.
pub(crate) struct Loaded {
    pub specs: Vec<CampaignSpec>,
    pub diagnostics: Diagnostics,
    pub sources: BTreeMap<PathBuf, String>,
}

/// The `[contacts]` limits of the configuration (file, then environment), which `validate` and `plan` check files
/// against exactly as the daemon does.
pub(crate) fn contact_limits() -> anyhow::Result<ContactLimits> {
    Ok(crate::config::Settings::from_cli()
        .context("cannot read the configuration, which holds the [contacts] limits")?
        .contacts)
}

pub(crate) fn load_all(
    files: &[PathBuf],
    limits: &ContactLimits,
    now: campaign::chrono::DateTime<campaign::chrono::Utc>,
) -> Loaded {
    let mut specs = Vec::new();
    let mut diagnostics = Diagnostics::default();
    let mut sources = BTreeMap::new();
    for file in files {
        if let Ok(text) = std::fs::read_to_string(file) {
            sources.insert(file.clone(), text);
        }
        match campaign::load_campaign_with_limits(file, limits) {
            Ok((spec, warnings)) => {
                diagnostics.extend(warnings);
                diagnostics.extend(campaign::warnings_at(&spec, now));
                specs.push(spec);
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    diagnostics.extend(campaign::validate_set(&specs));
    Loaded {
        specs,
        diagnostics,
        sources,
    }
}

/// What reading a campaign's contacts found.
pub(crate) enum ContactsOutcome {
    Read(campaign::ContactSummary),
    Failed(String),
}

pub(crate) fn read_contacts(
    spec: &CampaignSpec,
    limits: &ContactLimits,
    keep: usize,
) -> ContactsOutcome {
    match ContactReader::open_with_limits(spec, limits) {
        Ok(reader) => ContactsOutcome::Read(reader.summarize(keep)),
        Err(e) => ContactsOutcome::Failed(e.to_string()),
    }
}

pub(crate) fn issue_json(issue: &ContactIssue) -> serde_json::Value {
    let kind = match &issue.kind {
        ContactIssueKind::InvalidPhone { .. } => "invalid_phone",
        ContactIssueKind::Duplicate { .. } => "duplicate",
        ContactIssueKind::MissingVariable { .. } => "missing_variable",
        ContactIssueKind::Malformed { .. } => "malformed",
        ContactIssueKind::ControlCharacter { .. } => "control_character",
        _ => "other",
    };
    json!({ "line": issue.line, "kind": kind, "message": issue.kind.to_string() })
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or(serde_json::Value::Null)
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        campaign_files(&args.campaigns_dir)?
    } else {
        args.files.clone()
    };
    let now = clock::SystemClock.now();
    let limits = contact_limits()?;
    let loaded = load_all(&files, &limits, now);

    let mut campaigns = Vec::new();
    let mut human = String::new();
    let mut contact_failures = 0u64;
    for spec in &loaded.specs {
        let csv = spec.contacts.file.display().to_string();
        match read_contacts(spec, &limits, args.max_contact_issues) {
            ContactsOutcome::Read(s) => {
                contact_failures += s.invalid + s.duplicate;
                let listed = s.issues.len() as u64;
                let more = (s.invalid + s.duplicate).saturating_sub(listed);
                human.push_str(&format!(
                    "{}: {} contacts valid, {} invalid, {} duplicate; {} batch(es) of up to {}\n",
                    spec.id,
                    s.valid,
                    s.invalid,
                    s.duplicate,
                    s.batches(spec.contacts.batch_size),
                    spec.contacts.batch_size
                ));
                for issue in &s.issues {
                    human.push_str(&format!("  {csv}:{}: {}\n", issue.line, issue.kind));
                }
                if more > 0 {
                    human.push_str(&format!("  … and {more} more contact issue(s)\n"));
                }
                campaigns.push(json!({
                    "id": spec.id,
                    "file": spec.source.display().to_string(),
                    "contacts": {
                        "file": csv,
                        "valid": s.valid,
                        "invalid": s.invalid,
                        "duplicate": s.duplicate,
                        "batches": s.batches(spec.contacts.batch_size),
                        "issues": s.issues.iter().map(issue_json).collect::<Vec<_>>(),
                        "more_issues": more,
                    },
                }));
            }
            ContactsOutcome::Failed(e) => {
                contact_failures += 1;
                human.push_str(&format!("{}: contacts not read: {e}\n", spec.id));
                campaigns.push(json!({
                    "id": spec.id,
                    "file": spec.source.display().to_string(),
                    "contacts": { "file": csv, "error": e },
                }));
            }
        }
    }

    let errors = loaded.diagnostics.error_count();
    let warnings = loaded.diagnostics.warning_count();
    let failed = errors > 0 || (args.strict_contacts && contact_failures > 0);
    match args.format {
        OutputFormat::Human => {
            print!("{}", loaded.diagnostics.render_human(&loaded.sources));
            print!("{human}");
            println!(
                "{} file(s) checked: {errors} error(s), {warnings} warning(s){}",
                files.len(),
                if errors == 0 {
                    ""
                } else {
                    "; fix the errors above, then run `campaignd validate` again"
                }
            );
        }
        OutputFormat::Json => {
            let doc = json!({
                "version": 1,
                "ok": !failed,
                "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": loaded.diagnostics.0.iter().map(diagnostic_json).collect::<Vec<_>>(),
                "campaigns": campaigns,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("cannot encode the JSON output")?
            );
        }
    }
    if failed && errors == 0 && args.format == OutputFormat::Human {
        println!(
            "--strict-contacts: {contact_failures} contact row(s) left out; fix the CSV rows listed above"
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
