//! Choosing and recording injected faults.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::config::{DropApplies, FaultConfig, FaultKind};

/// A fault chosen for the next matching request, ahead of the random ones (for tests that need one exact fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedFault {
    /// The fault.
    pub kind: FaultKind,
    /// Only a request to this endpoint (e.g. `createAndCall`) takes it; `None`: the next API request.
    pub endpoint: Option<String>,
    /// For [`FaultKind::DropAfterRead`]: whether the request is applied before the drop. Ignored otherwise.
    pub applied: bool,
}

/// One injected fault, as recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FaultRecord {
    /// Sim time.
    pub at: DateTime<Utc>,
    /// Endpoint name, e.g. `createAndCall`.
    pub endpoint: String,
    pub kind: FaultKind,
    /// The request's `requestID` header (empty if absent).
    pub request_id: String,
    /// Whether the request was applied to the platform's state.
    pub applied: bool,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub kind: FaultKind,
    /// Apply the request before faulting (Delay: always; DropAfterRead: per config/coin; others: never).
    pub apply: bool,
}

#[derive(Debug)]
pub(crate) struct Faults {
    cfg: FaultConfig,
    rng: StdRng,
    forced: VecDeque<ForcedFault>,
    log: Vec<FaultRecord>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            forced: VecDeque::new(),
            log: Vec::new(),
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.cfg
    }

    pub fn set_config(&mut self, cfg: FaultConfig) {
        self.rng = StdRng::seed_from_u64(cfg.seed);
        self.cfg = cfg;
    }

    pub fn push(&mut self, f: ForcedFault) {
        self.forced.push_back(f);
    }

    /// Whether (and how) the request to `endpoint` faults.
    pub fn decide(&mut self, endpoint: &str) -> Option<Decision> {
        if let Some(i) = self
            .forced
            .iter()
            .position(|f| f.endpoint.as_deref().is_none_or(|e| e == endpoint))
        {
            let f = self.forced.remove(i)?;
            let apply = match f.kind {
                FaultKind::Delay => true,
                FaultKind::DropAfterRead => f.applied,
                _ => false,
            };
            return Some(Decision {
                kind: f.kind,
                apply,
            });
        }
        let targeted =
            self.cfg.endpoints.is_empty() || self.cfg.endpoints.iter().any(|e| e == endpoint);
        if !targeted || self.cfg.rate <= 0.0 || self.rng.random::<f64>() >= self.cfg.rate {
            return None;
        }
        let kinds: &[FaultKind] = if self.cfg.kinds.is_empty() {
            &FaultKind::ALL
        } else {
            &self.cfg.kinds
        };
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let apply = match kind {
            FaultKind::Delay => true,
            FaultKind::DropAfterRead => match self.cfg.drop_applies {
                DropApplies::Never => false,
                DropApplies::Always => true,
                DropApplies::Coin => self.rng.random::<bool>(),
            },
            _ => false,
        };
        Some(Decision { kind, apply })
    }

    pub fn record(&mut self, r: FaultRecord) {
        self.log.push(r);
    }

    pub fn log(&self) -> Vec<FaultRecord> {
        self.log.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_faults_come_first_and_match_their_endpoint() {
        let mut f = Faults::new(FaultConfig::default());
        f.push(ForcedFault {
            kind: FaultKind::DropAfterRead,
            endpoint: Some("addBatchCall".into()),
            applied: true,
        });
        assert_eq!(f.decide("ping"), None);
        assert_eq!(
            f.decide("addBatchCall"),
            Some(Decision {
                kind: FaultKind::DropAfterRead,
                apply: true
            })
        );
        assert_eq!(f.decide("addBatchCall"), None);
    }

    #[test]
    fn rate_and_targeting_are_honoured_and_seeded() {
        let cfg = FaultConfig {
            rate: 0.3,
            endpoints: vec!["createAndCall".into()],
            seed: 9,
            ..FaultConfig::default()
        };
        let run = || {
            let mut f = Faults::new(cfg.clone());
            (0..1000)
                .map(|_| f.decide("createAndCall"))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|d| d.is_some()).count();
        assert!((200..400).contains(&hits), "{hits}");
        for kind in FaultKind::ALL {
            assert!(a.iter().flatten().any(|d| d.kind == kind), "{kind:?}");
        }
        let mut f = Faults::new(cfg);
        assert!((0..200).all(|_| f.decide("ping").is_none()));
    }
}
