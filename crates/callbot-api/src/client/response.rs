//! The platform's answers: reading a body under the size cap, checking its signature, and what an answer the client
//! refuses to use becomes.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::error::ApiError;
use crate::sign::{self, SecretKey, SignedHeaders, VerifyError};
use crate::wire::Endpoint;

/// The largest response body the client reads by default: 16 MiB.
///
/// The largest real answer is `listOrderDetail` at its documented cap of 500 orders. An order carries about 300 bytes
/// of its own fields and each of its calls about 1 KiB; an answered call adds its transcript (`recordDetail`), say 40
/// turns of about 350 bytes each when Chinese text comes as `\uXXXX` escapes, so 14 KiB. With three calls an order,
/// one of them answered, that is 500 × 17 KiB ≈ 8.5 MiB: 16 MiB leaves about twice that.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What the client does with the signature headers of responses ([`crate::ClientConfig::verify_responses`]).
///
/// The platform does not document over what a response is signed (see the crate README for the reading chosen), so
/// the default only reports until a real account confirms the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResponseVerification {
    /// Signatures are not looked at.
    Off,
    /// Every response is checked, 2xx and non-2xx alike, and the outcome goes to
    /// [`crate::ActionObserver::response_signature`]; no response is refused for it.
    #[default]
    Report,
    /// Checked as in `Report`, and a response is refused when its signature does not verify, or when a 2xx has none.
    /// A non-2xx without a signature is still judged by its status: proxies and gateways answer errors unsigned.
    Enforce,
}

impl ResponseVerification {
    /// Lowercase name, as used in configuration files: `off`, `report`, `enforce`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseVerification::Off => "off",
            ResponseVerification::Report => "report",
            ResponseVerification::Enforce => "enforce",
        }
    }
}

impl fmt::Display for ResponseVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name was none of `off`, `report`, `enforce`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown response verification {0:?}: use off, report or enforce")]
pub struct UnknownVerification(pub String);

impl FromStr for ResponseVerification {
    type Err = UnknownVerification;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ResponseVerification::Off,
            ResponseVerification::Report,
            ResponseVerification::Enforce,
        ]
        .into_iter()
        .find(|v| s.trim().eq_ignore_ascii_case(v.as_str()))
        .ok_or_else(|| UnknownVerification(s.to_owned()))
    }
}

/// What checking one response's signature found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureOutcome {
    /// The signature verifies.
    Ok,
    /// Signature headers are there but do not verify: wrong sign, another account's uuid, a `createTs` too far from
    /// now, or a header missing or unreadable next to the `sign`.
    Mismatch,
    /// No `sign` header.
    Missing,
}

impl SignatureOutcome {
    /// Lowercase label (for metrics): `ok`, `mismatch`, `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureOutcome::Ok => "ok",
            SignatureOutcome::Mismatch => "mismatch",
            SignatureOutcome::Missing => "missing",
        }
    }
}

/// One response's signature check, as reported to [`crate::ActionObserver::response_signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureCheck {
    /// Which endpoint answered.
    pub endpoint: Endpoint,
    /// The attempt's `requestID` (as in its [`crate::ActionRecord`]).
    pub request_id: String,
    /// The response's HTTP status.
    pub http_status: u16,
    /// What the check found.
    pub outcome: SignatureOutcome,
    /// Why, unless the outcome is `Ok` (then empty).
    pub reason: String,
    /// The mode it was checked under (`Report` or `Enforce`).
    pub mode: ResponseVerification,
}

/// Why a body was not read whole.
pub(super) enum BodyError {
    /// Larger than the cap; says by how much was known.
    TooLarge(String),
    /// The connection failed while reading.
    Read(reqwest::Error),
}

/// Reads `response`'s body, at most `cap` bytes: refused at once when its `Content-Length` is larger, otherwise read
/// chunk by chunk and given up as soon as it passes the cap, so an endless body costs at most `cap` bytes (plus one
/// chunk of the HTTP stack).
pub(super) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Bytes, BodyError> {
    let declared = response.content_length();
    if let Some(len) = declared
        && len > u64::try_from(cap).unwrap_or(u64::MAX)
    {
        return Err(BodyError::TooLarge(format!(
            "the response declares {len} bytes (Content-Length), more than max_response_bytes = {cap}; \
             it was not read"
        )));
    }
    // Content-Length is at most the cap here, so it bounds this allocation too.
    let mut body = Vec::with_capacity(declared.map_or(0, |len| usize::try_from(len).unwrap_or(0)));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if chunk.len() > cap - body.len() {
            return Err(BodyError::TooLarge(format!(
                "the response is larger than max_response_bytes = {cap}; reading stopped after {} bytes",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Checks a response's signature: its own `requestID`, `uuid`, `createTs` and `algorithm` headers over the raw
/// response body, with our secret; the `uuid` must be ours and `createTs` within [`sign::DEFAULT_MAX_SKEW_SECS`] of
/// `now_unix`. Returns the outcome and, unless it is `Ok`, why.
pub(super) fn check_signature(
    secret: &SecretKey,
    our_uuid: &str,
    headers: &HeaderMap,
    raw: &[u8],
    now_unix: i64,
) -> (SignatureOutcome, String) {
    let signed = match SignedHeaders::from_header_map(headers) {
        Ok(s) => s,
        Err(VerifyError::MissingSign) => {
            return (
                SignatureOutcome::Missing,
                "the response has no `sign` header".to_owned(),
            );
        }
        Err(e) => {
            return (
                SignatureOutcome::Mismatch,
                format!("response signature not usable: {e}"),
            );
        }
    };
    if signed.uuid != our_uuid {
        return (
            SignatureOutcome::Mismatch,
            format!("response signed for uuid {:?}, not ours", signed.uuid),
        );
    }
    match sign::verify(secret, raw, &signed, now_unix, sign::DEFAULT_MAX_SKEW_SECS) {
        Ok(()) => (SignatureOutcome::Ok, String::new()),
        Err(e) => (
            SignatureOutcome::Mismatch,
            format!("response signature does not verify: {e}"),
        ),
    }
}

/// Whether `mode` refuses a response with this signature outcome and status.
pub(super) fn refuses(
    mode: ResponseVerification,
    outcome: SignatureOutcome,
    status: StatusCode,
) -> bool {
    mode == ResponseVerification::Enforce
        && match outcome {
            SignatureOutcome::Ok => false,
            SignatureOutcome::Mismatch => true,
            SignatureOutcome::Missing => status.is_success(),
        }
}

/// The error for an answer that arrived but that the client will not use: one over `max_response_bytes`, or one whose
/// signature `Enforce` refuses.
///
/// The choice, in the crate's taxonomy:
/// - An endpoint that changes state: `Ambiguous`. The request reached the platform and may have been applied; the
///   caller finds out (`listTask`, `listOrderDetail`) before acting again, and the client does not retry it.
/// - A read (`listOrderDetail`, `listTask`, `ping`): `Rejected`, with the HTTP status as `code` and no responseID.
///   Nothing was applied, so there is nothing to find out, and repeating it as is would most likely get the same
///   answer: ask for less (fewer order IDs) or fix the configuration. Not `Retryable`, which the client would resend
///   at once, downloading the same answer again.
pub(super) fn refused(endpoint: Endpoint, status: StatusCode, reason: String) -> ApiError {
    if endpoint.is_read_only() {
        ApiError::Rejected {
            endpoint,
            code: i64::from(status.as_u16()),
            message: format!("HTTP {status}, answer refused: {reason}"),
            response_id: String::new(),
        }
    } else {
        ApiError::Ambiguous {
            endpoint,
            reason: format!("HTTP {status}, answer refused: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Algorithm;

    const NOW: i64 = 1_732_190_400;

    fn headers(h: &SignedHeaders) -> HeaderMap {
        let mut map = HeaderMap::new();
        h.write_to(&mut map);
        map
    }

    #[test]
    fn classifies_signatures_as_ok_mismatch_or_missing() {
        let secret = SecretKey::from("k");
        let body = br#"{"retCode":0}"#;
        let good = SignedHeaders::signed(&secret, body, NOW.to_string(), "r", "me", Algorithm::Md5);
        let check = |h: &HeaderMap, raw: &[u8]| check_signature(&secret, "me", h, raw, NOW).0;
        assert_eq!(check(&headers(&good), body), SignatureOutcome::Ok);
        assert_eq!(
            check(&headers(&good), br#"{"retCode":1}"#),
            SignatureOutcome::Mismatch
        );
        assert_eq!(check(&HeaderMap::new(), body), SignatureOutcome::Missing);

        let other =
            SignedHeaders::signed(&secret, body, NOW.to_string(), "r", "you", Algorithm::Md5);
        assert_eq!(check(&headers(&other), body), SignatureOutcome::Mismatch);
        let stale = SignedHeaders::signed(
            &secret,
            body,
            (NOW - 3600).to_string(),
            "r",
            "me",
            Algorithm::Md5,
        );
        assert_eq!(check(&headers(&stale), body), SignatureOutcome::Mismatch);
        let mut no_ts = headers(&good);
        no_ts.remove(sign::header::CREATE_TS);
        let (outcome, reason) = check_signature(&secret, "me", &no_ts, body, NOW);
        assert_eq!(outcome, SignatureOutcome::Mismatch);
        assert!(reason.contains("createTs"), "{reason}");
    }

    #[test]
    fn enforce_refuses_mismatches_and_unsigned_successes_only() {
        use ResponseVerification::*;
        use SignatureOutcome::{Mismatch, Missing, Ok as Good};
        let (ok, bad_gateway) = (StatusCode::OK, StatusCode::BAD_GATEWAY);
        for mode in [Off, Report] {
            for outcome in [Good, Mismatch, Missing] {
                assert!(!refuses(mode, outcome, ok));
                assert!(!refuses(mode, outcome, bad_gateway));
            }
        }
        assert!(!refuses(Enforce, Good, ok));
        assert!(refuses(Enforce, Mismatch, ok));
        assert!(refuses(Enforce, Mismatch, bad_gateway));
        assert!(refuses(Enforce, Missing, ok));
        assert!(!refuses(Enforce, Missing, bad_gateway));
    }

    #[test]
    fn refused_answers_are_ambiguous_for_writes_and_rejected_for_reads() {
        let err = refused(Endpoint::AddBatchCall, StatusCode::OK, "too big".into());
        assert!(err.is_ambiguous(), "{err:?}");
        let err = refused(Endpoint::ListOrderDetail, StatusCode::OK, "too big".into());
        assert_eq!(err.rejected_code(), Some(200), "{err:?}");
        assert!(err.to_string().contains("too big"), "{err}");
    }

    #[test]
    fn verification_modes_parse_from_their_names() {
        for mode in [
            ResponseVerification::Off,
            ResponseVerification::Report,
            ResponseVerification::Enforce,
        ] {
            assert_eq!(mode.as_str().parse(), Ok(mode));
            assert_eq!(mode.as_str().to_uppercase().parse(), Ok(mode));
        }
        assert_eq!(
            ResponseVerification::default(),
            ResponseVerification::Report
        );
        assert!("true".parse::<ResponseVerification>().is_err());
    }
}
