-- campaignd store, PostgreSQL backend: orders of each task counted by upload state.
CREATE TABLE order_tallies (
    user_task_id text PRIMARY KEY,
    planned      bigint NOT NULL DEFAULT 0,
    sending      bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    rejected     bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE order_tallies IS 'Orders of each task counted by upload state. The store updates a row in the same transaction that inserts orders of the task or moves them between upload states, so a decision reads one row instead of counting the orders. Unfinished orders (sent, not finished) are counted from the orders_to_poll index instead.';
INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected)
SELECT user_task_id,
       COUNT(*) FILTER (WHERE upload_state = 'planned'),
       COUNT(*) FILTER (WHERE upload_state = 'sending'),
       COUNT(*) FILTER (WHERE upload_state = 'sent'),
       COUNT(*) FILTER (WHERE upload_state = 'rejected')
FROM orders
GROUP BY user_task_id;
