-- campaignd store, PostgreSQL backend: the order counts of an UPDATE of orders are kept by ONE statement trigger over
-- its transition tables instead of a PL/pgSQL call per changed row. A poll chunk finishes 500 orders in one
-- statement: the row trigger made that 500 function calls of two upserts each, most of the statement's time.
--
-- The deltas are the same as the row trigger's (migration 14), summed over the statement: every row before the
-- update counts -1 and every row after it +1, per task (order_outcomes: suppressed, dialled, answered, finished,
-- started, answered_started) and per task and day of the latest started call (call_rollups.orders_finished, for
-- finished orders). A row the update left as it was cancels out and writes nothing. Inserts and deletes keep their
-- row triggers (they fire only for the rare rows with a flag set, by their WHEN).
CREATE FUNCTION order_outcomes_count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard integer := pg_backend_pid() % 32;
BEGIN
    WITH ch AS MATERIALIZED (
        SELECT -1 AS sign, user_task_id, campaign_id,
               COALESCE(upload_state = 'rejected' AND left(reject_reason, 12) = 'suppressed: ', false) AS suppressed,
               dialled, answered, finished, last_call_day, answered_started
        FROM old_orders
        UNION ALL
        SELECT 1, user_task_id, campaign_id,
               COALESCE(upload_state = 'rejected' AND left(reject_reason, 12) = 'suppressed: ', false),
               dialled, answered, finished, last_call_day, answered_started
        FROM new_orders
    ),
    per_task AS (
        INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished,
                                    started, answered_started)
        SELECT user_task_id, my_shard, MIN(campaign_id), SUM(sign * suppressed::int), SUM(sign * dialled::int),
               SUM(sign * answered::int), SUM(sign * finished::int), SUM(sign * (last_call_day IS NOT NULL)::int),
               SUM(sign * answered_started::int)
        FROM ch
        GROUP BY user_task_id
        HAVING SUM(sign * suppressed::int) <> 0 OR SUM(sign * dialled::int) <> 0 OR SUM(sign * answered::int) <> 0
            OR SUM(sign * finished::int) <> 0 OR SUM(sign * (last_call_day IS NOT NULL)::int) <> 0
            OR SUM(sign * answered_started::int) <> 0
        ORDER BY user_task_id
        ON CONFLICT (user_task_id, shard) DO UPDATE SET
            suppressed = order_outcomes.suppressed + excluded.suppressed,
            dialled = order_outcomes.dialled + excluded.dialled,
            answered = order_outcomes.answered + excluded.answered,
            finished = order_outcomes.finished + excluded.finished,
            started = order_outcomes.started + excluded.started,
            answered_started = order_outcomes.answered_started + excluded.answered_started
        RETURNING 1
    ),
    per_day AS (
        INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
        SELECT user_task_id, last_call_day, my_shard, MIN(campaign_id), SUM(sign)
        FROM ch
        WHERE finished AND last_call_day IS NOT NULL
        GROUP BY user_task_id, last_call_day
        HAVING SUM(sign) <> 0
        ORDER BY user_task_id, last_call_day
        ON CONFLICT (user_task_id, day, shard) DO UPDATE SET
            orders_finished = call_rollups.orders_finished + excluded.orders_finished
        RETURNING 1
    )
    SELECT (SELECT COUNT(*) FROM per_task) + (SELECT COUNT(*) FROM per_day) INTO my_shard;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION order_outcomes_count_statement() IS 'Statement trigger on UPDATE of orders: adds what the statement changed in the orders'' flags to order_outcomes and call_rollups.orders_finished (the rows after it counted +1, before it -1).';

-- The same name as before, so rebuild_report_rollups() switches this one off for its own update of the flags.
DROP TRIGGER order_outcomes_on_update ON orders;
CREATE TRIGGER order_outcomes_on_update AFTER UPDATE ON orders
REFERENCING OLD TABLE AS old_orders NEW TABLE AS new_orders
FOR EACH STATEMENT EXECUTE FUNCTION order_outcomes_count_statement();
