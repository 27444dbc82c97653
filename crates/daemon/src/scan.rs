//! Reading the campaigns directory: every `*.toml` file (symlinks followed, so Kubernetes ConfigMap mounts, whose
//! files are links through a `..data` directory swapped atomically, read the current version).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use campaign::CampaignSpec;

/// One pass over the directory.
#[derive(Debug, Default)]
pub struct FileScan {
    /// The directory itself could not be read.
    pub dir_error: Option<String>,
    /// Every campaign file, parsed and validated, or the rendered diagnostics.
    pub files: Vec<(PathBuf, Result<CampaignSpec, String>)>,
}

/// Whether a file name in the campaigns directory is a campaign file: it ends in `.toml`, and it is not hidden
/// or temporary (`.x.toml`, an editor's `#x.toml#` or `~x.toml`, or a name that is only `.toml`). The one rule
/// `run`, `validate`, `plan` and `status` share.
pub fn is_campaign_file_name(name: &str) -> bool {
    is_data_file_name(name, ".toml")
}

/// Whether `name` ends in `ext` and is neither hidden nor temporary (nor only `ext`): the rule for every watched
/// directory (campaign files, suppression files).
pub(crate) fn is_data_file_name(name: &str, ext: &str) -> bool {
    name.len() > ext.len() && name.ends_with(ext) && !name.starts_with(['.', '#', '~'])
}

/// The campaign files of `dir` ([`is_campaign_file_name`]), sorted by path; symlinks are followed.
pub fn campaign_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !is_campaign_file_name(name) {
            continue;
        }
        // `is_file` follows symlinks.
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every campaign file of `dir`, checking contacts files against `limits`.
pub fn scan_dir(dir: &Path, limits: &campaign::ContactLimits) -> FileScan {
    match campaign_files(dir) {
        Ok(paths) => FileScan {
            dir_error: None,
            files: paths
                .into_iter()
                .map(|path| {
                    let result = load_file(&path, limits, None);
                    (path, result)
                })
                .collect(),
        },
        Err(e) => FileScan {
            dir_error: Some(format!("{}: {e}", dir.display())),
            files: vec![],
        },
    }
}

pub use campaign::FileStamp;

/// One campaign file as seen by [`Scanner::scan`].
#[derive(Debug)]
pub(crate) enum Scanned {
    /// Parsed and valid before, and neither it nor its contacts CSV changed since: the caller keeps the spec it has.
    Unchanged { id: String },
    /// New or changed, and valid.
    Loaded(Box<CampaignSpec>),
    /// Invalid: the rendered diagnostics.
    Failed(String),
}

/// A directory pass of [`Scanner::scan`], sorted by path.
#[derive(Debug, Default)]
pub(crate) struct DirChanges {
    pub(crate) dir_error: Option<String>,
    pub(crate) files: Vec<(PathBuf, Scanned)>,
}

/// What the scanner remembers of a good file: its stamp, its contacts CSV's path and stamp, and its campaign id.
#[derive(Debug)]
struct Seen {
    stamp: FileStamp,
    csv: PathBuf,
    csv_stamp: Option<FileStamp>,
    id: String,
}

/// A directory scanner that parses a file again only when it (or the CSV whose header it checked) changed.
///
/// A good file is reported [`Scanned::Unchanged`] while the stamps of the file and of its contacts CSV are
/// unchanged (the scanner keeps no copy of the spec: the reconciler has it); a bad file is parsed again on every
/// scan (its error may be about a CSV it names, and bad files are few). So a rescan of 10,000 unchanged files costs
/// a directory listing and 20,000 `stat` calls, not 10,000 parses.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    /// The bounds a campaign's contacts file is checked against (`[contacts]`).
    limits: campaign::ContactLimits,
    good: HashMap<PathBuf, Seen>,
    /// Files parsed so far (for tests).
    parsed: u64,
    /// Audiences kept in the store, by campaign file, with the hash of the file they were read for: a file with
    /// that hash whose contacts file has not changed since takes its audience instead of reading the contacts (see
    /// [`Scanner::reuse_audiences`]).
    stored_audiences: HashMap<PathBuf, (String, campaign::Audience)>,
}

impl Scanner {
    pub(crate) fn new(limits: campaign::ContactLimits) -> Scanner {
        Scanner {
            limits,
            ..Scanner::default()
        }
    }

    pub(crate) fn limits(&self) -> campaign::ContactLimits {
        self.limits
    }

    /// Lets the next scans take these audiences (the stored specs' ones, with their campaign file and its hash)
    /// instead of reading a contacts file that has not changed since ([`campaign::Audience::still_matches`]). For
    /// `campaignd status`, which shows the groups and would otherwise read every contact of every campaign for it;
    /// the daemon reads the files.
    pub(crate) fn reuse_audiences(
        &mut self,
        audiences: impl IntoIterator<Item = (PathBuf, String, campaign::Audience)>,
    ) {
        self.stored_audiences = audiences
            .into_iter()
            .map(|(path, hash, audience)| (path, (hash, audience)))
            .collect();
    }

    /// Scans `dir`, parsing only new and changed files.
    pub(crate) fn scan(&mut self, dir: &Path) -> DirChanges {
        let paths = match campaign_files(dir) {
            Ok(paths) => paths,
            Err(e) => {
                return DirChanges {
                    dir_error: Some(format!("{}: {e}", dir.display())),
                    files: vec![],
                };
            }
        };
        let mut good = HashMap::with_capacity(paths.len());
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let stamp = FileStamp::of(&path);
            if let (Some(stamp), Some(seen)) = (&stamp, self.good.remove(&path))
                && *stamp == seen.stamp
                && FileStamp::of(&seen.csv) == seen.csv_stamp
            {
                files.push((
                    path.clone(),
                    Scanned::Unchanged {
                        id: seen.id.clone(),
                    },
                ));
                good.insert(path, seen);
                continue;
            }
            self.parsed += 1;
            match load_file(&path, &self.limits, self.stored_audiences.get(&path)) {
                Ok(spec) => {
                    if let Some(stamp) = stamp {
                        // Stamped before the read: a write during the read shows as a change at the next scan.
                        let seen = Seen {
                            stamp,
                            csv: spec.contacts.file.clone(),
                            csv_stamp: FileStamp::of(&spec.contacts.file),
                            id: spec.id.clone(),
                        };
                        good.insert(path.clone(), seen);
                    }
                    files.push((path, Scanned::Loaded(Box::new(spec))));
                }
                Err(msg) => files.push((path, Scanned::Failed(msg))),
            }
        }
        // Files that disappeared are dropped from the cache with the old map.
        self.good = good;
        DirChanges {
            dir_error: None,
            files,
        }
    }

    /// Forgets `path`, so the next scan parses it again.
    pub(crate) fn forget(&mut self, path: &Path) {
        self.good.remove(path);
    }
}

fn load_file(
    path: &Path,
    limits: &campaign::ContactLimits,
    stored: Option<&(String, campaign::Audience)>,
) -> Result<CampaignSpec, String> {
    let mut spec = campaign::load_campaign_with_limits(path, limits)
        .map(|(spec, _)| spec)
        .map_err(|diags| {
            let mut sources = BTreeMap::new();
            if let Ok(text) = std::fs::read_to_string(path) {
                sources.insert(path.to_path_buf(), text);
            }
            diags.render_human(&sources)
        })?;
    match stored {
        Some((hash, audience))
            if *hash == spec.content_hash && audience.still_matches(&spec.contacts.file) =>
        {
            spec.audience = Some(campaign::Audience {
                recorded: Vec::new(),
                ..audience.clone()
            });
        }
        _ => with_audience(&mut spec, limits).map_err(|e| format!("{}: {e}", path.display()))?,
    }
    Ok(spec)
}

/// Reads the whole contacts file into the campaign's zone groups ([`campaign::Audience`]), which its tasks'
/// calendars are compiled from. A named-zone campaign whose contacts cannot be read goes on without them (planning
/// reports the file, and the groups planned before are still covered: the store keeps them). A `timezone =
/// "contact"` campaign cannot run without knowing its groups, and one with more than [`campaign::MAX_ZONE_GROUPS`]
/// groups (each is a platform task) is refused: the last good version keeps running.
fn with_audience(spec: &mut CampaignSpec, limits: &campaign::ContactLimits) -> Result<(), String> {
    match campaign::Audience::read(spec, limits) {
        Ok(audience) => {
            let groups = audience.groups.len();
            if spec.schedule.contact_zones && groups > campaign::MAX_ZONE_GROUPS {
                return Err(format!(
                    "timezone = \"contact\": the contacts fall into {groups} zone groups, more than the {} tasks a \
                     campaign may have; split the contacts into several campaigns (by region, say), or name one \
                     timezone",
                    campaign::MAX_ZONE_GROUPS
                ));
            }
            spec.audience = Some(audience);
            Ok(())
        }
        Err(e) if spec.schedule.contact_zones => Err(format!(
            "timezone = \"contact\" needs the contacts' zones, and the contacts cannot be read: {e}"
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_temporary_files_are_not_campaign_files() {
        for name in ["a.toml", "spring-renewals.toml", "a.b.toml"] {
            assert!(is_campaign_file_name(name), "{name}");
        }
        for name in [
            ".a.toml",
            "#a.toml#",
            "~a.toml",
            "a.toml~",
            "a.toml.swp",
            ".toml",
            "a.csv",
            "a.TOML",
        ] {
            assert!(!is_campaign_file_name(name), "{name}");
        }
    }

    const CAMPAIGN: &str = r#"
scene_id = "SC-1"
robots = 1

[schedule]
timezone = "UTC"
windows = [{ days = "mon-fri", hours = ["09:00-17:00"] }]

[contacts]
file = "a.csv"
variables = ["amount"]
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn dir_with_campaign() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.toml", CAMPAIGN);
        write(dir.path(), "a.csv", "phone,amount\n+8613800000001,5\n");
        dir
    }

    #[test]
    fn a_campaign_gets_its_contacts_zone_groups_and_one_past_the_bound_is_refused() {
        let dir = dir_with_campaign();
        let limits = campaign::ContactLimits::default();
        let spec = load_file(&dir.path().join("a.toml"), &limits, None).unwrap();
        let groups: Vec<String> = spec
            .audience
            .as_ref()
            .unwrap()
            .zone_groups()
            .map(campaign::ZoneGroup::label)
            .collect();
        assert_eq!(groups, ["Asia/Shanghai []"]);

        let contact = CAMPAIGN.replace("timezone = \"UTC\"", "timezone = \"contact\"");
        write(dir.path(), "a.toml", &contact);
        // 65 zones, each its own group, from the CSV's timezone column.
        let mut csv = String::from("phone,amount,timezone\n");
        for (i, tz) in campaign::chrono_tz::TZ_VARIANTS.iter().take(65).enumerate() {
            csv.push_str(&format!("+86138000{i:05},5,{}\n", tz.name()));
        }
        write(dir.path(), "a.csv", &csv);
        let e = load_file(&dir.path().join("a.toml"), &limits, None).unwrap_err();
        assert!(e.contains("65 zone groups, more than the 64"), "{e}");
        write(
            dir.path(),
            "a.csv",
            &csv.lines().take(65).collect::<Vec<_>>().join("\n"),
        );
        let spec = load_file(&dir.path().join("a.toml"), &limits, None).unwrap();
        assert_eq!(spec.audience.unwrap().groups.len(), 64);
    }

    #[test]
    fn a_stored_audience_stands_for_its_files_only_while_neither_changed() {
        let dir = dir_with_campaign();
        let limits = campaign::ContactLimits::default();
        let toml = dir.path().join("a.toml");
        // What status shows for the campaign, given a stored audience: a mark only that audience has (777 unzoned)
        // says whether the contacts file was read.
        let shown = |stored: &CampaignSpec, grouping: Option<&str>| {
            let mut audience = stored.audience.clone().unwrap();
            audience.unzoned = 777;
            if let Some(g) = grouping {
                audience.source.as_mut().unwrap().grouping = g.into();
            }
            let mut scanner = Scanner::new(limits);
            scanner.reuse_audiences([(toml.clone(), stored.content_hash.clone(), audience)]);
            match scanner.scan(dir.path()).files.into_iter().next() {
                Some((_, Scanned::Loaded(spec))) => spec.audience.unwrap().unzoned,
                other => panic!("{other:?}"),
            }
        };
        let stored = load_file(&toml, &limits, None).unwrap();
        assert!(stored.audience.as_ref().unwrap().source.is_some());
        assert_eq!(
            shown(&stored, None),
            777,
            "both files as they were: the stored audience"
        );
        assert_eq!(
            shown(&stored, Some("campaign 0.0.0")),
            0,
            "another grouping: read again"
        );
        // The same contacts, written again (a new file renamed over the old one).
        write(dir.path(), "a.csv.new", "phone,amount\n+8613800000001,5\n");
        std::fs::rename(dir.path().join("a.csv.new"), dir.path().join("a.csv")).unwrap();
        assert_eq!(
            shown(&stored, None),
            0,
            "the contacts file changed: read again"
        );
        let stored = load_file(&toml, &limits, None).unwrap();
        assert_eq!(shown(&stored, None), 777);
        write(
            dir.path(),
            "a.toml",
            &CAMPAIGN.replace("robots = 1", "robots = 2"),
        );
        assert_eq!(
            shown(&stored, None),
            0,
            "the campaign file changed: read again"
        );
    }

    #[test]
    fn a_rescan_of_unchanged_files_parses_nothing() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        let first = scanner.scan(dir.path());
        assert!(
            matches!(first.files[0].1, Scanned::Loaded(_)),
            "{:?}",
            first.files
        );
        let second = scanner.scan(dir.path());
        assert_eq!(scanner.parsed, 1);
        assert!(
            matches!(&second.files[0].1, Scanned::Unchanged { id } if id == "a"),
            "{:?}",
            second.files
        );
    }

    #[test]
    fn a_rewritten_file_is_parsed_again_even_at_the_same_size() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        let loaded = |scan: DirChanges| match scan.files.into_iter().next() {
            Some((_, Scanned::Loaded(spec))) => *spec,
            other => panic!("{other:?}"),
        };
        let before = loaded(scanner.scan(dir.path()));
        write(
            dir.path(),
            "a.toml",
            &CAMPAIGN.replace("robots = 1", "robots = 2"),
        );
        let after = loaded(scanner.scan(dir.path()));
        assert_eq!(scanner.parsed, 2);
        assert_ne!(before.content_hash, after.content_hash);
    }

    #[test]
    fn a_changed_contacts_header_is_checked_again() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        assert!(matches!(
            scanner.scan(dir.path()).files[0].1,
            Scanned::Loaded(_)
        ));
        write(dir.path(), "a.csv", "phone\n+8613800000001\n");
        let scan = scanner.scan(dir.path());
        assert!(
            matches!(&scan.files[0].1, Scanned::Failed(err) if err.contains("amount")),
            "{:?}",
            scan.files
        );
    }

    #[test]
    fn a_bad_file_is_parsed_on_every_scan_and_a_removed_one_is_forgotten() {
        let dir = dir_with_campaign();
        write(dir.path(), "b.toml", "scene_id = 3\n");
        let mut scanner = Scanner::default();
        scanner.scan(dir.path());
        let scan = scanner.scan(dir.path());
        assert_eq!(scanner.parsed, 3, "a.toml once, b.toml twice");
        assert!(matches!(scan.files[1].1, Scanned::Failed(_)));
        std::fs::remove_file(dir.path().join("a.toml")).unwrap();
        let scan = scanner.scan(dir.path());
        assert_eq!(scan.files.len(), 1);
        assert!(scanner.good.is_empty());
    }
}
