-- campaignd store, SQLite backend: retry rounds. A contact may have several orders in one task, one per attempt
-- (1 for the first); the unique key becomes (user_task_id, phone, attempt), so a phone is still planned at most once
-- per task and attempt. PostgreSQL makes the same change in place.
--
-- SQLite cannot drop a table's inline UNIQUE constraint, so the table is rebuilt: create the new shape, copy every
-- row (each gets attempt 1), drop the old table, rename. The report views name `orders`; with legacy_alter_table
-- on, the rename neither rewrites nor re-checks them, and they read the new table by name afterwards. The indexes
-- went with the old table and are made again below.
PRAGMA legacy_alter_table = ON;

CREATE TABLE orders_attempts (
    order_id         TEXT PRIMARY KEY,      -- our globally unique orderID
    campaign_id      TEXT NOT NULL,
    user_task_id     TEXT NOT NULL,
    phone            TEXT NOT NULL,         -- country code + national number, digits only
    name             TEXT,
    customer         TEXT,
    other            TEXT,                  -- passthrough sent as `other`
    variables        TEXT NOT NULL DEFAULT '{}', -- script variables (JSON object)
    source_line      INTEGER NOT NULL,      -- line in the source file; also the upload order
    upload_state     TEXT NOT NULL DEFAULT 'planned'
                     CHECK (upload_state IN ('planned', 'sending', 'sent', 'rejected')),
    reject_reason    TEXT,
    state_changed_at TEXT,
    finished         INTEGER NOT NULL DEFAULT 0 CHECK (finished IN (0, 1)), -- never goes back to 0
    last_call_status INTEGER,               -- callStatus of the latest call by start time
    last_polled_at   TEXT,
    stop_state       TEXT CHECK (stop_state IN ('sending', 'stopped')),
    stopped_at       TEXT,
    attempt          INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1), -- the contact's attempt in its task
    UNIQUE (user_task_id, phone, attempt)   -- one order per phone, task (campaign + generation) and attempt
);
INSERT INTO orders_attempts (order_id, campaign_id, user_task_id, phone, name, customer, other, variables,
                             source_line, upload_state, reject_reason, state_changed_at, finished, last_call_status,
                             last_polled_at, stop_state, stopped_at, attempt)
SELECT order_id, campaign_id, user_task_id, phone, name, customer, other, variables, source_line, upload_state,
       reject_reason, state_changed_at, finished, last_call_status, last_polled_at, stop_state, stopped_at, 1
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_attempts RENAME TO orders;

PRAGMA legacy_alter_table = OFF;

CREATE INDEX orders_by_task_state ON orders (user_task_id, upload_state, source_line);
CREATE INDEX orders_to_poll ON orders (user_task_id, last_polled_at, order_id)
    WHERE upload_state = 'sent' AND finished = 0;
CREATE INDEX orders_by_phone ON orders (phone);
-- orders_to_retry: a task's finished attempts by their last call's status, so the look-up of attempts due to be
-- retried reads only the orders whose outcome a [retry] rule names (never the answered ones), not the whole task.
CREATE INDEX orders_to_retry ON orders (user_task_id, last_call_status) WHERE finished = 1 AND stop_state IS NULL;

-- Each contact's attempts and where the last one stands: one row per (task, phone). `attempts` is the number of the
-- last attempt planned; `outcome` is the last attempt's final call status by name once it is finished, else
-- `not uploaded` (rejected or suppressed, with `reject_reason`), `planned`, `uploading` or `in progress`.
CREATE VIEW report_attempts AS
SELECT l.campaign_id,
       l.user_task_id,
       l.phone,
       l.attempt                                                              AS attempts,
       l.order_id                                                             AS last_order_id,
       (SELECT COUNT(*) FROM orders a JOIN calls c ON c.order_id = a.order_id
        WHERE a.user_task_id = l.user_task_id AND a.phone = l.phone)          AS calls,
       l.last_call_status                                                     AS final_call_status,
       CASE WHEN l.upload_state = 'rejected' THEN 'not uploaded'
            WHEN l.upload_state = 'planned' THEN 'planned'
            WHEN l.upload_state = 'sending' THEN 'uploading'
            WHEN l.finished = 0 THEN 'in progress'
            ELSE COALESCE(n.status_name, 'finished') END                      AS outcome,
       l.reject_reason
FROM orders l
LEFT JOIN call_status_names n ON n.call_status = l.last_call_status
WHERE NOT EXISTS (SELECT 1 FROM orders m
                  WHERE m.user_task_id = l.user_task_id AND m.phone = l.phone AND m.attempt > l.attempt);
