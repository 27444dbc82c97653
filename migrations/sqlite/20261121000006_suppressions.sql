-- campaignd store, SQLite backend: suppression (do-not-call) lists and the stop outbox. PostgreSQL has the same.
-- A number is suppressed while it has at least one entry that has not expired (expires_at NULL, or later than the
-- instant asked about). Phones are normalised exactly like orders.phone (country code + national number, digits
-- only), so the two compare as they are. The store checks the list when it plans an order (which then goes in
-- `rejected`, reason 'suppressed: <reason, else source>') and again in the transaction that claims each batch for
-- upload; orders uploaded before their number was suppressed are stopped on the platform (stop_state below).

-- One row per (phone, source). Sources: 'cli', 'file:<name>' (a suppression file, replaced whole when re-read),
-- 'opt_out:<campaign>:<callID>' (the callee opted out during that call).
CREATE TABLE suppressions (
    phone      TEXT NOT NULL,
    source     TEXT NOT NULL,
    reason     TEXT,
    expires_at TEXT,                        -- NULL: never
    added_at   TEXT NOT NULL,               -- when the entry was first added; an update keeps it
    PRIMARY KEY (phone, source)
) WITHOUT ROWID;
-- A source's entries (a file re-read, an unsuppress of one source) without a pass over every other source's.
CREATE INDEX suppressions_by_source ON suppressions (source, phone);

-- One row: a number bumped in the same transaction as every change to the suppressions, so a reader knows whether
-- the set changed since it last looked by reading one row.
CREATE TABLE suppression_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO suppression_version (id, version) VALUES (1, 0);

-- The stopOrder outbox: 'sending' is written before the request leaves, 'stopped' once the platform acknowledged
-- it (final). stopped_at is when stop_state last changed.
ALTER TABLE orders ADD COLUMN stop_state TEXT CHECK (stop_state IN ('sending', 'stopped'));
ALTER TABLE orders ADD COLUMN stopped_at TEXT;

-- Indexes.
-- * orders_by_phone: a phone's orders across campaigns and tasks (one phone's history). The unique
--   (user_task_id, phone) index cannot serve it: phone is its second column.
-- * No new index for Store::orders_to_stop: it reads the task's sent, unfinished orders, which is exactly the
--   partial index orders_to_poll (WHERE upload_state = 'sent' AND finished = 0), so finished orders are never
--   scanned; each of those is checked against the suppressions' primary key (phone first). A narrower partial
--   index (also without the stopped orders) would cost a write on every upload and every finish for the rare
--   stopped-but-unfinished order.
-- * call_intents_by_id, call_intents_by_name: Store::opt_out_calls finds the calls that carried an opt-out intent
--   (by ID or by name) from the intents themselves, so its cost follows the opt-outs, not every call of the
--   campaign; the OR of the two is answered from both indexes.
CREATE INDEX orders_by_phone ON orders (phone);
CREATE INDEX call_intents_by_id ON call_intents (intent_id);
CREATE INDEX call_intents_by_name ON call_intents (intent_name);
