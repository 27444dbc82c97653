-- Everything the store keeps about the raw facts, computed again from the raw tables (Store::rebuild_rollups; and
-- once after migration 14, for the rows stored before it). Run inside one transaction.
-- Only the orders whose flags are not what their calls say are written (none, in a store the triggers kept).
UPDATE orders SET dialled = f.dialled, answered = f.answered, answered_started = f.answered_started,
                  last_call_day = f.last_call_day, last_call_status = f.last_call_status
FROM (
    SELECT o.order_id,
           EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id) AS dialled,
           EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id AND c.call_status = 6) AS answered,
           EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id AND c.call_status = 6
                                          AND c.started_at IS NOT NULL) AS answered_started,
           (SELECT date(MAX(c.started_at)) FROM calls c WHERE c.order_id = o.order_id) AS last_call_day,
           (SELECT c.call_status FROM calls c WHERE c.order_id = o.order_id
            ORDER BY c.started_at IS NULL, c.started_at DESC, c.call_id DESC LIMIT 1) AS last_call_status
    FROM orders o
) AS f
WHERE orders.order_id = f.order_id
  AND (orders.dialled IS NOT f.dialled OR orders.answered IS NOT f.answered
       OR orders.answered_started IS NOT f.answered_started OR orders.last_call_day IS NOT f.last_call_day
       OR orders.last_call_status IS NOT f.last_call_status);

DELETE FROM order_tallies;
INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected)
SELECT user_task_id, SUM(upload_state = 'planned'), SUM(upload_state = 'sending'), SUM(upload_state = 'sent'),
       SUM(upload_state = 'rejected')
FROM orders GROUP BY user_task_id;

DELETE FROM order_outcomes;
INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished, started,
                            answered_started, calls, calls_answered)
SELECT o.user_task_id, 0, MIN(o.campaign_id),
       COALESCE(SUM(o.upload_state = 'rejected' AND substr(o.reject_reason, 1, 12) = 'suppressed: '), 0),
       SUM(o.dialled), SUM(o.answered), SUM(o.finished), SUM(o.last_call_day IS NOT NULL), SUM(o.answered_started),
       COALESCE((SELECT COUNT(*) FROM orders x JOIN calls c ON c.order_id = x.order_id
                 WHERE x.user_task_id = o.user_task_id), 0),
       COALESCE((SELECT COUNT(*) FROM orders x JOIN calls c ON c.order_id = x.order_id
                 WHERE x.user_task_id = o.user_task_id AND c.call_status = 6), 0)
FROM orders o GROUP BY o.user_task_id;

DELETE FROM call_rollups;
INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, calls, calls_answered, talk_calls, talk_secs,
                          orders_dialled, orders_answered, orders_finished, sms_sent, first_call_at, last_call_at)
SELECT user_task_id, day, 0, MIN(campaign_id), SUM(calls), SUM(calls_answered), SUM(talk_calls), SUM(talk_secs),
       SUM(orders_dialled), SUM(orders_answered), SUM(orders_finished), SUM(sms_sent), MIN(first_call_at),
       MAX(last_call_at)
FROM (
    SELECT o.user_task_id, MIN(o.campaign_id) AS campaign_id, date(c.started_at) AS day, COUNT(*) AS calls,
           SUM(c.call_status = 6) AS calls_answered, SUM(c.call_status = 6 AND c.talk_secs IS NOT NULL) AS talk_calls,
           COALESCE(SUM(CASE WHEN c.call_status = 6 THEN c.talk_secs END), 0) AS talk_secs,
           COUNT(DISTINCT c.order_id) AS orders_dialled,
           COUNT(DISTINCT CASE WHEN c.call_status = 6 THEN c.order_id END) AS orders_answered,
           0 AS orders_finished, 0 AS sms_sent, MIN(c.started_at) AS first_call_at, MAX(c.started_at) AS last_call_at
    FROM calls c JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL
    GROUP BY o.user_task_id, date(c.started_at)
    UNION ALL
    SELECT user_task_id, MIN(campaign_id), last_call_day, 0, 0, 0, 0, 0, 0, COUNT(*), 0, NULL, NULL
    FROM orders WHERE finished = 1 AND last_call_day IS NOT NULL
    GROUP BY user_task_id, last_call_day
    UNION ALL
    SELECT o.user_task_id, MIN(o.campaign_id), date(c.started_at), 0, 0, 0, 0, 0, 0, 0, COUNT(*), NULL, NULL
    FROM call_sms s JOIN calls c ON c.call_id = s.call_id JOIN orders o ON o.order_id = c.order_id
    WHERE c.started_at IS NOT NULL AND (s.status IS NULL OR s.status NOT IN (0, 3))
    GROUP BY o.user_task_id, date(c.started_at)
)
GROUP BY user_task_id, day;

DELETE FROM call_status_rollups;
INSERT INTO call_status_rollups (user_task_id, day, call_status, shard, campaign_id, calls)
SELECT o.user_task_id, date(c.started_at), c.call_status, 0, MIN(o.campaign_id), COUNT(*)
FROM calls c JOIN orders o ON o.order_id = c.order_id
WHERE c.started_at IS NOT NULL
GROUP BY o.user_task_id, date(c.started_at), c.call_status;

DELETE FROM talk_rollups;
INSERT INTO talk_rollups (user_task_id, day, talk_secs, shard, campaign_id, calls)
SELECT o.user_task_id, date(c.started_at), c.talk_secs, 0, MIN(o.campaign_id), COUNT(*)
FROM calls c JOIN orders o ON o.order_id = c.order_id
WHERE c.started_at IS NOT NULL AND c.call_status = 6 AND c.talk_secs IS NOT NULL
GROUP BY o.user_task_id, date(c.started_at), c.talk_secs;

DELETE FROM intent_rollups;
INSERT INTO intent_rollups (user_task_id, day, intent, shard, campaign_id, calls)
SELECT o.user_task_id, date(c.started_at), COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id),
       0, MIN(o.campaign_id), COUNT(DISTINCT i.call_id)
FROM call_intents i JOIN calls c ON c.call_id = i.call_id JOIN orders o ON o.order_id = c.order_id
WHERE c.started_at IS NOT NULL
GROUP BY o.user_task_id, date(c.started_at), COALESCE(NULLIF(i.intent_name, ''), NULLIF(i.intent_tag, ''), i.intent_id);

DELETE FROM rejected_rollups;
INSERT INTO rejected_rollups (user_task_id, reject_reason, shard, campaign_id, orders)
SELECT user_task_id, COALESCE(reject_reason, ''), 0, MIN(campaign_id), COUNT(*)
FROM orders WHERE upload_state = 'rejected'
GROUP BY user_task_id, COALESCE(reject_reason, '');

DELETE FROM store_maintenance WHERE name = 'rebuild_rollups';
