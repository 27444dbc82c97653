//! The suppression directory: CSV files of numbers never to call, watched like campaign files. Each file is one
//! source in the store (`file:<name>`): when it changes, its rows replace that source's entries in one transaction;
//! when it goes, so do they. A file that cannot be read keeps its previous entries (failing closed); bad rows are
//! reported with their line and the rest of the file counts. Reads files and writes the store; never calls the
//! platform.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use campaign::{ContactLimits, SuppressionFile};
use chrono::{DateTime, Utc};
use store::{Store, StoreError, Suppression};

use crate::scan::FileStamp;

/// Where the suppression files are and how to read them.
#[derive(Debug, Clone)]
pub struct SuppressionConfig {
    pub dir: PathBuf,
    /// For numbers written without a country code.
    pub default_country: Option<String>,
    /// How large a file, a record and a row may be (the contacts' limits, `[contacts]`).
    pub limits: ContactLimits,
}

/// What one pass over the directory did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Files whose entries were replaced (new, changed or removed).
    pub synced: Vec<String>,
    /// Files that cannot be read, with why (their previous entries stay).
    pub failed: Vec<(PathBuf, String)>,
    /// Bad rows, as `file:line:column: message`.
    pub issues: Vec<String>,
}

/// What the loop watches of consent at every pass: the suppression files (when configured) and the store's
/// suppression version.
#[derive(Debug)]
pub(crate) struct SuppressionWatch {
    files: Option<SuppressionFiles>,
    version: Option<i64>,
    /// The file problems already logged (each is logged and counted once).
    logged: std::collections::HashSet<String>,
}

impl SuppressionWatch {
    pub(crate) fn new(files: Option<SuppressionFiles>) -> SuppressionWatch {
        SuppressionWatch {
            files,
            version: None,
            logged: std::collections::HashSet::new(),
        }
    }

    /// Synchronises the files, then reads the store's version. Returns whether the suppression set changed since
    /// the last pass (never at the first).
    pub(crate) async fn pass(
        &mut self,
        store: &dyn Store,
        metrics: &crate::metrics::Metrics,
        now: DateTime<Utc>,
    ) -> bool {
        if let Some(files) = &mut self.files {
            match files.sync(store, now).await {
                Ok(report) => {
                    for source in &report.synced {
                        tracing::info!(suppression.source = %source, "suppression file applied");
                    }
                    let problems = report
                        .failed
                        .iter()
                        .map(|(path, e)| {
                            format!("{}: {e} (its previous entries stay)", path.display())
                        })
                        .chain(report.issues.iter().cloned());
                    for p in problems {
                        if self.logged.insert(p.clone()) {
                            metrics.file_error();
                            tracing::warn!(problem = %p, "suppression file problem");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot apply the suppression files now"),
            }
        }
        match store.suppression_version().await {
            Ok(v) => {
                let changed = self.version.is_some_and(|old| old != v);
                self.version = Some(v);
                changed
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the suppression version");
                false
            }
        }
    }
}

/// The suppression directory as last synchronised.
#[derive(Debug)]
pub struct SuppressionFiles {
    config: SuppressionConfig,
    /// File name → the stamp of the version in the store.
    synced: HashMap<String, FileStamp>,
    /// Whether the store's file sources were read once (so a file removed while the daemon was down goes too).
    loaded: bool,
}

impl SuppressionFiles {
    pub fn new(config: SuppressionConfig) -> SuppressionFiles {
        SuppressionFiles {
            config,
            synced: HashMap::new(),
            loaded: false,
        }
    }

    /// The source name of a file in the store.
    pub fn source_of(name: &str) -> String {
        format!("file:{name}")
    }

    /// Synchronises the store with the directory: new and changed files are read (on a blocking thread) and
    /// replace their source's entries; removed files' entries go. A missing directory is an empty one only if it
    /// never existed: an unreadable one changes nothing.
    pub async fn sync(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<SyncReport, StoreError> {
        let mut report = SyncReport::default();
        let dir = self.config.dir.clone();
        let listing = tokio::task::spawn_blocking(move || list(&dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let files = match listing {
            Ok(files) => files,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                report.failed.push((self.config.dir.clone(), e.to_string()));
                return Ok(report);
            }
        };
        if !self.loaded {
            // Sources of files that are gone since the last run.
            let present: Vec<String> = files.iter().map(|(n, _)| Self::source_of(n)).collect();
            for source in store.suppression_file_sources().await? {
                if !present.contains(&source) {
                    store.replace_suppression_source(&source, &[]).await?;
                    report.synced.push(source);
                }
            }
            self.loaded = true;
        }
        let mut seen = Vec::with_capacity(files.len());
        for (name, stamp) in files {
            seen.push(name.clone());
            if self.synced.get(&name) == Some(&stamp) {
                continue;
            }
            let path = self.config.dir.join(&name);
            let country = self.config.default_country.clone();
            let limits = self.config.limits;
            let read = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    campaign::read_suppression_file(&path, country.as_deref(), &limits)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            };
            let file: SuppressionFile = match read {
                Ok(f) => f,
                Err(e) => {
                    report.failed.push((path, e));
                    continue;
                }
            };
            for issue in &file.issues {
                report.issues.push(match issue.column {
                    Some(col) => {
                        format!("{}:{}:{col}: {}", path.display(), issue.line, issue.message)
                    }
                    None => format!("{}:{}: {}", path.display(), issue.line, issue.message),
                });
            }
            let source = Self::source_of(&name);
            let entries: Vec<Suppression> = file
                .entries
                .into_iter()
                .map(|e| Suppression {
                    phone: e.phone,
                    source: source.clone(),
                    reason: e.reason,
                    expires_at: e.expires_at,
                    added_at: now,
                })
                .collect();
            store.replace_suppression_source(&source, &entries).await?;
            self.synced.insert(name, stamp);
            report.synced.push(source);
        }
        let gone: Vec<String> = self
            .synced
            .keys()
            .filter(|n| !seen.contains(n))
            .cloned()
            .collect();
        for name in gone {
            let source = Self::source_of(&name);
            store.replace_suppression_source(&source, &[]).await?;
            self.synced.remove(&name);
            report.synced.push(source);
        }
        Ok(report)
    }
}

/// The suppression files of `dir` (`*.csv`, not hidden or temporary), with their stamps, by name.
fn list(dir: &Path) -> std::io::Result<Vec<(String, FileStamp)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !crate::scan::is_data_file_name(name, ".csv") {
            continue;
        }
        if let Some(stamp) = FileStamp::of(&path) {
            out.push((name.to_owned(), stamp));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
