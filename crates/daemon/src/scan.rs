//! Reading the campaigns directory: every `*.toml` file (symlinks followed, so Kubernetes ConfigMap mounts, whose
//! files are links through a `..data` directory swapped atomically, read the current version).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use campaign::CampaignSpec;

/// One pass over the directory.
#[derive(Debug, Default)]
pub struct FileScan {
    /// The directory itself could not be read.
    pub dir_error: Option<String>,
    /// Every campaign file, parsed and validated, or the rendered diagnostics.
    pub files: Vec<(PathBuf, Result<CampaignSpec, String>)>,
}

/// The campaign files of `dir`, sorted by path. Hidden files (`.x.toml`, editor swap files) are skipped.
pub fn campaign_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || !name.ends_with(".toml") {
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

/// Loads every campaign file of `dir`.
pub fn scan_dir(dir: &Path) -> FileScan {
    Scanner::default().scan(dir)
}

/// What identifies one version of a file without reading it: size, modification and change times (nanoseconds on
/// Linux file systems), and inode (a ConfigMap's `..data` swap or an editor's rename-over gives a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` (symlinks followed), or `None` when it cannot be read.
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            changed: (m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
        })
    }
}

/// A directory scanner that parses a file again only when it (or the CSV whose header it checked) changed.
///
/// A good file's result is reused while the stamps of the file and of its contacts CSV are unchanged; a bad file is
/// parsed again on every scan (its error may be about a CSV it names, and bad files are few). So a rescan of
/// 10,000 unchanged files costs a directory listing and 20,000 `stat` calls, not 10,000 parses.
#[derive(Debug, Default)]
pub struct Scanner {
    good: HashMap<PathBuf, (FileStamp, Option<FileStamp>, CampaignSpec)>,
    /// Files parsed so far (for tests and logs).
    parsed: u64,
}

impl Scanner {
    /// Loads every campaign file of `dir`, reusing the results of unchanged files.
    pub fn scan(&mut self, dir: &Path) -> FileScan {
        let paths = match campaign_files(dir) {
            Ok(paths) => paths,
            Err(e) => {
                return FileScan {
                    dir_error: Some(format!("{}: {e}", dir.display())),
                    files: vec![],
                };
            }
        };
        let mut good = HashMap::with_capacity(paths.len());
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let stamp = FileStamp::of(&path);
            if let (Some(stamp), Some((old, old_csv, spec))) = (&stamp, self.good.remove(&path))
                && *stamp == old
                && FileStamp::of(&spec.contacts.file) == old_csv
            {
                files.push((path.clone(), Ok(spec.clone())));
                good.insert(path, (old, old_csv, spec));
                continue;
            }
            let result = load_file(&path);
            self.parsed += 1;
            if let (Some(stamp), Ok(spec)) = (stamp, &result) {
                // Stamped before the read: a write during the read shows as a change at the next scan.
                let csv = FileStamp::of(&spec.contacts.file);
                good.insert(path.clone(), (stamp, csv, spec.clone()));
            }
            files.push((path, result));
        }
        // Files that disappeared are dropped from the cache with the old map.
        self.good = good;
        FileScan {
            dir_error: None,
            files,
        }
    }
}

fn load_file(path: &Path) -> Result<CampaignSpec, String> {
    campaign::load_campaign(path).map_err(|diags| {
        let mut sources = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            sources.insert(path.to_path_buf(), text);
        }
        diags.render_human(&sources)
    })
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
    fn a_rescan_of_unchanged_files_parses_nothing() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        let first = scanner.scan(dir.path());
        assert!(first.files[0].1.is_ok(), "{:?}", first.files);
        let second = scanner.scan(dir.path());
        assert_eq!(scanner.parsed, 1);
        assert_eq!(
            first.files[0].1.as_ref().unwrap().content_hash,
            second.files[0].1.as_ref().unwrap().content_hash
        );
    }

    #[test]
    fn a_rewritten_file_is_parsed_again_even_at_the_same_size() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        let before = scanner.scan(dir.path()).files[0].1.clone().unwrap();
        write(
            dir.path(),
            "a.toml",
            &CAMPAIGN.replace("robots = 1", "robots = 2"),
        );
        let after = scanner.scan(dir.path()).files[0].1.clone().unwrap();
        assert_eq!(scanner.parsed, 2);
        assert_ne!(before.content_hash, after.content_hash);
    }

    #[test]
    fn a_changed_contacts_header_is_checked_again() {
        let dir = dir_with_campaign();
        let mut scanner = Scanner::default();
        assert!(scanner.scan(dir.path()).files[0].1.is_ok());
        write(dir.path(), "a.csv", "phone\n+8613800000001\n");
        let scan = scanner.scan(dir.path());
        let err = scan.files[0].1.as_ref().unwrap_err();
        assert!(err.contains("amount"), "{err}");
    }

    #[test]
    fn a_bad_file_is_parsed_on_every_scan_and_a_removed_one_is_forgotten() {
        let dir = dir_with_campaign();
        write(dir.path(), "b.toml", "scene_id = 3\n");
        let mut scanner = Scanner::default();
        scanner.scan(dir.path());
        let scan = scanner.scan(dir.path());
        assert_eq!(scanner.parsed, 3, "a.toml once, b.toml twice");
        assert!(scan.files[1].1.is_err());
        std::fs::remove_file(dir.path().join("a.toml")).unwrap();
        let scan = scanner.scan(dir.path());
        assert_eq!(scan.files.len(), 1);
        assert!(scanner.good.is_empty());
    }
}
