-- campaignd store, PostgreSQL backend: suppression (do-not-call) lists and the stop outbox. SQLite has the same.
-- A number is suppressed while it has at least one entry that has not expired (expires_at NULL, or later than the
-- instant asked about). Phones are normalised exactly like orders.phone, so the two compare as they are.

-- source compares byte by byte (COLLATE "C"), as SQLite's text does: the entries read in the same order on both
-- backends, and the sources of a kind ('file:…') are one range of suppressions_by_source whatever the database's
-- locale (a linguistic collation may ignore the ':').
CREATE TABLE suppressions (
    phone      text NOT NULL,
    source     text COLLATE "C" NOT NULL,
    reason     text,
    expires_at timestamptz,
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (phone, source)
);
-- A source's entries (a file re-read, an unsuppress of one source) without a pass over every other source's.
CREATE INDEX suppressions_by_source ON suppressions (source, phone);
COMMENT ON TABLE suppressions IS 'Suppression (do-not-call) entries, one per phone and source. A number is suppressed while it has at least one entry that has not expired. The store checks it when it plans an order (which is then inserted rejected, reason ''suppressed: <reason, else source>'') and again in the transaction that claims each batch for upload; orders uploaded before are stopped (orders.stop_state).';
COMMENT ON COLUMN suppressions.phone IS 'Country code and national number, digits only: normalised exactly like orders.phone.';
COMMENT ON COLUMN suppressions.source IS 'Who listed the number: cli, file:<name> (a suppression file, replaced whole when re-read), opt_out:<campaign>:<callID> (the callee opted out in that call).';
COMMENT ON COLUMN suppressions.reason IS 'Why, when given; shown in the reject reason of the orders it suppresses (else the source is).';
COMMENT ON COLUMN suppressions.expires_at IS 'When the entry stops counting; NULL: never.';
COMMENT ON COLUMN suppressions.added_at IS 'When the entry was first added; an update of its reason or expiry keeps it.';

CREATE TABLE suppression_version (
    id      int PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO suppression_version (id, version) VALUES (1, 0);
COMMENT ON TABLE suppression_version IS 'One row: a number bumped in the same transaction as every change to suppressions, so a reader learns whether the set changed by reading one row. Every suppression write locks this row first, so they run one at a time.';

ALTER TABLE orders ADD COLUMN stop_state text CHECK (stop_state IN ('sending', 'stopped'));
ALTER TABLE orders ADD COLUMN stopped_at timestamptz;
COMMENT ON COLUMN orders.stop_state IS 'The stopOrder outbox of an order uploaded before its number was suppressed: sending (written before the request leaves; whether it applied is unknown), stopped (the platform acknowledged; final). NULL: never asked.';
COMMENT ON COLUMN orders.stopped_at IS 'When stop_state last changed.';
COMMENT ON COLUMN orders.reject_reason IS 'Why the order was rejected: the platform''s answer, or ''suppressed: <reason, else source>'' when its number was suppressed.';

-- Indexes.
-- * orders_by_phone: a phone's orders across campaigns and tasks (one phone's history). The unique
--   (user_task_id, phone) index cannot serve it: phone is its second column.
-- * No new index for Store::orders_to_stop: it reads the task's sent, unfinished orders, which is exactly the
--   partial index orders_to_poll (WHERE upload_state = 'sent' AND NOT finished), so finished orders are never
--   scanned; each of those is checked against the suppressions' primary key (phone first). A narrower partial
--   index (also without the stopped orders) would cost a write on every upload and every finish for the rare
--   stopped-but-unfinished order.
-- * call_intents_by_id, call_intents_by_name: Store::opt_out_calls finds the calls that carried an opt-out intent
--   (by ID or by name) from the intents themselves (a BitmapOr of the two), so its cost follows the opt-outs, not
--   every call of the campaign.
-- Built inside the migration's transaction (CREATE INDEX CONCURRENTLY cannot be): writes to orders and call_intents
-- wait while they build, once, at the upgrade.
CREATE INDEX orders_by_phone ON orders (phone);
CREATE INDEX call_intents_by_id ON call_intents (intent_id);
CREATE INDEX call_intents_by_name ON call_intents (intent_name);
COMMENT ON INDEX orders_by_phone IS 'A phone''s orders across campaigns and tasks.';
COMMENT ON INDEX call_intents_by_id IS 'Calls that carried an intent, by its ID (opt-outs).';
COMMENT ON INDEX call_intents_by_name IS 'Calls that carried an intent, by its name (opt-outs).';
