//! systemd's notify protocol (`sd_notify(3)`) for `campaignd run` under `Type=notify`, written by hand over a Unix
//! datagram socket: `READY=1` once the campaigns are loaded and the reconciler completed its first pass, `WATCHDOG=1`
//! every half watchdog interval while the reconciler keeps completing passes, `STOPPING=1` at shutdown.
//!
//! Nothing happens when `$NOTIFY_SOCKET` is unset (not started by systemd, or not `Type=notify`).
//!
//! Knowing what to send ([`Watchdog::step`]) is separate from sending it ([`Notifier::send`]), so the decision is
//! tested without a socket and the socket without a clock.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use daemon::Hub;
use tokio_util::sync::CancellationToken;

/// How often readiness is checked before `READY=1` has been sent.
const READY_POLL: Duration = Duration::from_millis(100);
/// The shortest gap between two watchdog steps, whatever `$WATCHDOG_USEC` says.
const MIN_PING_GAP: Duration = Duration::from_millis(10);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    target: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, with the watchdog interval `$WATCHDOG_USEC` / `$WATCHDOG_PID` ask for.
    /// `None` when `$NOTIFY_SOCKET` is unset or empty.
    pub fn from_env() -> anyhow::Result<Option<(Notifier, Option<Duration>)>> {
        let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let target = target
            .into_string()
            .map_err(|t| anyhow::anyhow!("NOTIFY_SOCKET is not UTF-8: {t:?}"))?;
        let notifier = Notifier::connect(&target).with_context(|| {
            format!("cannot use the systemd notify socket NOTIFY_SOCKET={target}")
        })?;
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
            .context("systemd's watchdog settings")?;
        Ok(Some((notifier, watchdog)))
    }

    /// A notifier sending to `target`: a socket path, or `@name` for an abstract socket.
    pub fn connect(target: &str) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr: socket_addr(target)?,
            target: target.to_owned(),
        })
    }

    /// Sends one notification: `assignments` (`READY=1`, `STATUS=…`), one per line, in one datagram.
    pub fn send(&self, assignments: &[String]) -> io::Result<()> {
        let message = message(assignments);
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        if sent != message.len() {
            return Err(io::Error::other(format!(
                "short write to {}: {sent} of {} bytes",
                self.target,
                message.len()
            )));
        }
        Ok(())
    }

    /// Until `shutdown`: `READY=1` once `hub` is ready and a pass completed, then watchdog pings while passes keep
    /// completing. `STOPPING=1` on the way out. A failed send is logged (once until a send succeeds again) and
    /// never stops the daemon.
    pub async fn run(self, mut watchdog: Watchdog, hub: Arc<Hub>, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            let Some(wait) = watchdog.next_step_in() else {
                // Ready and no watchdog: nothing more to say until shutdown.
                shutdown.cancelled().await;
                break;
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let step = watchdog.step(hub.is_ready(), hub.last_pass(), Instant::now());
            if let Some(age) = step.withholding_since {
                tracing::error!(
                    last_pass_secs = age.as_secs(),
                    watchdog_secs = watchdog.interval.unwrap_or_default().as_secs(),
                    "the reconciler completed no pass within the watchdog interval: watchdog pings withheld, \
                     systemd will restart the daemon"
                );
            }
            if step.assignments.is_empty() {
                continue;
            }
            match self.send(&step.assignments) {
                Ok(()) => {
                    if step.assignments.iter().any(|a| a == "READY=1") {
                        tracing::info!(notify_socket = %self.target, "told systemd the daemon is ready");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(notify_socket = %self.target, error = %e, "cannot notify systemd");
                    }
                    failing = true;
                }
            }
        }
        if let Err(e) = self.send(&["STOPPING=1".to_owned(), "STATUS=stopping".to_owned()]) {
            tracing::warn!(notify_socket = %self.target, error = %e, "cannot tell systemd the daemon is stopping");
        }
    }
}

/// The datagram for `assignments`: one `KEY=value` per line.
fn message(assignments: &[String]) -> String {
    assignments.join("\n")
}

/// The socket address `$NOTIFY_SOCKET` names: an absolute path, or `@name` for a Linux abstract socket.
fn socket_addr(target: &str) -> io::Result<SocketAddr> {
    if let Some(name) = target.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if target.starts_with('/') {
        SocketAddr::from_pathname(target)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unsupported address {target:?}: expected an absolute path or @abstract-name (vsock is not supported)"
            ),
        ))
    }
}

/// The watchdog interval from `$WATCHDOG_USEC` (microseconds) and `$WATCHDOG_PID`: `None` when the watchdog is off
/// or meant for another process (`$WATCHDOG_PID` set to a PID other than `own_pid`).
pub fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> anyhow::Result<Option<Duration>> {
    let Some(usec) = usec.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if let Some(pid) = pid.map(str::trim).filter(|p| !p.is_empty()) {
        let pid: u32 = pid
            .parse()
            .with_context(|| format!("WATCHDOG_PID={pid:?} is not a process ID"))?;
        if pid != own_pid {
            return Ok(None);
        }
    }
    let usec: u64 = usec
        .parse()
        .with_context(|| format!("WATCHDOG_USEC={usec:?} is not a number of microseconds"))?;
    Ok((usec > 0).then(|| Duration::from_micros(usec)))
}

/// Decides, tick by tick, what to tell systemd. Pure: the caller passes the hub's state and the time.
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// `$WATCHDOG_USEC`, if the watchdog is on.
    interval: Option<Duration>,
    ready_sent: bool,
    /// Whether pings are being withheld (so the transition is reported once).
    withholding: bool,
}

/// What one [`Watchdog::step`] sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The notification's assignments; empty means send nothing.
    pub assignments: Vec<String>,
    /// Set at the step where pings start being withheld: how long ago the last pass completed.
    pub withholding_since: Option<Duration>,
}

impl Watchdog {
    pub fn new(interval: Option<Duration>) -> Watchdog {
        Watchdog {
            interval,
            ready_sent: false,
            withholding: false,
        }
    }

    /// How long to wait before the next step: a short poll until `READY=1` is sent, then half the watchdog
    /// interval (as `sd_watchdog_enabled(3)` advises); `None` once ready without a watchdog (nothing more to send).
    pub fn next_step_in(&self) -> Option<Duration> {
        if !self.ready_sent {
            return Some(READY_POLL);
        }
        self.interval.map(|i| (i / 2).max(MIN_PING_GAP))
    }

    /// One step at `now`: `READY=1` the first time the campaigns are loaded (`is_ready`) and a pass completed;
    /// `WATCHDOG=1` while the last pass is younger than the watchdog interval. A pass older than that means the
    /// reconciler is stuck: no ping, so systemd restarts the daemon.
    pub fn step(&mut self, is_ready: bool, last_pass: Option<Instant>, now: Instant) -> Step {
        let mut step = Step::default();
        if !self.ready_sent {
            if is_ready && last_pass.is_some() {
                self.ready_sent = true;
                step.assignments.push("READY=1".to_owned());
                step.assignments.push("STATUS=running".to_owned());
            } else {
                return step;
            }
        }
        let (Some(interval), Some(last)) = (self.interval, last_pass) else {
            return step;
        };
        let age = now.saturating_duration_since(last);
        if age < interval {
            step.assignments.push("WATCHDOG=1".to_owned());
            if self.withholding {
                self.withholding = false;
                step.assignments.push("STATUS=running".to_owned());
            }
        } else if !self.withholding {
            self.withholding = true;
            step.withholding_since = Some(age);
            step.assignments.push(format!(
                "STATUS=no reconcile pass for {} s: watchdog pings withheld",
                age.as_secs()
            ));
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_path_and_abstract_socket_addresses() {
        let path = socket_addr("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = socket_addr("@/org/freedesktop/systemd1/notify/1").unwrap();
        assert_eq!(
            abs.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify/1"[..])
        );
        assert!(abs.as_pathname().is_none());
    }

    #[test]
    fn rejects_relative_and_vsock_addresses() {
        for bad in ["run/notify", "vsock:2:1234", "notify"] {
            let err = socket_addr(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn joins_assignments_one_per_line() {
        assert_eq!(
            message(&strings(&["READY=1", "STATUS=running"])),
            "READY=1\nSTATUS=running"
        );
        assert_eq!(message(&strings(&["WATCHDOG=1"])), "WATCHDOG=1");
    }

    #[test]
    fn reads_the_watchdog_interval_for_this_process_only() {
        let d = |s| Some(Duration::from_secs(s));
        assert_eq!(
            watchdog_interval(Some("180000000"), None, 7).unwrap(),
            d(180)
        );
        assert_eq!(
            watchdog_interval(Some("180000000"), Some("7"), 7).unwrap(),
            d(180)
        );
        assert_eq!(
            watchdog_interval(Some("180000000"), Some("8"), 7).unwrap(),
            None
        );
        assert_eq!(watchdog_interval(None, Some("7"), 7).unwrap(), None);
        assert_eq!(watchdog_interval(Some(""), None, 7).unwrap(), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7).unwrap(), None);
        let err = watchdog_interval(Some("3min"), None, 7).unwrap_err();
        assert!(
            format!("{err:#}").contains("WATCHDOG_USEC=\"3min\""),
            "{err:#}"
        );
        let err = watchdog_interval(Some("1000"), Some("x"), 7).unwrap_err();
        assert!(format!("{err:#}").contains("WATCHDOG_PID"), "{err:#}");
    }

    #[test]
    fn sends_ready_once_after_the_first_pass_with_campaigns_loaded() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(None);
        assert_eq!(w.next_step_in(), Some(READY_POLL));
        // Neither loaded nor passed; passed but not loaded (the store was unreachable): not ready.
        assert_eq!(w.step(false, None, t0), Step::default());
        assert_eq!(w.step(false, Some(t0), t0), Step::default());
        assert_eq!(w.step(true, None, t0), Step::default());
        let step = w.step(true, Some(t0), t0);
        assert_eq!(step.assignments, strings(&["READY=1", "STATUS=running"]));
        // Once only; and without a watchdog, nothing else.
        assert_eq!(w.step(true, Some(t0), t0), Step::default());
        assert_eq!(w.next_step_in(), None);
    }

    #[test]
    fn pings_while_passes_complete_and_withholds_pings_when_the_reconciler_is_stuck() {
        let interval = Duration::from_secs(180);
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(interval));
        let step = w.step(true, Some(t0), t0);
        assert_eq!(
            step.assignments,
            strings(&["READY=1", "STATUS=running", "WATCHDOG=1"])
        );
        assert_eq!(w.next_step_in(), Some(Duration::from_secs(90)));

        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            w.step(true, Some(t0), at(90)).assignments,
            strings(&["WATCHDOG=1"])
        );
        assert_eq!(
            w.step(true, Some(t0), at(179)).assignments,
            strings(&["WATCHDOG=1"])
        );
        // No pass for the whole interval: no ping, and the status says why (once).
        let stuck = w.step(true, Some(t0), at(180));
        assert_eq!(
            stuck.assignments,
            strings(&["STATUS=no reconcile pass for 180 s: watchdog pings withheld"])
        );
        assert_eq!(stuck.withholding_since, Some(Duration::from_secs(180)));
        // Still stuck: nothing at all (systemd's timer runs out).
        assert_eq!(w.step(true, Some(t0), at(270)), Step::default());
        // A pass completes again (before systemd acted): pings resume.
        assert_eq!(
            w.step(true, Some(at(280)), at(300)).assignments,
            strings(&["WATCHDOG=1", "STATUS=running"])
        );
        // Readiness dropping later (the store went away) does not stop pings while passes complete.
        assert_eq!(
            w.step(false, Some(at(380)), at(390)).assignments,
            strings(&["WATCHDOG=1"])
        );
    }

    /// A unique abstract socket name for this test process.
    fn abstract_name(tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("campaignd-test-{tag}-{}-{nanos}", std::process::id())
    }

    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_datagrams_to_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        n.send(&strings(&["READY=1", "STATUS=running"])).unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=running");
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        let name = abstract_name("abstract");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::connect(&format!("@{name}")).unwrap();
        n.send(&strings(&["WATCHDOG=1"])).unwrap();
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn sending_to_a_socket_nobody_listens_on_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens");
        let n = Notifier::connect(path.to_str().unwrap()).unwrap();
        let err = n.send(&strings(&["READY=1"])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[tokio::test]
    async fn run_tells_ready_pings_and_stopping_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = tokio::net::UnixDatagram::bind(&path).unwrap();
        let next = async || {
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(10), server.recv(&mut buf))
                .await
                .expect("a notification within 10 s")
                .unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        let notifier = Notifier::connect(path.to_str().unwrap()).unwrap();
        let hub = Arc::new(Hub::new(daemon::Metrics::new()));
        let shutdown = CancellationToken::new();
        // A 1 s watchdog: a step every 500 ms once ready.
        let task = tokio::spawn(notifier.run(
            Watchdog::new(Some(Duration::from_secs(1))),
            hub.clone(),
            shutdown.clone(),
        ));

        hub.set_ready(true);
        hub.pass_completed(Instant::now());
        let first = next().await;
        assert!(first.starts_with("READY=1\nSTATUS=running"), "{first:?}");

        // Passes keep completing: pings keep coming (a slow machine may first report a stall; pings then resume).
        let mut ping = String::new();
        while !ping.lines().any(|l| l == "WATCHDOG=1") {
            hub.pass_completed(Instant::now());
            ping = next().await;
            assert!(!ping.contains("READY=1"), "READY=1 only once: {ping:?}");
        }

        shutdown.cancel();
        task.await.unwrap();
        // Skip anything sent before the cancel; the last datagram is STOPPING=1.
        let mut last = next().await;
        let mut buf = [0u8; 256];
        while let Ok(n) = server.try_recv(&mut buf) {
            last = String::from_utf8(buf[..n].to_vec()).unwrap();
        }
        assert_eq!(last, "STOPPING=1\nSTATUS=stopping");
    }
}
