//! What the webhook listener, the watcher and the reconcile loop share: a wake-up signal, readiness, metrics, and
//! task statuses reported by callbacks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use callbot_api::wire::TaskStatus;
use tokio::sync::Notify;

use crate::metrics::Metrics;

#[derive(Debug, Default)]
pub struct Hub {
    notify: Notify,
    ready: AtomicBool,
    pub metrics: Metrics,
    /// Terminal statuses (3 completed, 4 failed) from task callbacks, by userTaskID, for the owner to apply.
    task_statuses: Mutex<HashMap<String, i64>>,
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

    /// A task callback reported `status`; only terminal statuses are kept (the daemon is the source of truth for
    /// start and pause, which it caused itself; a late callback must not undo them).
    pub fn task_status(&self, user_task_id: &str, status: TaskStatus) {
        if crate::webhook::is_terminal_status(status) {
            let mut map = self.task_statuses.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(user_task_id.to_owned(), status.code());
        }
    }

    /// Whether a terminal status waits for `user_task_id` (the reconciler then reconciles its campaign now).
    pub fn has_task_status(&self, user_task_id: &str) -> bool {
        let map = self.task_statuses.lock().unwrap_or_else(|e| e.into_inner());
        map.contains_key(user_task_id)
    }

    /// Takes the terminal status reported for `user_task_id`, if any.
    pub fn take_task_status(&self, user_task_id: &str) -> Option<i64> {
        let mut map = self.task_statuses.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(user_task_id)
    }
}
