//! The vendor's request signature: building it, carrying it in headers, and verifying it.
//!
//! The plaintext is `secretKey&body=<body>&createTs=<ts>&requestID=<id>&uuid=<uuid>` where `<body>` is the exact byte
//! string on the wire; the sign is the uppercase hex of its MD5 or SHA-256. Everything here is pure: the current time
//! is an argument.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far (seconds) a `createTs` may be from the verifier's clock before it is refused as stale.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;

/// Header names, spelled as the vendor documents them. HTTP header names are case-insensitive.
pub mod header {
    /// Unique ID of the request (the vendor's Python sample spells it `requestId`).
    pub const REQUEST_ID: &str = "requestID";
    /// Account identifier.
    pub const UUID: &str = "uuid";
    /// Unix seconds, as a decimal string.
    pub const CREATE_TS: &str = "createTs";
    /// Uppercase hex signature.
    pub const SIGN: &str = "sign";
    /// `MD5` or `SHA256`; MD5 when absent.
    pub const ALGORITHM: &str = "algorithm";
}

/// Hash algorithm of the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// MD5, the vendor's default when the `algorithm` header is absent.
    #[default]
    Md5,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// The value of the `algorithm` header.
    pub fn as_header(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// Lowercase name, as used in configuration files.
    pub fn as_config(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_header())
    }
}

/// The algorithm name was neither `md5` nor `sha256` (in any case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature algorithm {0:?}: use MD5 or SHA256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("md5") {
            Ok(Algorithm::Md5)
        } else if t.eq_ignore_ascii_case("sha256") || t.eq_ignore_ascii_case("sha-256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(UnknownAlgorithm(s.to_owned()))
        }
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_config())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The account's secret key. Never printed: `Debug` and `Display` show `SecretKey(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself; only for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl From<String> for SecretKey {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for SecretKey {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The plaintext parts after the secret, in order. Shared by [`sign`] and [`plaintext_masked`].
fn parts<'a>(
    body: &'a [u8],
    create_ts: &'a str,
    request_id: &'a str,
    uuid: &'a str,
) -> [&'a [u8]; 8] {
    [
        b"&body=",
        body,
        b"&createTs=",
        create_ts.as_bytes(),
        b"&requestID=",
        request_id.as_bytes(),
        b"&uuid=",
        uuid.as_bytes(),
    ]
}

/// The signature: uppercase hex of `HASH(secret&body=<body>&createTs=<ts>&requestID=<id>&uuid=<uuid>)`.
///
/// `body` is the raw byte string sent on the wire; it is hashed as is, never re-serialized.
pub fn sign(
    secret: &SecretKey,
    body: &[u8],
    create_ts: &str,
    request_id: &str,
    uuid: &str,
    alg: Algorithm,
) -> String {
    fn run<D: Digest>(secret: &[u8], rest: [&[u8]; 8]) -> String {
        let mut h = D::new();
        h.update(secret);
        for p in rest {
            h.update(p);
        }
        hex::encode_upper(h.finalize())
    }
    let rest = parts(body, create_ts, request_id, uuid);
    match alg {
        Algorithm::Md5 => run::<Md5>(secret.expose().as_bytes(), rest),
        Algorithm::Sha256 => run::<Sha256>(secret.expose().as_bytes(), rest),
    }
}

/// The plaintext that [`sign`] hashes, with the secret replaced by `***` (for debugging output).
/// Non-UTF-8 bytes in the body are shown lossily.
pub fn plaintext_masked(body: &[u8], create_ts: &str, request_id: &str, uuid: &str) -> String {
    let mut out = String::from("***");
    for p in parts(body, create_ts, request_id, uuid) {
        out.push_str(&String::from_utf8_lossy(p));
    }
    out
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `sign` header, or an empty one (the platform answers 6001).
    #[error("the `sign` header is missing")]
    MissingSign,
    /// Another required header is missing.
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    /// A header is present but is not visible ASCII.
    #[error("the `{0}` header is not valid text")]
    BadHeader(&'static str),
    /// The `algorithm` header names no known algorithm.
    #[error("unknown signature algorithm {0:?}")]
    BadAlgorithm(String),
    /// `createTs` is not a whole number of seconds.
    #[error("`createTs` is not a Unix timestamp in seconds")]
    BadTimestamp,
    /// The signature does not match the body and headers.
    #[error("the signature does not match")]
    Mismatch,
    /// The signature matches but `createTs` is too far from now.
    #[error("`createTs` is {skew_secs} s away from now, more than allowed")]
    Stale {
        /// `createTs - now`, seconds (negative: in the past).
        skew_secs: i64,
    },
}

/// The signature headers of one request, response or callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `requestID`.
    pub request_id: String,
    /// `uuid`.
    pub uuid: String,
    /// `createTs`, exactly as sent (it is part of the plaintext).
    pub create_ts: String,
    /// `sign`.
    pub sign: String,
    /// `algorithm`; `None` when absent (then MD5).
    pub algorithm: Option<Algorithm>,
}

impl SignedHeaders {
    /// Computes the headers for `body`: the sign over exactly these bytes and values.
    pub fn signed(
        secret: &SecretKey,
        body: &[u8],
        create_ts: impl Into<String>,
        request_id: impl Into<String>,
        uuid: impl Into<String>,
        algorithm: Algorithm,
    ) -> Self {
        let create_ts = create_ts.into();
        let request_id = request_id.into();
        let uuid = uuid.into();
        let sign = sign(secret, body, &create_ts, &request_id, &uuid, algorithm);
        Self {
            request_id,
            uuid,
            create_ts,
            sign,
            algorithm: Some(algorithm),
        }
    }

    /// Reads the headers from an HTTP header map. Names are matched case-insensitively, so `requestId` is accepted.
    pub fn from_header_map(headers: &HeaderMap) -> Result<Self, VerifyError> {
        fn get(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, VerifyError> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .map_err(|_| VerifyError::BadHeader(name)),
            }
        }
        let sign = get(headers, header::SIGN)?
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingSign)?;
        let request_id = get(headers, header::REQUEST_ID)?
            .ok_or(VerifyError::MissingHeader(header::REQUEST_ID))?;
        let uuid = get(headers, header::UUID)?.ok_or(VerifyError::MissingHeader(header::UUID))?;
        let create_ts = get(headers, header::CREATE_TS)?
            .ok_or(VerifyError::MissingHeader(header::CREATE_TS))?;
        let algorithm = match get(headers, header::ALGORITHM)? {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s.parse().map_err(|_| VerifyError::BadAlgorithm(s))?),
        };
        Ok(Self {
            request_id,
            uuid,
            create_ts,
            sign,
            algorithm,
        })
    }

    /// Writes the headers into `headers` (replacing any present). `algorithm` is written only when set.
    /// Values that are not valid header text are skipped (then verification fails on the other side).
    pub fn write_to(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(lower(name)), v);
            }
        };
        put(header::REQUEST_ID, &self.request_id);
        put(header::UUID, &self.uuid);
        put(header::CREATE_TS, &self.create_ts);
        put(header::SIGN, &self.sign);
        if let Some(a) = self.algorithm {
            put(header::ALGORITHM, a.as_header());
        }
    }

    /// The algorithm in effect: the header's, or MD5.
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or_default()
    }
}

/// `HeaderName::from_static` wants lowercase; header names here are constants.
fn lower(name: &'static str) -> &'static str {
    match name {
        header::REQUEST_ID => "requestid",
        header::CREATE_TS => "createts",
        other => other,
    }
}

/// Checks `headers.sign` against `body` and the other headers, in constant time and case-insensitively,
/// then checks that `createTs` is within `max_skew_secs` of `now_unix`.
///
/// The signature is checked before the timestamp, so `Stale` is only reported for an authentic message.
pub fn verify(
    secret: &SecretKey,
    body: &[u8],
    headers: &SignedHeaders,
    now_unix: i64,
    max_skew_secs: i64,
) -> Result<(), VerifyError> {
    if headers.sign.is_empty() {
        return Err(VerifyError::MissingSign);
    }
    let ts: i64 = headers
        .create_ts
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let expected = sign(
        secret,
        body,
        &headers.create_ts,
        &headers.request_id,
        &headers.uuid,
        headers.effective_algorithm(),
    );
    let given = headers.sign.to_ascii_uppercase();
    if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Err(VerifyError::Mismatch);
    }
    let skew_secs = ts.saturating_sub(now_unix);
    if skew_secs.unsigned_abs() > max_skew_secs.unsigned_abs() {
        return Err(VerifyError::Stale { skew_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sk(s: &str) -> SecretKey {
        SecretKey::new(s.to_owned())
    }

    struct Vector {
        secret: &'static str,
        body: &'static [u8],
        ts: &'static str,
        id: &'static str,
        uuid: &'static str,
        md5: &'static str,
        sha256: &'static str,
    }

    // Each vector was computed with coreutils, independently of this code, as
    //   printf '%s' '<secret>&body=<body>&createTs=<ts>&requestID=<id>&uuid=<uuid>' | md5sum | tr a-f A-F
    //   printf '%s' '<same>' | sha256sum | tr a-f A-F
    // (the last one with `printf '...\n...'` so the body ends in a real newline).
    const VECTORS: &[Vector] = &[
        // printf '%s' 'sk-test-0001&body={"productID":"callbot","userTaskID":"t-1","taskOperate":1}&createTs=1700000000&requestID=req-1&uuid=acct-uuid-1' | md5sum
        Vector {
            secret: "sk-test-0001",
            body: br#"{"productID":"callbot","userTaskID":"t-1","taskOperate":1}"#,
            ts: "1700000000",
            id: "req-1",
            uuid: "acct-uuid-1",
            md5: "7645B2318E0FA7B444810FAEF311497C",
            sha256: "65D119070B80E8D5A3E767D425626021664FBD045E02E2848BD522C71DBDEDD9",
        },
        // Chinese secret and raw UTF-8 Chinese in the body, Python-sample separators (", " and ": "):
        // printf '%s' '秘钥SecretKey&body={"productID": "callbot", "taskCreateSetting": {"strategyName": "默认策略", "taskName": "回访"}}&createTs=1732190400&requestID=7f1c0e3a-0000-4000-8000-000000000001&uuid=u-42' | md5sum
        Vector {
            secret: "秘钥SecretKey",
            body: r#"{"productID": "callbot", "taskCreateSetting": {"strategyName": "默认策略", "taskName": "回访"}}"#
                .as_bytes(),
            ts: "1732190400",
            id: "7f1c0e3a-0000-4000-8000-000000000001",
            uuid: "u-42",
            md5: "84325F8D4694F62A67122CF807989E6E",
            sha256: "2526B9DDDA5F5C53232C671ABA9F9F7C85C13D398F999426EAB6FBAA6AD8F7E3",
        },
        // Python's json.dumps default output (ASCII escapes for 默认策略), as the vendor's sample sends it:
        // printf '%s' 'abc&body={"productID": "callbot", "userTaskID": "task-9", "taskCreateSetting": {"strategyName": "\u9ed8\u8ba4\u7b56\u7565"}}&createTs=1732190401&requestID=rid&uuid=uuid-x' | md5sum
        Vector {
            secret: "abc",
            body: br#"{"productID": "callbot", "userTaskID": "task-9", "taskCreateSetting": {"strategyName": "\u9ed8\u8ba4\u7b56\u7565"}}"#,
            ts: "1732190401",
            id: "rid",
            uuid: "uuid-x",
            md5: "1D776B11DBF9C6764A70A4DBCBE69C65",
            sha256: "2367EBA119347274747E4049B619EA0E43AE5451C16199FE4B74091DF8D3A0D4",
        },
        // A body ending in a newline (the newline is part of the body):
        // printf 'abc&body={"data":"ping"}\n&createTs=1732190402&requestID=r2&uuid=u2' | md5sum
        Vector {
            secret: "abc",
            body: b"{\"data\":\"ping\"}\n",
            ts: "1732190402",
            id: "r2",
            uuid: "u2",
            md5: "7096CA5526F772CAE0CCB85D553B823C",
            sha256: "C286489EF95E64BE852C6915BA8072F7CA0D0ACCEFED00ACDFEAA3F8A604745C",
        },
    ];

    #[test]
    fn signs_known_answer_vectors_for_both_algorithms() {
        for v in VECTORS {
            let s = sk(v.secret);
            assert_eq!(
                sign(&s, v.body, v.ts, v.id, v.uuid, Algorithm::Md5),
                v.md5,
                "md5 of {:?}",
                v.id
            );
            assert_eq!(
                sign(&s, v.body, v.ts, v.id, v.uuid, Algorithm::Sha256),
                v.sha256,
                "sha256 of {:?}",
                v.id
            );
        }
    }

    #[test]
    fn verifies_known_answer_vectors_in_either_case() {
        for v in VECTORS {
            let now: i64 = v.ts.parse().unwrap();
            for (alg, expected) in [
                (Some(Algorithm::Md5), v.md5),
                (None, v.md5),
                (Some(Algorithm::Sha256), v.sha256),
            ] {
                for given in [expected.to_owned(), expected.to_ascii_lowercase()] {
                    let h = SignedHeaders {
                        request_id: v.id.into(),
                        uuid: v.uuid.into(),
                        create_ts: v.ts.into(),
                        sign: given,
                        algorithm: alg,
                    };
                    assert_eq!(
                        verify(&sk(v.secret), v.body, &h, now, DEFAULT_MAX_SKEW_SECS),
                        Ok(())
                    );
                }
            }
        }
    }

    #[test]
    fn sign_is_uppercase_hex_of_expected_length() {
        let s = sign(&sk("k"), b"{}", "1", "r", "u", Algorithm::Md5);
        assert_eq!(s.len(), 32);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
        assert_eq!(
            sign(&sk("k"), b"{}", "1", "r", "u", Algorithm::Sha256).len(),
            64
        );
    }

    #[test]
    fn masked_plaintext_hides_secret() {
        let p = plaintext_masked(b"{\"a\":1}", "10", "rid", "uid");
        assert_eq!(p, "***&body={\"a\":1}&createTs=10&requestID=rid&uuid=uid");
    }

    #[test]
    fn secret_key_never_prints() {
        let s = sk("hunter2");
        assert_eq!(format!("{s:?}"), "SecretKey(***)");
        assert_eq!(format!("{s}"), "SecretKey(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn parses_algorithm_names_case_insensitively() {
        assert_eq!("md5".parse::<Algorithm>(), Ok(Algorithm::Md5));
        assert_eq!("MD5".parse::<Algorithm>(), Ok(Algorithm::Md5));
        assert_eq!("Sha256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert!("sha1".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::default(), Algorithm::Md5);
        assert_eq!(Algorithm::Sha256.as_header(), "SHA256");
        assert_eq!(
            serde_json::to_string(&Algorithm::Sha256).unwrap(),
            "\"sha256\""
        );
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"SHA256\"").unwrap(),
            Algorithm::Sha256
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn reads_headers_case_insensitively_including_request_id_spelling() {
        let m = headers(&[
            ("requestId", "r1"),
            ("UUID", "u1"),
            ("CreateTs", "100"),
            ("Sign", "AB"),
            ("Algorithm", "sha256"),
        ]);
        let h = SignedHeaders::from_header_map(&m).unwrap();
        assert_eq!(h.request_id, "r1");
        assert_eq!(h.uuid, "u1");
        assert_eq!(h.create_ts, "100");
        assert_eq!(h.sign, "AB");
        assert_eq!(h.algorithm, Some(Algorithm::Sha256));
    }

    #[test]
    fn reports_missing_sign_before_other_headers() {
        let m = headers(&[("uuid", "u1")]);
        assert_eq!(
            SignedHeaders::from_header_map(&m),
            Err(VerifyError::MissingSign)
        );
        let m = headers(&[("sign", "AB"), ("uuid", "u"), ("createTs", "1")]);
        assert_eq!(
            SignedHeaders::from_header_map(&m),
            Err(VerifyError::MissingHeader(header::REQUEST_ID))
        );
        let m = headers(&[
            ("sign", "AB"),
            ("uuid", "u"),
            ("createTs", "1"),
            ("requestID", "r"),
            ("algorithm", "crc"),
        ]);
        assert_eq!(
            SignedHeaders::from_header_map(&m),
            Err(VerifyError::BadAlgorithm("crc".into()))
        );
    }

    #[test]
    fn header_map_round_trip_verifies() {
        let secret = sk("s3cr3t");
        let body = "{\"strategyName\":\"默认策略\"}".as_bytes();
        let h = SignedHeaders::signed(&secret, body, "1000", "rid-1", "acct", Algorithm::Sha256);
        let mut m = HeaderMap::new();
        h.write_to(&mut m);
        assert_eq!(m.get("requestID").unwrap(), "rid-1");
        assert_eq!(m.get("algorithm").unwrap(), "SHA256");
        let back = SignedHeaders::from_header_map(&m).unwrap();
        assert_eq!(back, h);
        assert_eq!(
            verify(&secret, body, &back, 1000, DEFAULT_MAX_SKEW_SECS),
            Ok(())
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps_beyond_skew() {
        let secret = sk("k");
        let h = SignedHeaders::signed(&secret, b"{}", "1000", "r", "u", Algorithm::Md5);
        assert_eq!(verify(&secret, b"{}", &h, 1300, 300), Ok(()));
        assert_eq!(verify(&secret, b"{}", &h, 700, 300), Ok(()));
        assert_eq!(
            verify(&secret, b"{}", &h, 1301, 300),
            Err(VerifyError::Stale { skew_secs: -301 })
        );
        assert_eq!(
            verify(&secret, b"{}", &h, 699, 300),
            Err(VerifyError::Stale { skew_secs: 301 })
        );
    }

    #[test]
    fn rejects_bad_timestamp_and_wrong_secret_and_wrong_algorithm() {
        let secret = sk("k");
        let mut h = SignedHeaders::signed(&secret, b"{}", "1000", "r", "u", Algorithm::Md5);
        assert_eq!(
            verify(&sk("K"), b"{}", &h, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        h.algorithm = Some(Algorithm::Sha256);
        assert_eq!(
            verify(&secret, b"{}", &h, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        h.create_ts = "1000.0".into();
        assert_eq!(
            verify(&secret, b"{}", &h, 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        h.sign.clear();
        assert_eq!(
            verify(&secret, b"{}", &h, 1000, 300),
            Err(VerifyError::MissingSign)
        );
    }

    fn alg() -> impl Strategy<Value = Algorithm> {
        prop_oneof![Just(Algorithm::Md5), Just(Algorithm::Sha256)]
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            secret in ".{0,40}", body in proptest::collection::vec(any::<u8>(), 0..300),
            ts in 0i64..4_000_000_000, id in "[ -~]{0,40}", uuid in "[ -~]{0,40}", a in alg(),
        ) {
            let secret = SecretKey::new(secret);
            let h = SignedHeaders::signed(&secret, &body, ts.to_string(), id, uuid, a);
            prop_assert_eq!(verify(&secret, &body, &h, ts, DEFAULT_MAX_SKEW_SECS), Ok(()));
        }

        #[test]
        fn any_single_byte_change_fails_verification(
            body in proptest::collection::vec(any::<u8>(), 1..200),
            id in "[a-z0-9-]{1,36}", uuid in "[a-z0-9-]{1,36}",
            which in 0usize..4, pos in any::<prop::sample::Index>(), delta in 1u8..=255, a in alg(),
        ) {
            let secret = SecretKey::new("secret".into());
            let ts = "1732190400".to_owned();
            let h = SignedHeaders::signed(&secret, &body, ts.clone(), id.clone(), uuid.clone(), a);
            let mut body2 = body.clone();
            let mut h2 = h.clone();
            // Change one byte of one input, keeping header values printable ASCII.
            let bump = |s: &str, i: usize| -> String {
                let mut b = s.as_bytes().to_vec();
                let j = i % b.len();
                b[j] = if b[j] == b'~' { b'!' } else { b[j] + 1 };
                String::from_utf8(b).unwrap()
            };
            match which {
                0 => { let j = pos.index(body2.len()); body2[j] = body2[j].wrapping_add(delta); }
                1 => h2.create_ts = bump(&ts, pos.index(ts.len())),
                2 => h2.request_id = bump(&id, pos.index(id.len())),
                _ => h2.uuid = bump(&uuid, pos.index(uuid.len())),
            }
            let r = verify(&secret, &body2, &h2, 1732190400, i64::MAX);
            prop_assert!(matches!(r, Err(VerifyError::Mismatch) | Err(VerifyError::BadTimestamp)), "{:?}", r);
        }
    }
}
