//! What the webhook listener, the watcher and the reconcile loop share: a wake-up signal, readiness, the last
//! completed pass, metrics, and which tasks had callbacks. Imports nothing of theirs.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::metrics::Metrics;

#[derive(Debug, Default)]
pub struct Hub {
    notify: Notify,
    ready: AtomicBool,
    /// When the reconciler last completed a pass (for `/healthz` and the systemd watchdog).
    last_pass: Mutex<Option<std::time::Instant>>,
    pub metrics: Metrics,
    /// Tasks whose callbacks were stored since their campaign was last reconciled (see [`Hub::task_touched`]).
    touched: Mutex<HashSet<String>>,
}

impl Hub {
    pub fn new(metrics: Metrics) -> Hub {
        Hub {
            metrics,
            ..Hub::default()
        }
    }

    /// Asks the reconcile loop to run soon.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Resolves when someone called [`Hub::wake`] (a wake-up before the wait is not lost).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The reconciler completed a pass at `at`.
    pub fn pass_completed(&self, at: std::time::Instant) {
        *self.last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// When the reconciler last completed a pass; `None` before the first one.
    pub fn last_pass(&self) -> Option<std::time::Instant> {
        *self.last_pass.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A task callback for `user_task_id` was stored: its campaign is worth a reconcile now. Only a hint: the
    /// status itself is in the store, where the owner reads it (on whichever replica it runs).
    pub fn task_touched(&self, user_task_id: &str) {
        self.touched().insert(user_task_id.to_owned());
    }

    /// Whether a task callback was stored for `user_task_id` since its campaign was last reconciled.
    pub fn is_touched(&self, user_task_id: &str) -> bool {
        self.touched().contains(user_task_id)
    }

    /// Clears the hint for `user_task_id`; returns whether it was set.
    pub fn take_touched(&self, user_task_id: &str) -> bool {
        self.touched().remove(user_task_id)
    }

    fn touched(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.touched.lock().unwrap_or_else(|e| e.into_inner())
    }
}
