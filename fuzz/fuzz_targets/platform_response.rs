//! Platform responses: every `callbot_api::wire` response type read from arbitrary bytes, the way the client reads
//! them (`serde_json::Value` first, the result code from it, then the typed response), and the response signature
//! checked through the public APIs the client's own check is built from (`SignedHeaders`, `sign::verify`).
//!
//! Input layout: `selector, flags, body`. The selector picks the response type; flag bit 0 signs the body with the
//! right secret (then it must verify), bit 1 signs it with another secret (then it must not).
//!
//! Invariants: reading through `Value` and reading directly agree whenever both succeed; a response that reads
//! survives serialisation unchanged; the envelope's code, message and response ID are the ones in the JSON; a body
//! signed with our secret verifies, and one signed with another secret or changed by a byte does not.
#![no_main]

use std::fmt::Debug;

use callbot_api::sign::{self, Algorithm, DEFAULT_MAX_SKEW_SECS, SecretKey, SignedHeaders};
use callbot_api::wire::{
    AddBatchCallResponse, CallbackAck, CreateAndCallResponse, Envelope, ListOrderDetailResponse,
    ListTaskResponse, MgrTaskStatusResponse, PingResponse, StopOrderResponse, UpdateTaskResponse,
};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NOW: i64 = 1_795_000_000;

fn check<T>(body: &[u8], result_field: &str)
where
    T: DeserializeOwned + Serialize + Envelope + PartialEq + Debug,
{
    let direct = serde_json::from_slice::<T>(body);
    // The client's path.
    // (Reading directly can succeed where `Value` fails: serde_json skips an unknown field's string without checking
    // its UTF-8. The client reads through `Value`, so such a body is refused there.)
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let code = value.get(result_field).and_then(Value::as_i64);
    let Ok(via_value) = serde_json::from_value::<T>(value.clone()) else {
        return;
    };
    if let Ok(direct) = &direct {
        assert_eq!(direct, &via_value, "the two ways of reading disagree");
    }
    if let Some(code) = code {
        assert_eq!(via_value.ret_code(), code);
    }
    let json = serde_json::to_vec(&via_value).expect("a response serialises");
    let back: T = serde_json::from_slice(&json).expect("a serialised response reads");
    assert_eq!(
        back, via_value,
        "the response changed through serialisation"
    );
    let _ = (via_value.ret_msg(), via_value.response_id());
}

fn signature(flags: u8, body: &[u8]) {
    let ours = SecretKey::new("fuzz-secret".to_owned());
    let theirs = SecretKey::new("another-secret".to_owned());
    let alg = if flags & 4 == 4 {
        Algorithm::Sha256
    } else {
        Algorithm::Md5
    };
    let (key, should_verify) = match flags & 3 {
        1 => (&ours, true),
        2 => (&theirs, false),
        _ => return,
    };
    let signed = SignedHeaders::signed(key, body, NOW.to_string(), "req-1", "acct", alg);
    let mut headers = HeaderMap::new();
    signed.write_to(&mut headers);
    let read = SignedHeaders::from_header_map(&headers).expect("headers we wrote read back");
    assert_eq!(read, signed);
    let verdict = sign::verify(&ours, body, &read, NOW, DEFAULT_MAX_SKEW_SECS);
    assert_eq!(verdict.is_ok(), should_verify, "{verdict:?}");
    if should_verify && !body.is_empty() {
        let mut changed = body.to_vec();
        changed[body.len() / 2] ^= 1;
        assert_eq!(
            sign::verify(&ours, &changed, &read, NOW, DEFAULT_MAX_SKEW_SECS),
            Err(sign::VerifyError::Mismatch)
        );
        assert!(matches!(
            sign::verify(
                &ours,
                body,
                &read,
                NOW + DEFAULT_MAX_SKEW_SECS + 1,
                DEFAULT_MAX_SKEW_SECS
            ),
            Err(sign::VerifyError::Stale { .. })
        ));
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, flags, body @ ..] = data else {
        return;
    };
    signature(*flags, body);
    match selector % 9 {
        0 => check::<CreateAndCallResponse>(body, "retCode"),
        1 => check::<AddBatchCallResponse>(body, "retCode"),
        2 => check::<UpdateTaskResponse>(body, "retCode"),
        3 => check::<MgrTaskStatusResponse>(body, "retCode"),
        4 => check::<ListOrderDetailResponse>(body, "retCode"),
        5 => check::<StopOrderResponse>(body, "retCode"),
        6 => check::<ListTaskResponse>(body, "retCode"),
        7 => check::<PingResponse>(body, "code"),
        _ => check::<CallbackAck>(body, "retCode"),
    }
});
