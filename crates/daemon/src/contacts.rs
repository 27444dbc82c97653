//! Streaming a campaign's CSV into the store as planned orders. Reads files and writes orders; never calls the
//! platform.

use std::collections::HashMap;

use campaign::{CampaignSpec, ContactLimits, ContactReader, ZoneGroup};
use store::{NewOrder, Store};

use crate::actions::{StepError, StepResult};
use crate::scan::FileStamp;

/// Orders written to the store per bulk insert while streaming a CSV.
const PLAN_CHUNK: usize = 5_000;
/// Chunks the CSV reader may run ahead of the store writes.
const PLAN_CHUNKS_AHEAD: usize = 2;

/// Contacts files up to this size are read on the reconciler's own thread, at once, instead of on a blocking thread a
/// chunk at a time: at most a few hundred rows, which take well under a millisecond to read. With 10,000 campaigns of
/// small files, handing each to a thread and waiting for its chunks cost more than the reading.
const READ_INLINE_BYTES: u64 = 16 * 1024;

/// How long one reconcile of a campaign plans its contacts; a larger file goes on at the next reconciles.
const PLAN_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a reconcile of a one-task campaign plans before its decision: enough for the decision to have orders to
/// upload and the task's groups recorded; the rest of the file is planned beside the uploads of the next reconciles
/// (see [`Admitted`]), which come at once.
const PLAN_FIRST_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);

/// One reconcile's share of planning a campaign's contacts: when the CSV (or the campaign file) changed since it was
/// last planned to its end, inserts for at most [`PLAN_BUDGET`] ([`PLAN_FIRST_BUDGET`] before the decision of a
/// one-task campaign), keeping the reader in `state.planning` for the next reconcile (which comes at once). With
/// `admitted`, it runs beside the task's uploads ([`Planning::advance`]). Returns how many orders were newly
/// planned, whether the file is planned to its end (then `state.planned` and `state.valid` say so), and the zone
/// groups written. The caller plans only campaigns whose file is present.
pub(crate) async fn plan_step(
    store: &dyn Store,
    spec: &CampaignSpec,
    limits: &ContactLimits,
    state: &mut ContactsState,
    now: chrono::DateTime<chrono::Utc>,
    admitted: Option<&Admitted>,
) -> StepResult<(u64, bool, GroupsWritten)> {
    let mut written = GroupsWritten::default();
    if spec.schedule.end_utc().is_some_and(|end| now >= end) {
        state.planning = None;
        return Ok((0, true, written));
    }
    let stamp = csv_stamp(spec);
    if state.planned.as_ref() == Some(&stamp) {
        return Ok((0, true, written));
    }
    if state.planning.as_ref().is_none_or(|p| p.stamp != stamp) {
        // New, or the file changed while it was read: start again (what is planned stays planned).
        state.planning = Some(Planning::start(
            spec,
            &crate::task::user_task_id(spec),
            stamp,
            *limits,
        ));
    }
    let mut current = state.planning.take().expect("just set");
    let budget = if admitted.is_none() && crate::task::user_task_ids(spec).len() == 1 {
        PLAN_FIRST_BUDGET
    } else {
        PLAN_BUDGET
    };
    // A failed read or write starts again from the file at the next reconcile.
    let (inserted, stats) = current
        .advance(store, now, budget, &mut written, admitted)
        .await?;
    match stats {
        Some(stats) => {
            if stats.issues > 0 {
                tracing::debug!(campaign.id = %spec.id, contacts.valid = stats.valid, contacts.issues = stats.issues, "contacts planned; rows with issues left out");
            }
            // Recorded with every campaign's at the end of the pass (one store call, not one per campaign).
            state.to_record = contacts_version(&current.stamp, limits)
                .map(|version| (crate::task::user_task_id(spec), version, stats.valid));
            state.planned = Some(current.stamp);
            state.valid = stats.valid;
            Ok((inserted, true, written))
        }
        None => {
            state.planning = Some(current);
            Ok((inserted, false, written))
        }
    }
}

/// What tells this build of the daemon from another: its version and its executable's size and modification time,
/// read once. Every release is numbered 0.0.0 until the first one ships, so the version alone would not tell a build
/// whose reading rules changed; with the executable's stamp, a new build reads every contacts file again once (rows
/// it now accepts are planned), while restarts of one build, or of one container image, do not.
fn this_build() -> Option<&'static str> {
    static BUILD: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BUILD
        .get_or_init(|| {
            let exe = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
            let modified = exe
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            Some(format!(
                "{} {} {}.{:09}",
                env!("CARGO_PKG_VERSION"),
                exe.len(),
                modified.as_secs(),
                modified.subsec_nanos()
            ))
        })
        .as_deref()
}

/// Where a campaign's contacts planning stands: the file being read, the version planned to its end, and that
/// version's valid rows (which the decisions read).
#[derive(Debug, Default)]
pub(crate) struct ContactsState {
    /// The CSV being planned, when it takes more than one reconcile.
    pub(crate) planning: Option<Planning>,
    /// The CSV's stamp when it was last planned into the store to its end.
    pub(crate) planned: Option<CsvStamp>,
    /// The valid rows of the version planned.
    pub(crate) valid: u64,
    /// The version planned to its end and not yet recorded in the store ([`Store::record_contacts_planned`]):
    /// `(user_task_id, version, valid rows)`.
    pub(crate) to_record: Option<(String, String, u64)>,
}

/// The contacts versions the store holds, by task ([`Store::contacts_planned_of`]): `None` for a task with none.
pub(crate) type PlannedVersions = HashMap<String, Option<(String, u64)>>;

/// Before this process first plans a campaign's contacts (after a start, or in a new round): when the store says this
/// very version of them was planned to its end ([`contacts_version`]), counts it as planned, with the valid rows it
/// had, instead of reading the whole file again. `known` holds the versions already read from the store, by task; a
/// task missing from it is read now and kept. A failed read only costs the shortcut: the file is planned as before.
pub(crate) async fn restore_planned(
    store: &dyn Store,
    spec: &CampaignSpec,
    limits: &ContactLimits,
    known: &mut PlannedVersions,
    state: &mut ContactsState,
) {
    let ut = crate::task::user_task_id(spec);
    if !known.contains_key(&ut) {
        match store.contacts_planned_of(std::slice::from_ref(&ut)).await {
            Ok(rows) => {
                let found = rows.into_iter().next().map(|(_, v, n)| (v, n));
                known.insert(ut.clone(), found);
            }
            Err(e) => {
                tracing::debug!(campaign.id = %spec.id, error = %e, "cannot read which contacts file was planned; reading it");
                return;
            }
        }
    }
    let stamp = csv_stamp(spec);
    if let (Some(Some((stored, valid))), Some(now)) =
        (known.get(&ut), contacts_version(&stamp, limits))
        && *stored == now
    {
        tracing::debug!(campaign.id = %spec.id, contacts.valid = valid, "contacts file planned before this start; not read again");
        state.planned = Some(stamp);
        state.valid = *valid;
    }
}

/// The zone groups a planning step wrote to the store, so the caller's copy of them stays true without reading it
/// again.
#[derive(Debug, Default)]
pub(crate) struct GroupsWritten {
    /// `(user_task_id, group as JSON)`, for the orders written.
    pub(crate) groups: Vec<(String, String)>,
    /// Groups were also written for orders already stored (contacts planned again, maybe in another group's task):
    /// which tasks got them is known only to the store.
    pub(crate) of_stored_orders: bool,
}

/// The `(user_task_id, zone group as JSON)` pairs whose orders may be planned while the campaign's tasks upload: the
/// groups already recorded for the task, which its calendar (and so the dial window of the decision uploading beside
/// the planning) covers already. A chunk with any other pair is held for a reconcile that plans before it decides.
pub(crate) type Admitted = std::collections::HashSet<(String, String)>;

/// What identifies a version of the contacts: the CSV's file stamp (the same stamp as the campaign files'), and the
/// campaign file's hash (variables may change how rows read).
pub(crate) type CsvStamp = (Option<FileStamp>, String);

pub(crate) fn csv_stamp(spec: &CampaignSpec) -> CsvStamp {
    (
        FileStamp::of(&spec.contacts.file),
        spec.content_hash.clone(),
    )
}

/// The text the store keeps for a version of the contacts planned to its end ([`Store::record_contacts_planned`]): the
/// CSV's stamp, the campaign file's hash, the contact limits (they decide which rows are read) and this build (it
/// decides how they read). A restarted daemon skips reading the file only when all of them are as they were, so any
/// change reads it again, which adds only what is new. `None` when the CSV has no stamp (it cannot be read) or the
/// build cannot be told: then there is no shortcut.
pub(crate) fn contacts_version(stamp: &CsvStamp, limits: &ContactLimits) -> Option<String> {
    let file = serde_json::to_string(stamp.0.as_ref()?).ok()?;
    Some(format!(
        "build {}; file {file}; spec {}; limits {} {} {}",
        this_build()?,
        stamp.1,
        limits.max_file_bytes,
        limits.max_record_bytes,
        limits.max_fields,
    ))
}

/// A campaign's CSV being planned into the store as orders of its task, possibly over several reconciles: the file is
/// opened and read on a blocking thread, a bounded number of chunks ahead, and each reconcile inserts what it can
/// within a time budget, so a huge or slow file never holds back a pause or a start that is due, here or in another
/// campaign. Idempotent: order IDs are deterministic and inserts skip IDs already present, so rows uploaded before
/// are never planned (or sent) again, and rows appended later are picked up.
#[derive(Debug)]
pub(crate) struct Planning {
    /// The version of the contacts being read.
    pub(crate) stamp: CsvStamp,
    chunks: tokio::sync::mpsc::Receiver<Result<Chunk, String>>,
    reading: Reading,
    /// A chunk read but not admitted beside an upload ([`Admitted`]); the next step inserts it first.
    held: Option<Chunk>,
}

/// Who reads the file: a blocking thread, whose handle returns the counts of the rows once it is done, or nobody
/// any more (a small file, read at once).
#[derive(Debug)]
enum Reading {
    Thread(tokio::task::JoinHandle<Stats>),
    Done(Stats),
}

/// Orders read from the CSV, with the zone groups of their contacts: (task, group as JSON), each once, and for each
/// order the index of its contact's group in that list.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    orders: Vec<NewOrder>,
    groups: Vec<(String, String)>,
    order_group: Vec<usize>,
}

impl Planning {
    /// Starts reading the campaign's CSV (version `stamp`) for task `ut`.
    pub(crate) fn start(
        spec: &CampaignSpec,
        ut: &str,
        stamp: CsvStamp,
        limits: ContactLimits,
    ) -> Planning {
        if stamp
            .0
            .as_ref()
            .is_some_and(|s| s.bytes() <= READ_INLINE_BYTES)
            && let Some((chunks, stats)) = read_at_once(spec, ut, &limits, READ_INLINE_BYTES)
        {
            let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
            for c in chunks {
                // The channel holds every chunk: it cannot be full.
                let _ = tx.try_send(Ok(c));
            }
            return Planning {
                stamp,
                chunks: rx,
                reading: Reading::Done(stats),
                held: None,
            };
        }
        let (chunks, reading) = read_in_chunks(
            spec.clone(),
            ut.to_owned(),
            limits,
            PLAN_CHUNK,
            PLAN_CHUNKS_AHEAD,
        );
        Planning {
            stamp,
            chunks,
            reading: Reading::Thread(reading),
            held: None,
        }
    }

    /// Whether a chunk waits that was not admitted beside an upload: the next step must plan before the decision.
    pub(crate) fn holds_chunk(&self) -> bool {
        self.held.is_some()
    }

    /// Inserts the chunks read so far, for at most `budget`. Returns how many orders were newly planned, and the
    /// counts of the rows once the whole file is planned (`None`: more to come at the next reconcile).
    ///
    /// With `admitted` (the planning runs beside the tasks' uploads), a chunk with a zone group not admitted is not
    /// inserted: it is held, and the step ends. Its orders could otherwise be uploaded before their task's calendar
    /// covers their group.
    pub(crate) async fn advance(
        &mut self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
        budget: std::time::Duration,
        written: &mut GroupsWritten,
        admitted: Option<&Admitted>,
    ) -> StepResult<(u64, Option<Stats>)> {
        let started = std::time::Instant::now();
        let mut inserted = 0u64;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                // Checked before waiting: a timeout polls its future first, so with the reader ahead of the store
                // a spent budget alone would never end the loop.
                return Ok((inserted, None));
            }
            let next = match self.held.take() {
                Some(chunk) => Some(Ok(chunk)),
                None => match tokio::time::timeout(left, self.chunks.recv()).await {
                    Ok(next) => next,
                    // The budget is spent: the reader waits (bounded) for the next reconcile.
                    Err(_) => return Ok((inserted, None)),
                },
            };
            match next {
                Some(Ok(chunk))
                    if admitted.is_some_and(|a| chunk.groups.iter().any(|p| !a.contains(p))) =>
                {
                    self.held = Some(chunk);
                    return Ok((inserted, None));
                }
                Some(Ok(chunk)) => {
                    // The groups with the orders, in one transaction: the task's calendar covers these contacts
                    // from the next decision on, before any of them can be uploaded.
                    let new = store
                        .insert_planned_orders_in_groups(&chunk.orders, &chunk.groups, now)
                        .await?;
                    inserted += new;
                    for pair in &chunk.groups {
                        if !written.groups.contains(pair) {
                            written.groups.push(pair.clone());
                        }
                    }
                    if usize::try_from(new).unwrap_or(usize::MAX) < chunk.orders.len() {
                        // Some contacts already have their order, maybe in another group's task (the contact
                        // moved): that task's calendar covers the contact's group now too. Their order is never
                        // uploaded again.
                        let of_orders: Vec<(String, String)> = chunk
                            .orders
                            .iter()
                            .zip(&chunk.order_group)
                            .map(|(o, g)| (o.order_id.clone(), chunk.groups[*g].1.clone()))
                            .collect();
                        store.record_zone_groups_of_orders(&of_orders).await?;
                        written.of_stored_orders = true;
                    }
                }
                Some(Err(e)) => return Err(StepError::Contacts(e)),
                None => {
                    let stats = match &mut self.reading {
                        Reading::Thread(handle) => {
                            handle.await.map_err(|e| StepError::Reader(e.to_string()))?
                        }
                        Reading::Done(stats) => *stats,
                    };
                    return Ok((inserted, Some(stats)));
                }
            }
        }
    }
}

/// Counts of the rows read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub valid: u64,
    pub issues: u64,
    /// Valid contacts without a known zone (with `timezone = "contact"` and no `fallback_timezone`): never planned.
    pub unzoned: u64,
}

impl Chunk {
    /// The orders grouped by task (in file order within each), so that the store writes each task's orders in one
    /// statement however the groups interleave in the file.
    fn by_task(self) -> Chunk {
        if self.groups.iter().all(|(ut, _)| *ut == self.groups[0].0) {
            return self;
        }
        let Chunk {
            orders,
            groups,
            order_group,
        } = self;
        let mut pairs: Vec<(NewOrder, usize)> = orders.into_iter().zip(order_group).collect();
        pairs.sort_by(|a, b| a.0.user_task_id.cmp(&b.0.user_task_id));
        let (orders, order_group) = pairs.into_iter().unzip();
        Chunk {
            orders,
            groups,
            order_group,
        }
    }
}

/// A streaming reader of planned orders.
#[derive(Debug)]
pub struct Reader {
    inner: ContactReader,
    spec: CampaignSpec,
    user_task_id: String,
    /// Each group met so far: its JSON text, and its task.
    groups: HashMap<ZoneGroup, (String, String)>,
    /// One task per group (`timezone = "contact"` with several groups), else every order in `user_task_id`.
    task_per_group: bool,
}

/// Opens the campaign's CSV.
fn read(spec: &CampaignSpec, user_task_id: &str, limits: &ContactLimits) -> Result<Reader, String> {
    let inner = ContactReader::open_with_limits(spec, limits)
        .map_err(|e| format!("cannot read contacts {}: {e}", spec.contacts.file.display()))?;
    Ok(Reader::new(inner, spec, user_task_id))
}

/// Reads the whole CSV into chunks on this thread, if it is at most `max_bytes` (with the same checks as [`read`]:
/// inside the campaign's directory, a regular file, within the limits). `None` when it is larger (it may have
/// grown since its stamp was taken) or cannot be read here: [`read_in_chunks`] then reads it, and reports why not.
fn read_at_once(
    spec: &CampaignSpec,
    user_task_id: &str,
    limits: &ContactLimits,
    max_bytes: u64,
) -> Option<(Vec<Chunk>, Stats)> {
    use std::io::Read as _;
    let file = campaign::open_contacts_file(&spec.source, &spec.contacts.file, limits).ok()?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > max_bytes {
        return None;
    }
    let inner = ContactReader::from_reader(spec, std::io::Cursor::new(bytes), limits).ok()?;
    let mut reader = Reader::new(inner, spec, user_task_id);
    let mut stats = Stats::default();
    let mut chunks = Vec::new();
    in_chunks(&mut reader, &mut stats, PLAN_CHUNK, |c| {
        chunks.push(c);
        true
    });
    Some((chunks, stats))
}

/// Reads the orders of `reader` into chunks of `chunk` orders (the last one shorter), handing each to `emit`, which
/// returns false to stop the reading.
fn in_chunks(
    reader: &mut Reader,
    stats: &mut Stats,
    chunk: usize,
    mut emit: impl FnMut(Chunk) -> bool,
) {
    let mut buf = Chunk::default();
    while let Some((order, group)) = reader.next_order(stats) {
        let index = match buf
            .groups
            .iter()
            .position(|(ut, g)| *ut == order.user_task_id && g == group)
        {
            Some(i) => i,
            None => {
                buf.groups
                    .push((order.user_task_id.clone(), group.to_owned()));
                buf.groups.len() - 1
            }
        };
        buf.order_group.push(index);
        buf.orders.push(order);
        if buf.orders.len() >= chunk && !emit(std::mem::take(&mut buf).by_task()) {
            return;
        }
    }
    if !buf.orders.is_empty() {
        emit(buf.by_task());
    }
}

impl Reader {
    fn new(inner: ContactReader, spec: &CampaignSpec, user_task_id: &str) -> Reader {
        Reader {
            inner,
            spec: spec.clone(),
            user_task_id: user_task_id.to_owned(),
            groups: HashMap::new(),
            task_per_group: crate::task::user_task_ids(spec).len() > 1,
        }
    }

    /// The next valid contact as a planned order (in its group's task when each group has one), with the JSON text
    /// of its zone group; rows with issues, and contacts without a known zone, are counted and skipped.
    pub fn next_order(&mut self, stats: &mut Stats) -> Option<(NewOrder, &str)> {
        loop {
            match self.inner.next()? {
                Ok(c) => {
                    stats.valid += 1;
                    let Some(group) = campaign::group_of(&self.spec, &c) else {
                        stats.unzoned += 1;
                        continue;
                    };
                    let (spec, per_group, single) =
                        (&self.spec, self.task_per_group, &self.user_task_id);
                    let (text, ut) = self.groups.entry(group).or_insert_with_key(|g| {
                        // Zones and rule names: serialising them cannot fail.
                        let text = serde_json::to_string(g).unwrap_or_default();
                        let ut = if per_group {
                            campaign::zone_group_task_id(&spec.id, spec.generation, g)
                        } else {
                            single.clone()
                        };
                        (text, ut)
                    });
                    let variables: serde_json::Map<String, serde_json::Value> = c
                        .variables
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                    let order = NewOrder {
                        order_id: c.order_id,
                        campaign_id: self.spec.id.clone(),
                        user_task_id: ut.clone(),
                        phone: c.phone,
                        name: opt(c.name),
                        customer: opt(c.customer),
                        other: opt(c.other),
                        variables: serde_json::Value::Object(variables),
                        source_line: i64::try_from(c.line).unwrap_or(i64::MAX),
                        attempt: 1,
                    };
                    return Some((order, text.as_str()));
                }
                Err(_) => stats.issues += 1,
            }
        }
    }
}

/// Opens and reads the contacts on a blocking thread, `chunk` orders at a time, at most `ahead` chunks ahead of the
/// consumer (so parsing and normalising the CSV runs on one core while the store writes on the other, in bounded
/// memory). A file that cannot be opened is sent as an error. The thread stops early when the receiver is dropped;
/// its handle returns the counts of the rows it read.
fn read_in_chunks(
    spec: CampaignSpec,
    ut: String,
    limits: ContactLimits,
    chunk: usize,
    ahead: usize,
) -> (
    tokio::sync::mpsc::Receiver<Result<Chunk, String>>,
    tokio::task::JoinHandle<Stats>,
) {
    let chunk = chunk.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel(ahead.max(1));
    let handle = tokio::task::spawn_blocking(move || {
        let mut stats = Stats::default();
        let mut reader = match read(&spec, &ut, &limits) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return stats;
            }
        };
        in_chunks(&mut reader, &mut stats, chunk, |c| {
            tx.blocking_send(Ok(c)).is_ok()
        });
        stats
    });
    (rx, handle)
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign_with_contacts(dir: &std::path::Path, csv: &str) -> CampaignSpec {
        std::fs::write(dir.join("c.csv"), csv).unwrap();
        let path = dir.join("r.toml");
        std::fs::write(
            &path,
            "scene_id = \"S\"\n[schedule]\ntimezone = \"UTC\"\nwindows = [{ days = \"mon-sun\", hours = [\"09:00-17:00\"] }]\n\
             [contacts]\nfile = \"c.csv\"\n",
        )
        .unwrap();
        campaign::load_campaign(&path).unwrap()
    }

    /// A small file read at once gives the chunks and counts the blocking thread gives, and a file larger than the
    /// bound is left to the thread.
    #[tokio::test]
    async fn a_small_file_read_at_once_reads_as_on_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "phone,name\n+14155550123,Ann\nnot a phone,Bob\n+14155550124,Cy\n+14155550123,Ann again\n+14155550125,Di\n";
        let spec = campaign_with_contacts(dir.path(), csv);
        let limits = ContactLimits::default();
        let (at_once, stats) = read_at_once(&spec, "t", &limits, 1_000).expect("read at once");
        let (mut rx, handle) = read_in_chunks(spec.clone(), "t".into(), limits, 2, 1);
        let mut threaded = Vec::new();
        while let Some(c) = rx.recv().await {
            threaded.push(c.unwrap());
        }
        let on_thread = handle.await.unwrap();
        let ids = |chunks: &[Chunk]| -> Vec<(String, i64)> {
            chunks
                .iter()
                .flat_map(|c| c.orders.iter().map(|o| (o.order_id.clone(), o.source_line)))
                .collect()
        };
        assert_eq!(ids(&at_once), ids(&threaded));
        assert_eq!(ids(&at_once).len(), 3);
        assert_eq!(
            (stats.valid, stats.issues, stats.unzoned),
            (on_thread.valid, on_thread.issues, on_thread.unzoned)
        );
        assert_eq!((stats.valid, stats.issues), (3, 2));
        assert!(
            read_at_once(&spec, "t", &limits, csv.len() as u64 - 1).is_none(),
            "a file past the bound is not read here"
        );
    }

    /// A restarted daemon (nothing in memory) counts a contacts file as planned when the store says this very
    /// version was planned to its end, with its valid rows, and reads it again when the file, or the limits that
    /// decide which rows are read, changed since.
    #[tokio::test]
    async fn a_restart_reads_a_planned_file_again_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "phone,name\n+14155550123,Ann\nnot a phone,Bob\n+14155550124,Cy\n";
        let spec = campaign_with_contacts(dir.path(), csv);
        let limits = ContactLimits::default();
        let db = testkit::sqlite_database();
        let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
        let now = chrono::Utc::now();
        let plan = |spec: &CampaignSpec, limits: ContactLimits| {
            let spec = spec.clone();
            let store = &store;
            async move {
                let mut state = ContactsState::default();
                let mut total = 0;
                loop {
                    let (n, done, _) = plan_step(store, &spec, &limits, &mut state, now, None)
                        .await
                        .unwrap();
                    total += n;
                    if done {
                        // As the daemon does at the end of its pass.
                        let planned: Vec<_> = state.to_record.take().into_iter().collect();
                        store.record_contacts_planned(&planned, now).await.unwrap();
                        return (total, state.valid);
                    }
                }
            }
        };
        let restored = |spec: &CampaignSpec, limits: ContactLimits| {
            let spec = spec.clone();
            let store = &store;
            async move {
                let (mut known, mut state) = (PlannedVersions::new(), ContactsState::default());
                restore_planned(store, &spec, &limits, &mut known, &mut state).await;
                state
                    .planned
                    .map(|stamp| (stamp == csv_stamp(&spec), state.valid))
            }
        };
        assert_eq!(restored(&spec, limits).await, None, "nothing planned yet");
        assert_eq!(plan(&spec, limits).await, (2, 2));
        assert_eq!(
            restored(&spec, limits).await,
            Some((true, 2)),
            "the version planned is not read again"
        );
        let narrower = ContactLimits {
            max_fields: 10,
            ..limits
        };
        assert_eq!(
            restored(&spec, narrower).await,
            None,
            "other limits read it again"
        );

        std::fs::write(dir.path().join("c.csv"), format!("{csv}+14155550125,Di\n")).unwrap();
        assert_eq!(
            restored(&spec, limits).await,
            None,
            "a changed file is read again"
        );
        assert_eq!(
            plan(&spec, limits).await,
            (1, 3),
            "only the new row is planned"
        );
        assert_eq!(restored(&spec, limits).await, Some((true, 3)));
    }

    /// Beside an upload, only chunks in the admitted groups are inserted: a chunk with another group is held, not
    /// written (its orders could be uploaded before their task's calendar covers them), and the next step, planning
    /// before the decision, inserts it first.
    #[tokio::test]
    async fn a_chunk_in_a_group_not_admitted_is_held_for_a_step_that_plans_first() {
        let dir = tempfile::tempdir().unwrap();
        // San Francisco twice, then Miami: another zone and other rules, so another group.
        let csv = "phone,name\n+14155550123,Ann\n+14155550124,Bob\n+13055550123,Cy\n";
        let spec = campaign_with_contacts(dir.path(), csv);
        let limits = ContactLimits::default();
        let (chunks, _) = read_at_once(&spec, "t", &limits, 1_000).expect("read at once");
        let pairs: Vec<(String, String)> = chunks.iter().flat_map(|c| c.groups.clone()).collect();
        assert_eq!(pairs.len(), 2, "two groups: {pairs:?}");
        let admitted: Admitted = [pairs[0].clone()].into_iter().collect();

        let db = testkit::sqlite_database();
        let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
        let (chunks, reading) = read_in_chunks(spec.clone(), "t".into(), limits, 1, 1);
        let mut planning = Planning {
            stamp: csv_stamp(&spec),
            chunks,
            reading: Reading::Thread(reading),
            held: None,
        };
        let now = chrono::Utc::now();
        let budget = std::time::Duration::from_secs(10);
        let mut written = GroupsWritten::default();
        let (inserted, stats) = planning
            .advance(&store, now, budget, &mut written, Some(&admitted))
            .await
            .unwrap();
        assert_eq!(inserted, 2, "the first group's rows are planned beside");
        assert!(stats.is_none() && planning.holds_chunk());
        let stored = store
            .orders_in_state("t", store::UploadState::Planned, 10)
            .await
            .unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|o| o.phone.starts_with("1415")));
        assert_eq!(written.groups, vec![pairs[0].clone()]);

        let (inserted, stats) = planning
            .advance(&store, now, budget, &mut written, Some(&admitted))
            .await
            .unwrap();
        assert_eq!(inserted, 0, "still held beside an upload");
        assert!(stats.is_none() && planning.holds_chunk());

        let (inserted, stats) = planning
            .advance(&store, now, budget, &mut written, None)
            .await
            .unwrap();
        assert_eq!(inserted, 1, "a step that plans first inserts it");
        assert_eq!(stats.map(|s| s.valid), Some(3));
        assert!(!planning.holds_chunk());
        assert_eq!(written.groups, pairs);
        assert_eq!(store.zone_groups("t").await.unwrap().len(), 2);
    }

    /// A reader ahead of the store (chunks already waiting) must not keep a reconcile planning past its budget: a
    /// timeout polls its future first, so only a check before each wait ends the loop.
    #[tokio::test]
    async fn a_spent_budget_ends_planning_even_with_chunks_waiting() {
        let db = testkit::sqlite_database();
        let store = store_sqlite::SqliteStore::open(&db.url).await.unwrap();
        let (tx, chunks) = tokio::sync::mpsc::channel(4);
        for _ in 0..3 {
            tx.send(Ok(Chunk::default())).await.unwrap();
        }
        drop(tx);
        let mut planning = Planning {
            stamp: (None, String::new()),
            chunks,
            reading: Reading::Done(Stats::default()),
            held: None,
        };
        let now = chrono::Utc::now();
        let (inserted, stats) = planning
            .advance(
                &store,
                now,
                std::time::Duration::ZERO,
                &mut GroupsWritten::default(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(inserted, 0);
        assert!(
            stats.is_none(),
            "a spent budget leaves the rest for the next reconcile"
        );
        let (_, stats) = planning
            .advance(
                &store,
                now,
                std::time::Duration::from_secs(10),
                &mut GroupsWritten::default(),
                None,
            )
            .await
            .unwrap();
        assert!(
            stats.is_some(),
            "with time left, the file is planned to its end"
        );
    }
}
