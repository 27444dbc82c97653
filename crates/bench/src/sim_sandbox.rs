//! sim-sandbox: what one simulator holds, as a customer's integration sandbox holds it (issue 15: ten million orders
//! in under 5 GB, about 500 bytes an order, and constant work per order accepted).
//!
//! The simulator runs in its own process, as in every scenario. The real `callbot_api` client creates a task with
//! `createAndCall` (manual start, the first 1000 contacts) and sends the rest with `addBatchCall`, 1000 per request,
//! one in flight; each request is built just before it is sent, so the bench itself stays small at any size. Then it
//! starts the task (`mgrTaskStatus`) and asks `listTask` every half second until every order is finished: the
//! simulator dials each once (each call lasts one simulated millisecond, 10,000 at once).
//!
//! Figures: the simulator's RSS before the first request, once every order is accepted, and once every order is
//! dialled and finished, each also per order; the acceptance rate of the first and the last tenth of the requests
//! (equal when the work per order accepted does not grow with the orders held); the dialling rate.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callbot_api::PRODUCT_ID;
use callbot_api::wire::{
    AddBatchCallRequest, CallInfoList, CreateAndCallRequest, ListTaskRequest, MgrTaskStatusRequest,
    QueryConditions, TaskOperate,
};
use clock::{Clock as _, SystemClock};

use crate::env;
use crate::limit_sim::item;
use crate::report::{Figures, short};
use crate::simproc::SimProcess;

const ID: &str = "bench-sim-sandbox";
/// Contacts per request (the campaign file's largest `batch_size`).
const BATCH: u64 = 1000;
/// Calls at once (the campaign's `robots`).
const ROBOTS: u32 = 10_000;

pub async fn run(n: u64) -> anyhow::Result<Figures> {
    if n == 0 {
        bail!("--size must be at least 1");
    }
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, 1)?;
    let file = dir.path().join(format!("{ID}.toml"));
    std::fs::write(&file, env::campaign_toml("contacts.csv", true, ROBOTS))?;
    let spec = campaign::load_campaign(&file).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let ut = daemon::user_task_id(&spec);
    let stretch = campaign::stretch_at(&spec.schedule, SystemClock.now())
        .context("the bench campaign's calendar allows no dialling")?;
    let s = daemon::task_settings(&spec, &stretch);
    let setting = daemon::task_create_setting(&s, &daemon::CallbackUrls::default());
    let func_flag = daemon::func_flag(&s);
    let list = |from: u64| CallInfoList {
        order_callback_url: String::new(),
        call_callback_url: String::new(),
        call_list: (from..(from + BATCH).min(n))
            .map(|i| item(&spec, i))
            .collect(),
    };

    let sim = SimProcess::start().await?;
    // The simulator processes what is due at each tick and each request, holding its engine meanwhile. With calls a
    // simulated millisecond long, one tick after the start places and ends nearly every call, which at ten million
    // takes about a minute: a `listTask` waits for it.
    let timeout = Duration::from_secs(600 + n / 10_000);
    let client = env::client_with_timeout(&sim.base_url, SystemClock::shared(), timeout)?;
    let rss0 = sim.rss_mb();

    // Accepting: one request at a time, each timed alone (its building is not).
    let requests = n.div_ceil(BATCH);
    let tenth = requests.div_ceil(10);
    let mut tenths = vec![0.0f64; requests.div_ceil(tenth) as usize];
    let mut refused = 0usize;
    let accept_cpu0 = sim.cpu_secs();
    for r in 0..requests {
        let call_info_list = list(r * BATCH);
        let t = Instant::now();
        refused += if r == 0 {
            let req = CreateAndCallRequest {
                product_id: PRODUCT_ID.into(),
                user_task_id: ut.clone(),
                scene_id: spec.scene_id.clone(),
                task_create_setting: setting.clone(),
                func_flag: func_flag.clone(),
                call_info_list,
            };
            let resp = client.create_and_call(&req).await;
            resp.context("createAndCall")?.err_list.len()
        } else {
            let req = AddBatchCallRequest {
                product_id: PRODUCT_ID.into(),
                user_task_id: ut.clone(),
                call_info_list,
            };
            let resp = client.add_batch_call(&req).await;
            resp.context("addBatchCall")?.err_list.len()
        };
        tenths[(r / tenth) as usize] += t.elapsed().as_secs_f64();
    }
    if refused > 0 {
        bail!("the simulator refused {refused} of {n} contacts");
    }
    let accept_secs: f64 = tenths.iter().sum();
    let accept_cpu = sim.cpu_secs() - accept_cpu0;
    let rss_accepted = sim.rss_mb();
    let orders_in = |k: usize| {
        let first = k as u64 * tenth * BATCH;
        ((k as u64 + 1) * tenth * BATCH).min(n) - first
    };
    let first_rate = orders_in(0) as f64 / tenths[0];
    let last = tenths.len() - 1;
    let last_rate = orders_in(last) as f64 / tenths[last];

    // Dialling: start, then wait until every order is finished.
    let dial_cpu0 = sim.cpu_secs();
    let t = Instant::now();
    client
        .mgr_task_status(&MgrTaskStatusRequest::new(&ut, TaskOperate::Start))
        .await
        .context("mgrTaskStatus start")?;
    let query = ListTaskRequest {
        product_id: PRODUCT_ID.into(),
        page: 1,
        size: 1,
        query_conditions: QueryConditions {
            user_task_id: Some(vec![ut.clone()]),
            ..QueryConditions::default()
        },
    };
    let deadline = t + Duration::from_secs(600 + n / 1000);
    let mut finished = 0;
    while finished < n as i64 {
        if Instant::now() > deadline {
            bail!(
                "only {finished} of {n} orders finished in {} s",
                t.elapsed().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let resp = client.list_task(&query).await.context("listTask")?;
        finished = resp
            .task_data
            .first()
            .and_then(|d| d.task_stat.as_ref())
            .map_or(0, |s| s.finish_order_count);
    }
    // The last wait is up to half a second of idle time: the rate is a lower bound.
    let dial_secs = t.elapsed().as_secs_f64();
    let dial_cpu = sim.cpu_secs() - dial_cpu0;
    let rss_dialled = sim.rss_mb();
    let sim_peak = sim.peak_rss_mb();
    sim.stop().await;

    let per_order = |mb: f64| (mb - rss0) * 1e6 / n as f64;
    let mut f = Figures::new("sim-sandbox", "none", n);
    f.put("sim_rss_start_mb", rss0)
        .put("sim_rss_accepted_mb", rss_accepted)
        .put("sim_rss_dialled_mb", rss_dialled)
        .put("sim_peak_rss_mb", sim_peak)
        .put("bytes_per_order_accepted", per_order(rss_accepted))
        .put("bytes_per_order_dialled", per_order(rss_dialled))
        .put("bytes_per_order_peak", per_order(sim_peak))
        .put("accept_secs", accept_secs)
        .put("accept_per_s", n as f64 / accept_secs)
        .put("accept_per_s_first_tenth", first_rate)
        .put("accept_per_s_last_tenth", last_rate)
        .put("accept_sim_cpu_secs", accept_cpu)
        .put("dial_secs", dial_secs)
        .put("dialled_per_s", n as f64 / dial_secs)
        .put("dial_sim_cpu_secs", dial_cpu);
    f.line = format!(
        "sim-sandbox {n} orders: accepted at {} /s (first tenth {} /s, last tenth {} /s), dialled and finished at {} /s; \
         simulator RSS {} MB at start, {} MB accepted ({} B/order), {} MB dialled ({} B/order), peak {} MB ({} B/order)",
        short(n as f64 / accept_secs),
        short(first_rate),
        short(last_rate),
        short(n as f64 / dial_secs),
        short(rss0),
        short(rss_accepted),
        short(per_order(rss_accepted)),
        short(rss_dialled),
        short(per_order(rss_dialled)),
        short(sim_peak),
        short(per_order(sim_peak)),
    );
    Ok(f)
}
