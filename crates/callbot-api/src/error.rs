//! What can go wrong calling the platform, sorted by what the caller does about it.

use crate::wire::Endpoint;

/// A failed API call. The variant says what the caller can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Not applied; trying again later may work (retCode 5, 5001 or 7, HTTP 5xx, a timeout or connection failure
    /// before the request was written). The client has already retried it up to its policy's limit.
    #[error("{endpoint}: temporary failure, not applied: {reason}")]
    Retryable {
        /// Which endpoint.
        endpoint: Endpoint,
        /// What happened.
        reason: String,
    },
    /// The request may or may not have been applied (timeout or reset after it was sent, a 200 with an unreadable
    /// body; from an endpoint that changes state, an answer over `max_response_bytes` or whose signature
    /// `ResponseVerification::Enforce` refuses). Check the platform's state before acting again.
    #[error("{endpoint}: outcome unknown, the request may have been applied: {reason}")]
    Ambiguous {
        /// Which endpoint.
        endpoint: Endpoint,
        /// What happened.
        reason: String,
    },
    /// The platform refused the request: a non-zero retCode other than the retryable ones, or an HTTP 3xx/4xx
    /// (then `code` is the HTTP status and `response_id` is empty). Also a read (`listOrderDetail`, `listTask`,
    /// `ping`) whose answer the client refuses (over `max_response_bytes`, or its signature under `Enforce`): then
    /// `code` is the HTTP status and `response_id` is empty.
    #[error("{endpoint}: rejected with code {code}: {message} (responseID {response_id:?})")]
    Rejected {
        /// Which endpoint.
        endpoint: Endpoint,
        /// retCode (see [`crate::wire::ret_code`]) or HTTP status.
        code: i64,
        /// retMsg.
        message: String,
        /// responseID, for support.
        response_id: String,
    },
    /// The request was not sent: it could not be built or breaks a documented limit.
    #[error("{endpoint}: invalid request, not sent: {reason}")]
    Invalid {
        /// Which endpoint.
        endpoint: Endpoint,
        /// What is wrong.
        reason: String,
    },
    /// The client configuration is unusable (bad base URL, HTTP client could not be built).
    #[error("callbot client configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// Worth trying again later (the client's own retries are already spent).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Retryable { .. })
    }

    /// The request may have been applied; check before acting again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, ApiError::Ambiguous { .. })
    }

    /// The endpoint the error belongs to (`None` for configuration errors).
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            ApiError::Retryable { endpoint, .. }
            | ApiError::Ambiguous { endpoint, .. }
            | ApiError::Rejected { endpoint, .. }
            | ApiError::Invalid { endpoint, .. } => Some(*endpoint),
            ApiError::Config(_) => None,
        }
    }

    /// The retCode (or HTTP status) of a rejection.
    pub fn rejected_code(&self) -> Option<i64> {
        match self {
            ApiError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The outcome class, as recorded in [`crate::ActionRecord`].
    pub fn outcome(&self) -> crate::ActionOutcome {
        match self {
            ApiError::Retryable { .. } => crate::ActionOutcome::Retryable,
            ApiError::Ambiguous { .. } => crate::ActionOutcome::Ambiguous,
            ApiError::Rejected { .. } => crate::ActionOutcome::Rejected,
            ApiError::Invalid { .. } | ApiError::Config(_) => crate::ActionOutcome::Invalid,
        }
    }
}
