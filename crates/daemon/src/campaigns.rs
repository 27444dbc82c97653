//! The set of campaigns the daemon knows: loading it from the store, merging each directory scan into it (first as a
//! plain [`SetDiff`] value, then applied), and choosing the campaigns that are due. No platform calls, no store
//! writes: the loop does those.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::CampaignRecord;

use crate::contacts::ContactsState;
use crate::outcome::CampaignOutcome;
use crate::scan::{DirChanges, Scanned, Scanner};

/// The daemon's state for a campaign, as recorded in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    /// Its file is there and valid.
    Active,
    /// Its file is there but invalid: the last good version runs.
    Invalid,
    /// Its file is gone: its task is completed.
    Removed,
    /// Its task has ended.
    Done,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Active => "active",
            CampaignState::Invalid => "invalid",
            CampaignState::Removed => "removed",
            CampaignState::Done => "done",
        }
    }

    /// The state a record carries; `None` for text this version does not know.
    pub fn parse(s: &str) -> Option<CampaignState> {
        [
            CampaignState::Active,
            CampaignState::Invalid,
            CampaignState::Removed,
            CampaignState::Done,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Finished with: a file with this ID would start it again.
    pub fn is_finished(self) -> bool {
        matches!(self, CampaignState::Removed | CampaignState::Done)
    }
}

/// What the daemon keeps between reconciles about one task of a campaign.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskLoop {
    pub(crate) last_poll_at: Option<DateTime<Utc>>,
    pub(crate) final_poll_done: bool,
    /// When the next attempt under `[retry]` falls due, as the last reconcile found.
    pub(crate) next_retry_at: Option<DateTime<Utc>>,
}

/// What the daemon knows about one campaign between reconciles.
#[derive(Debug)]
pub(crate) struct Campaign {
    /// The last good version of the file.
    pub(crate) spec: CampaignSpec,
    pub(crate) file_present: bool,
    /// Why the current version of the file is not in use (the last good one runs).
    pub(crate) file_error: Option<String>,
    /// Where the planning of its contacts stands.
    pub(crate) contacts: ContactsState,
    /// Each task's polling and retry state, by userTaskID.
    pub(crate) loops: HashMap<String, TaskLoop>,
    /// The contacts versions the store said were planned into its tasks, as read (see
    /// [`crate::contacts::restore_planned`]).
    pub(crate) planned_versions: crate::contacts::PlannedVersions,
    /// The zone groups the store holds for each task, as last read (see [`Campaign::forget_recorded_groups`]).
    pub(crate) recorded_groups: HashMap<String, Vec<campaign::ZoneGroup>>,
    /// For a repeating campaign, the round in force as the last reconcile found it (its spec is what runs).
    pub(crate) round: Option<crate::rounds::InForce>,
    /// When the next attempt under `[retry]` falls due, as the last reconcile found.

    /// When the campaign must be reconciled next; `None`: at the next reconcile (new, changed, or never done).
    pub(crate) due: Option<DateTime<Utc>>,
    /// The outcome of its last reconcile, reported again while it is not due.
    pub(crate) last: Option<CampaignOutcome>,
    /// When this replica last took or renewed the campaign's lease.
    pub(crate) lease_at: Option<DateTime<Utc>>,
    /// A digest of the record last written to the store, so an unchanged campaign is not written again.
    pub(crate) recorded: Option<u64>,
}

impl Campaign {
    /// The spec that runs: the file's, or its round's for a repeating campaign.
    pub(crate) fn in_force(&self) -> &CampaignSpec {
        self.round.as_ref().map_or(&self.spec, |r| &r.spec)
    }

    /// Forgets the zone groups read for its tasks, so the next reconcile reads them again: after its contacts were
    /// planned (which records groups), and when this replica takes the campaign's lease (another may have planned).
    pub(crate) fn forget_recorded_groups(&mut self) {
        self.recorded_groups.clear();
    }

    /// The polling and retry state of one of its tasks.
    pub(crate) fn task_loop(&mut self, user_task_id: &str) -> &mut TaskLoop {
        self.loops.entry(user_task_id.to_owned()).or_default()
    }

    fn new(spec: CampaignSpec, file_present: bool) -> Campaign {
        Campaign {
            spec,
            file_present,
            file_error: None,
            contacts: ContactsState::default(),
            loops: HashMap::new(),
            planned_versions: HashMap::new(),
            recorded_groups: HashMap::new(),
            round: None,
            due: None,
            last: None,
            lease_at: None,
            recorded: None,
        }
    }
}

/// One campaign as `status` shows it.
#[derive(Debug, Clone, Copy)]
pub struct CampaignEntry<'a> {
    pub spec: &'a CampaignSpec,
    pub file_present: bool,
    pub file_error: Option<&'a str>,
}

/// What one directory scan changes in the set, before it is applied.
#[derive(Debug, Default)]
pub struct SetDiff {
    /// The directory could not be read: nothing changes (a missing mount must not complete campaigns).
    pub dir_error: Option<String>,
    /// New campaigns.
    pub added: Vec<(PathBuf, CampaignSpec)>,
    /// Campaigns whose file was read again; `wake`: its content changed, or it was gone or broken before.
    pub changed: Vec<Reloaded>,
    /// Campaigns whose unchanged file is there again.
    pub back: Vec<String>,
    /// Campaigns whose file is gone: their task will be completed.
    pub removed: Vec<String>,
    /// Files that do not make a campaign, with the campaign whose last good version keeps running, if any.
    pub failed: Vec<FailedFile>,
    /// Files to read again at the next scan (unknown to the set, or now a duplicate of a file sorted before).
    pub rescan: Vec<PathBuf>,
}

/// A campaign file read again.
#[derive(Debug)]
pub struct Reloaded {
    pub path: PathBuf,
    pub spec: CampaignSpec,
    pub wake: bool,
}

/// A file that does not make a campaign.
#[derive(Debug)]
pub struct FailedFile {
    pub path: PathBuf,
    /// The campaign this file was, whose last good version keeps running.
    pub keeps: Option<String>,
    /// The rendered diagnostics.
    pub error: String,
}

/// The campaigns, by ID, with the scanner that reads their directory.
#[derive(Debug, Default)]
pub struct CampaignSet {
    pub(crate) campaigns: BTreeMap<String, Campaign>,
    scanner: Scanner,
    /// File path → error text already counted (so a bad file is counted once per version).
    counted_file_errors: HashMap<PathBuf, String>,
    /// A directory scan still running on a blocking thread, collected at a later pass.
    pending_scan: Option<tokio::task::JoinHandle<(Scanner, DirChanges)>>,
}

impl CampaignSet {
    /// An empty set whose scans check contacts files against the default [`campaign::ContactLimits`].
    pub fn new() -> CampaignSet {
        CampaignSet::default()
    }

    /// An empty set whose scans check contacts files against `limits` (`[contacts]`).
    pub fn with_contact_limits(limits: campaign::ContactLimits) -> CampaignSet {
        CampaignSet {
            scanner: Scanner::new(limits),
            ..CampaignSet::default()
        }
    }

    /// Adds the campaigns kept in the store whose file is not (or not yet) known, from their last good spec. The
    /// daemon leaves out finished ones (`include_finished` false): a file with the same ID starts them again.
    /// Returns the IDs of stored specs that cannot be read.
    ///
    /// Each counts as present as last recorded (every state but `removed`) until a scan says otherwise. A restart's
    /// first scan may outlast a reconcile's wait (it reads every contacts file for its zone groups), and the
    /// reconciles meanwhile must not take a campaign whose file is still there for a removed one and complete its
    /// task: completing cannot be undone. A file removed while the daemon was down is found so by that scan, and the
    /// task is completed then, as a removal is noticed while the daemon runs.
    pub fn load_stored(
        &mut self,
        records: &[CampaignRecord],
        include_finished: bool,
    ) -> Vec<String> {
        let mut unreadable = Vec::new();
        for rec in records {
            let Some(value) = &rec.spec else { continue };
            let state = CampaignState::parse(&rec.state);
            if state.is_some_and(CampaignState::is_finished) && !include_finished {
                continue;
            }
            let present = state != Some(CampaignState::Removed);
            match serde_json::from_value::<CampaignSpec>(value.clone()) {
                Ok(spec) => {
                    self.campaigns
                        .entry(rec.id.clone())
                        .or_insert_with(|| Campaign::new(spec, present));
                }
                Err(_) => unreadable.push(rec.id.clone()),
            }
        }
        unreadable
    }

    /// Lets the next scans show the audiences of the specs loaded so far (from the store) for campaign files that
    /// have not changed, with contacts files that have not changed, instead of reading those files again: for
    /// `campaignd status`, never for the daemon, which reads them (see [`campaign::AudienceSource`]).
    pub fn reuse_stored_audiences(&mut self) {
        let stored: Vec<(std::path::PathBuf, String, campaign::Audience)> = self
            .campaigns
            .values()
            .filter_map(|c| {
                let audience = c.spec.audience.clone()?;
                Some((c.spec.source.clone(), c.spec.content_hash.clone(), audience))
            })
            .collect();
        self.scanner.reuse_audiences(stored);
    }

    /// Reads the directory, parsing only new and changed files (blocking file-system work).
    pub fn scan(&mut self, dir: &Path) -> SetDiff {
        let scan = self.scanner.scan(dir);
        self.diff(scan)
    }

    /// Reads the directory on a blocking thread, waiting at most `wait`: a slow or huge directory never holds
    /// back the campaigns that are due. `None` while the scan is still running (it is collected by a later call).
    pub(crate) async fn scan_bounded(
        &mut self,
        dir: &Path,
        wait: std::time::Duration,
    ) -> Option<SetDiff> {
        let mut handle = match self.pending_scan.take() {
            Some(handle) => handle,
            None => {
                let limits = self.scanner.limits();
                let mut scanner = std::mem::replace(&mut self.scanner, Scanner::new(limits));
                let dir = dir.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    let changes = scanner.scan(&dir);
                    (scanner, changes)
                })
            }
        };
        match tokio::time::timeout(wait, &mut handle).await {
            Ok(Ok((scanner, changes))) => {
                self.scanner = scanner;
                Some(self.diff(changes))
            }
            Ok(Err(e)) => {
                // The scanner is lost with its thread: the next scan parses every file again.
                tracing::warn!(error = %e, "the directory scan failed; scanning again");
                None
            }
            Err(_) => {
                tracing::debug!(
                    "the directory scan is still running; the campaigns due now go first"
                );
                self.pending_scan = Some(handle);
                None
            }
        }
    }

    /// Whether a scan is still running.
    pub(crate) fn scan_pending(&self) -> bool {
        self.pending_scan.is_some()
    }

    /// What a directory pass changes. Pure: reads the set, changes nothing.
    fn diff(&self, scan: DirChanges) -> SetDiff {
        let mut diff = SetDiff {
            dir_error: scan.dir_error,
            ..SetDiff::default()
        };
        if diff.dir_error.is_some() {
            return diff;
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut by_source: HashMap<PathBuf, String> = self
            .campaigns
            .iter()
            .map(|(id, c)| (c.spec.source.clone(), id.clone()))
            .collect();
        for (path, scanned) in scan.files {
            match scanned {
                Scanned::Unchanged { id } => match self.campaigns.get(&id) {
                    Some(c) if seen.insert(id.clone()) => {
                        if !c.file_present {
                            diff.back.push(id);
                        }
                    }
                    _ => diff.rescan.push(path),
                },
                Scanned::Loaded(spec) => {
                    let spec = *spec;
                    let id = spec.id.clone();
                    if !seen.insert(id.clone()) {
                        let error = format!(
                            "campaign id `{id}` is already used by another file in this directory; rename one of them"
                        );
                        diff.failed.push(FailedFile {
                            path,
                            keeps: None,
                            error,
                        });
                        continue;
                    }
                    by_source.insert(path.clone(), id.clone());
                    match self.campaigns.get(&id) {
                        Some(c) => {
                            let wake = c.spec.content_hash != spec.content_hash
                                || !c.file_present
                                || c.file_error.is_some();
                            diff.changed.push(Reloaded { path, spec, wake });
                        }
                        None => diff.added.push((path, spec)),
                    }
                }
                Scanned::Failed(error) => {
                    let keeps = by_source
                        .get(&path)
                        .filter(|id| self.campaigns.contains_key(*id))
                        .cloned();
                    if let Some(id) = &keeps {
                        seen.insert(id.clone());
                    }
                    diff.failed.push(FailedFile { path, keeps, error });
                }
            }
        }
        diff.removed = self
            .campaigns
            .iter()
            .filter(|(id, c)| c.file_present && !seen.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        diff
    }

    /// Applies a scan's diff. Returns every failed file with its error, and whether each is new (not counted
    /// before for this version of the file).
    pub fn apply(&mut self, diff: SetDiff) -> Vec<(PathBuf, String, bool)> {
        if diff.dir_error.is_some() {
            return Vec::new();
        }
        for path in &diff.rescan {
            self.scanner.forget(path);
        }
        for (path, spec) in diff.added {
            tracing::info!(campaign.id = %spec.id, file = %path.display(), "campaign file loaded");
            self.counted_file_errors.remove(&path);
            self.campaigns
                .insert(spec.id.clone(), Campaign::new(spec, true));
        }
        for r in diff.changed {
            self.counted_file_errors.remove(&r.path);
            let Some(c) = self.campaigns.get_mut(&r.spec.id) else {
                continue;
            };
            if c.spec.content_hash != r.spec.content_hash {
                tracing::info!(campaign.id = %r.spec.id, file = %r.path.display(), "campaign file changed");
            }
            if r.wake {
                c.due = None;
            }
            c.spec = r.spec;
            // A repeating campaign's round is found again from the new file at its next reconcile.
            c.round = None;
            c.file_present = true;
            c.file_error = None;
        }
        for id in diff.back {
            if let Some(c) = self.campaigns.get_mut(&id) {
                c.file_present = true;
                c.due = None;
            }
        }
        let mut failed = Vec::with_capacity(diff.failed.len());
        for f in diff.failed {
            if let Some(c) = f.keeps.as_ref().and_then(|id| self.campaigns.get_mut(id)) {
                if !c.file_present || c.file_error.as_ref() != Some(&f.error) {
                    c.due = None;
                }
                c.file_present = true;
                c.file_error = Some(f.error.clone());
            }
            let new = self.counted_file_errors.get(&f.path) != Some(&f.error);
            if new {
                self.counted_file_errors
                    .insert(f.path.clone(), f.error.clone());
            }
            failed.push((f.path, f.error, new));
        }
        for id in diff.removed {
            if let Some(c) = self.campaigns.get_mut(&id) {
                tracing::info!(campaign.id = %id, "campaign file removed: its task will be completed");
                c.file_present = false;
                c.due = None;
            }
        }
        failed
    }

    /// The campaigns to reconcile now: never reconciled, or their time has come, or `touched` (a task callback
    /// arrived for their task), or their contacts file changed since it was planned.
    pub(crate) fn due(
        &self,
        now: DateTime<Utc>,
        touched: impl Fn(&str) -> bool,
    ) -> HashSet<String> {
        self.campaigns
            .iter()
            .filter(|(_, c)| {
                c.due.is_none_or(|at| at <= now)
                    || crate::task::user_task_ids(c.in_force())
                        .iter()
                        .any(|ut| touched(ut))
                    || c.contacts
                        .planned
                        .as_ref()
                        .is_some_and(|planned| *planned != crate::contacts::csv_stamp(c.in_force()))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every campaign, by ID.
    pub fn entries(&self) -> impl Iterator<Item = CampaignEntry<'_>> {
        self.campaigns.values().map(|c| CampaignEntry {
            spec: &c.spec,
            file_present: c.file_present,
            file_error: c.file_error.as_deref(),
        })
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.campaigns.keys().cloned().collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Campaign> {
        self.campaigns.get_mut(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGN: &str = r#"
scene_id = "SC-1"
robots = 1

[schedule]
timezone = "UTC"
windows = [{ days = "mon-fri", hours = ["09:00-17:00"] }]

[contacts]
file = "contacts.csv"
"#;

    fn dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), CAMPAIGN).unwrap();
        std::fs::write(dir.path().join("contacts.csv"), "phone\n+8613800000001\n").unwrap();
        dir
    }

    #[test]
    fn a_new_file_is_added_then_unchanged_then_removed() {
        let dir = dir();
        let mut set = CampaignSet::new();
        let diff = set.scan(dir.path());
        assert_eq!(diff.added.len(), 1);
        assert!(set.apply(diff).is_empty());
        let diff = set.scan(dir.path());
        assert!(diff.added.is_empty() && diff.changed.is_empty() && diff.removed.is_empty());
        set.apply(diff);
        std::fs::remove_file(dir.path().join("a.toml")).unwrap();
        let diff = set.scan(dir.path());
        assert_eq!(diff.removed, vec!["a".to_owned()]);
        set.apply(diff);
        assert!(!set.get("a").unwrap().file_present);
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_version_and_is_counted_once() {
        let dir = dir();
        let mut set = CampaignSet::new();
        let diff = set.scan(dir.path());
        set.apply(diff);
        std::fs::write(dir.path().join("a.toml"), "scene_id = 3\n").unwrap();
        let diff = set.scan(dir.path());
        assert_eq!(diff.failed[0].keeps.as_deref(), Some("a"));
        assert!(
            diff.removed.is_empty(),
            "a broken file is not a removed one"
        );
        let failed = set.apply(diff);
        assert!(failed[0].2, "counted the first time");
        let failed = {
            let diff = set.scan(dir.path());
            set.apply(diff)
        };
        assert!(!failed[0].2, "not counted again for the same version");
        let c = set.get("a").unwrap();
        assert!(c.file_present && c.file_error.is_some());
        assert_eq!(c.spec.scene_id, "SC-1");
    }

    #[test]
    fn an_unreadable_directory_changes_nothing() {
        let dir = dir();
        let mut set = CampaignSet::new();
        let diff = set.scan(dir.path());
        set.apply(diff);
        let diff = set.scan(&dir.path().join("missing"));
        assert!(diff.dir_error.is_some());
        assert!(diff.removed.is_empty());
        set.apply(diff);
        assert!(set.get("a").unwrap().file_present);
    }

    #[test]
    fn finished_stored_campaigns_are_left_out_unless_asked_for() {
        let dir = dir();
        let mut set = CampaignSet::new();
        let diff = set.scan(dir.path());
        set.apply(diff);
        let spec = serde_json::to_value(&set.get("a").unwrap().spec).unwrap();
        let record = |id: &str, state: CampaignState| CampaignRecord {
            id: id.into(),
            generation: 1,
            source_file: "x.toml".into(),
            content_hash: "h".into(),
            spec: Some(spec.clone()),
            state: state.as_str().into(),
            last_error: None,
            updated_at: DateTime::<Utc>::MIN_UTC,
        };
        let mut daemon = CampaignSet::new();
        daemon.load_stored(&[record("a", CampaignState::Done)], false);
        assert!(daemon.ids().is_empty());
        // Present as last recorded until a scan says otherwise.
        daemon.load_stored(&[record("a", CampaignState::Active)], false);
        assert!(daemon.get("a").unwrap().file_present);
        let mut removed = CampaignSet::new();
        removed.load_stored(&[record("a", CampaignState::Removed)], true);
        assert!(!removed.get("a").unwrap().file_present);
        let mut status = CampaignSet::new();
        status.load_stored(&[record("a", CampaignState::Done)], true);
        assert_eq!(status.ids(), vec!["a".to_owned()]);
        assert_eq!(
            CampaignState::parse("removed"),
            Some(CampaignState::Removed)
        );
        assert_eq!(CampaignState::parse("whatever"), None);
    }
}
