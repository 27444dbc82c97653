-- campaignd store, SQLite backend: per-campaign totals over all days. PostgreSQL defines the same view.
-- orders_finished counts every finished order (with or without a started call); the rest follows
-- report_campaign_daily's definitions over all days.
CREATE VIEW report_campaign_totals AS
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
