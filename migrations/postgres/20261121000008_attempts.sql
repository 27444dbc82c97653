-- campaignd store, PostgreSQL backend: retry rounds. A contact may have several orders in one task, one per attempt
-- (1 for the first); the unique key becomes (user_task_id, phone, attempt), so a phone is still planned at most once
-- per task and attempt. SQLite makes the same change by rebuilding the table.
ALTER TABLE orders ADD COLUMN attempt bigint NOT NULL DEFAULT 1 CHECK (attempt >= 1);
COMMENT ON COLUMN orders.attempt IS 'The contact''s attempt in its task: 1 for the first order, then one more for each retry ([retry] in the campaign file).';
ALTER TABLE orders DROP CONSTRAINT orders_user_task_id_phone_key;
ALTER TABLE orders ADD CONSTRAINT orders_user_task_id_phone_attempt_key UNIQUE (user_task_id, phone, attempt);

-- orders_to_retry: a task's finished attempts by their last call's status, so the look-up of attempts due to be
-- retried reads only the orders whose outcome a [retry] rule names (never the answered ones), not the whole task.
CREATE INDEX orders_to_retry ON orders (user_task_id, last_call_status) WHERE finished AND stop_state IS NULL;
COMMENT ON INDEX orders_to_retry IS 'A task''s finished, unstopped attempts by the status of their last call (retries).';

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
            WHEN NOT l.finished THEN 'in progress'
            ELSE COALESCE(n.status_name, 'finished') END                      AS outcome,
       l.reject_reason
FROM orders l
LEFT JOIN call_status_names n ON n.call_status = l.last_call_status
WHERE NOT EXISTS (SELECT 1 FROM orders m
                  WHERE m.user_task_id = l.user_task_id AND m.phone = l.phone AND m.attempt > l.attempt);
COMMENT ON VIEW report_attempts IS 'Each contact''s attempts (one row per task and phone): the last attempt, the calls of all attempts, and the last attempt''s outcome.';
