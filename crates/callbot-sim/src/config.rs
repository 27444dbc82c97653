//! Simulator configuration. Defaults live here and only here.

use std::time::Duration;

use callbot_api::sign::{Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey};
use serde::{Deserialize, Serialize};

use crate::outcome::OutcomeConfig;

/// One platform account: its `uuid`, secret key and, optionally, the algorithm the console pins it to.
#[derive(Debug, Clone)]
pub struct Account {
    /// The `uuid` header value.
    pub uuid: String,
    /// The secret the account signs with.
    pub secret: SecretKey,
    /// When set, requests must be signed with this algorithm and callbacks are signed with it. When `None`,
    /// requests may use either (the `algorithm` header, MD5 when absent) and callbacks use MD5.
    pub algorithm: Option<Algorithm>,
}

impl Account {
    /// An account accepting either algorithm.
    pub fn new(uuid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            uuid: uuid.into(),
            secret: SecretKey::new(secret.into()),
            algorithm: None,
        }
    }
}

/// The kinds of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer retCode 7 (system busy) without applying the request.
    RetCode7,
    /// Answer retCode 5001 (internal error) without applying the request.
    RetCode5001,
    /// Answer HTTP 502 without applying the request.
    Http502,
    /// Apply the request, then answer only after [`FaultConfig::delay`] (longer than the client's timeout).
    Delay,
    /// Read the request, apply it or not (see [`FaultConfig::drop_applies`]), then drop the connection unanswered.
    DropAfterRead,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::RetCode7,
        FaultKind::RetCode5001,
        FaultKind::Http502,
        FaultKind::Delay,
        FaultKind::DropAfterRead,
    ];
}

/// Whether a dropped connection's request was applied first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropApplies {
    /// Never applied (the drop happened before the platform acted).
    Never,
    /// Always applied (the platform acted, the answer was lost).
    Always,
    /// A seeded coin decides, per request.
    Coin,
}

/// Fault injection. Faults never apply to `/_sim/*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Fraction of API requests that get a fault, 0.0 to 1.0.
    pub rate: f64,
    /// The kinds to choose from (uniformly). Empty means every kind.
    pub kinds: Vec<FaultKind>,
    /// Endpoint names (e.g. `createAndCall`) the faults target. Empty means every API endpoint.
    pub endpoints: Vec<String>,
    /// How late a [`FaultKind::Delay`] answer comes.
    pub delay: Duration,
    /// Whether [`FaultKind::DropAfterRead`] applies the request before dropping.
    pub drop_applies: DropApplies,
    /// Seed of the fault coin (separate from the outcome seed, so faults do not change outcomes).
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            rate: 0.0,
            kinds: Vec::new(),
            endpoints: Vec::new(),
            delay: Duration::from_secs(30),
            drop_applies: DropApplies::Coin,
            seed: 0,
        }
    }
}

/// How callbacks are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackPolicy {
    /// Attempts per callback, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Callbacks in flight at once.
    pub concurrency: usize,
    /// Send the `algorithm` header on callbacks. The vendor's callback pages list no such header, so the default
    /// is `false`: the receiver must know the account's algorithm (MD5 unless the account pins another).
    pub send_algorithm_header: bool,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            concurrency: 8,
            send_algorithm_header: false,
        }
    }
}

/// Everything the simulator needs to know.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Known accounts; a request from any other `uuid` gets retCode 6002.
    pub accounts: Vec<Account>,
    /// Most entries in one `callInfoList.callList` (and `stopOrder.orderIDs`); the vendor states none.
    pub call_list_limit: usize,
    /// Most entries in `listOrderDetail.orderList` (documented: 500).
    pub order_list_limit: usize,
    /// Largest |createTs - sim now| accepted, seconds.
    pub max_skew_secs: i64,
    /// Call durations are divided by this.
    pub speed: f64,
    /// Seed of the outcome distribution.
    pub seed: u64,
    /// Outcomes and durations.
    pub outcomes: OutcomeConfig,
    /// Fault injection.
    pub faults: FaultConfig,
    /// How long (sim time) after updateTask its settings take effect. The vendor says about 5 minutes.
    pub apply_delay: Duration,
    /// Callback delivery.
    pub callbacks: CallbackPolicy,
    /// How long after applying a request its answer leaves: the network's and the platform's own round trip, which
    /// lets several requests of one client be in flight at once. Zero by default (fault delays are separate).
    pub latency: Duration,
    /// The endpoints (e.g. `addBatchCall`) [`SimConfig::latency`] applies to. Empty means every API endpoint.
    pub latency_endpoints: Vec<String>,
    /// Real-time mode: `run` advances the engine to the clock this often. `None`: only requests and explicit
    /// `advance_to` calls move it (tests with a manual clock).
    pub tick: Option<Duration>,
}

impl SimConfig {
    /// Defaults with the given accounts.
    pub fn new(accounts: Vec<Account>) -> Self {
        Self {
            accounts,
            call_list_limit: 1000,
            order_list_limit: 500,
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            speed: 1.0,
            seed: 0,
            outcomes: OutcomeConfig::default(),
            faults: FaultConfig::default(),
            apply_delay: Duration::from_secs(300),
            callbacks: CallbackPolicy::default(),
            latency: Duration::ZERO,
            latency_endpoints: Vec::new(),
            tick: Some(Duration::from_millis(200)),
        }
    }
}
