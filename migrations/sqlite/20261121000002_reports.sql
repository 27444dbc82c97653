-- campaignd store, SQLite backend: report views. PostgreSQL defines the same views with the same columns.
-- The day of every row is the UTC date of the call's start; calls without a start time are left out.
-- A call is answered when its callStatus is 6 ("completed (answered)"). Rates are fractions (0..1).

-- One row per call that started, with its campaign and day.
CREATE VIEW report_calls AS
SELECT o.campaign_id,
       c.call_id,
       c.order_id,
       date(c.started_at)                         AS day,
       c.started_at,
       c.call_status,
       CASE WHEN c.call_status = 6 THEN 1 ELSE 0 END AS answered,
       c.talk_secs
FROM calls c
JOIN orders o ON o.order_id = c.order_id
WHERE c.started_at IS NOT NULL;

-- Per campaign and day: orders, calls, rates, talk time and SMS.
CREATE VIEW report_campaign_daily AS
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

-- Per campaign, day and callStatus: how many calls ended that way.
CREATE VIEW report_call_status AS
SELECT rc.campaign_id,
       rc.day,
       rc.call_status,
       COALESCE(n.status_name, 'unknown') AS status_name,
       COUNT(*)                           AS calls
FROM report_calls rc
LEFT JOIN call_status_names n ON n.call_status = rc.call_status
GROUP BY rc.campaign_id, rc.day, rc.call_status, n.status_name;

-- Per campaign, day and intent: how many calls carried it. The intent is its name, else its tag, else its ID.
CREATE VIEW report_intents AS
SELECT rc.campaign_id,
       rc.day,
       COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id) AS intent,
       COUNT(DISTINCT rc.call_id)                                                 AS calls
FROM call_intents i
JOIN report_calls rc ON rc.call_id = i.call_id
GROUP BY rc.campaign_id, rc.day, COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id);
