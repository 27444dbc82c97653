//! The SQL both backends write alike but for its spelling: a [`Dialect`] says how a backend spells parameters,
//! index hints, a false boolean and where NULL sorts; the statements and fragments that differ only by those are
//! built here, once.

use crate::UploadState;
use crate::backend::{LedgerTable, ORDER_COLUMNS};

/// The `callStatus` codes the orders_to_retry index holds, as its definition writes them (see
/// [`crate::RETRYABLE_STATUSES`]); a query must repeat them word for word for SQLite to use the partial index.
const RETRY_INDEX_STATUSES: &str = "9, 10, 11, 15, 16, 22, 23, 24, 25";

/// How a backend spells what its SQL and the other backend's differ by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// How parameters are written.
    pub params: Params,
    /// Whether a statement names the index it walks (`INDEXED BY`), as SQLite's planner may otherwise take another
    /// one.
    pub index_hints: bool,
    /// Whether booleans are integers (`finished = 0`), else their own type (`NOT finished`).
    pub integer_booleans: bool,
    /// Whether NULL sorts before every value in an ascending order (SQLite), else after it (PostgreSQL).
    pub nulls_first: bool,
    /// Whether every index ends with the row's ID (SQLite's rowid, which an `INTEGER PRIMARY KEY` is), so an order
    /// by an indexed column, then the ID, is the index's own.
    pub rowid_indexes: bool,
}

/// How a backend writes parameter `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Params {
    /// `?n`, typed by the value bound (SQLite).
    Question,
    /// `$n`, cast to its type where the statement cannot tell it (PostgreSQL: `$4::timestamptz`).
    Dollar,
}

/// The SQL type of a parameter, for the backends that cast their parameters ([`Params::Dollar`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqlType {
    /// A point in time (`timestamptz`).
    Time,
    /// A 64-bit integer (`int8`).
    Int,
}

impl Dialect {
    /// Parameter `n`, where the statement tells its type.
    fn param(&self, n: usize) -> String {
        match self.params {
            Params::Question => format!("?{n}"),
            Params::Dollar => format!("${n}"),
        }
    }

    /// Parameter `n` of type `ty`, cast where the backend needs telling.
    fn typed(&self, n: usize, ty: SqlType) -> String {
        match (self.params, ty) {
            (Params::Question, _) => format!("?{n}"),
            (Params::Dollar, SqlType::Time) => format!("${n}::timestamptz"),
            (Params::Dollar, SqlType::Int) => format!("${n}::int8"),
        }
    }

    /// What follows a table's name (and alias) to walk it through `index`: ` INDEXED BY <index>` or nothing.
    fn indexed_by(&self, index: &str) -> String {
        if self.index_hints {
            format!(" INDEXED BY {index}")
        } else {
            String::new()
        }
    }

    /// The boolean `column` is false.
    fn is_false(&self, column: &str) -> String {
        if self.integer_booleans {
            format!("{column} = 0")
        } else {
            format!("NOT {column}")
        }
    }

    /// The boolean `column` is true.
    fn is_true(&self, column: &str) -> String {
        if self.integer_booleans {
            format!("{column} = 1")
        } else {
            column.to_owned()
        }
    }

    /// An ascending order by `column` that puts NULL first.
    fn asc_nulls_first(&self, column: &str) -> String {
        if self.nulls_first {
            column.to_owned()
        } else {
            format!("{column} NULLS FIRST")
        }
    }

    /// An ascending order by `column` that puts NULL last.
    fn asc_nulls_last(&self, column: &str) -> String {
        if self.nulls_first {
            format!("{column} IS NULL, {column}")
        } else {
            format!("{column} NULLS LAST")
        }
    }

    /// `EXISTS` an entry of the phone `phone` that counts at the instant `at` (a parameter, like `?2`).
    pub fn suppressed(&self, phone: &str, at: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM suppressions s WHERE s.phone = {phone} AND (s.expires_at IS NULL OR s.expires_at > {at}))"
        )
    }

    /// The reject reason of the phone `phone` at `at`: `suppressed: <reason, else source>` of its first active entry
    /// by source (see [`crate::suppressed_reason`]).
    pub fn suppressed_reason(&self, phone: &str, at: &str) -> String {
        format!(
            "(SELECT 'suppressed: ' || COALESCE(s.reason, s.source) FROM suppressions s
              WHERE s.phone = {phone} AND (s.expires_at IS NULL OR s.expires_at > {at}) ORDER BY s.source LIMIT 1)"
        )
    }

    /// How many orders of the phone `phone`, of any task, the platform may dial any moment: `sending`, or `sent`,
    /// unfinished and not stopped. Through the orders_by_phone index.
    fn pending_of(&self, phone: &str) -> String {
        format!(
            "(SELECT COUNT(*) FROM orders q{}
              WHERE q.phone = {phone} AND (q.upload_state = 'sending'
                  OR (q.upload_state = 'sent' AND {} AND (q.stop_state IS NULL OR q.stop_state <> 'stopped'))))",
            self.indexed_by("orders_by_phone"),
            self.is_false("q.finished")
        )
    }

    /// `agg` (`COUNT(*)`, `MIN(c.started_at)`) over the calls of the phone `phone`'s orders, of any task, started
    /// from `since` to `at`: the orders_by_phone index, then calls_by_order for each of them.
    fn calls_of(&self, phone: &str, agg: &str, since: &str, at: &str) -> String {
        format!(
            "(SELECT {agg} FROM orders q{} JOIN calls c ON c.order_id = q.order_id
              WHERE q.phone = {phone} AND c.started_at >= {since} AND c.started_at <= {at})",
            self.indexed_by("orders_by_phone")
        )
    }

    /// The start of cap `i`'s window: parameter `first + 2 i` (its max is the next one).
    fn cap_since(&self, first: usize, i: usize) -> String {
        self.typed(first + 2 * i, SqlType::Time)
    }

    /// The phone `phone` is at one of `caps` frequency caps at `at`, each bound as two parameters from `first` on
    /// (its window's start, its max). `caps` is at least 1.
    fn capped(&self, phone: &str, at: &str, first: usize, caps: usize) -> String {
        let each: Vec<String> = (0..caps)
            .map(|i| {
                format!(
                    "{} + {} >= {}",
                    self.pending_of(phone),
                    self.calls_of(phone, "COUNT(*)", &self.cap_since(first, i), at),
                    self.typed(first + 2 * i + 1, SqlType::Int)
                )
            })
            .collect();
        format!("({})", each.join(" OR "))
    }

    /// `AND NOT` the phone `phone` is at one of `caps` frequency caps at `at`, each bound as two parameters from
    /// `first` on (its window's start, its max); nothing when there are no caps.
    pub fn not_capped(&self, phone: &str, at: &str, first: usize, caps: usize) -> String {
        match caps {
            0 => String::new(),
            n => format!(" AND NOT {}", self.capped(phone, at, first, n)),
        }
    }

    /// [`crate::Store::held_numbers`]'s read, for `caps` caps (at least 1): the phones of the task (parameter 2)'s
    /// first planned orders (parameter 3 of them, by source line: the (task, state, source line) index) that are not
    /// suppressed and are at a cap at parameter 1, each with its [`crate::backend::PhoneCapCounts`] columns. The caps
    /// are bound from parameter 4 on, two each (window start, max).
    pub fn held_phones(&self, caps: usize) -> String {
        let at = self.param(1);
        let mut columns = vec![format!("{} AS pending", self.pending_of("p.phone"))];
        for i in 0..caps {
            let since = self.cap_since(4, i);
            columns.push(format!(
                "{} AS calls_{i}",
                self.calls_of("p.phone", "COUNT(*)", &since, &at)
            ));
            columns.push(format!(
                "{} AS oldest_{i}",
                self.calls_of("p.phone", "MIN(c.started_at)", &since, &at)
            ));
        }
        format!(
            "SELECT {} FROM (SELECT o.phone FROM orders o WHERE o.user_task_id = {} AND o.upload_state = 'planned'
                             ORDER BY o.source_line, o.order_id LIMIT {}) p
             WHERE NOT {} AND {}",
            columns.join(", "),
            self.param(2),
            self.param(3),
            self.suppressed("p.phone", &at),
            self.capped("p.phone", &at, 4, caps)
        )
    }

    /// The claim's bound on the task's planned orders it looks at: with `before`, only those ordered before
    /// `(source_line, order_id)` = (parameter 3, parameter 4), and the walk over the (task, state, source line) index
    /// stops there; else nothing.
    pub fn claimed_before(&self, before: bool) -> String {
        if !before {
            return String::new();
        }
        let (line, id) = (self.param(3), self.param(4));
        format!("AND o.source_line <= {line} AND (o.source_line, o.order_id) < ({line}, {id})")
    }

    /// [`crate::Store::record_contacts_planned`]'s upsert, after its rows: a task's new version replaces its earlier
    /// one.
    pub const CONTACTS_PLANNED_REPLACES: &'static str = " ON CONFLICT (user_task_id) DO UPDATE SET
             contacts_version = excluded.contacts_version, valid_contacts = excluded.valid_contacts,
             planned_at = excluded.planned_at";

    /// [`crate::Store::orders_in_state`]: the task (parameter 1)'s orders in `state`, the first (2) by source line.
    /// The state is written into the statement, not bound: planned and sending orders each have a partial index
    /// (migration 24), which a database uses only when the statement names its state.
    pub fn orders_in_state(&self, state: UploadState) -> String {
        format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_task_id = {} AND upload_state = '{}'
             ORDER BY source_line, order_id LIMIT {}",
            self.param(1),
            state.as_str(),
            self.param(2)
        )
    }

    /// [`crate::Store::orders_to_poll`]: the task (parameter 1)'s sent, unfinished orders (the orders_to_poll index),
    /// never polled first, then the least recently polled, each group in upload order (source line, then ID); the
    /// first (2) of them.
    pub fn orders_to_poll(&self) -> String {
        format!(
            "SELECT order_id FROM orders
             WHERE user_task_id = {} AND upload_state = 'sent' AND {}
             ORDER BY {}, source_line, order_id
             LIMIT {}",
            self.param(1),
            self.is_false("finished"),
            self.asc_nulls_first("last_polled_at"),
            self.param(2)
        )
    }

    /// [`crate::Store::orders_to_stop`]: the task (parameter 1)'s sent, unfinished orders (the orders_to_poll index)
    /// not stopped yet whose phone is suppressed at parameter 2 (the suppressions' primary key), the first (3) by ID.
    pub fn orders_to_stop(&self) -> String {
        format!(
            "SELECT o.order_id FROM orders o{}
             WHERE o.user_task_id = {} AND o.upload_state = 'sent' AND {}
               AND (o.stop_state IS NULL OR o.stop_state = 'sending') AND {}
             ORDER BY o.order_id
             LIMIT {}",
            self.indexed_by("orders_to_poll"),
            self.param(1),
            self.is_false("o.finished"),
            self.suppressed("o.phone", &self.param(2)),
            self.param(3)
        )
    }

    /// The task (parameter 1)'s attempts that a retry rule may follow (the orders_to_retry index): finished, not
    /// stopped, the last attempt of their phone, below `max_attempts`, their last call's status one of `statuses`; with
    /// `last_call_at`, when their last call ended (else was answered, else started). The statuses and the maximum are
    /// the campaign's own numbers, written into the statement.
    fn retry_candidates(&self, statuses: &[i64], max_attempts: u32) -> String {
        let statuses: Vec<String> = statuses.iter().map(i64::to_string).collect();
        let columns: Vec<String> = ORDER_COLUMNS
            .split(',')
            .map(|c| format!("o.{}", c.trim()))
            .collect();
        format!(
            "SELECT {},
                    (SELECT MAX(COALESCE(c.ended_at, c.answered_at, c.started_at)) FROM calls c
                     WHERE c.order_id = o.order_id) AS last_call_at
             FROM orders o{}
             WHERE o.user_task_id = {} AND {} AND o.stop_state IS NULL
               AND o.last_call_status IN ({RETRY_INDEX_STATUSES})
               AND o.last_call_status IN ({}) AND o.attempt < {max_attempts}
               AND NOT EXISTS (SELECT 1 FROM orders n
                               WHERE n.user_task_id = o.user_task_id AND n.phone = o.phone AND n.attempt > o.attempt)",
            columns.join(", "),
            self.indexed_by("orders_to_retry"),
            self.param(1),
            self.is_true("o.finished"),
            if statuses.is_empty() { "NULL".to_owned() } else { statuses.join(", ") },
        )
    }

    /// [`crate::Store::retries_due`]'s two reads: the candidates (see `retry_candidates`) whose last call ended at
    /// or before parameter 2, the first (3) by source line; and the earliest end after parameter 2 (`next_at`).
    pub fn retries_due(&self, statuses: &[i64], max_attempts: u32) -> [String; 2] {
        let candidates = self.retry_candidates(statuses, max_attempts);
        let cutoff = self.typed(2, SqlType::Time);
        [
            format!(
                "SELECT * FROM ({candidates}) r WHERE r.last_call_at <= {cutoff}
                 ORDER BY r.source_line, r.order_id LIMIT {}",
                self.param(3)
            ),
            format!(
                "SELECT MIN(r.last_call_at) AS next_at FROM ({candidates}) r WHERE r.last_call_at > {cutoff}"
            ),
        ]
    }

    /// [`crate::Store::calls_of_order`]'s three reads of the order (parameter 1), in the order of
    /// [`crate::backend::assemble_calls`]'s arguments: its calls (by start time, those without one last; each with its
    /// transcript), then their intents and SMS, each with its call's ID.
    pub fn calls_of_order(&self) -> [String; 3] {
        let order = self.param(1);
        [
            format!(
                "SELECT call_id, order_id, call_status, started_at, answered_at, ended_at, duration_secs, audio_url,
                        hangup_cause, term_sip_code, calling_number, agent, transcript
                 FROM calls WHERE order_id = {order} ORDER BY {}, call_id",
                self.asc_nulls_last("started_at")
            ),
            format!(
                "SELECT i.call_id, i.intent_id, i.intent_tag, i.intent_name, i.intent_level
                 FROM call_intents i JOIN calls c ON c.call_id = i.call_id WHERE c.order_id = {order}
                 ORDER BY i.call_id, i.position"
            ),
            format!(
                "SELECT s.call_id, s.sys_message_id, s.sent_at, s.content, s.status
                 FROM call_sms s JOIN calls c ON c.call_id = s.call_id WHERE c.order_id = {order}
                 ORDER BY s.call_id, s.position"
            ),
        ]
    }

    /// [`crate::Store::prune_ledger`]'s statement for `t`: deletes up to parameter 2 of its oldest rows whose time is
    /// before parameter 1, oldest first (through its time column's index; among equal times by ID where that is the
    /// index's own order).
    pub fn prune_ledger(&self, t: LedgerTable) -> String {
        let LedgerTable { table, id, time } = t;
        let order = if self.rowid_indexes {
            format!("{time}, {id}")
        } else {
            time.to_owned()
        };
        format!(
            "DELETE FROM {table} WHERE {id} IN (
                 SELECT {id} FROM {table} WHERE {time} < {} ORDER BY {order} LIMIT {})",
            self.param(1),
            self.param(2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LEDGER_TABLES;

    const QUESTION: Dialect = Dialect {
        params: Params::Question,
        index_hints: true,
        integer_booleans: true,
        nulls_first: true,
        rowid_indexes: true,
    };
    const DOLLAR: Dialect = Dialect {
        params: Params::Dollar,
        index_hints: false,
        integer_booleans: false,
        nulls_first: false,
        rowid_indexes: false,
    };

    #[test]
    fn the_retry_index_statuses_are_the_retryable_ones() {
        let written: Vec<i64> = RETRY_INDEX_STATUSES
            .split(", ")
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(written, crate::RETRYABLE_STATUSES);
    }

    #[test]
    fn parameters_are_cast_only_where_the_dialect_casts() {
        assert_eq!(QUESTION.typed(4, SqlType::Time), "?4");
        assert_eq!(DOLLAR.typed(4, SqlType::Time), "$4::timestamptz");
        assert_eq!(DOLLAR.typed(5, SqlType::Int), "$5::int8");
        assert_eq!(DOLLAR.param(1), "$1");
    }

    #[test]
    fn the_cap_test_binds_two_parameters_per_cap_and_is_empty_without_caps() {
        assert_eq!(QUESTION.not_capped("o.phone", "?1", 4, 0), "");
        let two = DOLLAR.not_capped("o.phone", "$1", 4, 2);
        assert!(two.starts_with(" AND NOT ("), "{two}");
        for p in ["$4::timestamptz", "$5::int8", "$6::timestamptz", "$7::int8"] {
            assert!(two.contains(p), "{p} in {two}");
        }
        assert!(!two.contains("$8"), "{two}");
        assert!(!two.contains("INDEXED BY"), "{two}");
        assert!(
            QUESTION
                .not_capped("o.phone", "?1", 4, 1)
                .contains("INDEXED BY orders_by_phone")
        );
    }

    #[test]
    fn ledger_rows_are_pruned_by_id_among_equal_times_only_where_the_index_has_it() {
        let t = LEDGER_TABLES[0];
        assert!(
            QUESTION
                .prune_ledger(t)
                .contains("ORDER BY at, action_id LIMIT ?2")
        );
        assert!(DOLLAR.prune_ledger(t).contains("ORDER BY at LIMIT $2"));
    }
}
