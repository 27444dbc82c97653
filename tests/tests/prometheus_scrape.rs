//! A real Prometheus scrapes a real daemon: `campaignd run` (SQLite in a temp dir, the simulator on a socket) started
//! as systemd starts it under `Type=notify`, and Debian's `prometheus` binary scraping its `/metrics` with the
//! shipped alert rules loaded. Checks that Prometheus parses the exposition and stores the daemon's series, that
//! every rule in `deploy/prometheus/campaignd-rules.yml` evaluates against the real series without firing for a
//! healthy daemon, and that the daemon speaks systemd's notify protocol: `READY=1`, `WATCHDOG=1`, `STOPPING=1`.
//!
//! Needs `/usr/bin/prometheus` (Debian's `prometheus` package; `.ci/run` installs it). When it is missing and the
//! test runs as root on Debian, the test installs the package itself (like the PostgreSQL tests, which start their
//! own server); otherwise it fails and says how to install it. It never skips.

mod daemon_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callbot_sim::{Account, SimConfig, Simulator};
use daemon_support::{SECRET, UUID, campaignd_bin, contacts_csv};
use serde_json::Value;
use tokio::net::{TcpListener, UnixDatagram};
use tokio_util::sync::CancellationToken;

/// How long any one thing may take to happen before the test gives up.
const LIMIT: Duration = Duration::from_secs(60);

const CAMPAIGN: &str = r#"
scene_id = "SC-PROM"
robots = 2

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{ days = "mon-sun", hours = ["00:00-24:00"] }]

[contacts]
file = "prom.csv"
variables = ["amount"]
batch_size = 10
"#;

/// A child process that is killed (if still running) and reaped when the test ends, however it ends.
struct Guard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Guard {
    /// The end of the process's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        format!("--- {} log (end) ---\n{}", self.name, &text[start..])
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released): neither campaignd's settings nor Prometheus can hand back the port
/// they bound.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Prometheus server binary, or a failure that says how to install it.
fn prometheus_bin() -> PathBuf {
    if let Some(found) = find_prometheus() {
        return found;
    }
    // Like the PostgreSQL tests, provision what the machine can provide: Debian's package, when this is a Debian
    // machine and the test runs as root (as on this project's machines and in CI).
    let installed = provision_prometheus();
    find_prometheus().unwrap_or_else(|| {
        panic!(
            "this test runs a real Prometheus server and none is installed ({installed}): \
             `apt-get install prometheus` (Debian's package; .ci/run installs it) provides /usr/bin/prometheus"
        )
    })
}

fn find_prometheus() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("prometheus"));
    std::iter::once(PathBuf::from("/usr/bin/prometheus"))
        .chain(on_path)
        .find(|p| p.is_file())
}

/// Installs Debian's `prometheus` package with apt-get when running as root; says what happened.
fn provision_prometheus() -> String {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || !Path::new("/usr/bin/apt-get").is_file() {
        return "not root, or no apt-get: cannot install it here".into();
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ];
    if apt(&install) || (apt(&["update", "-qq"]) && apt(&install)) {
        "installed it with apt-get".into()
    } else {
        "`apt-get install prometheus` failed".into()
    }
}

/// Waits (bounded) for the next datagram on the notify socket; fails at once if the daemon exits meanwhile.
async fn notification(socket: &UnixDatagram, daemon: &mut Guard) -> String {
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(Err(e)) => panic!("reading the notify socket: {e}"),
            Err(_) => {}
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "campaignd exited ({status}) before notifying\n{}",
                daemon.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no notification from campaignd within {LIMIT:?}\n{}",
            daemon.log_tail()
        );
    }
}

/// Polls (bounded) a Prometheus API path until `accept` returns a value: Prometheus is another process, so there is
/// no step to drive.
async fn poll_api<T>(
    http: &reqwest::Client,
    url: &reqwest::Url,
    what: &str,
    prometheus: &mut Guard,
    accept: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + LIMIT;
    let mut last = String::from("(no answer yet)");
    loop {
        if let Ok(r) = http.get(url.clone()).send().await {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_success()
                && let Ok(json) = serde_json::from_str::<Value>(&text)
                && let Some(found) = accept(&json)
            {
                return found;
            }
            last = format!("{status}: {text}");
        }
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            panic!(
                "prometheus exited ({status}) while waiting for {what}\n{}",
                prometheus.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last answer from {url}: {last}\n{}",
            prometheus.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `campaignd_*` metric names an expression text mentions (a histogram's `_bucket`, `_sum` and `_count` series
/// count as the histogram's name).
fn series_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("campaignd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_daemon_started_as_systemd_starts_it() {
    let prometheus_bin = prometheus_bin();
    callbot_api::ensure_crypto_provider();
    let work = tempfile::tempdir().unwrap();

    // The platform: the simulator in this process, on a port of its own.
    let shutdown = CancellationToken::new();
    let _stop_sim = shutdown.clone().drop_guard();
    let mut cfg = SimConfig::new(vec![Account::new(UUID, SECRET)]);
    cfg.speed = 600.0;
    cfg.tick = Some(Duration::from_millis(50));
    let sim = Simulator::new(cfg, clock::SystemClock::shared());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.run(listener, shutdown.clone()));

    let campaigns = work.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("prom.toml"), CAMPAIGN).unwrap();
    std::fs::write(campaigns.join("prom.csv"), contacts_csv(20)).unwrap();

    // The daemon, as systemd runs a Type=notify service with WatchdogSec=2s.
    let notify_path = work.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let daemon_port = free_port();
    let daemon_log = work.path().join("campaignd.log");
    let mut daemon = Guard {
        name: "campaignd",
        child: Command::new(campaignd_bin())
            .args(["--log-format", "json", "run"])
            .current_dir(work.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .env("CAMPAIGND_PLATFORM__BASE_URL", &sim_url)
            .env("CAMPAIGND_PLATFORM__UUID", UUID)
            .env("CAMPAIGND_PLATFORM__SECRET_KEY", SECRET)
            .env("CAMPAIGND_STORE__URL", testkit::sqlite_url(work.path()))
            .env("CAMPAIGND_CAMPAIGNS__DIR", &campaigns)
            .env("CAMPAIGND_CAMPAIGNS__RESCAN_INTERVAL", "1s")
            .env("CAMPAIGND_RECONCILE__POLL_INTERVAL", "1s")
            .env(
                "CAMPAIGND_WEBHOOK__LISTEN",
                format!("127.0.0.1:{daemon_port}"),
            )
            .env("CAMPAIGND_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&daemon_log).unwrap())
            .spawn()
            .expect("the campaignd binary starts"),
        log: daemon_log,
    };

    // READY=1 once the first pass is done; then a watchdog ping every WATCHDOG_USEC/2 while passes complete.
    let ready = notification(&notify, &mut daemon).await;
    assert!(
        ready.lines().any(|l| l == "READY=1"),
        "the first notification says READY=1: {ready:?}"
    );
    let mut pings = usize::from(ready.lines().any(|l| l == "WATCHDOG=1"));
    while pings < 2 {
        let n = notification(&notify, &mut daemon).await;
        assert!(
            !n.contains("READY=1"),
            "READY=1 is sent once, got another: {n:?}"
        );
        pings += usize::from(n.lines().any(|l| l == "WATCHDOG=1"));
    }

    // Prometheus, scraping the daemon every second and evaluating the shipped rules every second.
    let prom_port = free_port();
    let rules = repo_root().join("deploy/prometheus/campaignd-rules.yml");
    assert!(rules.is_file(), "no rules at {}", rules.display());
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: campaignd\n    static_configs:\n      - targets: ['127.0.0.1:{daemon_port}']\n",
            rules = rules.display()
        ),
    )
    .unwrap();
    let prom_log = work.path().join("prometheus.log");
    let log_file = std::fs::File::create(&prom_log).unwrap();
    let mut prometheus = Guard {
        name: "prometheus",
        child: Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus_bin.display())),
        log: prom_log,
    };
    let api = format!("http://127.0.0.1:{prom_port}/api/v1");
    let http = reqwest::Client::new();
    let query = |q: &str| {
        reqwest::Url::parse_with_params(&format!("{api}/query"), &[("query", q)]).unwrap()
    };
    let results = |json: &Value| json["data"]["result"].as_array().cloned();

    // The target is up, and the daemon's own series are stored under its job.
    let up = poll_api(
        &http,
        &query(r#"up{job="campaignd"}"#),
        "the campaignd target to be scraped",
        &mut prometheus,
        |j| results(j).filter(|r| !r.is_empty()),
    )
    .await;
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(
        up[0]["metric"]["instance"],
        format!("127.0.0.1:{daemon_port}")
    );
    assert_eq!(up[0]["value"][1], "1", "the scrape succeeds: {up:?}");

    // Every campaignd series the rules use is one the daemon exports (a misspelt name would never fire).
    let exposition = http
        .get(format!("http://127.0.0.1:{daemon_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let used = series_names(&std::fs::read_to_string(&rules).unwrap());
    assert!(
        used.len() >= 6,
        "the rules use the daemon's series: {used:?}"
    );
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "the rules use {name}, which the daemon does not export; it exports {exported:?}"
        );
    }

    let campaigns_by_state = poll_api(
        &http,
        &query(r#"campaignd_campaigns{job="campaignd"}"#),
        "campaignd_campaigns from the daemon",
        &mut prometheus,
        |j| results(j).filter(|r| !r.is_empty()),
    )
    .await;
    let total: f64 = campaigns_by_state
        .iter()
        .map(|s| {
            assert!(s["metric"]["state"].is_string(), "a state label: {s}");
            s["value"][1].as_str().unwrap().parse::<f64>().unwrap()
        })
        .sum();
    assert_eq!(
        total, 1.0,
        "one campaign file, counted once: {campaigns_by_state:?}"
    );

    // The platform requests the daemon made, counted by the daemon and read through Prometheus.
    let requests = poll_api(
        &http,
        &query(r#"sum(campaignd_api_requests_total{job="campaignd",outcome="ok"})"#),
        "successful platform requests in campaignd_api_requests_total",
        &mut prometheus,
        |j| {
            results(j).filter(|r| {
                r.first()
                    .and_then(|s| s["value"][1].as_str())
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)
            })
        },
    )
    .await;
    assert_eq!(requests.len(), 1, "{requests:?}");

    // Every shipped rule evaluates against the real series (health "ok", not an error), and none fires or is
    // pending for a healthy daemon.
    let rules_state = poll_api(
        &http,
        &reqwest::Url::parse(&format!("{api}/rules")).unwrap(),
        "the campaignd rules to be evaluated",
        &mut prometheus,
        |j| {
            let groups = j["data"]["groups"].as_array()?;
            let group = groups.iter().find(|g| g["name"] == "campaignd")?;
            let rules = group["rules"].as_array()?;
            rules
                .iter()
                .all(|r| r["health"] != "unknown")
                .then(|| rules.clone())
        },
    )
    .await;
    assert_eq!(rules_state.len(), 7, "{rules_state:?}");
    for rule in &rules_state {
        assert_eq!(rule["health"], "ok", "rule {} failed: {rule}", rule["name"]);
        assert_eq!(
            rule["state"], "inactive",
            "rule {} is active: {rule}",
            rule["name"]
        );
    }

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = daemon.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        let n = notification(&notify, &mut daemon).await;
        if n.lines().any(|l| l == "STOPPING=1") {
            break;
        }
    }
    let status = daemon.child.wait().unwrap();
    assert!(
        status.success(),
        "campaignd exits 0 on SIGTERM: {status:?}\n{}",
        daemon.log_tail()
    );
    drop(prometheus);
}
