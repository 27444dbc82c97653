//! A huge contacts file or a huge campaigns directory never holds back what the calendar decides: the pause that is
//! due goes out first, the contacts are planned in bounded slices (at most a couple of seconds per reconcile) and the
//! directory is scanned in the background, and nothing is lost to either bound. Real simulator, real stores.

#[macro_use]
mod daemon_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use daemon_support::{Backend, Env, Options, assert_no_harm, contacts_csv};

fn utc(d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, mi, 0).unwrap()
}

/// Open all day every day, UTC, but for a holiday on Tuesday 2026-11-03: the platform's weekly slots cannot say
/// that, so the daemon pauses the task at midnight.
fn with_holiday(csv: &str) -> String {
    format!(
        r#"
scene_id = "SC-B"
robots = 1

[schedule]
timezone = "UTC"
# Not a test of the legal calling hours (daemon_zones.rs is): the calendar alone decides.
rules = []
windows = [{{ days = "mon-sun", hours = ["00:00-24:00"] }}]
holidays = [2026-11-03]

[contacts]
file = "{csv}"
variables = ["amount"]
batch_size = 50
"#
    )
}

/// `n` distinct, valid North American numbers (never dialled: the simulator stands in for the platform).
fn many_contacts(n: usize) -> String {
    let mut s = String::with_capacity(n * 40);
    s.push_str("phone,name,customer,other,amount\n");
    for i in 0..n {
        s.push_str(&format!(
            "+1 212 {} {:04},P{i},C{i},o,1.00\n",
            200 + (i / 10_000) % 700,
            i % 10_000
        ));
    }
    s
}

/// Campaign `b` (10 contacts, the holiday calendar) running at 23:50 the evening before the holiday, and its task.
async fn running(backend: Backend) -> (Env, String) {
    let files = [
        ("b.toml", with_holiday("b.csv")),
        ("b.csv", contacts_csv(10)),
    ];
    let opts = Options {
        talk_secs: (600, 900),
        ..Options::default()
    };
    let mut env = Env::new(backend, utc(2, 23, 50), &files, opts).await;
    let ut = daemon::user_task_id(&env.spec("b.toml"));
    env.step().await;
    assert_eq!(env.sim.task(&ut).unwrap().status, 2, "running");
    (env, ut)
}

both_backends!(
    a_due_pause_goes_out_before_a_huge_new_contacts_file_is_read,
    a_file_planned_beside_its_uploads_is_uploaded_once_and_in_file_order,
);

/// The campaign runs; at midnight a holiday begins, and at that same moment its contacts file is replaced by one far
/// larger than a reconcile may plan. The pause goes out before any new row is planned (the calendar first), the
/// reconcile ends with the file still being planned (the budget), and the next reconcile, due at once, goes on.
async fn a_due_pause_goes_out_before_a_huge_new_contacts_file_is_read(backend: Backend) {
    const HUGE: usize = 1_500_000;
    let (mut env, ut) = running(backend).await;
    assert_eq!(env.store.order_progress(&ut).await.unwrap().total, 10);

    env.write("b.csv", &many_contacts(HUGE));
    env.clock.set(utc(3, 0, 0));
    // Watches the simulator while the reconcile runs: what the store holds at the moment the pause lands.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (sim, store, ut, stop) = (env.sim.clone(), env.store.clone(), ut.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if sim.task(&ut).is_some_and(|t| t.status == 5) {
                    return Some(store.order_progress(&ut).await.unwrap().total);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            None
        })
    };
    let out = env.step().await;
    stop.store(true, Ordering::Relaxed);
    let at_pause = watcher.await.unwrap();
    let c = out.campaign("b").unwrap();
    assert!(c.done.contains(&"pause".to_string()), "{c:?}");
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        5,
        "paused for the holiday"
    );
    assert_eq!(
        at_pause,
        Some(10),
        "the pause went out before any row of the new file was planned"
    );
    let planned = env.store.order_progress(&ut).await.unwrap().total;
    assert!(
        planned < HUGE as u64 + 10,
        "one reconcile plans a bounded slice, not the whole file ({planned} planned)"
    );
    assert_eq!(
        c.wait_until, None,
        "more to plan: the next reconcile is due at once"
    );
    assert_eq!(out.next_wake, Some(env.now()), "{out:?}");

    // The next reconcile goes on planning; nothing is dialled on the holiday.
    env.clock.advance(Duration::seconds(1));
    env.step().await;
    let more = env.store.order_progress(&ut).await.unwrap().total;
    assert!(more > planned, "planning goes on: {planned} then {more}");
    assert_eq!(env.sim.task(&ut).unwrap().status, 5);
    assert_no_harm(&env.sim, &[env.spec("b.toml")]);
}

/// A file larger than a reconcile plans before its decision is planned on beside the task's decision and uploads of
/// the next reconciles (one task, every row in a group the task records): every row is uploaded exactly once, the
/// batches leave in file order, and nothing is dialled outside the calendar.
async fn a_file_planned_beside_its_uploads_is_uploaded_once_and_in_file_order(backend: Backend) {
    const ROWS: usize = 20_000;
    let files = [
        ("b.toml", with_holiday("b.csv")),
        ("b.csv", many_contacts(ROWS)),
    ];
    let mut env = Env::new(backend, utc(2, 12, 0), &files, Options::default()).await;
    let ut = daemon::user_task_id(&env.spec("b.toml"));
    let mut steps = 0;
    let mut planned_after_first = None;
    loop {
        env.step().await;
        steps += 1;
        let p = env.store.order_progress(&ut).await.unwrap();
        planned_after_first.get_or_insert(p.total);
        if p.total == ROWS as u64 && p.sent == ROWS as u64 {
            break;
        }
        assert!(steps < 500, "not uploaded after {steps} reconciles: {p:?}");
        env.clock.advance(Duration::seconds(1));
    }
    assert!(
        planned_after_first.is_some_and(|n| n < ROWS as u64),
        "the first reconcile planned only a slice ({planned_after_first:?} of {ROWS})"
    );
    let submitted = env.sim.submissions();
    let ids: std::collections::HashSet<&str> =
        submitted.iter().map(|s| s.order_id.as_str()).collect();
    assert_eq!(submitted.len(), ROWS, "each order submitted once");
    assert_eq!(ids.len(), ROWS);
    assert!(submitted.iter().all(|s| s.accepted));
    let orders = env.sim.orders();
    assert_eq!(orders.len(), ROWS);
    // In file order: the simulator's order of submissions is the phones' order in the file.
    let phone_line: std::collections::HashMap<String, usize> = many_contacts(ROWS)
        .lines()
        .skip(1)
        .enumerate()
        .map(|(i, l)| {
            let phone: String = l
                .split(',')
                .next()
                .unwrap()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            (phone, i)
        })
        .collect();
    let lines: Vec<usize> = submitted
        .iter()
        .map(|s| {
            phone_line[&s
                .phone
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()]
        })
        .collect();
    let (mut out_of_order, mut last) = (0, None);
    for l in &lines {
        if last.is_some_and(|p| *l < p) {
            out_of_order += 1;
        }
        last = Some(*l);
    }
    // Up to `requests_in_flight` batches are answered in any order; within that, the file's order holds.
    assert!(
        out_of_order * 50 <= ROWS,
        "{out_of_order} submissions came before an earlier line's"
    );
    assert_no_harm(&env.sim, &[env.spec("b.toml")]);
}

/// A directory that takes longer to scan than a reconcile waits for (thousands of new files appear at once) does not
/// hold back the pause that is due; the scan is collected by a later pass, and every new file is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_directory_scan_never_delays_a_due_pause() {
    // Enough that the scan takes longer than a reconcile waits for it: 8,000 took under a second here in a debug build.
    const NEW_FILES: usize = 60_000;
    let (mut env, ut) = running(Backend::Sqlite).await;

    write_files_without_contacts(&mut env, NEW_FILES);
    env.clock.set(utc(3, 0, 0));
    let out = env.step().await;
    let c = out.campaign("b").unwrap();
    assert!(c.done.contains(&"pause".to_string()), "{c:?}");
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        5,
        "paused for the holiday"
    );
    assert!(
        out.file_errors.is_empty(),
        "the scan of {NEW_FILES} new files was still running when the pause went out ({} reported)",
        out.file_errors.len()
    );
    assert_eq!(
        out.next_wake,
        Some(env.now() + Duration::seconds(1)),
        "the running scan is collected soon"
    );

    // Later passes collect the scan: every new file is reported, none is lost.
    let reported = collect_scan(&mut env, out.file_errors.len(), NEW_FILES).await;
    assert_eq!(
        reported, NEW_FILES,
        "every new file is scanned and reported"
    );
}

/// A restart whose first directory scan outlasts a reconcile's wait (many files here; a huge contacts file does the
/// same, since the scan reads every contacts file for its zone groups) does not take the campaigns kept in the store
/// for removed ones: until the scan is collected, a campaign counts as present as last recorded, so its task keeps
/// running instead of being completed, and the scan then finds its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_whose_first_scan_is_slow_never_completes_a_running_campaign() {
    const NEW_FILES: usize = 60_000;
    let (mut env, ut) = running(Backend::Sqlite).await;
    write_files_without_contacts(&mut env, NEW_FILES);
    env.restart();
    env.clock.advance(Duration::minutes(1));
    let out = env.step().await;
    assert!(
        out.file_errors.is_empty(),
        "the first scan was still running ({} files reported)",
        out.file_errors.len()
    );
    let c = out
        .campaign("b")
        .expect("the stored campaign is reconciled");
    assert!(!c.done.contains(&"complete".to_string()), "{c:?}");
    assert_eq!(env.sim.task(&ut).unwrap().status, 2, "still running");

    let reported = collect_scan(&mut env, 0, NEW_FILES).await;
    assert_eq!(reported, NEW_FILES, "the scan is collected");
    assert_eq!(
        env.sim.task(&ut).unwrap().status,
        2,
        "the scan found the file: still running"
    );
}

/// `n` new campaign files whose contacts file is missing: each is parsed in full, then rejected.
fn write_files_without_contacts(env: &mut Env, n: usize) {
    for i in 0..n {
        env.write(
            &format!("n{i:05}.toml"),
            &with_holiday(&format!("n{i:05}.csv")),
        );
    }
}

/// Steps a second at a time (at most 600) until a pass reports `n` file errors; returns the last count.
async fn collect_scan(env: &mut Env, mut reported: usize, n: usize) -> usize {
    for _ in 0..600 {
        if reported == n {
            break;
        }
        env.clock.advance(Duration::seconds(1));
        reported = env.step().await.file_errors.len();
    }
    reported
}
