-- campaignd store, PostgreSQL backend: per-campaign totals over all days. SQLite defines the same view.
CREATE VIEW report_campaign_totals AS
WITH o AS (
    SELECT campaign_id, COUNT(*) AS orders_total, COUNT(*) FILTER (WHERE finished) AS orders_finished
    FROM orders
    GROUP BY campaign_id
),
c AS (
    SELECT campaign_id,
           COUNT(DISTINCT order_id)                                   AS orders_dialled,
           COUNT(DISTINCT order_id) FILTER (WHERE answered)           AS orders_answered,
           COUNT(*)                                                   AS calls,
           COUNT(*) FILTER (WHERE answered)                           AS calls_answered,
           (AVG(talk_secs) FILTER (WHERE answered))::double precision AS avg_talk_secs,
           (percentile_disc(0.9) WITHIN GROUP (ORDER BY talk_secs) FILTER (WHERE answered AND talk_secs IS NOT NULL))
                                                                      AS p90_talk_secs,
           MIN(started_at)                                            AS first_call_at,
           MAX(started_at)                                            AS last_call_at
    FROM report_calls
    GROUP BY campaign_id
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
       COALESCE(c.orders_dialled, 0)                                      AS orders_dialled,
       COALESCE(c.orders_answered, 0)                                     AS orders_answered,
       o.orders_finished,
       COALESCE(c.calls, 0)                                               AS calls,
       COALESCE(c.calls_answered, 0)                                      AS calls_answered,
       c.calls_answered::double precision / NULLIF(c.calls, 0)            AS answer_rate,
       o.orders_finished::double precision / NULLIF(o.orders_total, 0)    AS finish_rate,
       c.avg_talk_secs,
       c.p90_talk_secs,
       COALESCE(s.sms_sent, 0)                                            AS sms_sent,
       c.first_call_at,
       c.last_call_at
FROM o
LEFT JOIN c ON c.campaign_id = o.campaign_id
LEFT JOIN sms s ON s.campaign_id = o.campaign_id;
COMMENT ON VIEW report_campaign_totals IS 'Per campaign over all days: orders total/dialled/answered/finished (every finished order), calls, answer_rate = calls_answered/calls, finish_rate = orders_finished/orders_total, mean and p90 (nearest rank) talk seconds of answered calls, SMS sent, first and last call start.';
