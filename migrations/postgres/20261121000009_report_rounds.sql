-- campaignd store, PostgreSQL backend: each task (a generation of a campaign, or a round of a repeating one) with its orders
-- and calls. SQLite defines the same view.
-- A repeating campaign's round n runs as generation g × 100000 + n, so `round` is generation % 100000 for
-- generations of 100000 and above, else NULL. Calls count every call of the task's orders (every attempt); a call is
-- answered when its callStatus is 6; first_call_at and last_call_at are the first and last call starts.
CREATE VIEW report_rounds AS
SELECT t.campaign_id,
       t.generation,
       CASE WHEN t.generation >= 100000 THEN t.generation % 100000 END                     AS round,
       t.user_task_id,
       (SELECT COUNT(*) FROM orders o WHERE o.user_task_id = t.user_task_id)                AS orders_total,
       (SELECT COUNT(*) FROM orders o WHERE o.user_task_id = t.user_task_id AND o.finished)   AS orders_finished,
       (SELECT COUNT(*) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS calls,
       (SELECT COUNT(*) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id AND c.call_status = 6)                        AS calls_answered,
       (SELECT MIN(c.started_at) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS first_call_at,
       (SELECT MAX(c.started_at) FROM orders o JOIN calls c ON c.order_id = o.order_id
        WHERE o.user_task_id = t.user_task_id)                                              AS last_call_at
FROM tasks t;
COMMENT ON VIEW report_rounds IS 'Each task (a generation, or a round of a repeating campaign) with its orders and calls; round = generation % 100000 from generation 100000.';
