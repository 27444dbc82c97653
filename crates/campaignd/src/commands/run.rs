//! `campaignd run`: the daemon. Settings → store → client → reconciler + webhook listener + file watcher, until
//! SIGTERM/SIGINT; then in-flight work is finished or abandoned cleanly within 10 s.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use callbot_api::{Client, ClientConfig};
use clock::SystemClock;
use daemon::{
    ConnLimits, Daemon, DaemonConfig, Hub, Metrics, Pruner, SuppressionConfig, Watcher, Webhook,
    WebhookLimits,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

/// How long shutdown may take before in-flight work is abandoned.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Arguments of `campaignd run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// This replica's name in the store's campaign leases (several replicas may share one PostgreSQL).
    /// Defaults to the host name (stable across restarts, so a restart resumes at once).
    #[arg(long, env = "CAMPAIGND_REPLICA")]
    pub replica: Option<String>,
}

pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_cli()?;
    let (uuid, secret) = settings.require_platform()?;
    // Under systemd's Type=notify: None when $NOTIFY_SOCKET is unset.
    let systemd = crate::notify::Notifier::from_env()?;
    let store = crate::open_store::open_store(&settings.store.url).await?;
    let clock = SystemClock::shared();

    let p = &settings.platform;
    let mut cc = ClientConfig::new(
        p.base_url.as_str().trim_end_matches('/'),
        uuid,
        secret.clone(),
    );
    cc.algorithm = p.algorithm;
    cc.requests_per_second = p.requests_per_second;
    cc.request_timeout = p.request_timeout;
    cc.verify_responses = p.verify_responses;
    cc.max_response_bytes = p.max_response_bytes;
    let client = Client::new(cc, clock.clone()).context("cannot build the platform client")?;

    let listener = TcpListener::bind(settings.webhook.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} ([webhook] listen)",
                settings.webhook.listen
            )
        })?;
    let bound = listener
        .local_addr()
        .context("cannot read the listening address")?;
    if settings.webhook.public_url.is_none() {
        tracing::warn!(
            "[webhook] public_url is not set: the platform will not call back; polling alone keeps results up to date"
        );
    }

    // Stable across restarts on the same host, so a restarted daemon takes its campaigns back at once instead of
    // waiting for its own leases to expire.
    let replica = args.replica.unwrap_or_else(|| {
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "campaignd".into())
    });
    let mut dc = DaemonConfig::new(&settings.campaigns.dir);
    dc.apply_delay = campaign::chrono::Duration::from_std(settings.reconcile.apply_delay)
        .context("apply_delay too large")?;
    dc.poll_interval = campaign::chrono::Duration::from_std(settings.reconcile.poll_interval)
        .context("poll_interval too large")?;
    dc.public_url = settings
        .webhook
        .public_url
        .as_ref()
        .map(|u| u.as_str().to_owned());
    dc.owner = replica.clone();
    // A request the client gave up on may still be processed by the platform: wait this long before asking.
    dc.resolve_grace = campaign::chrono::Duration::from_std(p.request_timeout * 2)
        .unwrap_or(campaign::chrono::Duration::seconds(60));
    dc.requests_in_flight = p.requests_in_flight;
    dc.max_sleep = settings.campaigns.rescan_interval;
    dc.lease_ttl = settings.reconcile.lease_ttl;
    dc.caps = settings.caps.clone();
    dc.suppression = Some(SuppressionConfig {
        dir: settings.suppression.dir.clone(),
        default_country: settings.suppression.default_country.clone(),
        limits: settings.contacts,
    });
    dc.contact_limits = settings.contacts;

    let hub = Arc::new(Hub::new(Metrics::new()));
    let daemon = Daemon::new(store.clone(), client, clock.clone(), hub.clone(), dc);
    let wh = &settings.webhook;
    let limits = WebhookLimits {
        conn: ConnLimits {
            header_read_timeout: wh.header_read_timeout,
            max_connections: wh.max_connections,
            ..ConnLimits::default()
        },
        max_body_bytes: wh.max_body_bytes,
        body_read_timeout: wh.body_read_timeout,
        max_skew_secs: i64::try_from(wh.max_clock_skew.as_secs()).unwrap_or(i64::MAX),
        stuck_after: wh.stuck_after,
    };
    let webhook = Webhook::new(store.clone(), secret.clone(), clock.clone(), hub.clone())
        .with_algorithm(p.algorithm)
        .with_account(uuid)
        .with_limits(limits);
    let admin = match wh.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([webhook] admin_listen)"))?,
        ),
        None => None,
    };
    let pruner = Pruner::new(
        store.clone(),
        clock.clone(),
        campaign::chrono::Duration::from_std(settings.store.ledger_retention)
            .context("[store] ledger_retention is too large")?,
        Duration::from_secs(3600),
    );
    let watcher = Watcher::new(
        &settings.campaigns.dir,
        hub.clone(),
        settings.campaigns.rescan_interval,
    );

    tracing::info!(
        listen = %bound,
        campaigns.dir = %settings.campaigns.dir.display(),
        store = %crate::open_store::redact(&settings.store.url),
        replica = %replica,
        "campaignd running"
    );
    // READY=1 after the first reconcile pass, WATCHDOG=1 while passes complete, STOPPING=1 as shutdown begins
    // (SIGTERM) or once `serve` returns (a component failed).
    let notify_stop = shutdown.child_token();
    let notify_task = systemd.map(|(notifier, watchdog)| {
        tokio::spawn(notifier.run(
            crate::notify::Watchdog::new(watchdog),
            hub.clone(),
            notify_stop.clone(),
        ))
    });
    let code = serve(
        daemon,
        webhook,
        watcher,
        Some(pruner),
        listener,
        admin,
        shutdown,
    )
    .await;
    notify_stop.cancel();
    if let Some(task) = notify_task {
        let _ = task.await;
    }
    code
}

/// Runs the three components until `shutdown`, then waits for them at most [`SHUTDOWN_DEADLINE`].
pub async fn serve(
    daemon: Daemon,
    webhook: Webhook,
    watcher: Watcher,
    pruner: Option<Pruner>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let tracker = TaskTracker::new();
    let inner = shutdown.child_token();
    let failed = CancellationToken::new();
    {
        let (token, failed) = (inner.clone(), failed.clone());
        tracker.spawn(async move {
            if let Err(e) = daemon.run(token).await {
                tracing::error!(error = format!("{e:#}"), "the reconciler stopped");
                failed.cancel();
            }
        });
    }
    {
        let (token, failed) = (inner.clone(), failed.clone());
        tracker.spawn(async move {
            if let Err(e) = webhook.run_with_admin(listener, admin, token).await {
                tracing::error!(error = %e, "the webhook listener stopped");
                failed.cancel();
            }
        });
    }
    {
        let token = inner.clone();
        tracker.spawn(async move {
            if let Err(e) = watcher.run(token).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "the file watcher stopped; rescans continue"
                );
            }
        });
    }
    if let Some(pruner) = pruner {
        let token = inner.clone();
        tracker.spawn(async move {
            if let Err(e) = pruner.run(token).await {
                tracing::warn!(error = format!("{e:#}"), "the ledger pruner stopped");
            }
        });
    }
    tracker.close();
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = failed.cancelled() => {}
    }
    inner.cancel();
    match tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait()).await {
        Ok(()) => tracing::info!("stopped cleanly"),
        Err(_) => tracing::warn!(
            deadline_secs = SHUTDOWN_DEADLINE.as_secs(),
            "in-flight work abandoned at the shutdown deadline"
        ),
    }
    Ok(if failed.is_cancelled() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
