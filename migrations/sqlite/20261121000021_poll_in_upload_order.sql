-- The poll set in upload order. orders_to_poll ended with order_id, a hash of the contact: each order entering the
-- poll set (its batch acknowledged: planned -> sending -> sent) went to a random leaf of the index, so a batch of
-- 1,000 dirtied about as many pages as it had orders, spread over the whole index. In a 200,000-contact upload that
-- index's inserts were two thirds of the settling's time (1.7 of 2.6 s, measured on this schema). Keyed by source
-- line before the ID, a batch's orders enter the index side by side at its end, and a poll chunk's marks move them
-- to the end together. The poll order among orders polled at the same instant is now the upload order.
DROP INDEX orders_to_poll;
CREATE INDEX orders_to_poll ON orders (user_task_id, last_polled_at, source_line, order_id)
    WHERE upload_state = 'sent' AND finished = 0;
