-- A claim takes a task's planned orders in (source_line, order_id) order, LIMIT one batch. With the index ending at
-- source_line, the order_id half of that order had to be sorted: PostgreSQL read every planned order of the task to
-- sort them (its estimates, taken while the table was small, made that look cheap), so each batch cost as much as
-- the backlog of planned orders, and a file of millions was quadratic. With order_id in the index the claim reads
-- the index in its order and stops after one batch (plus the suppressed and held orders it passes over).
DROP INDEX orders_by_task_state;
CREATE INDEX orders_by_task_state ON orders (user_task_id, upload_state, source_line, order_id);
