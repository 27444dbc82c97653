-- campaignd store, PostgreSQL backend: report views. SQLite defines the same views with the same columns.
-- The day of every row is the UTC date of the call's start; calls without a start time are left out.
-- A call is answered when its callStatus is 6 ("completed (answered)"). Rates are fractions (0..1).

CREATE VIEW report_calls AS
SELECT o.campaign_id,
       c.call_id,
       c.order_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       c.started_at,
       c.call_status,
       (c.call_status = 6)                      AS answered,
       c.talk_secs
FROM calls c
JOIN orders o ON o.order_id = c.order_id
WHERE c.started_at IS NOT NULL;
COMMENT ON VIEW report_calls IS 'One row per call that started, with its campaign and UTC day.';

CREATE VIEW report_campaign_daily AS
WITH per_day AS (
    SELECT campaign_id, day,
           COUNT(DISTINCT order_id)                             AS orders_dialled,
           COUNT(DISTINCT order_id) FILTER (WHERE answered)     AS orders_answered,
           COUNT(*)                                             AS calls,
           COUNT(*) FILTER (WHERE answered)                     AS calls_answered,
           (AVG(talk_secs) FILTER (WHERE answered))::double precision AS avg_talk_secs,
           (percentile_disc(0.9) WITHIN GROUP (ORDER BY talk_secs) FILTER (WHERE answered AND talk_secs IS NOT NULL))
                                                                AS p90_talk_secs
    FROM report_calls
    GROUP BY campaign_id, day
),
latest AS (
    SELECT DISTINCT ON (order_id) order_id, campaign_id, day
    FROM report_calls
    ORDER BY order_id, started_at DESC, call_id DESC
),
finished AS (
    SELECT l.campaign_id, l.day, COUNT(*) AS orders_finished
    FROM latest l
    JOIN orders o ON o.order_id = l.order_id
    WHERE o.finished
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
       COALESCE(t.orders_total, 0)                                           AS orders_total,
       d.orders_dialled,
       d.orders_answered,
       COALESCE(f.orders_finished, 0)                                        AS orders_finished,
       d.calls,
       d.calls_answered,
       d.calls_answered::double precision / NULLIF(d.calls, 0)               AS answer_rate,
       COALESCE(f.orders_finished, 0)::double precision / NULLIF(t.orders_total, 0) AS finish_rate,
       d.avg_talk_secs,
       d.p90_talk_secs,
       COALESCE(s.sms_sent, 0)                                               AS sms_sent
FROM per_day d
LEFT JOIN totals t ON t.campaign_id = d.campaign_id
LEFT JOIN finished f ON f.campaign_id = d.campaign_id AND f.day = d.day
LEFT JOIN sms s ON s.campaign_id = d.campaign_id AND s.day = d.day;
COMMENT ON VIEW report_campaign_daily IS 'Per campaign and UTC day of call start: orders_total (all orders of the campaign), orders dialled/answered that day, orders finished whose latest call started that day, calls, answer_rate = calls_answered/calls, finish_rate = orders_finished/orders_total, mean and p90 (nearest rank) talk seconds of answered calls, SMS sent (not counting status 0 not sent or 3 failed).';

CREATE VIEW report_call_status AS
SELECT rc.campaign_id,
       rc.day,
       rc.call_status,
       COALESCE(n.status_name, 'unknown') AS status_name,
       COUNT(*)                           AS calls
FROM report_calls rc
LEFT JOIN call_status_names n ON n.call_status = rc.call_status
GROUP BY rc.campaign_id, rc.day, rc.call_status, n.status_name;
COMMENT ON VIEW report_call_status IS 'Per campaign, UTC day and callStatus: how many calls.';

CREATE VIEW report_intents AS
SELECT rc.campaign_id,
       rc.day,
       COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id) AS intent,
       COUNT(DISTINCT rc.call_id)                                                 AS calls
FROM call_intents i
JOIN report_calls rc ON rc.call_id = i.call_id
GROUP BY rc.campaign_id, rc.day, COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id);
COMMENT ON VIEW report_intents IS 'Per campaign, UTC day and intent (name, else tag, else ID): how many calls carried it.';
