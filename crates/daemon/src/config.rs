//! The daemon's own settings, with their defaults (the binary maps its configuration file onto these).

use std::path::PathBuf;

use chrono::Duration;

use crate::suppress::SuppressionConfig;

/// The daemon's own settings (the binary maps its config onto these).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the campaign files are.
    pub campaigns_dir: PathBuf,
    /// How long updateTask takes to apply (vendor: ~5 min).
    pub apply_delay: Duration,
    /// How often unfinished orders are polled.
    pub poll_interval: Duration,
    /// The URL the platform calls back (`<public_url>/callbacks/...`); `None`: polling only.
    pub public_url: Option<String>,
    /// This replica's name in the store's leases.
    pub owner: String,
    /// Lease lifetime; renewed at every reconcile.
    pub lease_ttl: std::time::Duration,
    /// How long an order (or a creation) must have been in doubt before the platform is asked about it; covers a
    /// request still being processed after the client gave up on it.
    pub resolve_grace: Duration,
    /// How many upload requests (`addBatchCall`) and polls (`listOrderDetail`) of one task may be in flight at once,
    /// at least 1. Every one is inside the client's `requests_per_second`; each upload batch is still durably
    /// `sending` before its request leaves, so a crash with several in flight leaves them all to be resolved.
    pub requests_in_flight: usize,
    /// Periodic rescan / reconcile interval at most (the loop also wakes on file changes and callbacks).
    pub max_sleep: std::time::Duration,
    /// The suppression files' directory; `None`: none (the store's list, from `campaignd suppress` and opt-outs,
    /// still applies).
    pub suppression: Option<SuppressionConfig>,
    /// Limits on calls to one number over every campaign (`[caps] attempts`); each campaign may add stricter ones.
    pub caps: Vec<campaign::CapRule>,
    /// How large a contacts file (campaigns' and suppression files), a record and a row may be (`[contacts]`).
    pub contact_limits: campaign::ContactLimits,
}

impl DaemonConfig {
    /// Defaults for everything but the directory.
    pub fn new(campaigns_dir: impl Into<PathBuf>) -> DaemonConfig {
        DaemonConfig {
            campaigns_dir: campaigns_dir.into(),
            apply_delay: Duration::minutes(5),
            poll_interval: Duration::seconds(30),
            public_url: None,
            owner: format!("campaignd-{}", std::process::id()),
            lease_ttl: std::time::Duration::from_secs(120),
            resolve_grace: Duration::seconds(0),
            requests_in_flight: 4,
            max_sleep: std::time::Duration::from_secs(10),
            suppression: None,
            caps: Vec::new(),
            contact_limits: campaign::ContactLimits::default(),
        }
    }
}

/// The caps that hold a campaign's numbers: the daemon's (`[caps] attempts`), the campaign's own, and the call
/// limits of its contacts' legal rules ([`campaign::CampaignSpec::legal_caps`]); every one applies.
pub fn caps_in_force(
    daemon_caps: &[campaign::CapRule],
    spec: &campaign::CampaignSpec,
) -> Vec<store::Cap> {
    daemon_caps
        .iter()
        .chain(&spec.caps)
        .chain(&spec.legal_caps())
        .map(|c| store::Cap {
            within: Duration::seconds(i64::try_from(c.within_secs).unwrap_or(i64::MAX)),
            max: c.max,
        })
        .collect()
}
