-- campaignd store: orders_to_retry holds only the finished attempts whose last call ended in an outcome a [retry]
-- class may name (callStatus 9, 10, 11, 15, 16, 22, 23, 24, 25: store::RETRYABLE_STATUSES, the union of
-- campaign::RetryClass's codes), so the answered orders, the great majority, never cost a write to it when they
-- finish. The look-up names this list word for word beside its class's own codes, as SQLite uses a partial index
-- only for a query whose WHERE repeats the index's.
DROP INDEX orders_to_retry;
CREATE INDEX orders_to_retry ON orders (user_task_id, last_call_status)
    WHERE finished AND stop_state IS NULL AND last_call_status IN (9, 10, 11, 15, 16, 22, 23, 24, 25);
