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

/// How long files must keep their size and mtime before the reconciler reads them. Short enough that a change is
/// acted on within a second; a file still being written when it is read does no harm (a half-written campaign file
/// fails validation and its last good version keeps running; a half-written CSV's later rows are planned at the next
/// reconcile, with the same deterministic order IDs).
pub const SETTLE: Duration = Duration::from_millis(250);

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
            // Opening and reading a file (which every reconcile does) is reported as an access event; only changes
            // count, or the reconciler would wake itself forever.
            if let Ok(event) = res
                && !matches!(event.kind, notify::EventKind::Access(_))
            {
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
            if settled == last {
                // Touched but not changed (or changed back): nothing for the reconciler.
                continue;
            }
            last = settled;
            tracing::debug!(dir = %self.dir.display(), "campaign files changed");
            self.hub.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn woken_within(hub: &Hub, secs: u64) -> bool {
        tokio::time::timeout(Duration::from_secs(secs), hub.woken())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn wakes_once_a_new_file_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Watcher::new(dir.path(), hub.clone(), Duration::from_secs(3600)).run(shutdown.clone()),
        );
        // Let the watcher register before the change (a wake-up is never lost once it is there).
        tokio::task::yield_now().await;
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                std::fs::write(dir.path().join("a.toml"), "scene_id = \"x\"\n").unwrap();
                if woken_within(&hub, 2).await {
                    break;
                }
            }
        })
        .await
        .expect("the watcher wakes the reconciler after a change");
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn reading_the_files_does_not_wake_the_reconciler() {
        // Every reconcile opens and reads every campaign file and CSV; those accesses must not wake it again, or an
        // idle daemon spins.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "scene_id = \"x\"\n").unwrap();
        let hub = Arc::new(Hub::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Watcher::new(dir.path(), hub.clone(), Duration::from_secs(3600)).run(shutdown.clone()),
        );
        tokio::task::yield_now().await;
        for _ in 0..20 {
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                "scene_id = \"x\"\n"
            );
        }
        assert!(
            !woken_within(&hub, 2).await,
            "reads woke the reconciler (access events must be ignored)"
        );
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_configmap_style_symlink_swap_is_noticed_by_the_rescan() {
        // Kubernetes mounts a ConfigMap as `..data -> ..2026_v1/` and `a.toml -> ..data/a.toml`; an update writes a
        // new versioned directory and swaps `..data` atomically.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/a.toml"), "v = 1\n").unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/a.toml", d.join("a.toml")).unwrap();

        let hub = Arc::new(Hub::default());
        let shutdown = CancellationToken::new();
        // Notifications may not cover the swap; a short rescan interval must.
        let task = tokio::spawn(
            Watcher::new(d, hub.clone(), Duration::from_millis(200)).run(shutdown.clone()),
        );
        tokio::task::yield_now().await;

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/a.toml"), "v = 22\n").unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert!(woken_within(&hub, 5).await, "the swap wakes the reconciler");
        assert_eq!(
            std::fs::read_to_string(d.join("a.toml")).unwrap(),
            "v = 22\n"
        );
        assert_eq!(
            crate::scan::campaign_files(d).unwrap(),
            vec![d.join("a.toml")],
            "hidden entries are skipped"
        );
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}
