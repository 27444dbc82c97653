//! Callbacks as the webhook receives them: signature headers and a body, read and verified through the public APIs
//! (`SignedHeaders::from_header_map`, `sign::verify`), then turned into what the store keeps
//! (`daemon::callback_ingest`).
//!
//! Input layout: `flags, createTs \0 requestID \0 uuid \0 sign \0 algorithm \0 body`; missing parts are absent headers.
//! Flag bit 0 replaces the sign with the correct one for the body (so that the checks after a good signature are
//! reached); bit 1 sets the clock at `createTs` (so that a signed callback is fresh).
//!
//! Invariants: `verify` accepts exactly when the sign matches (case-insensitively) the one computed over the exact
//! body and headers and `createTs` is a number within the allowed skew; the stored record keeps the body (lossily
//! decoded) and its kind agrees with the parse; order and call callbacks, and only they, carry order facts; parsing
//! is deterministic, and a parsed callback survives serialisation with its type and task.
#![no_main]

use callbot_api::sign::{self, Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey, SignedHeaders, header};
use callbot_api::wire::Callback;
use chrono::DateTime;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(6, |b| *b == 0);
    let names = [
        header::CREATE_TS,
        header::REQUEST_ID,
        header::UUID,
        header::SIGN,
        header::ALGORITHM,
    ];
    let mut values: [Option<&[u8]>; 5] = [None; 5];
    for v in &mut values {
        *v = parts.next();
    }
    let body = parts.next().unwrap_or(&[]);
    let secret = SecretKey::new("fuzz-secret".to_owned());

    let mut headers = HeaderMap::new();
    for (name, value) in names.iter().zip(values) {
        if let Some(v) = value
            && let Ok(v) = HeaderValue::from_bytes(v)
        {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                v,
            );
        }
    }
    let mut now = NOW;
    let signed = match SignedHeaders::from_header_map(&headers) {
        Ok(h) => h,
        Err(_) => {
            // The webhook refuses it; nothing is stored.
            return;
        }
    };
    let mut signed = signed;
    if flags & 1 == 1 {
        signed.sign = sign::sign(
            &secret,
            body,
            &signed.create_ts,
            &signed.request_id,
            &signed.uuid,
            signed.effective_algorithm(),
        );
    }
    let ts: Option<i64> = signed.create_ts.parse().ok();
    if flags & 2 == 2
        && let Some(ts) = ts
    {
        now = ts;
    }
    let expected = sign::sign(
        &secret,
        body,
        &signed.create_ts,
        &signed.request_id,
        &signed.uuid,
        signed.effective_algorithm(),
    );
    let matches = !signed.sign.is_empty() && signed.sign.eq_ignore_ascii_case(&expected);
    let fresh =
        ts.is_some_and(|t| t.saturating_sub(now).unsigned_abs() <= DEFAULT_MAX_SKEW_SECS as u64);
    let verdict = sign::verify(&secret, body, &signed, now, DEFAULT_MAX_SKEW_SECS);
    assert_eq!(
        verdict.is_ok(),
        ts.is_some() && matches && fresh,
        "verify said {verdict:?} (sign matches: {matches}, fresh: {fresh}, ts: {ts:?})"
    );
    if ts.is_some() && !matches {
        assert_eq!(verdict, Err(sign::VerifyError::Mismatch));
    }
    // The other algorithm's sign never verifies (both are upper-case hex of different lengths).
    let other = match signed.effective_algorithm() {
        Algorithm::Md5 => Algorithm::Sha256,
        Algorithm::Sha256 => Algorithm::Md5,
    };
    let mut wrong = signed.clone();
    wrong.sign = sign::sign(
        &secret,
        body,
        &signed.create_ts,
        &signed.request_id,
        &signed.uuid,
        other,
    );
    assert!(sign::verify(&secret, body, &wrong, now, DEFAULT_MAX_SKEW_SECS).is_err());

    if verdict.is_err() {
        return;
    }
    let at = DateTime::from_timestamp(now.clamp(0, 253_402_300_799), 0).expect("a valid instant");
    let (ingest, parsed) =
        daemon::callback_ingest(body.to_vec(), Some(signed.request_id.clone()), at);
    assert_eq!(ingest.record.body, String::from_utf8_lossy(body));
    assert_eq!(
        ingest.record.request_id.as_deref(),
        Some(signed.request_id.as_str())
    );
    assert!(ingest.record.verified);
    let again = Callback::parse(body);
    match (&parsed, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("parsing the same body twice disagreed"),
    }
    let kind = match &parsed {
        Ok(Callback::Task(_)) => "task",
        Ok(Callback::Order(_)) => "order",
        Ok(Callback::Call(_)) => "call",
        Err(_) => "unknown",
    };
    assert_eq!(ingest.record.kind, kind);
    assert_eq!(
        ingest.facts.is_some(),
        matches!(parsed, Ok(Callback::Order(_) | Callback::Call(_)))
    );
    if let Ok(cb) = &parsed {
        let json = serde_json::to_vec(cb).expect("a callback serialises");
        let back = Callback::parse(&json).expect("a serialised callback parses");
        assert_eq!(back.callback_type(), cb.callback_type());
        assert_eq!(back.user_task_id(), cb.user_task_id());
    }
});
