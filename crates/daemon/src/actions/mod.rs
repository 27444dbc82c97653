//! The platform actions, one module each, on one [`Executor`] that holds the store, the client, the callback URLs
//! and the stop signal. An action takes the campaign's spec and task, talks to the platform, writes what it learned
//! through the store's narrow writes, and returns it; it never touches the reconciler's own state.

mod create;
mod operate;
mod poll;
mod resolve;
mod stop;

use std::sync::Arc;

use callbot_api::wire::{DelCall, TaskOperate};
use callbot_api::{ApiError, Client};
use campaign::CampaignSpec;
use chrono::{DateTime, Utc};
use store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::plan::Action;
use crate::requests::CallbackUrls;

/// Why one campaign's step stopped early. Never stops other campaigns.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// The store failed (an outage, or data it refused).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The platform refused, or its answer was unclear.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The platform answered something the daemon cannot act on safely (it waits and asks again).
    #[error("{0}")]
    Unexpected(String),
    /// The contacts file cannot be read (the calendar is still enforced with the orders already planned).
    #[error("{0}")]
    Contacts(String),
    /// The contacts reader thread died.
    #[error("the contacts reader failed: {0}")]
    Reader(String),
    /// This replica does not hold the campaign's lease.
    #[error("cannot take the campaign's lease: {0}")]
    Lease(String),
}

pub(crate) type StepResult<T> = Result<T, StepError>;

/// What an action learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// Done; nothing in particular to remember.
    Done,
    /// A poll ran; `task_terminal`: the task had ended, so this was its final poll.
    Polled { task_terminal: bool },
    /// Nothing to do before this instant (an order or creation in doubt is too young to ask about).
    WaitUntil(DateTime<Utc>),
}

/// Runs the platform actions. Cheap to share: everything in it is a handle.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) client: Client,
    pub(crate) urls: CallbackUrls,
    pub(crate) metrics: Metrics,
    /// Cancelled at shutdown: long actions (uploads, polls) stop between two requests.
    pub(crate) stop: CancellationToken,
    /// How long an order or a creation must have been in doubt before the platform is asked about it.
    pub(crate) resolve_grace: chrono::Duration,
    /// How many uploads or polls of one task are in flight at once (at least 1).
    pub(crate) requests_in_flight: usize,
    /// The daemon's own caps on calls to one number (each campaign may add stricter ones).
    pub(crate) caps: Vec<campaign::CapRule>,
}

impl Executor {
    /// Runs one action of the campaign's current task `ut`.
    pub(crate) async fn execute(
        &self,
        spec: &CampaignSpec,
        ut: &str,
        action: &Action,
        now: DateTime<Utc>,
    ) -> StepResult<Learned> {
        match action {
            Action::ResolveSending => self.resolve(spec, ut, now).await,
            Action::CreateTask { settings } => self.create(spec, ut, settings, now).await,
            Action::UploadBatches => self.upload(spec, ut, now).await,
            Action::Pause => self.operate(ut, TaskOperate::Pause, None, now).await,
            Action::Start => self.operate(ut, TaskOperate::Start, None, now).await,
            Action::Complete { delete_undialled } => {
                let del = if *delete_undialled {
                    DelCall::DeleteUndialed
                } else {
                    DelCall::Keep
                };
                self.operate(ut, TaskOperate::Complete, Some(del), now)
                    .await
            }
            Action::UpdateSettings { settings } => self.update(spec, ut, settings, now).await,
            Action::Poll => self.poll(spec, ut, now).await,
        }
    }

    /// The caps that hold a campaign's numbers: the daemon's and the campaign's own (every one applies).
    pub(crate) fn caps_for(&self, spec: &CampaignSpec) -> Vec<store::Cap> {
        crate::config::caps_in_force(&self.caps, spec)
    }

    /// The task record of `ut`, if stored.
    async fn task_record(
        &self,
        campaign_id: &str,
        ut: &str,
    ) -> Result<Option<store::TaskRecord>, StoreError> {
        Ok(self
            .store
            .tasks(campaign_id)
            .await?
            .into_iter()
            .find(|t| t.user_task_id == ut))
    }
}
