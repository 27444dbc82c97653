-- The claim's index held every order of a task, keyed by (task, upload state, source line, ID), so each order moved
-- in it twice on its way out (planned -> sending -> sent: two deletions and two insertions), and every order ever
-- sent stayed in it for good, which made the index, and each batch's writes to it, grow with the task. The claim
-- reads only planned orders, and the resolve only sending ones: one partial index for each. An order now leaves the
-- first when it is claimed and the second when it is settled, and a sent or rejected order is in neither (the poll
-- set, the retries and the rejected orders have indexes of their own).
DROP INDEX orders_by_task_state;
CREATE INDEX orders_planned ON orders (user_task_id, source_line, order_id) WHERE upload_state = 'planned';
CREATE INDEX orders_sending ON orders (user_task_id, source_line, order_id) WHERE upload_state = 'sending';
