//! limit-sim-upload: what the platform stand-in on this machine allows for an upload, with no store. The simulator
//! runs in its own process as in `upload`; the real `callbot_api` client creates a task with `createAndCall` (the
//! first 1000 contacts) and sends the rest with `addBatchCall`, 1000 per request, one request in flight at a time,
//! as the daemon's uploader does. The contacts are the upload scenario's (`env::write_csv`'s rows, already
//! normalised) and the task settings come from the bench campaign file through `daemon::task_settings`.
//!
//! Every request value is built before the clock starts. The client serialises and signs each request inside its
//! `call` (it has no way to take pre-signed bytes), so that work, as in the daemon, is inside the timed loop.

use std::time::Instant;

use anyhow::{Context, bail};
use callbot_api::PRODUCT_ID;
use callbot_api::wire::{AddBatchCallRequest, CallInfoList, CallItem, CreateAndCallRequest, Param};
use clock::{Clock as _, SystemClock};

use crate::env;
use crate::report::{Figures, short};
use crate::simproc::SimProcess;

const ID: &str = "bench-limit-sim";
/// Contacts per request (the campaign file's largest `batch_size`).
const BATCH: usize = 1000;

pub async fn run(n: u64) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, 1)?;
    let file = dir.path().join(format!("{ID}.toml"));
    std::fs::write(&file, env::campaign_toml("contacts.csv", true, 20))?;
    let spec = campaign::load_campaign(&file).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let ut = daemon::user_task_id(&spec);
    let now = SystemClock.now();
    let stretch = campaign::stretch_at(&spec.schedule, now)
        .context("the bench campaign's calendar allows no dialling")?;
    let s = daemon::task_settings(&spec, &stretch);
    // The daemon's own request builders: a manual start (the simulator dials nothing meanwhile, as in the upload
    // scenario), no callback URLs.
    let setting = daemon::task_create_setting(&s, &daemon::CallbackUrls::default());
    let func_flag = daemon::func_flag(&s);

    // Every request, built before the clock starts.
    let ids: Vec<u64> = (0..n).collect();
    let mut batches = ids.chunks(BATCH).map(|chunk| CallInfoList {
        order_callback_url: String::new(),
        call_callback_url: String::new(),
        call_list: chunk.iter().map(|&i| item(&spec, i)).collect(),
    });
    let Some(first) = batches.next() else {
        bail!("no contacts to send");
    };
    let create = CreateAndCallRequest {
        product_id: PRODUCT_ID.into(),
        user_task_id: ut.clone(),
        scene_id: spec.scene_id.clone(),
        task_create_setting: setting,
        func_flag,
        call_info_list: first,
    };
    let adds: Vec<AddBatchCallRequest> = batches
        .map(|list| AddBatchCallRequest {
            product_id: PRODUCT_ID.into(),
            user_task_id: ut.clone(),
            call_info_list: list,
        })
        .collect();

    let sim = SimProcess::start().await?;
    let client = env::client(&sim.base_url, SystemClock::shared())?;
    let sim_cpu0 = sim.cpu_secs();
    let cpu0 = crate::procfs::cpu_secs(None);
    let t = Instant::now();
    let mut refused = 0usize;
    let created = client
        .create_and_call(&create)
        .await
        .context("createAndCall")?;
    refused += created.err_list.len();
    for req in &adds {
        let resp = client.add_batch_call(req).await.context("addBatchCall")?;
        refused += resp.err_list.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = crate::procfs::cpu_secs(None) - cpu0;
    let sim_cpu = sim.cpu_secs() - sim_cpu0;
    let sim_peak = sim.peak_rss_mb();
    sim.stop().await;
    if refused > 0 {
        bail!("the simulator refused {refused} of {n} contacts");
    }

    let requests = 1 + adds.len() as u64;
    let rate = n as f64 / secs;
    let mut f = Figures::new("limit-sim-upload", "none", n);
    f.put("secs", secs)
        .put("contacts_per_s", rate)
        .put("requests", requests)
        .put("ms_per_request", secs * 1000.0 / requests as f64)
        .put("client_cpu_secs", cpu)
        .put("sim_cpu_secs", sim_cpu)
        .put("sim_peak_rss_mb", sim_peak)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "limit-sim-upload {n} contacts accepted by the simulator alone (1 createAndCall + {} addBatchCall, one in \
         flight) in {} s: {} contacts/s, {} ms per request; simulator CPU {} s, client CPU {} s",
        adds.len(),
        short(secs),
        short(rate),
        short(secs * 1000.0 / requests as f64),
        short(sim_cpu),
        short(cpu)
    );
    Ok(f)
}

/// Contact i as the daemon sends it (the upload scenario's CSV row, normalised).
pub(crate) fn item(spec: &campaign::CampaignSpec, i: u64) -> CallItem {
    let phone = env::normalized_phone(i);
    CallItem {
        order_id: campaign::order_id(&spec.id, spec.generation, &phone),
        user_phone: phone,
        other: format!("ref-{i}"),
        user_name: format!("Contact {i}"),
        customer_name: format!("C{i}"),
        params: vec![Param {
            name: "amount".into(),
            value: format!("{}.00", 10 + i % 990),
        }],
    }
}
