-- campaignd store, SQLite backend: the report views read rollups kept as the facts are written, so a report,
-- `status` and a dashboard cost the same at a thousand orders and at ten million. PostgreSQL keeps the same rollups
-- (its migration 14 says what each one counts) with statement triggers; SQLite with row triggers, in the transaction
-- that writes the fact. SQLite has one writer, so every rollup row is shard 0 and "distinct orders per day" is read
-- from the order's other calls of that day.
--
-- The views keep their names and columns; the previous definitions, which aggregate the raw tables, stay as
-- report_*_raw for checking and drill-down. The rows already stored are counted when the store is next opened
-- (Store::rebuild_rollups, asked for by the row in store_maintenance below).

ALTER TABLE orders ADD COLUMN last_call_day TEXT;
ALTER TABLE orders ADD COLUMN answered_started INTEGER NOT NULL DEFAULT 0 CHECK (answered_started IN (0, 1));

ALTER TABLE order_outcomes ADD COLUMN started INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN answered_started INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN calls_answered INTEGER NOT NULL DEFAULT 0;

CREATE TABLE call_rollups (
    user_task_id    TEXT NOT NULL,
    day             TEXT NOT NULL,
    shard           INTEGER NOT NULL,
    campaign_id     TEXT NOT NULL,
    calls           INTEGER NOT NULL DEFAULT 0,
    calls_answered  INTEGER NOT NULL DEFAULT 0,
    talk_calls      INTEGER NOT NULL DEFAULT 0,
    talk_secs       INTEGER NOT NULL DEFAULT 0,
    orders_dialled  INTEGER NOT NULL DEFAULT 0,
    orders_answered INTEGER NOT NULL DEFAULT 0,
    orders_finished INTEGER NOT NULL DEFAULT 0,
    sms_sent        INTEGER NOT NULL DEFAULT 0,
    first_call_at   TEXT,
    last_call_at    TEXT,
    PRIMARY KEY (user_task_id, day, shard)
);
CREATE INDEX call_rollups_by_campaign ON call_rollups (campaign_id, day);

CREATE TABLE call_status_rollups (
    user_task_id TEXT NOT NULL,
    day          TEXT NOT NULL,
    call_status  INTEGER NOT NULL,
    shard        INTEGER NOT NULL,
    campaign_id  TEXT NOT NULL,
    calls        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, call_status, shard)
);
CREATE INDEX call_status_rollups_by_campaign ON call_status_rollups (campaign_id, day);

CREATE TABLE talk_rollups (
    user_task_id TEXT NOT NULL,
    day          TEXT NOT NULL,
    talk_secs    INTEGER NOT NULL,
    shard        INTEGER NOT NULL,
    campaign_id  TEXT NOT NULL,
    calls        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, talk_secs, shard)
);
CREATE INDEX talk_rollups_by_campaign ON talk_rollups (campaign_id, day);

CREATE TABLE intent_rollups (
    user_task_id TEXT NOT NULL,
    day          TEXT NOT NULL,
    intent       TEXT NOT NULL,
    shard        INTEGER NOT NULL,
    campaign_id  TEXT NOT NULL,
    calls        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, intent, shard)
);
CREATE INDEX intent_rollups_by_campaign ON intent_rollups (campaign_id, day);

-- Work the store does when it is next opened (name: what; see SqliteStore::open).
CREATE TABLE IF NOT EXISTS store_maintenance (name TEXT PRIMARY KEY);
INSERT OR IGNORE INTO store_maintenance (name) VALUES ('rebuild_rollups');

-- ---- orders: outcome counts (migration 11) with the started flags, and finished orders by the day of their latest
-- started call.
DROP TRIGGER order_outcomes_on_insert;
DROP TRIGGER order_outcomes_on_update;
DROP TRIGGER order_outcomes_on_delete;

CREATE TRIGGER order_outcomes_on_insert AFTER INSERT ON orders
WHEN NEW.finished = 1 OR NEW.dialled = 1 OR NEW.answered = 1 OR NEW.last_call_day IS NOT NULL OR NEW.answered_started = 1
  OR COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    INSERT OR IGNORE INTO order_outcomes (user_task_id, shard, campaign_id) VALUES (NEW.user_task_id, 0, NEW.campaign_id);
    UPDATE order_outcomes SET
        suppressed = suppressed + COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled + NEW.dialled, answered = answered + NEW.answered, finished = finished + NEW.finished,
        started = started + (NEW.last_call_day IS NOT NULL), answered_started = answered_started + NEW.answered_started
    WHERE user_task_id = NEW.user_task_id AND shard = 0;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT NEW.user_task_id, NEW.last_call_day, 0, NEW.campaign_id, 1
    WHERE NEW.finished = 1 AND NEW.last_call_day IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished + 1;
END;

CREATE TRIGGER order_outcomes_on_update
AFTER UPDATE OF finished, dialled, answered, upload_state, reject_reason, last_call_day, answered_started ON orders
WHEN OLD.finished <> NEW.finished OR OLD.dialled <> NEW.dialled OR OLD.answered <> NEW.answered
  OR OLD.last_call_day IS NOT NEW.last_call_day OR OLD.answered_started <> NEW.answered_started
  OR COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0)
     <> COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    INSERT OR IGNORE INTO order_outcomes (user_task_id, shard, campaign_id) VALUES (NEW.user_task_id, 0, NEW.campaign_id);
    UPDATE order_outcomes SET
        suppressed = suppressed
            + COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
            - COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled + NEW.dialled - OLD.dialled,
        answered = answered + NEW.answered - OLD.answered,
        finished = finished + NEW.finished - OLD.finished,
        started = started + (NEW.last_call_day IS NOT NULL) - (OLD.last_call_day IS NOT NULL),
        answered_started = answered_started + NEW.answered_started - OLD.answered_started
    WHERE user_task_id = NEW.user_task_id AND shard = 0;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT OLD.user_task_id, OLD.last_call_day, 0, OLD.campaign_id, -1
    WHERE OLD.finished = 1 AND OLD.last_call_day IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished - 1;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT NEW.user_task_id, NEW.last_call_day, 0, NEW.campaign_id, 1
    WHERE NEW.finished = 1 AND NEW.last_call_day IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished + 1;
END;

CREATE TRIGGER order_outcomes_on_delete AFTER DELETE ON orders
WHEN OLD.finished = 1 OR OLD.dialled = 1 OR OLD.answered = 1 OR OLD.last_call_day IS NOT NULL OR OLD.answered_started = 1
  OR COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    UPDATE order_outcomes SET
        suppressed = suppressed - COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled - OLD.dialled, answered = answered - OLD.answered, finished = finished - OLD.finished,
        started = started - (OLD.last_call_day IS NOT NULL), answered_started = answered_started - OLD.answered_started
    WHERE user_task_id = OLD.user_task_id AND shard = 0;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT OLD.user_task_id, OLD.last_call_day, 0, OLD.campaign_id, -1
    WHERE OLD.finished = 1 AND OLD.last_call_day IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished - 1;
END;

-- ---- calls: each row's counts added when it is written, and taken away (as it was) when it changes.
CREATE TRIGGER calls_rollup_on_insert AFTER INSERT ON calls
BEGIN
    INSERT INTO order_outcomes (user_task_id, shard, campaign_id, calls, calls_answered)
    SELECT user_task_id, 0, campaign_id, 1, (NEW.call_status = 6) FROM orders WHERE order_id = NEW.order_id
    ON CONFLICT (user_task_id, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                              orders_dialled, orders_answered, first_call_at, last_call_at)
    SELECT o.user_task_id, date(NEW.started_at), 0, o.campaign_id, 1, (NEW.call_status = 6),
           (NEW.call_status = 6 AND NEW.talk_secs IS NOT NULL),
           CASE WHEN NEW.call_status = 6 THEN COALESCE(NEW.talk_secs, 0) ELSE 0 END,
           1 - EXISTS (SELECT 1 FROM calls c WHERE c.order_id = NEW.order_id AND date(c.started_at) = date(NEW.started_at) AND c.call_id <> NEW.call_id),
           CASE WHEN NEW.call_status = 6 THEN 1 - EXISTS (SELECT 1 FROM calls c WHERE c.order_id = NEW.order_id AND date(c.started_at) = date(NEW.started_at) AND c.call_id <> NEW.call_id AND c.call_status = 6) ELSE 0 END,
           NEW.started_at, NEW.started_at
    FROM orders o WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered,
        talk_calls = talk_calls + excluded.talk_calls, talk_secs = talk_secs + excluded.talk_secs,
        orders_dialled = orders_dialled + excluded.orders_dialled,
        orders_answered = orders_answered + excluded.orders_answered,
        first_call_at = min(COALESCE(first_call_at, excluded.first_call_at), COALESCE(excluded.first_call_at, first_call_at)),
        last_call_at = max(COALESCE(last_call_at, excluded.last_call_at), COALESCE(excluded.last_call_at, last_call_at));
    INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
    SELECT o.user_task_id, date(NEW.started_at), NEW.call_status, 0, o.campaign_id, 1
    FROM orders o WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, call_status, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
    SELECT o.user_task_id, date(NEW.started_at), NEW.talk_secs, 0, o.campaign_id, 1
    FROM orders o
    WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL AND NEW.call_status = 6 AND NEW.talk_secs IS NOT NULL
    ON CONFLICT (user_task_id, day, talk_secs, shard) DO UPDATE SET calls = calls + excluded.calls;
END;

CREATE TRIGGER calls_rollup_on_update AFTER UPDATE OF order_id, call_status, started_at, talk_secs ON calls
WHEN OLD.order_id IS NOT NEW.order_id OR OLD.call_status IS NOT NEW.call_status
  OR OLD.started_at IS NOT NEW.started_at OR OLD.talk_secs IS NOT NEW.talk_secs
BEGIN
    INSERT INTO order_outcomes (user_task_id, shard, campaign_id, calls, calls_answered)
    SELECT user_task_id, 0, campaign_id, -1, -(OLD.call_status = 6) FROM orders WHERE order_id = OLD.order_id
    ON CONFLICT (user_task_id, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                              orders_dialled, orders_answered, first_call_at, last_call_at)
    SELECT o.user_task_id, date(OLD.started_at), 0, o.campaign_id, -1, -(OLD.call_status = 6),
           -(OLD.call_status = 6 AND OLD.talk_secs IS NOT NULL),
           CASE WHEN OLD.call_status = 6 THEN -COALESCE(OLD.talk_secs, 0) ELSE 0 END,
           EXISTS (SELECT 1 FROM calls c WHERE c.order_id = OLD.order_id AND date(c.started_at) = date(OLD.started_at)) - 1,
           CASE WHEN OLD.call_status = 6 THEN EXISTS (SELECT 1 FROM calls c WHERE c.order_id = OLD.order_id AND date(c.started_at) = date(OLD.started_at) AND c.call_status = 6) - 1 ELSE 0 END,
           NULL, NULL
    FROM orders o WHERE o.order_id = OLD.order_id AND OLD.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered,
        talk_calls = talk_calls + excluded.talk_calls, talk_secs = talk_secs + excluded.talk_secs,
        orders_dialled = orders_dialled + excluded.orders_dialled,
        orders_answered = orders_answered + excluded.orders_answered,
        first_call_at = min(COALESCE(first_call_at, excluded.first_call_at), COALESCE(excluded.first_call_at, first_call_at)),
        last_call_at = max(COALESCE(last_call_at, excluded.last_call_at), COALESCE(excluded.last_call_at, last_call_at));
    INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
    SELECT o.user_task_id, date(OLD.started_at), OLD.call_status, 0, o.campaign_id, -1
    FROM orders o WHERE o.order_id = OLD.order_id AND OLD.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, call_status, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
    SELECT o.user_task_id, date(OLD.started_at), OLD.talk_secs, 0, o.campaign_id, -1
    FROM orders o
    WHERE o.order_id = OLD.order_id AND OLD.started_at IS NOT NULL AND OLD.call_status = 6 AND OLD.talk_secs IS NOT NULL
    ON CONFLICT (user_task_id, day, talk_secs, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO order_outcomes (user_task_id, shard, campaign_id, calls, calls_answered)
    SELECT user_task_id, 0, campaign_id, 1, (NEW.call_status = 6) FROM orders WHERE order_id = NEW.order_id
    ON CONFLICT (user_task_id, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                              orders_dialled, orders_answered, first_call_at, last_call_at)
    SELECT o.user_task_id, date(NEW.started_at), 0, o.campaign_id, 1, (NEW.call_status = 6),
           (NEW.call_status = 6 AND NEW.talk_secs IS NOT NULL),
           CASE WHEN NEW.call_status = 6 THEN COALESCE(NEW.talk_secs, 0) ELSE 0 END,
           1 - (EXISTS (SELECT 1 FROM calls c WHERE c.order_id = NEW.order_id AND date(c.started_at) = date(NEW.started_at) AND c.call_id <> NEW.call_id) OR (OLD.started_at IS NOT NULL AND OLD.order_id = NEW.order_id AND date(OLD.started_at) = date(NEW.started_at))),
           CASE WHEN NEW.call_status = 6 THEN 1 - (EXISTS (SELECT 1 FROM calls c WHERE c.order_id = NEW.order_id AND date(c.started_at) = date(NEW.started_at) AND c.call_id <> NEW.call_id AND c.call_status = 6) OR ((OLD.started_at IS NOT NULL AND OLD.order_id = NEW.order_id AND date(OLD.started_at) = date(NEW.started_at)) AND OLD.call_status = 6)) ELSE 0 END,
           NEW.started_at, NEW.started_at
    FROM orders o WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
        calls = calls + excluded.calls, calls_answered = calls_answered + excluded.calls_answered,
        talk_calls = talk_calls + excluded.talk_calls, talk_secs = talk_secs + excluded.talk_secs,
        orders_dialled = orders_dialled + excluded.orders_dialled,
        orders_answered = orders_answered + excluded.orders_answered,
        first_call_at = min(COALESCE(first_call_at, excluded.first_call_at), COALESCE(excluded.first_call_at, first_call_at)),
        last_call_at = max(COALESCE(last_call_at, excluded.last_call_at), COALESCE(excluded.last_call_at, last_call_at));
    INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
    SELECT o.user_task_id, date(NEW.started_at), NEW.call_status, 0, o.campaign_id, 1
    FROM orders o WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL
    ON CONFLICT (user_task_id, day, call_status, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
    SELECT o.user_task_id, date(NEW.started_at), NEW.talk_secs, 0, o.campaign_id, 1
    FROM orders o
    WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL AND NEW.call_status = 6 AND NEW.talk_secs IS NOT NULL
    ON CONFLICT (user_task_id, day, talk_secs, shard) DO UPDATE SET calls = calls + excluded.calls;
    -- A call whose task or day changed takes its SMS and intents with it.
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(OLD.started_at), 0, o.campaign_id, -COUNT(*)
    FROM orders o JOIN call_sms s ON s.call_id = OLD.call_id
    WHERE o.order_id = OLD.order_id AND OLD.started_at IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
      AND ((SELECT user_task_id FROM orders WHERE order_id = OLD.order_id), date(OLD.started_at)) IS NOT ((SELECT user_task_id FROM orders WHERE order_id = NEW.order_id), date(NEW.started_at))
    GROUP BY o.user_task_id
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(NEW.started_at), 0, o.campaign_id, COUNT(*)
    FROM orders o JOIN call_sms s ON s.call_id = NEW.call_id
    WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
      AND ((SELECT user_task_id FROM orders WHERE order_id = OLD.order_id), date(OLD.started_at)) IS NOT ((SELECT user_task_id FROM orders WHERE order_id = NEW.order_id), date(NEW.started_at))
    GROUP BY o.user_task_id
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT DISTINCT o.user_task_id, date(OLD.started_at), COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id), 0, o.campaign_id, -1
    FROM orders o JOIN call_intents i ON i.call_id = OLD.call_id
    WHERE o.order_id = OLD.order_id AND OLD.started_at IS NOT NULL AND ((SELECT user_task_id FROM orders WHERE order_id = OLD.order_id), date(OLD.started_at)) IS NOT ((SELECT user_task_id FROM orders WHERE order_id = NEW.order_id), date(NEW.started_at))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT DISTINCT o.user_task_id, date(NEW.started_at), COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id), 0, o.campaign_id, 1
    FROM orders o JOIN call_intents i ON i.call_id = NEW.call_id
    WHERE o.order_id = NEW.order_id AND NEW.started_at IS NOT NULL AND ((SELECT user_task_id FROM orders WHERE order_id = OLD.order_id), date(OLD.started_at)) IS NOT ((SELECT user_task_id FROM orders WHERE order_id = NEW.order_id), date(NEW.started_at))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
    -- A start that moved can narrow its old day's first and last call (never in practice): read them again.
    UPDATE call_rollups SET
        first_call_at = (SELECT MIN(c.started_at) FROM orders x JOIN calls c ON c.order_id = x.order_id
                         WHERE x.user_task_id = call_rollups.user_task_id AND date(c.started_at) = call_rollups.day),
        last_call_at = (SELECT MAX(c.started_at) FROM orders x JOIN calls c ON c.order_id = x.order_id
                        WHERE x.user_task_id = call_rollups.user_task_id AND date(c.started_at) = call_rollups.day)
    WHERE OLD.started_at IS NOT NULL AND (OLD.started_at IS NOT NEW.started_at OR OLD.order_id <> NEW.order_id)
      AND user_task_id = (SELECT user_task_id FROM orders WHERE order_id = OLD.order_id)
      AND day = date(OLD.started_at) AND shard = 0;
END;

-- ---- call_intents: a call counts once per intent label, whatever rows carry it.
CREATE TRIGGER intents_rollup_on_insert AFTER INSERT ON call_intents
BEGIN
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, date(c.started_at), COALESCE(NULLIF(NEW.intent_name, ''), NULLIF(NEW.intent_tag, ''), NEW.intent_id), 0, o.campaign_id, 1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = NEW.call_id AND c.started_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM call_intents x WHERE x.call_id = NEW.call_id AND x.position <> NEW.position AND COALESCE(NULLIF(x.intent_name, ''), NULLIF(x.intent_tag, ''), x.intent_id) = COALESCE(NULLIF(NEW.intent_name, ''), NULLIF(NEW.intent_tag, ''), NEW.intent_id))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
END;

CREATE TRIGGER intents_rollup_on_delete AFTER DELETE ON call_intents
BEGIN
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, date(c.started_at), COALESCE(NULLIF(OLD.intent_name, ''), NULLIF(OLD.intent_tag, ''), OLD.intent_id), 0, o.campaign_id, -1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = OLD.call_id AND c.started_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM call_intents x WHERE x.call_id = OLD.call_id AND COALESCE(NULLIF(x.intent_name, ''), NULLIF(x.intent_tag, ''), x.intent_id) = COALESCE(NULLIF(OLD.intent_name, ''), NULLIF(OLD.intent_tag, ''), OLD.intent_id))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
END;

CREATE TRIGGER intents_rollup_on_update AFTER UPDATE ON call_intents
BEGIN
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, date(c.started_at), COALESCE(NULLIF(OLD.intent_name, ''), NULLIF(OLD.intent_tag, ''), OLD.intent_id), 0, o.campaign_id, -1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = OLD.call_id AND c.started_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM call_intents x WHERE x.call_id = OLD.call_id AND COALESCE(NULLIF(x.intent_name, ''), NULLIF(x.intent_tag, ''), x.intent_id) = COALESCE(NULLIF(OLD.intent_name, ''), NULLIF(OLD.intent_tag, ''), OLD.intent_id))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, date(c.started_at), COALESCE(NULLIF(NEW.intent_name, ''), NULLIF(NEW.intent_tag, ''), NEW.intent_id), 0, o.campaign_id, 1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = NEW.call_id AND c.started_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM call_intents x WHERE x.call_id = NEW.call_id AND x.position <> NEW.position AND COALESCE(NULLIF(x.intent_name, ''), NULLIF(x.intent_tag, ''), x.intent_id) = COALESCE(NULLIF(NEW.intent_name, ''), NULLIF(NEW.intent_tag, ''), NEW.intent_id))
      AND NOT (OLD.call_id = NEW.call_id AND COALESCE(NULLIF(OLD.intent_name, ''), NULLIF(OLD.intent_tag, ''), OLD.intent_id) = COALESCE(NULLIF(NEW.intent_name, ''), NULLIF(NEW.intent_tag, ''), NEW.intent_id))
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = calls + excluded.calls;
END;

-- ---- call_sms: SMS sent (status not 0 "not sent" or 3 "failed") by the day of their call.
CREATE TRIGGER sms_rollup_on_insert AFTER INSERT ON call_sms
BEGIN
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(c.started_at), 0, o.campaign_id, 1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = NEW.call_id AND c.started_at IS NOT NULL AND (NEW.status IS NULL OR NEW.status NOT IN (0, 3))
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
END;

CREATE TRIGGER sms_rollup_on_delete AFTER DELETE ON call_sms
BEGIN
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(c.started_at), 0, o.campaign_id, -1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = OLD.call_id AND c.started_at IS NOT NULL AND (OLD.status IS NULL OR OLD.status NOT IN (0, 3))
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
END;

CREATE TRIGGER sms_rollup_on_update AFTER UPDATE ON call_sms
BEGIN
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(c.started_at), 0, o.campaign_id, -1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = OLD.call_id AND c.started_at IS NOT NULL AND (OLD.status IS NULL OR OLD.status NOT IN (0, 3))
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, date(c.started_at), 0, o.campaign_id, 1
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.call_id = NEW.call_id AND c.started_at IS NOT NULL AND (NEW.status IS NULL OR NEW.status NOT IN (0, 3))
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = sms_sent + excluded.sms_sent;
END;

-- ---- The views: the same names and columns, read from the rollups. The raw definitions stay as report_*_raw.
DROP VIEW report_zone_groups;
DROP VIEW report_rounds;
DROP VIEW report_intents;
DROP VIEW report_call_status;
DROP VIEW report_campaign_totals;
DROP VIEW report_campaign_daily;

CREATE VIEW report_campaign_daily_raw AS
WITH per_day AS (
    SELECT campaign_id, day,
           COUNT(DISTINCT order_id)                                  AS orders_dialled,
           COUNT(DISTINCT CASE WHEN answered = 1 THEN order_id END) AS orders_answered,
           COUNT(*)                                                  AS calls,
           SUM(answered)                                             AS calls_answered,
           AVG(CASE WHEN answered = 1 THEN talk_secs END)            AS avg_talk_secs
    FROM report_calls
    GROUP BY campaign_id, day
),
talk AS (
    SELECT campaign_id, day, talk_secs,
           ROW_NUMBER() OVER (PARTITION BY campaign_id, day ORDER BY talk_secs) AS rn,
           COUNT(*) OVER (PARTITION BY campaign_id, day)                        AS n
    FROM report_calls
    WHERE answered = 1 AND talk_secs IS NOT NULL
),
p90 AS (
    -- nearest rank: the smallest value with at least 90% of the values at or below it
    SELECT campaign_id, day, MIN(talk_secs) AS p90_talk_secs
    FROM talk
    WHERE rn * 10 >= n * 9
    GROUP BY campaign_id, day
),
latest AS (
    SELECT order_id, campaign_id, day,
           ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY started_at DESC, call_id DESC) AS rn
    FROM report_calls
),
finished AS (
    SELECT l.campaign_id, l.day, COUNT(*) AS orders_finished
    FROM latest l
    JOIN orders o ON o.order_id = l.order_id
    WHERE l.rn = 1 AND o.finished = 1
    GROUP BY l.campaign_id, l.day
),
totals AS (
    SELECT campaign_id, COUNT(*) AS orders_total FROM orders GROUP BY campaign_id
),
sms AS (
    SELECT rc.campaign_id, rc.day, COUNT(*) AS sms_sent
    FROM call_sms s
    JOIN report_calls rc ON rc.call_id = s.call_id
    WHERE s.status IS NULL OR s.status NOT IN (0, 3)
    GROUP BY rc.campaign_id, rc.day
)
SELECT d.campaign_id,
       d.day,
       COALESCE(t.orders_total, 0)                                    AS orders_total,
       d.orders_dialled,
       d.orders_answered,
       COALESCE(f.orders_finished, 0)                                 AS orders_finished,
       d.calls,
       d.calls_answered,
       CAST(d.calls_answered AS REAL) / NULLIF(d.calls, 0)            AS answer_rate,
       CAST(COALESCE(f.orders_finished, 0) AS REAL) / NULLIF(t.orders_total, 0) AS finish_rate,
       d.avg_talk_secs,
       p.p90_talk_secs,
       COALESCE(s.sms_sent, 0)                                        AS sms_sent
FROM per_day d
LEFT JOIN totals t ON t.campaign_id = d.campaign_id
LEFT JOIN finished f ON f.campaign_id = d.campaign_id AND f.day = d.day
LEFT JOIN p90 p ON p.campaign_id = d.campaign_id AND p.day = d.day
LEFT JOIN sms s ON s.campaign_id = d.campaign_id AND s.day = d.day;

CREATE VIEW report_campaign_totals_raw AS
WITH o AS (
    SELECT campaign_id, COUNT(*) AS orders_total, SUM(finished) AS orders_finished
    FROM orders
    GROUP BY campaign_id
),
c AS (
    SELECT campaign_id,
           COUNT(DISTINCT order_id)                                  AS orders_dialled,
           COUNT(DISTINCT CASE WHEN answered = 1 THEN order_id END) AS orders_answered,
           COUNT(*)                                                  AS calls,
           SUM(answered)                                             AS calls_answered,
           AVG(CASE WHEN answered = 1 THEN talk_secs END)            AS avg_talk_secs,
           MIN(started_at)                                           AS first_call_at,
           MAX(started_at)                                           AS last_call_at
    FROM report_calls
    GROUP BY campaign_id
),
talk AS (
    SELECT campaign_id, talk_secs,
           ROW_NUMBER() OVER (PARTITION BY campaign_id ORDER BY talk_secs) AS rn,
           COUNT(*) OVER (PARTITION BY campaign_id)                        AS n
    FROM report_calls
    WHERE answered = 1 AND talk_secs IS NOT NULL
),
p90 AS (
    SELECT campaign_id, MIN(talk_secs) AS p90_talk_secs FROM talk WHERE rn * 10 >= n * 9 GROUP BY campaign_id
),
sms AS (
    SELECT rc.campaign_id, COUNT(*) AS sms_sent
    FROM call_sms s
    JOIN report_calls rc ON rc.call_id = s.call_id
    WHERE s.status IS NULL OR s.status NOT IN (0, 3)
    GROUP BY rc.campaign_id
)
SELECT o.campaign_id,
       o.orders_total,
       COALESCE(c.orders_dialled, 0)                                   AS orders_dialled,
       COALESCE(c.orders_answered, 0)                                  AS orders_answered,
       o.orders_finished,
       COALESCE(c.calls, 0)                                            AS calls,
       COALESCE(c.calls_answered, 0)                                   AS calls_answered,
       CAST(c.calls_answered AS REAL) / NULLIF(c.calls, 0)             AS answer_rate,
       CAST(o.orders_finished AS REAL) / NULLIF(o.orders_total, 0)     AS finish_rate,
       c.avg_talk_secs,
       p.p90_talk_secs,
       COALESCE(s.sms_sent, 0)                                         AS sms_sent,
       c.first_call_at,
       c.last_call_at
FROM o
LEFT JOIN c ON c.campaign_id = o.campaign_id
LEFT JOIN p90 p ON p.campaign_id = o.campaign_id
LEFT JOIN sms s ON s.campaign_id = o.campaign_id;

CREATE VIEW report_call_status_raw AS
SELECT rc.campaign_id,
       rc.day,
       rc.call_status,
       COALESCE(n.status_name, 'unknown') AS status_name,
       COUNT(*)                           AS calls
FROM report_calls rc
LEFT JOIN call_status_names n ON n.call_status = rc.call_status
GROUP BY rc.campaign_id, rc.day, rc.call_status, n.status_name;

CREATE VIEW report_intents_raw AS
SELECT rc.campaign_id,
       rc.day,
       COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id) AS intent,
       COUNT(DISTINCT rc.call_id)                                                 AS calls
FROM call_intents i
JOIN report_calls rc ON rc.call_id = i.call_id
GROUP BY rc.campaign_id, rc.day, COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id);

CREATE VIEW report_rounds_raw AS
SELECT t.campaign_id,
       t.generation,
       CASE WHEN t.generation >= 100000 THEN t.generation % 100000 END                     AS round,
       t.user_task_id,
       (SELECT COUNT(*) FROM orders o WHERE o.user_task_id = t.user_task_id)                AS orders_total,
       (SELECT COUNT(*) FROM orders o WHERE o.user_task_id = t.user_task_id AND o.finished = 1)   AS orders_finished,
       (SELECT COUNT(*) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS calls,
       (SELECT COUNT(*) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id AND c.call_status = 6)                        AS calls_answered,
       (SELECT MIN(c.started_at) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS first_call_at,
       (SELECT MAX(c.started_at) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS last_call_at
FROM tasks t;

CREATE VIEW report_zone_groups_raw AS
SELECT r.campaign_id,
       r.generation,
       r.user_task_id,
       g.zone_group,
       r.orders_total,
       r.orders_finished,
       r.calls,
       r.calls_answered,
       r.first_call_at,
       r.last_call_at
FROM report_rounds_raw r
JOIN task_zone_groups g ON g.user_task_id = r.user_task_id
WHERE (SELECT COUNT(*) FROM task_zone_groups x WHERE x.user_task_id = r.user_task_id) = 1;

-- Orders of each campaign: the upload-state tallies of its tasks.
CREATE VIEW campaign_order_totals AS
SELECT u.campaign_id, SUM(t.planned + t.sending + t.sent + t.rejected) AS orders_total
FROM (SELECT DISTINCT user_task_id, campaign_id FROM order_outcomes) u
JOIN order_tallies t ON t.user_task_id = u.user_task_id
GROUP BY u.campaign_id;

-- The p90 of talk seconds, nearest rank, from the histogram: the smallest value with at least 90% of the values at
-- or below it.
CREATE VIEW report_campaign_daily AS
WITH d AS (
    SELECT campaign_id, day, SUM(calls) AS calls, SUM(calls_answered) AS calls_answered, SUM(talk_calls) AS talk_calls,
           SUM(talk_secs) AS talk_secs, SUM(orders_dialled) AS orders_dialled, SUM(orders_answered) AS orders_answered,
           SUM(orders_finished) AS orders_finished, SUM(sms_sent) AS sms_sent
    FROM call_rollups
    GROUP BY campaign_id, day
),
h AS (
    SELECT campaign_id, day, talk_secs,
           SUM(SUM(calls)) OVER (PARTITION BY campaign_id, day ORDER BY talk_secs) AS below,
           SUM(SUM(calls)) OVER (PARTITION BY campaign_id, day)                    AS n
    FROM talk_rollups
    GROUP BY campaign_id, day, talk_secs
    HAVING SUM(calls) <> 0
),
p90 AS (
    SELECT campaign_id, day, MIN(talk_secs) AS p90_talk_secs FROM h WHERE below * 10 >= n * 9 GROUP BY campaign_id, day
)
SELECT d.campaign_id,
       d.day,
       COALESCE(t.orders_total, 0)                                     AS orders_total,
       d.orders_dialled,
       d.orders_answered,
       d.orders_finished,
       d.calls,
       d.calls_answered,
       CAST(d.calls_answered AS REAL) / NULLIF(d.calls, 0)             AS answer_rate,
       CAST(d.orders_finished AS REAL) / NULLIF(t.orders_total, 0)     AS finish_rate,
       CAST(d.talk_secs AS REAL) / NULLIF(d.talk_calls, 0)             AS avg_talk_secs,
       p.p90_talk_secs,
       d.sms_sent
FROM d
LEFT JOIN campaign_order_totals t ON t.campaign_id = d.campaign_id
LEFT JOIN p90 p ON p.campaign_id = d.campaign_id AND p.day = d.day
WHERE d.calls <> 0;

CREATE VIEW report_campaign_totals AS
WITH o AS (
    SELECT campaign_id, SUM(finished) AS orders_finished, SUM(started) AS orders_dialled,
           SUM(answered_started) AS orders_answered
    FROM order_outcomes GROUP BY campaign_id
),
c AS (
    SELECT campaign_id, SUM(calls) AS calls, SUM(calls_answered) AS calls_answered, SUM(talk_calls) AS talk_calls,
           SUM(talk_secs) AS talk_secs, SUM(sms_sent) AS sms_sent, MIN(first_call_at) AS first_call_at,
           MAX(last_call_at) AS last_call_at
    FROM call_rollups GROUP BY campaign_id
),
h AS (
    SELECT campaign_id, talk_secs,
           SUM(SUM(calls)) OVER (PARTITION BY campaign_id ORDER BY talk_secs) AS below,
           SUM(SUM(calls)) OVER (PARTITION BY campaign_id)                    AS n
    FROM talk_rollups
    GROUP BY campaign_id, talk_secs
    HAVING SUM(calls) <> 0
),
p90 AS (
    SELECT campaign_id, MIN(talk_secs) AS p90_talk_secs FROM h WHERE below * 10 >= n * 9 GROUP BY campaign_id
)
SELECT t.campaign_id,
       t.orders_total,
       COALESCE(o.orders_dialled, 0)                                   AS orders_dialled,
       COALESCE(o.orders_answered, 0)                                  AS orders_answered,
       COALESCE(o.orders_finished, 0)                                  AS orders_finished,
       COALESCE(c.calls, 0)                                            AS calls,
       COALESCE(c.calls_answered, 0)                                   AS calls_answered,
       CAST(c.calls_answered AS REAL) / NULLIF(c.calls, 0)             AS answer_rate,
       CAST(COALESCE(o.orders_finished, 0) AS REAL) / NULLIF(t.orders_total, 0) AS finish_rate,
       CAST(c.talk_secs AS REAL) / NULLIF(c.talk_calls, 0)             AS avg_talk_secs,
       p.p90_talk_secs,
       COALESCE(c.sms_sent, 0)                                         AS sms_sent,
       c.first_call_at,
       c.last_call_at
FROM campaign_order_totals t
LEFT JOIN o ON o.campaign_id = t.campaign_id
LEFT JOIN c ON c.campaign_id = t.campaign_id
LEFT JOIN p90 p ON p.campaign_id = t.campaign_id
WHERE t.orders_total > 0;

CREATE VIEW report_call_status AS
SELECT r.campaign_id,
       r.day,
       r.call_status,
       COALESCE(n.status_name, 'unknown') AS status_name,
       SUM(r.calls)                       AS calls
FROM call_status_rollups r
LEFT JOIN call_status_names n ON n.call_status = r.call_status
GROUP BY r.campaign_id, r.day, r.call_status, n.status_name
HAVING SUM(r.calls) <> 0;

CREATE VIEW report_intents AS
SELECT campaign_id, day, intent, SUM(calls) AS calls
FROM intent_rollups
GROUP BY campaign_id, day, intent
HAVING SUM(calls) <> 0;

CREATE VIEW report_rounds AS
SELECT t.campaign_id,
       t.generation,
       CASE WHEN t.generation >= 100000 THEN t.generation % 100000 END                        AS round,
       t.user_task_id,
       COALESCE((SELECT ot.planned + ot.sending + ot.sent + ot.rejected FROM order_tallies ot
                 WHERE ot.user_task_id = t.user_task_id), 0)                                 AS orders_total,
       COALESCE((SELECT SUM(finished) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0)
                                                                                               AS orders_finished,
       COALESCE((SELECT SUM(calls) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0) AS calls,
       COALESCE((SELECT SUM(calls_answered) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0)
                                                                                               AS calls_answered,
       (SELECT MIN(first_call_at) FROM call_rollups r WHERE r.user_task_id = t.user_task_id)  AS first_call_at,
       (SELECT MAX(last_call_at) FROM call_rollups r WHERE r.user_task_id = t.user_task_id)   AS last_call_at
FROM tasks t;

CREATE VIEW report_zone_groups AS
SELECT r.campaign_id,
       r.generation,
       r.user_task_id,
       g.zone_group,
       r.orders_total,
       r.orders_finished,
       r.calls,
       r.calls_answered,
       r.first_call_at,
       r.last_call_at
FROM report_rounds r
JOIN task_zone_groups g ON g.user_task_id = r.user_task_id
WHERE (SELECT COUNT(*) FROM task_zone_groups x WHERE x.user_task_id = r.user_task_id) = 1;

-- report_rejected counts the orders never uploaded: this index holds only those, so the view reads them alone.
CREATE INDEX orders_rejected ON orders (campaign_id, reject_reason) WHERE upload_state = 'rejected';
