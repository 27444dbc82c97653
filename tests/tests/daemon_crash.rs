//! Crash safety of the real binary: `campaignd run` is killed with SIGKILL at many points during upload and
//! toggling (and stopped with SIGTERM at a few), restarted each time, and finally stopped with SIGTERM. The simulator's logs then show no order ID or
//! phone accepted twice, no contact lost, no call outside the calendar, and the task in the right state.
//!
//! The simulator runs in real time here (the binary reads the system clock), with calls accelerated.

mod daemon_support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use callbot_sim::{Account, DropApplies, FaultConfig, FaultKind, SimConfig, SimHandle};
use daemon_support::{
    Backend, SECRET, UUID, accepted_of, assert_no_harm, contacts_csv, free_port, fresh_store_url,
    real_time_sim, wait_for,
};
use tokio_util::sync::CancellationToken;

const CONTACTS: usize = 240;

fn campaign_file(paused: bool) -> String {
    format!(
        r#"
scene_id = "SC-CRASH"
robots = 4
paused = {paused}

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{{ days = "mon-sun", hours = ["00:00-24:00"] }}]

[contacts]
file = "crash.csv"
variables = ["amount"]
batch_size = 10
"#
    )
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Waits (bounded) until the daemon answers `/readyz`: it has started, installed its signal handlers and reconciled.
async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "campaignd never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(dir: &Path, sim_url: &str, store_url: &str, port: u16) -> Child {
    daemon_support::run_command(dir, sim_url, store_url, port)
        .spawn()
        .expect("the campaignd binary starts")
}

async fn killed_at_many_points_loses_and_duplicates_nothing(backend: Backend) {
    callbot_api::ensure_crypto_provider();
    let shutdown = CancellationToken::new();
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.speed = 600.0;
    cfg.tick = Some(Duration::from_millis(50));
    cfg.seed = 3;
    // Some answers are lost after the request was applied: the daemon must resolve, not resend.
    cfg.faults = FaultConfig {
        rate: 0.1,
        kinds: vec![FaultKind::DropAfterRead, FaultKind::RetCode7],
        drop_applies: DropApplies::Coin,
        seed: 9,
        ..FaultConfig::default()
    };
    // Every answer leaves 300 ms after its request was applied, while the daemon sends 10 requests a second with up
    // to 4 uploads in flight (`requests_in_flight`'s default): most kills during the upload land with several
    // batches applied or on their way and none of them answered, and kills around a pause or a start leave the
    // toggle applied and unanswered (the daemon must ask the platform, not trust its stored status).
    cfg.latency = Duration::from_millis(300);
    let (handle, sim_url) = real_time_sim(cfg, &shutdown).await;

    let work = tempfile::tempdir().unwrap();
    let campaigns = work.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("crash.toml"), campaign_file(false)).unwrap();
    std::fs::write(campaigns.join("crash.csv"), contacts_csv(CONTACTS)).unwrap();
    let spec = campaign::load_campaign(&campaigns.join("crash.toml")).unwrap();
    let ut = daemon::user_task_id(&spec);

    let (store_url, _pg) = fresh_store_url(backend, work.path()).await;

    let mut rng = Rng(42);
    let accepted_now = |sim: &SimHandle| accepted_of(sim, &ut);
    let mut killed_mid_upload = 0;
    let mut killed_with_several_in_flight = 0;
    for round in 0..14 {
        // Toggle `paused` in the file now and then, so kills also land around pause/start.
        if round % 4 == 2 {
            std::fs::write(campaigns.join("crash.toml"), campaign_file(true)).unwrap();
        } else if round % 4 == 3 {
            std::fs::write(campaigns.join("crash.toml"), campaign_file(false)).unwrap();
        }
        let before = accepted_now(&handle);
        let port = free_port();
        let mut child = spawn(work.path(), &sim_url, &store_url, port);
        if round % 5 == 4 {
            wait_ready(port).await;
        }
        if before < CONTACTS {
            // Kill at a random point once this run is uploading (independent of how fast the machine starts it).
            wait_for(&handle, "upload progress", Duration::from_secs(30), |sim| {
                accepted_now(sim) > before
            })
            .await;
            tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(200 + rng.next(600))).await;
        }
        if round % 5 == 4 {
            // Now and then a graceful stop in the middle of the work: exit 0 within the 10 s deadline.
            let t0 = Instant::now();
            let pid = child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let status = child.wait().unwrap();
            assert!(status.success(), "SIGTERM mid-work exits 0: {status:?}");
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "graceful stop took {:?}",
                t0.elapsed()
            );
        } else {
            let in_flight = handle.requests_in_flight();
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            if in_flight >= 2 && accepted_now(&handle) < CONTACTS {
                killed_with_several_in_flight += 1;
            }
        }
        let n = accepted_now(&handle);
        if n > 0 && n < CONTACTS {
            killed_mid_upload += 1;
        }
    }
    assert!(
        killed_mid_upload >= 2,
        "the kills should interrupt the upload several times: {killed_mid_upload}"
    );
    assert!(
        killed_with_several_in_flight >= 1,
        "a kill should land with several requests in flight (at most {} were at once)",
        handle.most_requests_in_flight()
    );

    // Final run: unpaused, no more faults; it must finish the job, then stop cleanly on SIGTERM.
    std::fs::write(campaigns.join("crash.toml"), campaign_file(false)).unwrap();
    handle.set_faults(FaultConfig::default());
    let port = free_port();
    let mut child = spawn(work.path(), &sim_url, &store_url, port);
    wait_ready(port).await;
    let accepted_all = |sim: &SimHandle| accepted_of(sim, &ut) >= CONTACTS;
    wait_for(
        &handle,
        "every contact accepted by the platform",
        Duration::from_secs(60),
        accepted_all,
    )
    .await;
    let all_finished = |sim: &SimHandle| {
        let orders: Vec<_> = sim
            .orders()
            .into_iter()
            .filter(|o| o.user_task_id == ut)
            .collect();
        orders.len() == CONTACTS && orders.iter().all(|o| o.finish)
    };
    let finished_by = Instant::now() + Duration::from_secs(120);
    while !all_finished(&handle) {
        if Instant::now() > finished_by {
            let task = handle.task(&ut);
            let unfinished = handle
                .orders()
                .into_iter()
                .filter(|o| o.user_task_id == ut && !o.finish)
                .count();
            panic!(
                "timed out waiting for every order to finish: {unfinished} unfinished; the task: {:?}",
                task.map(|t| (
                    t.status,
                    t.status_history,
                    t.settings.len(),
                    t.effective_version
                ))
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Graceful shutdown: SIGTERM, exit 0 within the 10 s deadline.
    let pid = child.id().to_string();
    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "campaignd exits 0 on SIGTERM: {status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t0.elapsed()
    );

    let accepted = assert_no_harm(&handle, std::slice::from_ref(&spec));
    assert_eq!(
        accepted.get(&ut),
        Some(&CONTACTS),
        "no contact lost, none accepted twice"
    );
    let task = handle.task(&ut).expect("the task exists");
    assert!(
        matches!(task.status, 2 | 5),
        "the task is live (running or paused): {}",
        task.status
    );
    assert_eq!(handle.tasks().len(), 1, "one task, never created twice");

    // The store agrees: nothing left in doubt or unsent.
    let store: std::sync::Arc<dyn store::Store> = match backend {
        Backend::Sqlite => {
            std::sync::Arc::new(store_sqlite::SqliteStore::open(&store_url).await.unwrap())
        }
        Backend::Postgres => {
            std::sync::Arc::new(store_postgres::PgStore::connect(&store_url).await.unwrap())
        }
    };
    let counts = store.order_counts(&spec.id).await.unwrap();
    assert_eq!(
        (counts.planned, counts.sending, counts.sent),
        (0, 0, CONTACTS as u64)
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_at_many_points_loses_and_duplicates_nothing() {
    killed_at_many_points_loses_and_duplicates_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_at_many_points_loses_and_duplicates_nothing() {
    killed_at_many_points_loses_and_duplicates_nothing(Backend::Postgres).await;
}
