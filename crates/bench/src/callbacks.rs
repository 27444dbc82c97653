//! callbacks: a load generator sends signed call callbacks over HTTP to the daemon's webhook listener, first at a
//! fixed offered rate, then at saturation (closed loop). The webhook verifies each one, stores it raw and applies its
//! facts to the order before it answers, as in production.
//!
//! The generator runs on its own thread and runtime; requests are signed before the clock starts. Latency in the
//! fixed-rate phase counts from the moment the request was due, so a stalled server cannot hide its queue
//! (no coordinated omission); in the saturation phase it counts from the send.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use callbot_api::SecretKey;
use callbot_api::sign::{Algorithm, SignedHeaders};
use chrono::{DateTime, Utc};
use clock::Clock as _;
use clock::SystemClock;
use daemon::{Hub, Metrics, Webhook};
use reqwest::header::HeaderMap;
use serde_json::json;
use store::{CampaignRecord, NewOrder, TaskRecord, UploadState};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::env::{self, StoreKind};
use crate::report::{Figures, short};
use crate::simproc::{SECRET, UUID};

const ID: &str = "bench-callbacks";
const TASK: &str = "bench-callbacks-task";
/// Requests in flight at most in the fixed-rate phase.
const MAX_IN_FLIGHT: usize = 256;

pub async fn run(
    n: u64,
    kind: StoreKind,
    rate: u64,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let env = env::open_store(kind).await?;
    let now = SystemClock.now();
    let orders = seed(env.store.as_ref(), n, now).await?;

    let hub = Arc::new(Hub::new(Metrics::new()));
    let secret = SecretKey::new(SECRET.to_owned());
    let webhook = Webhook::new(
        env.store.clone(),
        secret.clone(),
        SystemClock::shared(),
        hub,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the webhook listener")?;
    let url = format!("http://{}/callbacks/call", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(webhook.run(listener, shutdown.clone()));

    let ts = SystemClock.now().timestamp();
    let fixed_reqs = prepare(&secret, &orders, n, "f", ts);
    let sat_reqs = prepare(&secret, &orders, n, "s", ts);
    let (fixed, sat) = {
        let url = url.clone();
        let generator = std::thread::spawn(move || -> anyhow::Result<(Phase, Phase)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("generator runtime")?;
            rt.block_on(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1024)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .context("generator HTTP client")?;
                let fixed = fixed_rate(&http, &url, fixed_reqs, rate).await;
                let sat = saturate(&http, &url, sat_reqs, concurrency).await;
                Ok((fixed, sat))
            })
        });
        tokio::task::spawn_blocking(move || generator.join())
            .await
            .context("joining the generator")?
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))??
    };
    shutdown.cancel();
    let _ = server.await;
    if fixed.failed + sat.failed > 0 {
        bail!(
            "{} callbacks were not answered 200 (fixed rate {}, saturation {})",
            fixed.failed + sat.failed,
            fixed.failed,
            sat.failed
        );
    }
    let counts = env.store.order_counts(ID).await?;
    let stored = env.store.recent_callbacks(1).await?.len();
    if counts.finished != n || stored == 0 {
        bail!("the callbacks did not reach the store: {counts:?}");
    }

    let mut f = Figures::new("callbacks", kind.as_str(), n);
    f.put("durability", env.durability.clone());
    f.put("offered_per_s", rate)
        .put("fixed_achieved_per_s", fixed.per_s)
        .put("fixed_p50_ms", fixed.p50_ms)
        .put("fixed_p99_ms", fixed.p99_ms)
        .put("fixed_max_ms", fixed.max_ms)
        .put("saturation_per_s", sat.per_s)
        .put("saturation_p50_ms", sat.p50_ms)
        .put("saturation_p99_ms", sat.p99_ms)
        .put("concurrency", concurrency as u64)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "callbacks [{}] at {rate}/s offered: {}/s achieved, p50 {} ms, p99 {} ms (max {} ms); at saturation \
         ({concurrency} senders): {}/s, p50 {} ms, p99 {} ms; {n} callbacks per phase",
        kind.as_str(),
        short(fixed.per_s),
        short(fixed.p50_ms),
        short(fixed.p99_ms),
        short(fixed.max_ms),
        short(sat.per_s),
        short(sat.p50_ms),
        short(sat.p99_ms)
    );
    Ok(f)
}

/// A campaign, its task and `n` sent orders for the callbacks to land on. Returns (orderID, phone) pairs.
async fn seed(
    store: &dyn store::Store,
    n: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(String, String)>> {
    store
        .upsert_campaign(&CampaignRecord {
            id: ID.into(),
            generation: 1,
            source_file: format!("{ID}.toml"),
            content_hash: "bench".into(),
            spec: None,
            state: "active".into(),
            last_error: None,
            updated_at: now,
        })
        .await?;
    store
        .upsert_task(&TaskRecord {
            user_task_id: TASK.into(),
            campaign_id: ID.into(),
            generation: 1,
            task_index: 0,
            task_id: Some("sim-task-1".into()),
            settings: None,
            settings_sent_at: Some(now),
            platform_status: Some(2),
            desired_status: Some(2),
            updated_at: now,
        })
        .await?;
    let all: Vec<(String, String)> = (0..n)
        .map(|i| {
            let phone = env::normalized_phone(i);
            (campaign::order_id(ID, 1, &phone), phone)
        })
        .collect();
    for (c, chunk) in all.chunks(2000).enumerate() {
        let new: Vec<NewOrder> = chunk
            .iter()
            .enumerate()
            .map(|(j, (order_id, phone))| NewOrder {
                order_id: order_id.clone(),
                campaign_id: ID.into(),
                user_task_id: TASK.into(),
                phone: phone.clone(),
                name: Some("Contact".into()),
                customer: None,
                other: None,
                variables: json!({"amount": "10.00"}),
                source_line: (c * 2000 + j + 2) as i64,
            })
            .collect();
        store.insert_planned_orders(&new).await?;
        let ids: Vec<String> = chunk.iter().map(|(o, _)| o.clone()).collect();
        store.set_upload_state(&ids, UploadState::Sent, now).await?;
    }
    Ok(all)
}

/// `n` signed call callbacks (one finished call per order), ready to send.
fn prepare(
    secret: &SecretKey,
    orders: &[(String, String)],
    n: u64,
    phase: &str,
    ts: i64,
) -> Vec<(HeaderMap, Vec<u8>)> {
    (0..n as usize)
        .map(|i| {
            let (order_id, phone) = &orders[i % orders.len()];
            let body = json!({
                "callbackType": 3,
                "orderID": order_id,
                "userPhone": phone,
                "userName": "Contact",
                "sceneID": "SC-BENCH",
                "userTaskID": TASK,
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
            .into_bytes();
            let signed = SignedHeaders::signed(
                secret,
                &body,
                ts.to_string(),
                uuid::Uuid::new_v4().to_string(),
                UUID,
                Algorithm::Md5,
            );
            let mut headers = HeaderMap::new();
            signed.write_to(&mut headers);
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            );
            (headers, body)
        })
        .collect()
}

/// The figures of one phase.
#[derive(Debug)]
struct Phase {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failed: u64,
}

impl Phase {
    fn from(mut latencies: Vec<Duration>, failed: u64, elapsed: Duration) -> Phase {
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
}

async fn send(http: &reqwest::Client, url: &str, headers: HeaderMap, body: Vec<u8>) -> bool {
    match http.post(url).headers(headers).body(body).send().await {
        Ok(resp) => {
            let ok = resp.status() == reqwest::StatusCode::OK;
            // Read the body so the connection goes back to the pool.
            ok && resp.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Open loop: request i is due at start + i/rate, whatever happened to the ones before.
async fn fixed_rate(
    http: &reqwest::Client,
    url: &str,
    reqs: Vec<(HeaderMap, Vec<u8>)>,
    rate: u64,
) -> Phase {
    // At most this many requests (and so connections) in flight; a request due while all are busy waits for one,
    // and its wait counts in its latency.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, (headers, body)) in reqs.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
        tokio::time::sleep_until(due).await;
        let (http, url) = (http.clone(), url.to_owned());
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        set.spawn(async move {
            let ok = send(&http, &url, headers, body).await;
            drop(slot);
            (due.elapsed(), ok)
        });
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok((d, true)) => latencies.push(d),
            _ => failed += 1,
        }
    }
    Phase::from(latencies, failed, start.elapsed())
}

/// Closed loop: `concurrency` senders, each sending its next callback as soon as the last one is answered.
async fn saturate(
    http: &reqwest::Client,
    url: &str,
    reqs: Vec<(HeaderMap, Vec<u8>)>,
    concurrency: usize,
) -> Phase {
    let reqs: Arc<Vec<(HeaderMap, Vec<u8>)>> = Arc::new(reqs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (http, url, reqs, next) = (http.clone(), url.to_owned(), reqs.clone(), next.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((headers, body)) = reqs.get(i) else {
                    break;
                };
                let t = Instant::now();
                if send(&http, &url, headers.clone(), body.clone()).await {
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
