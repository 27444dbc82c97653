#![doc = include_str!("../README.md")]

mod actions;
mod campaigns;
mod config;
mod contacts;
mod daemon;
mod desired;
mod facts;
mod hub;
mod ledger;
mod metrics;
mod observe;
mod outcome;
mod plan;
mod prune;
mod records;
mod requests;
mod retries;
mod rounds;
mod scan;
mod settings;
mod suppress;
mod task;
mod watcher;
mod webhook;

pub use campaigns::{CampaignEntry, CampaignSet, CampaignState, FailedFile, Reloaded, SetDiff};
pub use config::{DaemonConfig, caps_in_force};
pub use daemon::Daemon;
pub use desired::{desired, fit, local_label, target_at, task_settings};
pub use hub::Hub;
pub use metrics::Metrics;
pub use observe::{Snapshot, observed_at, snapshot, with_recorded_groups};
pub use outcome::{CampaignOutcome, Outcome};
pub use plan::{Action, Desired, Observed, Orders, Plan, Target, TaskState, Why, decide};
pub use prune::Pruner;
pub use requests::{CallbackUrls, func_flag, task_create_setting};
pub use rounds::{InForce, in_force as round_in_force};
pub use scan::{FileScan, campaign_files, is_campaign_file_name, scan_dir};
pub use settings::{
    ManualCallSetting, SmsSetting, TaskSettings, Window, equivalent_in_stretch,
    equivalent_over_gap, next_open,
};
pub use suppress::{SuppressionConfig, SuppressionFiles, SyncReport};
pub use task::{user_task_id, user_task_ids};
pub use watcher::Watcher;
pub use webhook::{ConnLimits, Webhook, WebhookLimits, callback_ingest};
