//! Opening the contacts file a campaign names, and nothing else: a regular file, of bounded size, inside the
//! campaigns directory (the directory holding the campaign file) once every symbolic link is followed.
//!
//! The file type is checked before the file is opened, and the file is opened non-blocking, so a FIFO or a device is
//! never read and never blocks. The checks are made again on the opened file (its type and size, and on Linux the path
//! it really is), so a file swapped between the check and the open is refused too.

use std::fs::{File, Metadata};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::diagnostics::escape_input;
use crate::limits::ContactLimits;

/// Why a contacts file is refused before a byte of it is read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactsFileError {
    /// The file (after following symbolic links) is not inside the campaigns directory.
    #[error(
        "the contacts file {} is outside the campaigns directory {}",
        shown(path),
        shown(dir)
    )]
    Outside {
        /// The file as named.
        path: PathBuf,
        /// The campaigns directory.
        dir: PathBuf,
    },
    /// Not a regular file: a directory, a FIFO, a device or a socket.
    #[error("the contacts file {} is {kind}, not a regular file", shown(path))]
    NotRegular {
        /// The file as named.
        path: PathBuf,
        /// What it is instead (`"a directory"`, `"a FIFO"`, ...).
        kind: &'static str,
    },
    /// Larger than `max_file_bytes`.
    #[error(
        "the contacts file {} has {size} bytes, more than the limit `[contacts] max_file_bytes` ({limit} bytes); split the contacts across campaigns, or raise the limit in the daemon's configuration",
        shown(path)
    )]
    TooLarge {
        /// The file as named.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// It cannot be found or opened.
    #[error("cannot read the contacts file {}: {source}", shown(path))]
    Io {
        /// The file as named.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ContactsFileError {
    /// The diagnostic code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ContactsFileError::Outside { .. } => "contacts-outside-dir",
            ContactsFileError::NotRegular { .. } => "contacts-not-a-file",
            ContactsFileError::TooLarge { .. } => "contacts-too-large",
            ContactsFileError::Io { .. } => "contacts-file",
        }
    }

    /// One line saying what to do.
    pub fn help(&self) -> String {
        match self {
            ContactsFileError::Outside { dir, .. } => format!(
                "move the CSV into {} (or a folder inside it) and name it relative to the campaign file, e.g. \
                 `file = \"contacts.csv\"`",
                shown(dir)
            ),
            ContactsFileError::NotRegular { .. } => {
                "point `file` at a regular CSV file next to the campaign file".to_string()
            }
            ContactsFileError::TooLarge { .. } => {
                "split the contacts across several campaigns (each with its own CSV)".to_string()
            }
            ContactsFileError::Io { .. } => {
                "create the CSV next to the campaign file, or fix the `file` path".to_string()
            }
        }
    }
}

/// A path as messages show it: escaped and cut like every quoted input.
fn shown(p: &Path) -> String {
    escape_input(&p.display().to_string())
}

/// Why a `file` value is refused before any file is looked at: `None` if it is a relative path that stays below the
/// campaign file's directory (no root, no drive, no `..`).
pub(crate) fn lexical_problem(file: &str) -> Option<&'static str> {
    let path = Path::new(file);
    if file.trim().is_empty() {
        return Some("is empty");
    }
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return Some("is an absolute path"),
            Component::ParentDir => return Some("leaves the campaigns directory with `..`"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    None
}

/// The directory a campaign file is in ("." for a bare file name).
pub(crate) fn campaigns_dir(campaign_file: &Path) -> &Path {
    match campaign_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens `contacts` (as resolved from the campaign file's `file` key) for reading, if it is a regular file of at most
/// `limits.max_file_bytes` inside the directory that holds `campaign_file`, symbolic links followed.
pub fn open_contacts_file(
    campaign_file: &Path,
    contacts: &Path,
    limits: &ContactLimits,
) -> Result<File, ContactsFileError> {
    let io = |source| ContactsFileError::Io {
        path: contacts.to_path_buf(),
        source,
    };
    let dir = campaigns_dir(campaign_file);
    let dir = dir.canonicalize().map_err(io)?;
    let resolved = contacts.canonicalize().map_err(io)?;
    let outside = || ContactsFileError::Outside {
        path: contacts.to_path_buf(),
        dir: dir.clone(),
    };
    if !resolved.starts_with(&dir) {
        return Err(outside());
    }
    check_meta(contacts, &std::fs::metadata(&resolved).map_err(io)?, limits)?;
    let file = open_nonblocking(&resolved, false).map_err(io)?;
    // The same checks on what was opened, in case the file was swapped since.
    check_meta(contacts, &file.metadata().map_err(io)?, limits)?;
    if let Some(real) = real_path(&file)
        && !real.starts_with(&dir)
    {
        return Err(outside());
    }
    Ok(file)
}

/// Reads a whole file the caller named (a campaign file), if it is a regular file of at most `max_bytes`: the type is
/// checked before opening (symbolic links followed), the file is opened non-blocking, and no more than `max_bytes` is
/// read. `Err` says why not, naming the file.
pub(crate) fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let limits = ContactLimits {
        max_file_bytes: max_bytes,
        ..ContactLimits::default()
    };
    let refused = |e: ContactsFileError| match e {
        ContactsFileError::NotRegular { kind, .. } => {
            format!("{} is {kind}, not a regular file", shown(path))
        }
        ContactsFileError::TooLarge { size, limit, .. } => format!(
            "{} has {size} bytes, more than the limit `MAX_CAMPAIGN_FILE_BYTES` ({limit} bytes)",
            shown(path)
        ),
        e => e.to_string(),
    };
    let io = |e: std::io::Error| format!("cannot read {}: {e}", shown(path));
    check_meta(path, &std::fs::metadata(path).map_err(io)?, &limits).map_err(refused)?;
    let file = open_nonblocking(path, true).map_err(io)?;
    check_meta(path, &file.metadata().map_err(io)?, &limits).map_err(refused)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(refused(ContactsFileError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: max_bytes,
        }));
    }
    Ok(bytes)
}

fn check_meta(
    path: &Path,
    meta: &Metadata,
    limits: &ContactLimits,
) -> Result<(), ContactsFileError> {
    if !meta.is_file() {
        return Err(ContactsFileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta),
        });
    }
    if meta.len() > limits.max_file_bytes {
        return Err(ContactsFileError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: limits.max_file_bytes,
        });
    }
    Ok(())
}

fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens for reading without blocking: opening a FIFO that was swapped in after the type check returns at once.
/// Without `follow`, a symbolic link as the last component is refused (the contacts file is opened by its
/// canonical path, so a link there was swapped in).
#[cfg(unix)]
fn open_nonblocking(path: &Path, follow: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = if follow {
        libc::O_NONBLOCK
    } else {
        libc::O_NONBLOCK | libc::O_NOFOLLOW
    };
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path, _follow: bool) -> std::io::Result<File> {
    File::open(path)
}

/// The path the opened file really is, where the system tells it.
#[cfg(target_os = "linux")]
fn real_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd as _;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
fn real_path(_file: &File) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("campaigns");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("ok.csv"), "phone\n").unwrap();
        std::fs::write(root.path().join("secret.csv"), "phone\n").unwrap();
        (root, dir)
    }

    fn open(dir: &Path, file: &str) -> Result<File, ContactsFileError> {
        open_contacts_file(
            &dir.join("c.toml"),
            &dir.join(file),
            &ContactLimits::default(),
        )
    }

    #[test]
    fn opens_a_file_inside_the_campaigns_directory() {
        let (_root, dir) = setup();
        assert!(open(&dir, "ok.csv").is_ok());
        std::fs::create_dir(dir.join("lists")).unwrap();
        std::fs::write(dir.join("lists/a.csv"), "phone\n").unwrap();
        assert!(open(&dir, "lists/a.csv").is_ok());
    }

    #[test]
    fn refuses_paths_that_leave_the_directory() {
        let (_root, dir) = setup();
        assert!(matches!(
            open(&dir, "../secret.csv"),
            Err(ContactsFileError::Outside { .. })
        ));
        assert!(matches!(
            open(&dir, "/proc/self/environ"),
            Err(ContactsFileError::Outside { .. })
        ));
        assert!(matches!(
            open(&dir, "/dev/zero"),
            Err(ContactsFileError::Outside { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_symlink_that_points_outside() {
        let (root, dir) = setup();
        std::os::unix::fs::symlink(root.path().join("secret.csv"), dir.join("link.csv")).unwrap();
        let e = open(&dir, "link.csv").unwrap_err();
        assert_eq!(e.code(), "contacts-outside-dir");
        // A link that stays inside is fine.
        std::os::unix::fs::symlink(dir.join("ok.csv"), dir.join("inside.csv")).unwrap();
        assert!(open(&dir, "inside.csv").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_fifo_without_blocking_and_a_device_and_a_directory() {
        let (_root, dir) = setup();
        let fifo = dir.join("fifo.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Opening a FIFO for reading would block until a writer came; this returns at once.
            let e = open(&dir, "fifo.csv").unwrap_err();
            assert!(
                matches!(e, ContactsFileError::NotRegular { kind: "a FIFO", .. }),
                "{e}"
            );
            assert_eq!(e.code(), "contacts-not-a-file");
        }
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.csv")).unwrap();
        // /dev is outside; the directory rule is checked first.
        assert_eq!(
            open(&dir, "zero.csv").unwrap_err().code(),
            "contacts-outside-dir"
        );
        std::fs::create_dir(dir.join("d.csv")).unwrap();
        let e = open(&dir, "d.csv").unwrap_err();
        assert!(
            matches!(
                e,
                ContactsFileError::NotRegular {
                    kind: "a directory",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn refuses_a_file_over_the_size_limit() {
        let (_root, dir) = setup();
        let limits = ContactLimits {
            max_file_bytes: 3,
            ..ContactLimits::default()
        };
        let e = open_contacts_file(&dir.join("c.toml"), &dir.join("ok.csv"), &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the contacts file {} has 6 bytes, more than the limit `[contacts] max_file_bytes` (3 bytes); split the contacts across campaigns, or raise the limit in the daemon's configuration",
                dir.join("ok.csv").display()
            )
        );
    }

    #[test]
    fn lexical_check_refuses_absolute_and_parent_paths() {
        assert_eq!(lexical_problem("contacts.csv"), None);
        assert_eq!(lexical_problem("./lists/a.csv"), None);
        assert_eq!(lexical_problem("/etc/passwd"), Some("is an absolute path"));
        assert_eq!(
            lexical_problem("lists/../../x.csv"),
            Some("leaves the campaigns directory with `..`")
        );
        assert_eq!(lexical_problem(""), Some("is empty"));
    }
}

/// What identifies one version of a file without reading it: size, modification and change times (nanoseconds on
/// Linux file systems), and inode (a ConfigMap's `..data` swap or an editor's rename-over gives a new one). The change
/// time cannot be set by `touch` or `cp -p`: a file written again has a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

impl FileStamp {
    /// The file's size in bytes when it was stamped.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The stamp of `path` (symlinks followed), or `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
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
