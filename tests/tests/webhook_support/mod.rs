//! Sending a callback to the webhook as the platform does, for the webhook tests.

use callbot_api::Algorithm;
use callbot_api::sign::{SecretKey, SignedHeaders, header};

/// The account the tests' callbacks are signed for.
pub const UUID: &str = "acct-1";

/// POSTs `body` to `url`, signed with `secret` and `alg` at Unix time `now`, and returns the answer's status. With
/// `algorithm_header` false the `algorithm` header is left out, as on the vendor's callback pages.
pub async fn post_signed(
    url: &str,
    body: &[u8],
    secret: &str,
    alg: Algorithm,
    algorithm_header: bool,
    now: i64,
    request_id: &str,
) -> u16 {
    let signed = SignedHeaders::signed(
        &SecretKey::new(secret.into()),
        body,
        now.to_string(),
        request_id,
        UUID,
        alg,
    );
    let mut headers = reqwest::header::HeaderMap::new();
    signed.write_to(&mut headers);
    if !algorithm_header {
        headers.remove(header::ALGORITHM);
    }
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
