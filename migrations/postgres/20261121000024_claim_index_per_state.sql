-- The claim's index held every order of a task, keyed by (task, upload state, source line, ID): each new version of
-- an order's row (PostgreSQL writes one per update) added an entry to it, and every order ever sent stayed in it for
-- good. The claim reads only planned orders, and the resolve only sending ones: one partial index for each, so a
-- sent or rejected order's later versions (its settling, its polls, its calls' facts) add no entry to either (the
-- poll set, the retries and the rejected orders have indexes of their own).
DROP INDEX orders_by_task_state;
CREATE INDEX orders_planned ON orders (user_task_id, source_line, order_id) WHERE upload_state = 'planned';
CREATE INDEX orders_sending ON orders (user_task_id, source_line, order_id) WHERE upload_state = 'sending';
COMMENT ON INDEX orders_planned IS 'The claim: a task''s planned orders in upload order.';
COMMENT ON INDEX orders_sending IS 'The resolve: a task''s orders whose batch may have reached the platform.';
