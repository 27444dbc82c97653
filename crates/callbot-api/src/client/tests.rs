//! Client behaviour the simulator cannot produce or that is cheaper to pin here: raw TCP servers that refuse,
//! drop, stall, or answer with chosen bytes. Full client-vs-simulator tests live in `tests/tests/`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeZone;
use clock::ManualClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::sign::{DEFAULT_MAX_SKEW_SECS, verify};
use crate::wire::{
    ListOrderDetailRequest, MgrTaskStatusRequest, PingRequest, TaskOperate, TaskStatus,
};

const UUID: &str = "acct-1";
const SECRET: &str = "sekret";
const NOW: i64 = 1_732_190_400;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// What the server does with a request.
enum Reply {
    /// Answer with this status, extra headers and body.
    Http(u16, Vec<(String, String)>, Vec<u8>),
    /// Close the connection without answering.
    Drop,
    /// Never answer.
    Stall,
}

fn json(status: u16, body: &str) -> Reply {
    Reply::Http(status, Vec::new(), body.as_bytes().to_vec())
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves HTTP/1.1 on 127.0.0.1:0; the n-th request (0-based) is answered by `reply(n, &seen)`.
async fn serve(reply: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reply = Arc::new(reply);
    let count = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, reply, count) = (seen2.clone(), reply.clone(), count.clone());
            tokio::spawn(async move {
                let _ = handle(stream, seen, reply, count).await;
            });
        }
    });
    Server { url, seen }
}

async fn handle(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<impl Fn(usize, &Seen) -> Reply>,
    count: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream).await? else {
        return Ok(());
    };
    seen.lock().unwrap().push(req.clone());
    let n = count.fetch_add(1, Ordering::SeqCst);
    match reply(n, &req) {
        Reply::Http(status, extra, body) => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await?;
        }
        Reply::Drop => drop(stream),
        Reply::Stall => std::future::pending::<()>().await,
    }
    Ok(())
}

/// Reads one request (head and `content-length` body); `None` if the connection closed first.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Seen>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Seen {
        path,
        headers,
        body: buf[head_end..].to_vec(),
    }))
}

fn clock() -> ManualClock {
    ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap())
}

fn config(url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, UUID, SecretKey::new(SECRET.into()));
    c.requests_per_second = 0;
    c.request_timeout = Duration::from_secs(5);
    c.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    c
}

#[derive(Default)]
struct Recorder {
    actions: Mutex<Vec<ActionRecord>>,
    signatures: Mutex<Vec<SignatureCheck>>,
}

impl ActionObserver for Recorder {
    fn record(&self, action: &ActionRecord) {
        self.actions.lock().unwrap().push(action.clone());
    }

    fn response_signature(&self, check: &SignatureCheck) {
        self.signatures.lock().unwrap().push(check.clone());
    }
}

impl Recorder {
    fn records(&self) -> Vec<ActionRecord> {
        self.actions.lock().unwrap().clone()
    }

    fn signatures(&self) -> Vec<SignatureCheck> {
        self.signatures.lock().unwrap().clone()
    }

    /// (outcome, HTTP status) of every signature check so far.
    fn signature_outcomes(&self) -> Vec<(SignatureOutcome, u16)> {
        self.signatures()
            .iter()
            .map(|c| (c.outcome, c.http_status))
            .collect()
    }
}

fn client_with_recorder(cfg: ClientConfig) -> (Client, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let client = Client::new(cfg, clock().shared())
        .unwrap()
        .with_observer(rec.clone());
    (client, rec)
}

fn pause() -> MgrTaskStatusRequest {
    MgrTaskStatusRequest::new("ut-1", TaskOperate::Pause)
}

const OK_MGR: &str =
    r#"{"retCode":0,"retMsg":"ok","responseID":"resp-1","taskID":"t-1","taskStatus":5}"#;

#[tokio::test]
async fn sends_signed_exact_bytes_with_vendor_headers() {
    let server = serve(|_, _| json(200, OK_MGR)).await;
    let mut cfg = config(&server.url);
    cfg.algorithm = Algorithm::Sha256;
    let (client, rec) = client_with_recorder(cfg);
    let resp = client.mgr_task_status(&pause()).await.unwrap();
    assert_eq!(resp.task_status, Some(TaskStatus::Paused));

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/callcentre/api/v3/mgrTaskStatus");
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(req.headers["algorithm"], "SHA256");
    assert_eq!(req.headers["uuid"], UUID);
    assert_eq!(req.headers["createts"], NOW.to_string());
    assert_eq!(req.body, serde_json::to_vec(&pause()).unwrap());
    let signed = SignedHeaders {
        request_id: req.headers["requestid"].clone(),
        uuid: req.headers["uuid"].clone(),
        create_ts: req.headers["createts"].clone(),
        sign: req.headers["sign"].clone(),
        algorithm: Some(Algorithm::Sha256),
    };
    assert_eq!(
        verify(
            &SecretKey::new(SECRET.into()),
            &req.body,
            &signed,
            NOW,
            DEFAULT_MAX_SKEW_SECS
        ),
        Ok(())
    );

    let records = rec.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, ActionOutcome::Ok);
    assert_eq!(records[0].request_id, signed.request_id);
    assert_eq!(records[0].response_id.as_deref(), Some("resp-1"));
    assert_eq!(records[0].ret_code, Some(0));
    assert_eq!(records[0].http_status, Some(200));
    assert_eq!(records[0].at.timestamp(), NOW);
}

#[tokio::test]
async fn retries_busy_with_fresh_request_id_and_same_body() {
    let server = serve(|n, _| {
        if n < 2 {
            json(200, r#"{"retCode":7,"retMsg":"busy","responseID":"r"}"#)
        } else {
            json(200, OK_MGR)
        }
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    client.mgr_task_status(&pause()).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let ids: std::collections::HashSet<_> = seen
        .iter()
        .map(|s| s.headers["requestid"].clone())
        .collect();
    assert_eq!(ids.len(), 3, "every attempt needs its own requestID");
    assert!(seen.iter().all(|s| s.body == seen[0].body));
    let outcomes: Vec<_> = rec
        .records()
        .iter()
        .map(|r| (r.attempt, r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (1, ActionOutcome::Retryable),
            (2, ActionOutcome::Retryable),
            (3, ActionOutcome::Ok)
        ]
    );
}

#[tokio::test]
async fn returns_last_retryable_when_attempts_run_out() {
    let server = serve(|_, _| {
        json(
            200,
            r#"{"retCode":5001,"retMsg":"internal","responseID":"r"}"#,
        )
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(server.seen().len(), 3);
    assert_eq!(rec.records().len(), 3);
}

#[tokio::test]
async fn retries_http_5xx() {
    let server = serve(|n, _| {
        if n == 0 {
            json(502, "bad gateway")
        } else {
            json(200, OK_MGR)
        }
    })
    .await;
    let (client, _) = client_with_recorder(config(&server.url));
    client.mgr_task_status(&pause()).await.unwrap();
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    // Bind then drop: nothing listens on the port any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (client, rec) = client_with_recorder(config(&url));
    let err = client
        .ping(&PingRequest { data: "x".into() })
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let records = rec.records();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == ActionOutcome::Retryable && r.http_status.is_none())
    );
}

#[tokio::test]
async fn connection_dropped_after_request_is_ambiguous_and_not_retried() {
    let server = serve(|_, _| Reply::Drop).await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert_eq!(server.seen().len(), 1);
    assert_eq!(rec.records()[0].outcome, ActionOutcome::Ambiguous);
}

#[tokio::test]
async fn timeout_after_request_is_ambiguous_and_not_retried() {
    let server = serve(|_, _| Reply::Stall).await;
    let mut cfg = config(&server.url);
    cfg.request_timeout = Duration::from_millis(300);
    let (client, _) = client_with_recorder(cfg);
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn unparsable_200_is_ambiguous() {
    for body in ["<html>oops</html>", "{}", r#"{"retCode":"zero"}"#] {
        let server = serve(move |_, _| json(200, body)).await;
        let (client, _) = client_with_recorder(config(&server.url));
        let err = client.mgr_task_status(&pause()).await.unwrap_err();
        assert!(err.is_ambiguous(), "{body}: {err:?}");
        assert_eq!(server.seen().len(), 1);
    }
}

#[tokio::test]
async fn other_ret_codes_and_http_4xx_are_rejected_without_retry() {
    let server = serve(|_, _| {
        json(
            200,
            r#"{"retCode":4001,"retMsg":"too many","responseID":"resp-9"}"#,
        )
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Rejected {
            endpoint: Endpoint::MgrTaskStatus,
            code: 4001,
            message: "too many".into(),
            response_id: "resp-9".into()
        }
    );
    assert_eq!(server.seen().len(), 1);
    assert_eq!(rec.records()[0].response_id.as_deref(), Some("resp-9"));

    let server = serve(|_, _| json(404, "not found")).await;
    let (client, _) = client_with_recorder(config(&server.url));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(404));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn rejects_more_than_500_order_ids_before_sending() {
    let server = serve(|_, _| json(200, r#"{"retCode":0}"#)).await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let ids = (0..501).map(|i| format!("o-{i}")).collect();
    let err = client
        .list_order_detail(&ListOrderDetailRequest::new("ut", ids))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Invalid {
                endpoint: Endpoint::ListOrderDetail,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(server.seen().is_empty());
    assert_eq!(rec.records()[0].outcome, ActionOutcome::Invalid);

    let ids = (0..500).map(|i| format!("o-{i}")).collect();
    client
        .list_order_detail(&ListOrderDetailRequest::new("ut", ids))
        .await
        .unwrap();
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn rejects_wrong_product_id_before_sending() {
    let server = serve(|_, _| json(200, OK_MGR)).await;
    let (client, _) = client_with_recorder(config(&server.url));
    let mut req = pause();
    req.product_id = "other".into();
    let err = client.mgr_task_status(&req).await.unwrap_err();
    assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
    assert!(server.seen().is_empty());
}

/// An answer signed the way the platform is assumed to sign: over the raw response body, with its own createTs and
/// requestID. `tamper` changes the body after signing (`"retMsg":"ok"` becomes `"OK"`, still valid JSON).
fn signed(status: u16, body: &str, tamper: bool) -> Reply {
    let h = SignedHeaders::signed(
        &SecretKey::new(SECRET.into()),
        body.as_bytes(),
        (NOW + 2).to_string(),
        "server-request-id",
        UUID,
        Algorithm::Md5,
    );
    let sent = if tamper {
        assert!(body.contains(r#""retMsg":"ok""#), "nothing to tamper with");
        body.replace(r#""retMsg":"ok""#, r#""retMsg":"OK""#)
    } else {
        body.to_owned()
    };
    Reply::Http(
        status,
        vec![
            ("requestID".into(), h.request_id),
            ("uuid".into(), h.uuid),
            ("createTs".into(), h.create_ts),
            ("sign".into(), h.sign),
        ],
        sent.into_bytes(),
    )
}

fn signed_reply(body: &'static str, tamper: bool) -> impl Fn(usize, &Seen) -> Reply {
    move |_, _| signed(200, body, tamper)
}

const OK_LIST: &str = r#"{"retCode":0,"retMsg":"ok","responseID":"resp-2","orderDetailList":[]}"#;
const NOT_FOUND: &str = r#"{"retCode":404,"retMsg":"ok","responseID":""}"#;

fn list_one() -> ListOrderDetailRequest {
    ListOrderDetailRequest::new("ut-1", vec!["o-1".into()])
}

#[tokio::test]
async fn reports_signatures_by_default_and_uses_every_response() {
    assert_eq!(
        ClientConfig::new("http://x", UUID, SecretKey::new(SECRET.into())).verify_responses,
        ResponseVerification::Report
    );
    let server = serve(|n, _| match n {
        0 => signed(200, OK_MGR, false),
        1 => signed(200, OK_MGR, true),
        _ => json(200, OK_MGR),
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    for _ in 0..3 {
        client.mgr_task_status(&pause()).await.unwrap();
    }
    assert_eq!(
        rec.signature_outcomes(),
        vec![
            (SignatureOutcome::Ok, 200),
            (SignatureOutcome::Mismatch, 200),
            (SignatureOutcome::Missing, 200),
        ]
    );
    let checks = rec.signatures();
    let records = rec.records();
    for (check, record) in checks.iter().zip(&records) {
        assert_eq!(check.request_id, record.request_id);
        assert_eq!(check.endpoint, Endpoint::MgrTaskStatus);
        assert_eq!(check.mode, ResponseVerification::Report);
        assert_eq!(record.outcome, ActionOutcome::Ok);
    }
    assert!(checks[0].reason.is_empty());
    assert!(checks[1].reason.contains("does not verify"), "{checks:?}");
}

#[tokio::test]
async fn enforce_refuses_a_mismatch_as_ambiguous_for_writes_and_rejected_for_reads() {
    let server = serve(|_, _| signed(200, OK_MGR, true)).await;
    let mut cfg = config(&server.url);
    cfg.verify_responses = ResponseVerification::Enforce;
    let (client, rec) = client_with_recorder(cfg.clone());
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(server.seen().len(), 1, "not retried");
    assert_eq!(
        rec.signature_outcomes(),
        [(SignatureOutcome::Mismatch, 200)]
    );

    let server = serve(|_, _| signed(200, OK_LIST, true)).await;
    cfg.base_url = server.url.clone();
    let (client, _) = client_with_recorder(cfg);
    let err = client.list_order_detail(&list_one()).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(200), "{err:?}");
    assert_eq!(server.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn checks_the_signature_of_non_2xx_responses_too() {
    // Report: a mis-signed 404 is counted and stays a rejection; a signed 503 is counted and retried.
    let server = serve(|n, _| match n {
        0 => signed(404, NOT_FOUND, true),
        1 => signed(503, OK_MGR, false),
        _ => signed(200, OK_MGR, false),
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert_eq!(err.rejected_code(), Some(404), "{err:?}");
    client.mgr_task_status(&pause()).await.unwrap();
    assert_eq!(
        rec.signature_outcomes(),
        [
            (SignatureOutcome::Mismatch, 404),
            (SignatureOutcome::Ok, 503),
            (SignatureOutcome::Ok, 200),
        ]
    );

    // Enforce: a mis-signed 404 says nothing reliable, so the write may have been applied.
    let server = serve(|_, _| signed(404, NOT_FOUND, true)).await;
    let mut cfg = config(&server.url);
    cfg.verify_responses = ResponseVerification::Enforce;
    let (client, _) = client_with_recorder(cfg.clone());
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");

    // Enforce: an unsigned 502 (a gateway's) is counted as missing and still retried.
    let server = serve(|n, _| {
        if n == 0 {
            json(502, "bad gateway")
        } else {
            signed(200, OK_MGR, false)
        }
    })
    .await;
    cfg.base_url = server.url.clone();
    let (client, rec) = client_with_recorder(cfg);
    client.mgr_task_status(&pause()).await.unwrap();
    assert_eq!(
        rec.signature_outcomes(),
        [
            (SignatureOutcome::Missing, 502),
            (SignatureOutcome::Ok, 200)
        ]
    );
}

#[tokio::test]
async fn off_checks_no_signature() {
    let server = serve(signed_reply(OK_MGR, true)).await;
    let mut cfg = config(&server.url);
    cfg.verify_responses = ResponseVerification::Off;
    let (client, rec) = client_with_recorder(cfg);
    client.mgr_task_status(&pause()).await.unwrap();
    assert!(rec.signatures().is_empty());
}

#[tokio::test]
async fn enforce_refuses_bad_and_missing_signatures_on_success() {
    let server = serve(signed_reply(OK_MGR, false)).await;
    let mut cfg = config(&server.url);
    cfg.verify_responses = ResponseVerification::Enforce;
    let (client, _) = client_with_recorder(cfg.clone());
    client.mgr_task_status(&pause()).await.unwrap();

    let server = serve(signed_reply(OK_MGR, true)).await;
    cfg.base_url = server.url.clone();
    let (client, _) = client_with_recorder(cfg.clone());
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert_eq!(server.seen().len(), 1);

    // Unsigned 200 under enforce: ambiguous too.
    let server = serve(|_, _| json(200, OK_MGR)).await;
    cfg.base_url = server.url.clone();
    let (client, _) = client_with_recorder(cfg);
    assert!(
        client
            .mgr_task_status(&pause())
            .await
            .unwrap_err()
            .is_ambiguous()
    );
}

const HUGE: usize = 256 * 1024 * 1024;

/// A one-connection server whose answer is a valid JSON body of `total` bytes,
/// `{"retCode":0,…,"pad":"aaa…"}`, written in 64 KiB pieces, with a `Content-Length` or (`declare_length` false)
/// running until the connection closes. The task returns how many body bytes it wrote before the client hung up.
async fn serve_huge(
    declare_length: bool,
    total: usize,
) -> (String, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await.unwrap().unwrap();
        let length = if declare_length {
            format!("content-length: {total}\r\n")
        } else {
            String::new()
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
        );
        if stream.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        let (open, close) = (
            br#"{"retCode":0,"retMsg":"ok","responseID":"r","pad":""#.as_slice(),
            br#""}"#.as_slice(),
        );
        let pad = vec![b'a'; 64 * 1024];
        let mut written = 0;
        while written < total {
            let piece = if written == 0 {
                open
            } else if total - written == close.len() {
                close
            } else {
                &pad[..pad.len().min(total - written - close.len())]
            };
            if stream.write_all(piece).await.is_err() {
                return written;
            }
            written += piece.len();
        }
        let _ = stream.shutdown().await;
        written
    });
    (url, task)
}

fn capped(url: &str, cap: usize) -> ClientConfig {
    let mut cfg = config(url);
    cfg.max_response_bytes = cap;
    cfg
}

#[tokio::test]
async fn refuses_a_response_declared_over_the_cap_without_reading_it() {
    let (url, server) = serve_huge(true, HUGE).await;
    let (client, rec) = client_with_recorder(capped(&url, 64 * 1024));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "a write may have been applied: {err:?}");
    assert!(
        err.to_string().contains("max_response_bytes = 65536"),
        "{err}"
    );
    let written = server.await.unwrap();
    assert!(written < HUGE / 4, "the client took {written} bytes");
    let records = rec.records();
    assert_eq!(records.len(), 1, "not retried");
    assert_eq!(records[0].http_status, Some(200));
    assert_eq!(records[0].outcome, ActionOutcome::Ambiguous);
}

#[tokio::test]
async fn stops_reading_a_response_without_length_at_the_cap() {
    let (url, server) = serve_huge(false, HUGE).await;
    let (client, _) = client_with_recorder(capped(&url, 64 * 1024));
    let err = client.list_order_detail(&list_one()).await.unwrap_err();
    assert_eq!(
        err.rejected_code(),
        Some(200),
        "a read is a plain refusal: {err:?}"
    );
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    let written = server.await.unwrap();
    assert!(written < HUGE / 4, "the client took {written} bytes");

    let (url, server) = serve_huge(false, HUGE).await;
    let (client, _) = client_with_recorder(capped(&url, 64 * 1024));
    let err = client.mgr_task_status(&pause()).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(server.await.unwrap() < HUGE / 4);
}

#[tokio::test]
async fn accepts_a_response_of_exactly_the_cap_either_way() {
    const CAP: usize = 100_000;
    for declare_length in [true, false] {
        let (url, _server) = serve_huge(declare_length, CAP).await;
        let (client, _) = client_with_recorder(capped(&url, CAP));
        client.list_order_detail(&list_one()).await.unwrap();

        let (url, _server) = serve_huge(declare_length, CAP + 1).await;
        let (client, _) = client_with_recorder(capped(&url, CAP));
        let err = client.list_order_detail(&list_one()).await.unwrap_err();
        assert_eq!(err.rejected_code(), Some(200), "{declare_length}: {err:?}");
    }
}

#[tokio::test]
async fn ping_uses_its_own_envelope() {
    let server = serve(|_, _| {
        json(
            200,
            r#"{"data":"x","timestamp":1,"code":0,"msg":"ok","reqId":"q-1"}"#,
        )
    })
    .await;
    let (client, rec) = client_with_recorder(config(&server.url));
    let p = client
        .ping(&PingRequest { data: "x".into() })
        .await
        .unwrap();
    assert_eq!(p.data, "x");
    assert_eq!(rec.records()[0].response_id.as_deref(), Some("q-1"));
    assert_eq!(server.seen()[0].body, br#"{"data":"x"}"#);
}

#[tokio::test]
async fn keeps_base_url_path_prefix() {
    let server = serve(|_, _| json(200, OK_MGR)).await;
    let (client, _) = client_with_recorder(config(&format!("{}/proxy/", server.url)));
    client.mgr_task_status(&pause()).await.unwrap();
    assert_eq!(
        server.seen()[0].path,
        "/proxy/callcentre/api/v3/mgrTaskStatus"
    );
}

#[test]
fn refuses_bad_configuration() {
    let mut no_room = ClientConfig::new("http://x", UUID, SecretKey::new("k".into()));
    no_room.max_response_bytes = 0;
    let bad = [
        no_room,
        ClientConfig::new("not a url", UUID, SecretKey::new("k".into())),
        ClientConfig::new("ftp://x", UUID, SecretKey::new("k".into())),
        ClientConfig::new("http://x", "", SecretKey::new("k".into())),
        ClientConfig::new("http://x", "bad\nuuid", SecretKey::new("k".into())),
    ];
    for cfg in bad {
        assert!(matches!(
            Client::new(cfg, clock().shared()),
            Err(ApiError::Config(_))
        ));
    }
}

#[test]
fn debug_output_hides_the_secret() {
    let cfg = ClientConfig::new("http://x", UUID, SecretKey::new("hunter2".into()));
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let client = Client::new(cfg, clock().shared()).unwrap();
    assert!(!format!("{client:?}").contains("hunter2"));
}

#[test]
fn backoff_caps_double_up_to_the_maximum() {
    let p = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
    };
    assert_eq!(p.cap(1), Duration::from_millis(100));
    assert_eq!(p.cap(2), Duration::from_millis(200));
    assert_eq!(p.cap(4), Duration::from_millis(800));
    assert_eq!(p.cap(5), Duration::from_millis(1000));
    assert_eq!(p.cap(64), Duration::from_millis(1000));
    for retry in 1..8 {
        assert!(p.backoff(retry) <= p.cap(retry));
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limit_spaces_requests_across_clones() {
    let limiter = Arc::new(RateLimiter::new(4));
    let start = Instant::now();
    let mut grants = Vec::new();
    for _ in 0..5 {
        let l = limiter.clone();
        l.acquire().await;
        grants.push(start.elapsed());
    }
    let expected: Vec<_> = (0..5).map(|i| Duration::from_millis(250) * i).collect();
    assert_eq!(grants, expected);
    assert!(RateLimiter::new(0).interval.is_none());
}
