-- campaignd store, SQLite backend: orders of each task counted by upload state.
-- The store keeps these counts in the same transactions that insert orders or move them between upload states, so a
-- decision reads one row instead of counting the task's orders. The task's unfinished orders (sent, not finished) are
-- counted from the orders_to_poll index instead: `finished` is set by the fact writes, which do not touch this table.
CREATE TABLE order_tallies (
    user_task_id TEXT PRIMARY KEY,
    planned      INTEGER NOT NULL DEFAULT 0,
    sending      INTEGER NOT NULL DEFAULT 0,
    sent         INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO order_tallies (user_task_id, planned, sending, sent, rejected)
SELECT user_task_id,
       SUM(upload_state = 'planned'),
       SUM(upload_state = 'sending'),
       SUM(upload_state = 'sent'),
       SUM(upload_state = 'rejected')
FROM orders
GROUP BY user_task_id;
