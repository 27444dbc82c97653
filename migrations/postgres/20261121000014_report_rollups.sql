-- campaignd store, PostgreSQL backend: the report views read rollups kept as the facts are written, so a report,
-- `status` and a dashboard cost the same at a thousand orders and at ten million. SQLite keeps the same rollups with
-- row triggers.
--
-- What is kept, per task (user_task_id) and UTC day of the call's start, in shards (each connection writes its own
-- shard, pg_backend_pid() % 32, so the callback writers and a poll never wait on one row; a reader sums them):
--   call_rollups         calls, calls answered (callStatus 6), the answered calls' talk seconds (count, sum), the
--                        orders dialled and answered that day (distinct orders), the orders finished whose latest
--                        started call is that day, SMS sent, and the first and last call start;
--   call_status_rollups  calls by callStatus;
--   talk_rollups         the answered calls by talk seconds (a histogram: the p90 is exact);
--   intent_rollups       calls by intent (name, else tag, else ID; a call counts once per intent).
-- order_outcomes (per task) also gains calls, calls answered (started or not: report_rounds), and the orders with a
-- started call and with an answered started call (report_campaign_totals).
--
-- Who writes them, in the transaction that writes the facts:
--   * statement triggers on calls (insert, update), call_intents and call_sms (insert, delete, update), over their
--     transition tables: one set-based statement per fact statement, not one function call per row;
--   * the row triggers on orders (order_outcomes_count, below), for finished orders by the day of their latest call.
-- "Distinct orders per day" is counted from the calls of the order on that day after the statement and the rows the
-- statement changed, so it stays exact when a poll and a callback report the same call in either order. The fact
-- writer locks the orders (in ID order) before it writes their calls, so two writers of one order's calls take
-- turns. Calls are never deleted by campaignd; after deleting raw rows by hand, run rebuild_report_rollups().
--
-- The views keep their names and columns; the previous definitions, which aggregate the raw tables, stay as
-- report_*_raw for checking and drill-down.

ALTER TABLE orders ADD COLUMN last_call_day date;
ALTER TABLE orders ADD COLUMN answered_started boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN orders.last_call_day IS 'UTC day of the start of the order''s latest started call (null: no call started). Set by the fact writes.';
COMMENT ON COLUMN orders.answered_started IS 'The order has a started call with callStatus 6. Set by the fact writes.';

ALTER TABLE order_outcomes ADD COLUMN started bigint NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN answered_started bigint NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN calls bigint NOT NULL DEFAULT 0;
ALTER TABLE order_outcomes ADD COLUMN calls_answered bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN order_outcomes.started IS 'Orders with a started call.';
COMMENT ON COLUMN order_outcomes.answered_started IS 'Orders with a started call of callStatus 6.';
COMMENT ON COLUMN order_outcomes.calls IS 'Calls of the task''s orders, started or not (kept by the triggers on calls).';
COMMENT ON COLUMN order_outcomes.calls_answered IS 'The same, callStatus 6.';

CREATE TABLE call_rollups (
    user_task_id    text NOT NULL,
    day             date NOT NULL,
    shard           integer NOT NULL,
    campaign_id     text NOT NULL,
    calls           bigint NOT NULL DEFAULT 0,
    calls_answered  bigint NOT NULL DEFAULT 0,
    talk_calls      bigint NOT NULL DEFAULT 0,
    talk_secs       bigint NOT NULL DEFAULT 0,
    orders_dialled  bigint NOT NULL DEFAULT 0,
    orders_answered bigint NOT NULL DEFAULT 0,
    orders_finished bigint NOT NULL DEFAULT 0,
    sms_sent        bigint NOT NULL DEFAULT 0,
    first_call_at   timestamptz,
    last_call_at    timestamptz,
    PRIMARY KEY (user_task_id, day, shard)
);
CREATE INDEX call_rollups_by_campaign ON call_rollups (campaign_id, day);
COMMENT ON TABLE call_rollups IS 'Per task, UTC day of call start and shard (sum the shards): calls, answered calls, talk seconds of answered calls (talk_calls of them have a duration), orders dialled and answered that day, orders finished whose latest started call is that day, SMS sent (status not 0 or 3), first and last call start (min and max over the shards).';

CREATE TABLE call_status_rollups (
    user_task_id text NOT NULL,
    day          date NOT NULL,
    call_status  bigint NOT NULL,
    shard        integer NOT NULL,
    campaign_id  text NOT NULL,
    calls        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, call_status, shard)
);
CREATE INDEX call_status_rollups_by_campaign ON call_status_rollups (campaign_id, day);
COMMENT ON TABLE call_status_rollups IS 'Per task, UTC day of call start, callStatus and shard: calls.';

CREATE TABLE talk_rollups (
    user_task_id text NOT NULL,
    day          date NOT NULL,
    talk_secs    bigint NOT NULL,
    shard        integer NOT NULL,
    campaign_id  text NOT NULL,
    calls        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, talk_secs, shard)
);
CREATE INDEX talk_rollups_by_campaign ON talk_rollups (campaign_id, day);
COMMENT ON TABLE talk_rollups IS 'Per task, UTC day of call start, talk seconds and shard: answered calls (a histogram, for the p90).';

CREATE TABLE intent_rollups (
    user_task_id text NOT NULL,
    day          date NOT NULL,
    intent       text NOT NULL,
    shard        integer NOT NULL,
    campaign_id  text NOT NULL,
    calls        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, day, intent, shard)
);
CREATE INDEX intent_rollups_by_campaign ON intent_rollups (campaign_id, day);
COMMENT ON TABLE intent_rollups IS 'Per task, UTC day of call start, intent (name, else tag, else ID) and shard: calls that carried it.';

-- The label report_intents groups by.
CREATE FUNCTION intent_label(name text, tag text, id text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(NULLIF(name, ''), NULLIF(tag, ''), id)
$$;

-- ---- orders: the outcome counts of migration 11, now with the started flags and finished orders by day.
CREATE OR REPLACE FUNCTION order_outcomes_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s integer := 0; d integer := 0; a integer := 0; f integer := 0; st integer := 0; ast integer := 0;
    ut text; campaign text; my_shard integer := pg_backend_pid() % 32;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        s := s + COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false)::int;
        d := d + NEW.dialled::int; a := a + NEW.answered::int; f := f + NEW.finished::int;
        st := st + (NEW.last_call_day IS NOT NULL)::int; ast := ast + NEW.answered_started::int;
        ut := NEW.user_task_id; campaign := NEW.campaign_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        s := s - COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false)::int;
        d := d - OLD.dialled::int; a := a - OLD.answered::int; f := f - OLD.finished::int;
        st := st - (OLD.last_call_day IS NOT NULL)::int; ast := ast - OLD.answered_started::int;
        ut := OLD.user_task_id; campaign := OLD.campaign_id;
    END IF;
    IF s <> 0 OR d <> 0 OR a <> 0 OR f <> 0 OR st <> 0 OR ast <> 0 THEN
        INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished, started,
                                    answered_started)
        VALUES (ut, my_shard, campaign, s, d, a, f, st, ast)
        ON CONFLICT (user_task_id, shard) DO UPDATE SET
            suppressed = order_outcomes.suppressed + excluded.suppressed,
            dialled = order_outcomes.dialled + excluded.dialled,
            answered = order_outcomes.answered + excluded.answered,
            finished = order_outcomes.finished + excluded.finished,
            started = order_outcomes.started + excluded.started,
            answered_started = order_outcomes.answered_started + excluded.answered_started;
    END IF;
    -- Finished orders by the day of their latest started call.
    IF TG_OP <> 'INSERT' AND OLD.finished AND OLD.last_call_day IS NOT NULL
       AND NOT (TG_OP = 'UPDATE' AND NEW.finished AND NEW.last_call_day IS NOT DISTINCT FROM OLD.last_call_day
                AND NEW.user_task_id = OLD.user_task_id) THEN
        INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
        VALUES (OLD.user_task_id, OLD.last_call_day, my_shard, OLD.campaign_id, -1)
        ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = call_rollups.orders_finished - 1;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.finished AND NEW.last_call_day IS NOT NULL
       AND NOT (TG_OP = 'UPDATE' AND OLD.finished AND OLD.last_call_day IS NOT DISTINCT FROM NEW.last_call_day
                AND NEW.user_task_id = OLD.user_task_id) THEN
        INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
        VALUES (NEW.user_task_id, NEW.last_call_day, my_shard, NEW.campaign_id, 1)
        ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = call_rollups.orders_finished + 1;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER order_outcomes_on_insert ON orders;
DROP TRIGGER order_outcomes_on_update ON orders;
DROP TRIGGER order_outcomes_on_delete ON orders;
CREATE TRIGGER order_outcomes_on_insert AFTER INSERT ON orders FOR EACH ROW
WHEN (NEW.finished OR NEW.dialled OR NEW.answered OR NEW.last_call_day IS NOT NULL OR NEW.answered_started
      OR COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();
CREATE TRIGGER order_outcomes_on_update
AFTER UPDATE OF finished, dialled, answered, upload_state, reject_reason, last_call_day, answered_started ON orders
FOR EACH ROW
WHEN (OLD.finished <> NEW.finished OR OLD.dialled <> NEW.dialled OR OLD.answered <> NEW.answered
      OR OLD.last_call_day IS DISTINCT FROM NEW.last_call_day OR OLD.answered_started <> NEW.answered_started
      OR COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false)
         <> COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();
CREATE TRIGGER order_outcomes_on_delete AFTER DELETE ON orders FOR EACH ROW
WHEN (OLD.finished OR OLD.dialled OR OLD.answered OR OLD.last_call_day IS NOT NULL OR OLD.answered_started
      OR COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();

-- ---- calls: one set-based pass per statement over the rows before (-1) and after (+1).
CREATE FUNCTION call_rollups_apply(old_rows calls[], new_rows calls[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 32;
    day_bounds record;
    written bigint;
BEGIN
    -- A row an update left as it was (a poll repeating a callback) cancels out here and costs nothing below.
    WITH ch AS (
        SELECT call_id, order_id, call_status, started_at, talk_secs, SUM(sign) AS sign
        FROM (
            SELECT -1 AS sign, r.call_id, r.order_id, r.call_status, r.started_at, r.talk_secs FROM unnest(old_rows) r
            UNION ALL
            SELECT 1, r.call_id, r.order_id, r.call_status, r.started_at, r.talk_secs FROM unnest(new_rows) r
        ) u
        GROUP BY call_id, order_id, call_status, started_at, talk_secs
        HAVING SUM(sign) <> 0
    ),
    k AS MATERIALIZED (
        SELECT ch.sign, ch.call_id, ch.order_id, o.user_task_id, o.campaign_id, ch.call_status, ch.talk_secs,
               ch.started_at, (ch.started_at AT TIME ZONE 'UTC')::date AS day
        FROM ch JOIN orders o ON o.order_id = ch.order_id
    ),
    -- Updated calls whose task or day changed: their intents and SMS move with them.
    moved AS MATERIALIZED (
        SELECT b.call_id, b.user_task_id AS old_ut, b.campaign_id AS old_campaign, b.day AS old_day,
               a.user_task_id AS new_ut, a.campaign_id AS new_campaign, a.day AS new_day
        FROM k b JOIN k a ON a.call_id = b.call_id AND a.sign = 1
        WHERE b.sign = -1 AND (a.user_task_id, a.day) IS DISTINCT FROM (b.user_task_id, b.day)
    ),
    -- Each (order, day) touched: whether it has a call (an answered call) now and had one before the statement.
    od AS (
        SELECT order_id, user_task_id, campaign_id, day, SUM(sign) AS net, SUM(sign * (call_status = 6)::int) AS net_a
        FROM k WHERE day IS NOT NULL
        GROUP BY order_id, user_task_id, campaign_id, day
        HAVING SUM(sign) <> 0 OR SUM(sign * (call_status = 6)::int) <> 0
    ),
    odd AS (
        SELECT od.user_task_id, od.campaign_id, od.day,
               (n.calls > 0)::int - (n.calls - od.net > 0)::int       AS d_dialled,
               (n.answered > 0)::int - (n.answered - od.net_a > 0)::int AS d_answered
        FROM od
        CROSS JOIN LATERAL (
            -- The order's few calls (by calls_by_order), that day's counted: a range on started_at in the WHERE
            -- would let a generic plan read the whole day by calls_by_start instead.
            SELECT COUNT(*) FILTER (WHERE c.day = od.day) AS calls,
                   COUNT(*) FILTER (WHERE c.day = od.day AND c.call_status = 6) AS answered
            FROM (SELECT (x.started_at AT TIME ZONE 'UTC')::date AS day, x.call_status
                  FROM calls x WHERE x.order_id = od.order_id) c
        ) n
    ),
    sms_moves AS (
        SELECT m.old_ut AS user_task_id, m.old_campaign AS campaign_id, m.old_day AS day, -COUNT(*) AS n
        FROM moved m JOIN call_sms s ON s.call_id = m.call_id
        WHERE m.old_day IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
        GROUP BY 1, 2, 3
        UNION ALL
        SELECT m.new_ut, m.new_campaign, m.new_day, COUNT(*)
        FROM moved m JOIN call_sms s ON s.call_id = m.call_id
        WHERE m.new_day IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
        GROUP BY 1, 2, 3
    ),
    deltas AS (
        SELECT user_task_id, campaign_id, day, sign AS calls, sign * (call_status = 6)::int AS calls_answered,
               sign * (call_status = 6 AND talk_secs IS NOT NULL)::int AS talk_calls,
               CASE WHEN call_status = 6 THEN sign * talk_secs ELSE 0 END AS talk_secs,
               0 AS orders_dialled, 0 AS orders_answered, 0::bigint AS sms_sent,
               CASE WHEN sign = 1 THEN started_at END AS first_call_at,
               CASE WHEN sign = 1 THEN started_at END AS last_call_at
        FROM k WHERE day IS NOT NULL
        UNION ALL
        SELECT user_task_id, campaign_id, day, 0, 0, 0, 0, d_dialled, d_answered, 0, NULL, NULL
        FROM odd WHERE d_dialled <> 0 OR d_answered <> 0
        UNION ALL
        SELECT user_task_id, campaign_id, day, 0, 0, 0, 0, 0, 0, n, NULL, NULL FROM sms_moves
    ),
    per_day AS (
        INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                                  orders_dialled, orders_answered, sms_sent, first_call_at, last_call_at)
        SELECT user_task_id, day, my_shard, MIN(campaign_id), SUM(calls), SUM(calls_answered), SUM(talk_calls),
               COALESCE(SUM(talk_secs), 0), SUM(orders_dialled), SUM(orders_answered), SUM(sms_sent),
               MIN(first_call_at), MAX(last_call_at)
        FROM deltas
        GROUP BY user_task_id, day
        HAVING SUM(calls) <> 0 OR SUM(calls_answered) <> 0 OR SUM(talk_calls) <> 0 OR COALESCE(SUM(talk_secs), 0) <> 0
            OR SUM(orders_dialled) <> 0 OR SUM(orders_answered) <> 0 OR SUM(sms_sent) <> 0
            OR MIN(first_call_at) IS NOT NULL
        ORDER BY user_task_id, day
        ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
            calls = call_rollups.calls + excluded.calls,
            calls_answered = call_rollups.calls_answered + excluded.calls_answered,
            talk_calls = call_rollups.talk_calls + excluded.talk_calls,
            talk_secs = call_rollups.talk_secs + excluded.talk_secs,
            orders_dialled = call_rollups.orders_dialled + excluded.orders_dialled,
            orders_answered = call_rollups.orders_answered + excluded.orders_answered,
            sms_sent = call_rollups.sms_sent + excluded.sms_sent,
            first_call_at = LEAST(call_rollups.first_call_at, excluded.first_call_at),
            last_call_at = GREATEST(call_rollups.last_call_at, excluded.last_call_at)
        RETURNING 1
    ),
    per_status AS (
        INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
        SELECT user_task_id, day, call_status, my_shard, MIN(campaign_id), SUM(sign)
        FROM k WHERE day IS NOT NULL
        GROUP BY user_task_id, day, call_status
        HAVING SUM(sign) <> 0
        ORDER BY user_task_id, day, call_status
        ON CONFLICT (user_task_id, day, call_status, shard) DO UPDATE SET
            calls = call_status_rollups.calls + excluded.calls
        RETURNING 1
    ),
    per_talk AS (
        INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
        SELECT user_task_id, day, talk_secs, my_shard, MIN(campaign_id), SUM(sign)
        FROM k WHERE day IS NOT NULL AND call_status = 6 AND talk_secs IS NOT NULL
        GROUP BY user_task_id, day, talk_secs
        HAVING SUM(sign) <> 0
        ORDER BY user_task_id, day, talk_secs
        ON CONFLICT (user_task_id, day, talk_secs, shard) DO UPDATE SET calls = talk_rollups.calls + excluded.calls
        RETURNING 1
    ),
    per_task AS (
        INSERT INTO order_outcomes (user_task_id, shard, campaign_id, calls, calls_answered)
        SELECT user_task_id, my_shard, MIN(campaign_id), SUM(sign), SUM(sign * (call_status = 6)::int)
        FROM k
        GROUP BY user_task_id
        HAVING SUM(sign) <> 0 OR SUM(sign * (call_status = 6)::int) <> 0
        ORDER BY user_task_id
        ON CONFLICT (user_task_id, shard) DO UPDATE SET
            calls = order_outcomes.calls + excluded.calls,
            calls_answered = order_outcomes.calls_answered + excluded.calls_answered
        RETURNING 1
    ),
    intent_moves AS (
        INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
        SELECT user_task_id, day, intent, my_shard, MIN(campaign_id), SUM(n)
        FROM (
            SELECT m.old_ut AS user_task_id, m.old_campaign AS campaign_id, m.old_day AS day, l.intent, -1 AS n
            FROM moved m
            CROSS JOIN LATERAL (SELECT DISTINCT intent_label(i.intent_name, i.intent_tag, i.intent_id) AS intent
                                FROM call_intents i WHERE i.call_id = m.call_id) l
            WHERE m.old_day IS NOT NULL
            UNION ALL
            SELECT m.new_ut, m.new_campaign, m.new_day, l.intent, 1
            FROM moved m
            CROSS JOIN LATERAL (SELECT DISTINCT intent_label(i.intent_name, i.intent_tag, i.intent_id) AS intent
                                FROM call_intents i WHERE i.call_id = m.call_id) l
            WHERE m.new_day IS NOT NULL
        ) x
        GROUP BY user_task_id, day, intent
        HAVING SUM(n) <> 0
        ORDER BY user_task_id, day, intent
        ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = intent_rollups.calls + excluded.calls
        RETURNING 1
    )
    SELECT (SELECT COUNT(*) FROM per_day) + (SELECT COUNT(*) FROM per_status) + (SELECT COUNT(*) FROM per_talk)
           + (SELECT COUNT(*) FROM per_task) + (SELECT COUNT(*) FROM intent_moves)
    INTO written;

    -- A call whose start moved away from a day (never in practice: the platform does not restate a call's start)
    -- can narrow that day's first and last call: those are computed again from the calls.
    FOR day_bounds IN
        SELECT DISTINCT o.user_task_id, o.campaign_id, (r.started_at AT TIME ZONE 'UTC')::date AS day
        FROM unnest(old_rows) r
        JOIN orders o ON o.order_id = r.order_id
        LEFT JOIN unnest(new_rows) n ON n.call_id = r.call_id
        WHERE r.started_at IS NOT NULL AND (n.call_id IS NULL OR n.started_at IS DISTINCT FROM r.started_at
                                            OR n.order_id <> r.order_id)
    LOOP
        UPDATE call_rollups SET first_call_at = NULL, last_call_at = NULL
        WHERE user_task_id = day_bounds.user_task_id AND day = day_bounds.day;
        INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, first_call_at, last_call_at)
        SELECT day_bounds.user_task_id, day_bounds.day, my_shard, day_bounds.campaign_id, MIN(c.started_at), MAX(c.started_at)
        FROM calls c JOIN orders o ON o.order_id = c.order_id
        WHERE o.user_task_id = day_bounds.user_task_id
          AND c.started_at >= (day_bounds.day::timestamp AT TIME ZONE 'UTC')
          AND c.started_at < ((day_bounds.day + 1)::timestamp AT TIME ZONE 'UTC')
        ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
            first_call_at = excluded.first_call_at, last_call_at = excluded.last_call_at;
    END LOOP;
END
$$;

CREATE FUNCTION calls_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM call_rollups_apply('{}'::calls[], ARRAY(SELECT n::calls FROM new_calls n));
    RETURN NULL;
END
$$;
CREATE FUNCTION calls_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM call_rollups_apply(ARRAY(SELECT o::calls FROM old_calls o), ARRAY(SELECT n::calls FROM new_calls n));
    RETURN NULL;
END
$$;
CREATE TRIGGER calls_rollup_on_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS new_calls
FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_on_insert();
CREATE TRIGGER calls_rollup_on_update AFTER UPDATE ON calls REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls
FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_on_update();

-- ---- call_intents: a call counts once per intent label, whatever rows carry it.
CREATE FUNCTION intent_rollups_apply(old_rows call_intents[], new_rows call_intents[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 32;
BEGIN
    WITH ch AS (
        SELECT r.call_id, intent_label(r.intent_name, r.intent_tag, r.intent_id) AS intent, -1 AS sign
        FROM unnest(old_rows) r
        UNION ALL
        SELECT r.call_id, intent_label(r.intent_name, r.intent_tag, r.intent_id), 1 FROM unnest(new_rows) r
    ),
    net AS (
        SELECT call_id, intent, SUM(sign) AS net FROM ch GROUP BY call_id, intent HAVING SUM(sign) <> 0
    ),
    changed AS (
        SELECT net.call_id, net.intent, (n.rows > 0)::int - (n.rows - net.net > 0)::int AS d
        FROM net
        CROSS JOIN LATERAL (
            SELECT COUNT(*) AS rows FROM call_intents i
            WHERE i.call_id = net.call_id AND intent_label(i.intent_name, i.intent_tag, i.intent_id) = net.intent
        ) n
    )
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, (c.started_at AT TIME ZONE 'UTC')::date, x.intent, my_shard, MIN(o.campaign_id), SUM(x.d)
    FROM changed x
    JOIN calls c ON c.call_id = x.call_id
    JOIN orders o ON o.order_id = c.order_id
    WHERE x.d <> 0 AND c.started_at IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING SUM(x.d) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (user_task_id, day, intent, shard) DO UPDATE SET calls = intent_rollups.calls + excluded.calls;
END
$$;
CREATE FUNCTION intents_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM intent_rollups_apply('{}'::call_intents[], ARRAY(SELECT n::call_intents FROM new_intents n));
    RETURN NULL;
END
$$;
CREATE FUNCTION intents_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM intent_rollups_apply(ARRAY(SELECT o::call_intents FROM old_intents o), ARRAY(SELECT n::call_intents FROM new_intents n));
    RETURN NULL;
END
$$;
CREATE FUNCTION intents_rollup_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM intent_rollups_apply(ARRAY(SELECT o::call_intents FROM old_intents o), '{}'::call_intents[]);
    RETURN NULL;
END
$$;
CREATE TRIGGER intents_rollup_on_insert AFTER INSERT ON call_intents REFERENCING NEW TABLE AS new_intents
FOR EACH STATEMENT EXECUTE FUNCTION intents_rollup_on_insert();
CREATE TRIGGER intents_rollup_on_update AFTER UPDATE ON call_intents
REFERENCING OLD TABLE AS old_intents NEW TABLE AS new_intents
FOR EACH STATEMENT EXECUTE FUNCTION intents_rollup_on_update();
CREATE TRIGGER intents_rollup_on_delete AFTER DELETE ON call_intents REFERENCING OLD TABLE AS old_intents
FOR EACH STATEMENT EXECUTE FUNCTION intents_rollup_on_delete();

-- ---- call_sms: SMS sent (status not 0 "not sent" or 3 "failed") by the day of their call.
CREATE FUNCTION sms_rollups_apply(old_rows call_sms[], new_rows call_sms[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 32;
BEGIN
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, sms_sent)
    SELECT o.user_task_id, (c.started_at AT TIME ZONE 'UTC')::date, my_shard, MIN(o.campaign_id), SUM(x.sign)
    FROM (
        SELECT r.call_id, -1 AS sign FROM unnest(old_rows) r WHERE r.status IS NULL OR r.status NOT IN (0, 3)
        UNION ALL
        SELECT r.call_id, 1 FROM unnest(new_rows) r WHERE r.status IS NULL OR r.status NOT IN (0, 3)
    ) x
    JOIN calls c ON c.call_id = x.call_id
    JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL
    GROUP BY 1, 2
    HAVING SUM(x.sign) <> 0
    ORDER BY 1, 2
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET sms_sent = call_rollups.sms_sent + excluded.sms_sent;
END
$$;
CREATE FUNCTION sms_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sms_rollups_apply('{}'::call_sms[], ARRAY(SELECT n::call_sms FROM new_sms n));
    RETURN NULL;
END
$$;
CREATE FUNCTION sms_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sms_rollups_apply(ARRAY(SELECT o::call_sms FROM old_sms o), ARRAY(SELECT n::call_sms FROM new_sms n));
    RETURN NULL;
END
$$;
CREATE FUNCTION sms_rollup_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sms_rollups_apply(ARRAY(SELECT o::call_sms FROM old_sms o), '{}'::call_sms[]);
    RETURN NULL;
END
$$;
CREATE TRIGGER sms_rollup_on_insert AFTER INSERT ON call_sms REFERENCING NEW TABLE AS new_sms
FOR EACH STATEMENT EXECUTE FUNCTION sms_rollup_on_insert();
CREATE TRIGGER sms_rollup_on_update AFTER UPDATE ON call_sms REFERENCING OLD TABLE AS old_sms NEW TABLE AS new_sms
FOR EACH STATEMENT EXECUTE FUNCTION sms_rollup_on_update();
CREATE TRIGGER sms_rollup_on_delete AFTER DELETE ON call_sms REFERENCING OLD TABLE AS old_sms
FOR EACH STATEMENT EXECUTE FUNCTION sms_rollup_on_delete();

-- ---- Everything kept, computed again from the raw tables (Store::rebuild_rollups, and below for the rows already
-- stored). The triggers on orders are switched off for the flags' update and on again before the end, inside the
-- transaction.
CREATE FUNCTION rebuild_report_rollups() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE orders, calls, call_intents, call_sms IN SHARE ROW EXCLUSIVE MODE;
    ALTER TABLE orders DISABLE TRIGGER order_outcomes_on_update;
    WITH agg AS (
        SELECT order_id, COUNT(*) AS calls, COUNT(*) FILTER (WHERE call_status = 6) AS answered,
               COUNT(*) FILTER (WHERE call_status = 6 AND started_at IS NOT NULL) AS answered_started,
               MAX(started_at) AS last_start,
               (array_agg(call_status ORDER BY started_at DESC NULLS LAST, call_id DESC))[1] AS last_status
        FROM calls GROUP BY order_id
    ),
    flags AS (
        SELECT o2.order_id, COALESCE(x.calls > 0, false) AS dialled, COALESCE(x.answered > 0, false) AS answered,
               COALESCE(x.answered_started > 0, false) AS answered_started,
               (x.last_start AT TIME ZONE 'UTC')::date AS last_call_day, x.last_status
        FROM orders o2 LEFT JOIN agg x ON x.order_id = o2.order_id
    )
    UPDATE orders o
    SET dialled = f.dialled, answered = f.answered, answered_started = f.answered_started,
        last_call_day = f.last_call_day, last_call_status = f.last_status
    FROM flags f
    WHERE o.order_id = f.order_id
      AND (o.dialled, o.answered, o.answered_started, o.last_call_day, o.last_call_status)
          IS DISTINCT FROM (f.dialled, f.answered, f.answered_started, f.last_call_day, f.last_status);
    ALTER TABLE orders ENABLE TRIGGER order_outcomes_on_update;

    DELETE FROM order_tallies;
    INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected)
    SELECT user_task_id,
           COUNT(*) FILTER (WHERE upload_state = 'planned'), COUNT(*) FILTER (WHERE upload_state = 'sending'),
           COUNT(*) FILTER (WHERE upload_state = 'sent'), COUNT(*) FILTER (WHERE upload_state = 'rejected')
    FROM orders GROUP BY user_task_id;

    DELETE FROM order_outcomes;
    INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished, started,
                                answered_started, calls, calls_answered)
    SELECT o.user_task_id, 0, MIN(o.campaign_id),
           COUNT(*) FILTER (WHERE o.upload_state = 'rejected' AND left(o.reject_reason, 12) = 'suppressed: '),
           COUNT(*) FILTER (WHERE o.dialled), COUNT(*) FILTER (WHERE o.answered), COUNT(*) FILTER (WHERE o.finished),
           COUNT(*) FILTER (WHERE o.last_call_day IS NOT NULL), COUNT(*) FILTER (WHERE o.answered_started),
           COALESCE(MIN(c.calls), 0), COALESCE(MIN(c.answered), 0)
    FROM orders o
    LEFT JOIN (
        SELECT oo.user_task_id, COUNT(*) AS calls, COUNT(*) FILTER (WHERE cc.call_status = 6) AS answered
        FROM calls cc JOIN orders oo ON oo.order_id = cc.order_id
        GROUP BY oo.user_task_id
    ) c ON c.user_task_id = o.user_task_id
    GROUP BY o.user_task_id;

    DELETE FROM call_rollups;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                              orders_dialled, orders_answered, orders_finished, sms_sent, first_call_at, last_call_at)
    SELECT user_task_id, day, 0, MIN(campaign_id), SUM(calls), SUM(calls_answered), SUM(talk_calls), SUM(talk_secs),
           SUM(orders_dialled), SUM(orders_answered), SUM(orders_finished), SUM(sms_sent), MIN(first_call_at),
           MAX(last_call_at)
    FROM (
        SELECT o.user_task_id, MIN(o.campaign_id) AS campaign_id, (c.started_at AT TIME ZONE 'UTC')::date AS day,
               COUNT(*) AS calls, COUNT(*) FILTER (WHERE c.call_status = 6) AS calls_answered,
               COUNT(*) FILTER (WHERE c.call_status = 6 AND c.talk_secs IS NOT NULL) AS talk_calls,
               COALESCE(SUM(c.talk_secs) FILTER (WHERE c.call_status = 6), 0) AS talk_secs,
               COUNT(DISTINCT c.order_id) AS orders_dialled,
               COUNT(DISTINCT c.order_id) FILTER (WHERE c.call_status = 6) AS orders_answered,
               0 AS orders_finished, 0 AS sms_sent, MIN(c.started_at) AS first_call_at, MAX(c.started_at) AS last_call_at
        FROM calls c JOIN orders o ON o.order_id = c.order_id
        WHERE c.started_at IS NOT NULL
        GROUP BY o.user_task_id, 3
        UNION ALL
        SELECT user_task_id, MIN(campaign_id), last_call_day, 0, 0, 0, 0, 0, 0, COUNT(*), 0, NULL, NULL
        FROM orders WHERE finished AND last_call_day IS NOT NULL
        GROUP BY user_task_id, last_call_day
        UNION ALL
        SELECT o.user_task_id, MIN(o.campaign_id), (c.started_at AT TIME ZONE 'UTC')::date, 0, 0, 0, 0, 0, 0, 0,
               COUNT(*), NULL, NULL
        FROM call_sms s JOIN calls c ON c.call_id = s.call_id JOIN orders o ON o.order_id = c.order_id
        WHERE c.started_at IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
        GROUP BY o.user_task_id, 3
    ) x
    GROUP BY user_task_id, day;

    DELETE FROM call_status_rollups;
    INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
    SELECT o.user_task_id, (c.started_at AT TIME ZONE 'UTC')::date, c.call_status, 0, MIN(o.campaign_id), COUNT(*)
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL
    GROUP BY 1, 2, 3;

    DELETE FROM talk_rollups;
    INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
    SELECT o.user_task_id, (c.started_at AT TIME ZONE 'UTC')::date, c.talk_secs, 0, MIN(o.campaign_id), COUNT(*)
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL AND c.call_status = 6 AND c.talk_secs IS NOT NULL
    GROUP BY 1, 2, 3;

    DELETE FROM intent_rollups;
    INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
    SELECT o.user_task_id, (c.started_at AT TIME ZONE 'UTC')::date, intent_label(i.intent_name, i.intent_tag, i.intent_id),
           0, MIN(o.campaign_id), COUNT(DISTINCT i.call_id)
    FROM call_intents i JOIN calls c ON c.call_id = i.call_id JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL
    GROUP BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION rebuild_report_rollups() IS 'Recomputes the orders'' derived flags and every rollup from the raw tables, in the caller''s transaction (after rows were written or deleted around the store).';

-- The rows already stored are counted by migration 15, which extends this rebuild (once, not twice).

-- ---- The views: the same names and columns, read from the rollups. The raw definitions stay as report_*_raw.
ALTER VIEW report_campaign_daily RENAME TO report_campaign_daily_raw;
ALTER VIEW report_campaign_totals RENAME TO report_campaign_totals_raw;
ALTER VIEW report_call_status RENAME TO report_call_status_raw;
ALTER VIEW report_intents RENAME TO report_intents_raw;
ALTER VIEW report_rounds RENAME TO report_rounds_raw;
ALTER VIEW report_zone_groups RENAME TO report_zone_groups_raw;

-- Orders of each campaign: the upload-state tallies of its tasks.
CREATE VIEW campaign_order_totals AS
SELECT u.campaign_id, SUM(t.planned + t.sending + t.sent + t.rejected)::bigint AS orders_total
FROM (SELECT DISTINCT user_task_id, campaign_id FROM order_outcomes) u
JOIN order_tallies t ON t.user_task_id = u.user_task_id
GROUP BY u.campaign_id;
COMMENT ON VIEW campaign_order_totals IS 'Per campaign, its orders (from the per-task tallies).';

-- The p90 of talk seconds, nearest rank, from the histogram: the smallest value with at least ceil(0.9 n) of the n
-- values at or below it (as percentile_disc(0.9)).
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
    SELECT campaign_id, day, MIN(talk_secs) AS p90_talk_secs
    FROM h WHERE below >= GREATEST(ceil(0.9::float8 * n::float8), 1)
    GROUP BY campaign_id, day
)
SELECT d.campaign_id,
       d.day,
       COALESCE(t.orders_total, 0)::bigint                                    AS orders_total,
       d.orders_dialled::bigint                                               AS orders_dialled,
       d.orders_answered::bigint                                              AS orders_answered,
       d.orders_finished::bigint                                              AS orders_finished,
       d.calls::bigint                                                        AS calls,
       d.calls_answered::bigint                                               AS calls_answered,
       d.calls_answered::double precision / NULLIF(d.calls, 0)                AS answer_rate,
       d.orders_finished::double precision / NULLIF(t.orders_total, 0)        AS finish_rate,
       d.talk_secs::double precision / NULLIF(d.talk_calls, 0)                AS avg_talk_secs,
       p.p90_talk_secs,
       d.sms_sent::bigint                                                     AS sms_sent
FROM d
LEFT JOIN campaign_order_totals t ON t.campaign_id = d.campaign_id
LEFT JOIN p90 p ON p.campaign_id = d.campaign_id AND p.day = d.day
WHERE d.calls <> 0;
COMMENT ON VIEW report_campaign_daily IS 'Per campaign and UTC day of call start: orders_total (all orders of the campaign), orders dialled/answered that day, orders finished whose latest call started that day, calls, answer_rate = calls_answered/calls, finish_rate = orders_finished/orders_total, mean and p90 (nearest rank) talk seconds of answered calls, SMS sent (not counting status 0 not sent or 3 failed). Read from call_rollups and talk_rollups; report_campaign_daily_raw aggregates the raw tables.';

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
    SELECT campaign_id, MIN(talk_secs) AS p90_talk_secs FROM h WHERE below >= GREATEST(ceil(0.9::float8 * n::float8), 1)
    GROUP BY campaign_id
)
SELECT t.campaign_id,
       t.orders_total,
       COALESCE(o.orders_dialled, 0)::bigint                                  AS orders_dialled,
       COALESCE(o.orders_answered, 0)::bigint                                 AS orders_answered,
       COALESCE(o.orders_finished, 0)::bigint                                 AS orders_finished,
       COALESCE(c.calls, 0)::bigint                                           AS calls,
       COALESCE(c.calls_answered, 0)::bigint                                  AS calls_answered,
       c.calls_answered::double precision / NULLIF(c.calls, 0)                AS answer_rate,
       COALESCE(o.orders_finished, 0)::double precision / NULLIF(t.orders_total, 0) AS finish_rate,
       c.talk_secs::double precision / NULLIF(c.talk_calls, 0)                AS avg_talk_secs,
       p.p90_talk_secs,
       COALESCE(c.sms_sent, 0)::bigint                                        AS sms_sent,
       c.first_call_at,
       c.last_call_at
FROM campaign_order_totals t
LEFT JOIN o ON o.campaign_id = t.campaign_id
LEFT JOIN c ON c.campaign_id = t.campaign_id
LEFT JOIN p90 p ON p.campaign_id = t.campaign_id
WHERE t.orders_total > 0;
COMMENT ON VIEW report_campaign_totals IS 'Per campaign over all days: orders total/dialled/answered/finished (every finished order), calls, answer_rate = calls_answered/calls, finish_rate = orders_finished/orders_total, mean and p90 (nearest rank) talk seconds of answered calls, SMS sent, first and last call start. Read from the rollups; report_campaign_totals_raw aggregates the raw tables.';

CREATE VIEW report_call_status AS
SELECT r.campaign_id,
       r.day,
       r.call_status,
       COALESCE(n.status_name, 'unknown') AS status_name,
       SUM(r.calls)::bigint               AS calls
FROM call_status_rollups r
LEFT JOIN call_status_names n ON n.call_status = r.call_status
GROUP BY r.campaign_id, r.day, r.call_status, n.status_name
HAVING SUM(r.calls) <> 0;
COMMENT ON VIEW report_call_status IS 'Per campaign, UTC day and callStatus: how many calls. Read from call_status_rollups.';

CREATE VIEW report_intents AS
SELECT campaign_id, day, intent, SUM(calls)::bigint AS calls
FROM intent_rollups
GROUP BY campaign_id, day, intent
HAVING SUM(calls) <> 0;
COMMENT ON VIEW report_intents IS 'Per campaign, UTC day and intent (name, else tag, else ID): how many calls carried it. Read from intent_rollups.';

CREATE VIEW report_rounds AS
SELECT t.campaign_id,
       t.generation,
       CASE WHEN t.generation >= 100000 THEN t.generation % 100000 END                        AS round,
       t.user_task_id,
       COALESCE((SELECT ot.planned + ot.sending + ot.sent + ot.rejected FROM order_tallies ot
                 WHERE ot.user_task_id = t.user_task_id), 0)::bigint                         AS orders_total,
       COALESCE((SELECT SUM(finished) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0)::bigint
                                                                                               AS orders_finished,
       COALESCE((SELECT SUM(calls) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0)::bigint
                                                                                               AS calls,
       COALESCE((SELECT SUM(calls_answered) FROM order_outcomes x WHERE x.user_task_id = t.user_task_id), 0)::bigint
                                                                                               AS calls_answered,
       (SELECT MIN(first_call_at) FROM call_rollups r WHERE r.user_task_id = t.user_task_id)  AS first_call_at,
       (SELECT MAX(last_call_at) FROM call_rollups r WHERE r.user_task_id = t.user_task_id)   AS last_call_at
FROM tasks t;
COMMENT ON VIEW report_rounds IS 'Each task (a generation, or a round of a repeating campaign) with its orders and calls; round = generation % 100000 from generation 100000. Read from the rollups.';

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
COMMENT ON VIEW report_zone_groups IS 'Each task that dials one zone group, with the group (JSON: zones and rules) and its orders and calls. Read from the rollups.';

-- report_rejected counts the orders never uploaded: this index holds only those, so the view reads them alone.
CREATE INDEX orders_rejected ON orders (campaign_id, reject_reason) WHERE upload_state = 'rejected';
COMMENT ON INDEX orders_rejected IS 'The orders never uploaded, by campaign (report_rejected).';
