//! Watches the campaigns directory and wakes the reconciler when something changed.
//!
//! OS notifications (`notify`) plus a periodic rescan: Kubernetes ConfigMap mounts swap a `..data` symlink, which
//! plain watchers can miss, and a rescan always catches it. A change is debounced: the reconciler is woken only once
//! the directory's files (campaign files and CSVs) have kept the same size and mtime for the settle time, so a
//! half-written file is not read. A bad file is still harmless if it is read: its last good version keeps running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How long files must keep their size and mtime before the reconciler reads them.
pub const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    hub: Arc<Hub>,
    rescan_interval: Duration,
}

type Snapshot = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

/// Size and mtime of every entry of `dir` (links followed).
fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.is_file()
            {
                out.insert(path, (meta.len(), meta.modified().ok()));
            }
        }
    }
    out
}

impl Watcher {
    pub fn new(dir: impl Into<PathBuf>, hub: Arc<Hub>, rescan_interval: Duration) -> Watcher {
        Watcher {
            dir: dir.into(),
            hub,
            rescan_interval,
        }
    }

    /// Runs until `shutdown`. A watcher that cannot be set up (e.g. inotify limits) degrades to rescans only.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                let _ = tx.send(());
            }
        });
        let _watcher = match watcher {
            Ok(mut w) => match w.watch(&self.dir, RecursiveMode::NonRecursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot watch the campaigns directory; relying on rescans");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no file notifications available; relying on rescans");
                None
            }
        };
        let mut last = snapshot(&self.dir);
        let mut rescan = tokio::time::interval(self.rescan_interval);
        rescan.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                event = rx.recv() => {
                    if event.is_none() {
                        // The notifier is gone; keep rescanning.
                        tokio::select! {
                            () = shutdown.cancelled() => return Ok(()),
                            _ = rescan.tick() => {}
                        }
                    }
                }
                _ = rescan.tick() => {
                    let now = snapshot(&self.dir);
                    if now == last {
                        // The reconciler rescans on its own schedule; nothing changed here.
                        continue;
                    }
                }
            }
            // Something changed: wait until the files settle, then wake the reconciler once.
            let settled = loop {
                let before = snapshot(&self.dir);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(SETTLE) => {}
                }
                while rx.try_recv().is_ok() {}
                let after = snapshot(&self.dir);
                if before == after {
                    break after;
                }
            };
            last = settled;
            tracing::debug!(dir = %self.dir.display(), "campaign files changed");
            self.hub.wake();
        }
    }
}
