//! The callbacks scenario's load generator, in its own process (`bench loadgen`, hidden), so that its CPU and memory
//! never count on the daemon side.
//!
//! It builds every signed call callback itself (the orders are deterministic: `env::normalized_phone(i)` and
//! `campaign::order_id`), renders each request as raw HTTP/1.1 bytes before a phase's clock starts, and sends them
//! over keep-alive TCP connections with a small response reader (status line, headers, `Content-Length` body). Only
//! a `200` counts as served; an I/O error, a timeout or an early close counts the request failed and the connection
//! is opened again for the next one.
//!
//! Phase 1, open loop: request i is due at start + i/rate whatever happened to the ones before, with at most
//! [`MAX_IN_FLIGHT`] in flight; latency counts from the due time, so a stalled server cannot hide its queue (no
//! coordinated omission). Phase 2, closed loop: `concurrency` connections, each sending its next request as soon as
//! the last one is answered; latency from the send. The process prints one JSON line with both phases' figures and
//! its own CPU seconds and peak RSS.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use callbot_api::SecretKey;
use callbot_api::sign::{Algorithm, SignedHeaders, header};
use clock::Clock as _;
use clock::SystemClock;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

use crate::env;
use crate::simproc::{SECRET, UUID};

/// Requests in flight at most in the fixed-rate phase.
const MAX_IN_FLIGHT: usize = 256;
/// A request not answered within this counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of the hidden `loadgen` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Where to send: `http://127.0.0.1:PORT/callbacks/call`.
    #[arg(long)]
    pub url: String,
    /// Callbacks per phase (one per order, orders 0..n).
    #[arg(long)]
    pub n: u64,
    /// Offered rate of the fixed-rate phase, callbacks per second.
    #[arg(long)]
    pub rate: u64,
    /// Connections of the saturation phase.
    #[arg(long)]
    pub concurrency: usize,
    /// The campaign whose orders the callbacks report (generation 1).
    #[arg(long)]
    pub campaign: String,
    /// The orders' userTaskID.
    #[arg(long)]
    pub task: String,
}

/// The generator's figures, as [`spawn`] reads them from its output.
#[derive(Debug)]
pub struct Report {
    pub fixed: Phase,
    pub saturation: Phase,
    pub pacing: Pacing,
    /// CPU seconds of the generator process during the two timed phases.
    pub cpu_secs: f64,
    /// The generator's peak RSS, MB.
    pub peak_rss_mb: f64,
}

/// Runs `bench loadgen` against `url` and waits for its figures. The parent's runtime keeps serving meanwhile.
pub async fn spawn(args: &LoadgenArgs) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let child = Command::new(exe)
        .arg("loadgen")
        .args(["--url", &args.url])
        .args(["--n", &args.n.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--campaign", &args.campaign])
        .args(["--task", &args.task])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the load generator process")?;
    let out = child
        .wait_with_output()
        .await
        .context("waiting for the load generator")?;
    if !out.status.success() {
        bail!("the load generator failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) else {
        bail!("the load generator printed no figures: {text:?}");
    };
    let v: Value = serde_json::from_str(line).context("reading the load generator's figures")?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    Ok(Report {
        fixed: Phase::from_json(&v["fixed"])?,
        saturation: Phase::from_json(&v["saturation"])?,
        pacing: Pacing {
            lag_p99_ms: num("fixed_dispatch_lag_p99_ms"),
            lag_max_ms: num("fixed_dispatch_lag_max_ms"),
            max_in_flight: v
                .get("fixed_max_in_flight")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        },
        cpu_secs: num("cpu_secs"),
        peak_rss_mb: num("peak_rss_mb"),
    })
}

/// `bench loadgen`: both phases, then one JSON line on stdout.
pub fn main(args: LoadgenArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the generator's runtime")?;
    let out = rt.block_on(generate(&args))?;
    println!("{out}");
    Ok(())
}

async fn generate(args: &LoadgenArgs) -> anyhow::Result<Value> {
    let target = Target::parse(&args.url)?;
    let secret = SecretKey::new(SECRET.to_owned());
    let ts = SystemClock.now().timestamp();

    let reqs = Arc::new(prepare(&target, &secret, args, "f", ts));
    let cpu0 = crate::procfs::cpu_secs(None);
    let (fixed, pacing) = fixed_rate(&target.addr, reqs, args.rate).await;
    let cpu_fixed = crate::procfs::cpu_secs(None) - cpu0;

    let reqs = Arc::new(prepare(&target, &secret, args, "s", ts));
    let cpu0 = crate::procfs::cpu_secs(None);
    let saturation = saturate(&target.addr, reqs, args.concurrency).await;
    let cpu_sat = crate::procfs::cpu_secs(None) - cpu0;

    Ok(json!({
        "fixed": fixed.to_json(),
        "fixed_dispatch_lag_p99_ms": pacing.lag_p99_ms,
        "fixed_dispatch_lag_max_ms": pacing.lag_max_ms,
        "fixed_max_in_flight": pacing.max_in_flight,
        "saturation": saturation.to_json(),
        "cpu_secs": cpu_fixed + cpu_sat,
        "peak_rss_mb": crate::procfs::peak_rss_mb(None),
    }))
}

/// Where the requests go: `host:port` to connect to, and the path.
#[derive(Debug)]
struct Target {
    addr: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("the load generator speaks plain http:// only, not {url:?}");
        };
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if addr.is_empty() {
            bail!("no host in {url:?}");
        }
        Ok(Target {
            addr: addr.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// Every request of one phase, rendered as raw bytes back to back in one buffer.
#[derive(Debug)]
struct Requests {
    bytes: Vec<u8>,
    /// End of request i in `bytes` (it starts where request i - 1 ends).
    ends: Vec<usize>,
}

impl Requests {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// `args.n` signed call callbacks (one finished call for each order 0..n), rendered as HTTP/1.1 requests.
fn prepare(
    target: &Target,
    secret: &SecretKey,
    args: &LoadgenArgs,
    phase: &str,
    ts: i64,
) -> Requests {
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(args.n as usize);
    let mut head = String::with_capacity(512);
    for i in 0..args.n {
        let body = call_callback_body(&args.campaign, &args.task, phase, i, ts);
        let signed = SignedHeaders::signed(
            secret,
            body.as_bytes(),
            ts.to_string(),
            uuid::Uuid::new_v4().to_string(),
            UUID,
            Algorithm::Md5,
        );
        head.clear();
        let _ = write!(
            head,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             {}: {}\r\n{}: {}\r\n{}: {}\r\n{}: {}\r\n{}: {}\r\n\r\n",
            target.path,
            target.addr,
            body.len(),
            header::REQUEST_ID,
            signed.request_id,
            header::UUID,
            signed.uuid,
            header::CREATE_TS,
            signed.create_ts,
            header::SIGN,
            signed.sign,
            header::ALGORITHM,
            signed.effective_algorithm().as_header(),
        );
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body.as_bytes());
        ends.push(bytes.len());
    }
    bytes.shrink_to_fit();
    Requests { bytes, ends }
}

/// The body of the call callback for order i of `campaign` (generation 1, task `task`): one finished call
/// (`callID` `bench-{phase}-{i}`) with an intent and a variable, created `ts` (Unix seconds). `limit-ingest` stores
/// the same bodies.
pub(crate) fn call_callback_body(
    campaign: &str,
    task: &str,
    phase: &str,
    i: u64,
    ts: i64,
) -> String {
    let phone = env::normalized_phone(i);
    let order_id = campaign::order_id(campaign, 1, &phone);
    json!({
        "callbackType": 3,
        "orderID": order_id,
        "userPhone": phone,
        "userName": "Contact",
        "sceneID": "SC-BENCH",
        "userTaskID": task,
        "taskID": "sim-task-1",
        "finish": true,
        "other": "",
        "callInfoDetail": {
            "callID": format!("bench-{phase}-{i}"),
            "callingNumber": "10000000000",
            "lineAddress": "127.0.0.1",
            "callStatus": 6,
            "callStartTs": ts - 60,
            "callAnswerTs": ts - 55,
            "callEndTs": ts,
            "callDuration": 55,
            "callAudioUrl": format!("https://sim.invalid/audio/{i}.wav"),
            "hangupCause": "NORMAL_CLEARING",
            "termSipCode": "200",
            "intents": [{"intentID": "I1", "intentTag": "I1", "intentName": "will pay", "intentLevel": 1}],
            "sms": [],
            "agent": {"agentName": null, "agentGroup": null, "agentCallStatus": null,
                      "agentCallElapsed": null, "agentLabel": null, "manualCallStart": null,
                      "manualCallAnswer": null, "manualCallEnd": null, "manualHangupBy": 0},
            "params": [{"name": "amount", "value": "10.00"}]
        }
    })
    .to_string()
}

/// One keep-alive connection and the bytes read from it but not yet consumed.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    len: usize,
}

/// The part of a response the generator looks at.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    /// The server will close the connection after this response.
    close: bool,
}

impl Conn {
    async fn open(addr: &str) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 4096],
            len: 0,
        })
    }

    /// Writes one request and reads its response (head and `Content-Length` body).
    async fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((head_len, response, body_len)) = parse_head(&self.buf[..self.len])? {
                let total = head_len + body_len;
                if self.buf.len() < total {
                    self.buf.resize(total, 0);
                }
                while self.len < total {
                    self.fill().await?;
                }
                self.buf.copy_within(total..self.len, 0);
                self.len -= total;
                return Ok(response);
            }
            if self.len == self.buf.len() {
                if self.len >= 64 * 1024 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "response head over 64 KiB",
                    ));
                }
                self.buf.resize(self.len * 2, 0);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes; the peer closing the connection is an error (a response was still due).
    async fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.buf[self.len..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.len += n;
        Ok(())
    }
}

/// The response head at the start of `data`, if complete: its length (with the blank line), the response, and the
/// body's length.
fn parse_head(data: &[u8]) -> io::Result<Option<(usize, Response, usize)>> {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let head = std::str::from_utf8(&data[..end]).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    // HTTP/1.0 closes after each response unless it says keep-alive.
    let mut close = version == "HTTP/1.0";
    let mut body_len = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body_len = Some(value.parse().map_err(|_| bad("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close")
                || (close && !value.eq_ignore_ascii_case("keep-alive"));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked responses are not read by the load generator"));
        }
    }
    let body_len = match body_len {
        Some(n) => n,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => return Err(bad("response without Content-Length")),
    };
    Ok(Some((end + 4, Response { status, close }, body_len)))
}

/// Sends `request` on `conn` (or a new connection): whether it was answered 200, and the connection if it can be
/// used again.
async fn send(addr: &str, conn: Option<Conn>, request: &[u8]) -> (bool, Option<Conn>) {
    let mut conn = match conn {
        Some(c) => c,
        None => match Conn::open(addr).await {
            Ok(c) => c,
            Err(_) => return (false, None),
        },
    };
    match tokio::time::timeout(TIMEOUT, conn.exchange(request)).await {
        Ok(Ok(r)) => (r.status == 200, (!r.close).then_some(conn)),
        Ok(Err(_)) | Err(_) => (false, None),
    }
}

/// How well the generator itself kept to the schedule in the open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// How late the generator woke for a request's due time when it was waiting for it (its own timer and CPU, not
    /// the server), p99 and max.
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// The most requests in flight at once (at most [`MAX_IN_FLIGHT`]; reaching it means requests waited for a
    /// slot, which counts in their latency).
    pub max_in_flight: u64,
}

/// Open loop: request i is due at start + i/rate, whatever happened to the ones before.
async fn fixed_rate(addr: &str, reqs: Arc<Requests>, rate: u64) -> (Phase, Pacing) {
    // At most this many requests (and so connections) in flight; a request due while all are busy waits for one,
    // and its wait counts in its latency.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let addr: Arc<str> = addr.into();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut latencies = Vec::with_capacity(reqs.len());
    let mut failed = 0u64;
    let mut lags = Vec::with_capacity(reqs.len());
    let mut max_in_flight = 0;
    for i in 0..reqs.len() {
        let due = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
        // The generator's own lateness: how late it woke for a due time it was waiting for (a request already
        // overdue when its turn came waited for a slot instead, which is the server's doing).
        if Instant::now() < due {
            tokio::time::sleep_until(due).await;
            lags.push(due.elapsed());
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        max_in_flight = max_in_flight.max(MAX_IN_FLIGHT - slots.available_permits());
        let conn = idle.lock().unwrap().pop();
        let (reqs, idle, addr) = (reqs.clone(), idle.clone(), addr.clone());
        set.spawn(async move {
            let (ok, conn) = send(&addr, conn, reqs.get(i)).await;
            if let Some(c) = conn {
                idle.lock().unwrap().push(c);
            }
            drop(slot);
            (due.elapsed(), ok)
        });
        // Collect what has finished, so the set stays small.
        while let Some(r) = set.try_join_next() {
            tally(r, &mut latencies, &mut failed);
        }
    }
    while let Some(r) = set.join_next().await {
        tally(r, &mut latencies, &mut failed);
    }
    let phase = Phase::from(latencies, failed, start.elapsed());
    lags.sort();
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    let pacing = Pacing {
        lag_p99_ms: ms(lags.get(lags.len() * 99 / 100)),
        lag_max_ms: ms(lags.last()),
        max_in_flight: max_in_flight as u64,
    };
    (phase, pacing)
}

fn tally(
    r: Result<(Duration, bool), tokio::task::JoinError>,
    latencies: &mut Vec<Duration>,
    failed: &mut u64,
) {
    match r {
        Ok((d, true)) => latencies.push(d),
        _ => *failed += 1,
    }
}

/// Closed loop: `concurrency` connections, each sending its next request as soon as the last one is answered.
async fn saturate(addr: &str, reqs: Arc<Requests>, concurrency: usize) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let addr: Arc<str> = addr.into();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (reqs, next, addr) = (reqs.clone(), next.clone(), addr.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let mut conn = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= reqs.len() {
                    break;
                }
                let t = Instant::now();
                let (ok, c) = send(&addr, conn.take(), reqs.get(i)).await;
                conn = c;
                if ok {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (lat, failed)
        });
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        if let Ok((lat, f)) = r {
            latencies.extend(lat);
            failed += f;
        }
    }
    Phase::from(latencies, failed, start.elapsed())
}

/// The figures of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub failed: u64,
}

impl Phase {
    /// The figures of `latencies` (one per request, in any order) taken over `elapsed`.
    pub(crate) fn from(mut latencies: Vec<Duration>, failed: u64, elapsed: Duration) -> Phase {
        latencies.sort();
        let pct = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Phase {
            per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: pct(50),
            p99_ms: pct(99),
            max_ms: latencies
                .last()
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            failed,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "per_s": self.per_s,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "failed": self.failed,
        })
    }

    fn from_json(v: &Value) -> anyhow::Result<Phase> {
        // NaN (no request answered) is written as null.
        let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        Ok(Phase {
            per_s: num("per_s"),
            p50_ms: num("p50_ms"),
            p99_ms: num("p99_ms"),
            max_ms: num("max_ms"),
            failed: v
                .get("failed")
                .and_then(Value::as_u64)
                .with_context(|| format!("no failed count in the generator's phase {v}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_complete_response_head() {
        let data = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"retCode\":0";
        let (head, r, body) = parse_head(data).unwrap().unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                close: false
            }
        );
        assert_eq!(body, 12);
        assert_eq!(head + body, data.len());
    }

    #[test]
    fn waits_for_the_rest_of_a_head() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-len")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn notes_connection_close_and_non_200_status() {
        let data =
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (_, r, body) = parse_head(data).unwrap().unwrap();
        assert_eq!(
            r,
            Response {
                status: 503,
                close: true
            }
        );
        assert_eq!(body, 0);
    }

    #[test]
    fn refuses_a_body_without_length() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn renders_signed_requests_the_webhook_can_verify() {
        let target = Target::parse("http://127.0.0.1:8080/callbacks/call").unwrap();
        let args = LoadgenArgs {
            url: String::new(),
            n: 3,
            rate: 1,
            concurrency: 1,
            campaign: "c".into(),
            task: "t".into(),
        };
        let secret = SecretKey::new(SECRET.to_owned());
        let reqs = prepare(&target, &secret, &args, "f", 1_700_000_000);
        assert_eq!(reqs.len(), 3);
        let text = std::str::from_utf8(reqs.get(1)).unwrap();
        assert!(text.starts_with("POST /callbacks/call HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let headers: std::collections::HashMap<&str, &str> = head
            .lines()
            .skip(1)
            .map(|l| l.split_once(": ").unwrap())
            .collect();
        assert_eq!(headers["Content-Length"], body.len().to_string());
        let signed = SignedHeaders {
            request_id: headers[header::REQUEST_ID].into(),
            uuid: headers[header::UUID].into(),
            create_ts: headers[header::CREATE_TS].into(),
            sign: headers[header::SIGN].into(),
            algorithm: Some(headers[header::ALGORITHM].parse().unwrap()),
        };
        callbot_api::sign::verify(&secret, body.as_bytes(), &signed, 1_700_000_000, 300).unwrap();
        assert!(body.contains(&env::normalized_phone(1)));
    }
}
