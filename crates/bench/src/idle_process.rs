//! idle-process: the real `campaignd run` binary (a child process, configured through its environment as an operator
//! would) holding N campaigns, each with 10 contacts uploaded to a task that the file holds paused, against the
//! simulator in its own process. Once every contact is uploaded (read from the store by the harness), the child's RSS
//! and CPU are read from `/proc/<pid>` over the window, which includes its periodic rescans and polls. The binary is
//! the build beside this one, of the same profile, brought up to date first (not timed).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::env::{self, StoreKind};
use crate::idle::{self, CONTACTS};
use crate::report::Figures;
use crate::simproc::{SECRET, SimProcess, UUID};

/// `cargo build -p campaignd` in the profile of the bench binary `exe` (its directory's name: `release` or `debug`).
fn build_campaignd(exe: &std::path::Path) -> anyhow::Result<()> {
    let release = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|d| d == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "campaignd", "--bin", "campaignd"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build -p campaignd")?;
    if !status.success() {
        bail!("cargo build -p campaignd failed ({status}); build it and run again");
    }
    Ok(())
}

pub async fn run(n: u64, kind: StoreKind, secs: u64) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    // Built every time (nothing to do when it is current): a stale binary would run another schema.
    build_campaignd(&exe)?;
    let bin = exe.with_file_name("campaignd");
    let dir = idle::campaigns_dir(n)?;
    let sim = SimProcess::start().await?;
    let env = env::open_store(kind).await?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        l.local_addr().context("reading the free port")?.port()
    };
    let mut child = tokio::process::Command::new(&bin)
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CAMPAIGND_PLATFORM__BASE_URL", &sim.base_url)
        .env("CAMPAIGND_PLATFORM__UUID", UUID)
        .env("CAMPAIGND_PLATFORM__SECRET_KEY", SECRET)
        .env("CAMPAIGND_PLATFORM__REQUESTS_PER_SECOND", "1000")
        .env("CAMPAIGND_STORE__URL", &env.url)
        .env("CAMPAIGND_CAMPAIGNS__DIR", dir.path())
        .env("CAMPAIGND_WEBHOOK__LISTEN", format!("127.0.0.1:{port}"))
        .env("CAMPAIGND_LOG", "warn")
        // The allocator's arenas, as a deployment may set them (the deploy files do not): passed through when set
        // here, to measure their effect.
        .envs(std::env::var("MALLOC_ARENA_MAX").map(|v| ("MALLOC_ARENA_MAX", v)))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the child's pid")?;

    let t = Instant::now();
    loop {
        let sent = idle::uploaded(env.store.as_ref(), n).await.unwrap_or(0);
        if sent == n * CONTACTS {
            break;
        }
        if let Some(status) = child.try_wait().context("checking the child")? {
            bail!("campaignd run exited early ({status})");
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!(
                "campaignd run uploaded {sent} of {} contacts in 600 s",
                n * CONTACTS
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let startup_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let w = idle::Window::measure(Some(pid), secs).await;

    // A graceful stop, as systemd or Kubernetes would: SIGTERM, then the exit.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap_or_default().to_string()])
        .status();
    let stopped = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    if !matches!(stopped, Ok(Ok(s)) if s.success()) {
        bail!("campaignd run did not exit 0 within 15 s of SIGTERM: {stopped:?}");
    }
    sim.stop().await;

    let mut f = w.figures("idle-process", kind, n, startup_secs, &env.durability);
    f.line = format!(
        "idle-process [{}] campaignd run holding {n} campaigns for {}",
        kind.as_str(),
        w.line()
    );
    Ok(f)
}
