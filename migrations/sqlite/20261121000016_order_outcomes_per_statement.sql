-- campaignd store, SQLite backend: the same change as PostgreSQL's migration 16 where SQLite allows it. SQLite has no
-- statement triggers, so the order counts stay with the row trigger on UPDATE of orders; it now writes its task's
-- row of order_outcomes with one upsert instead of an INSERT OR IGNORE and an UPDATE (a poll finishing an order ran
-- an INSERT OR IGNORE, an UPDATE and an upsert of call_rollups for it; now two upserts), and writes call_rollups only
-- when the finished order's task or day changed. The deltas are those of migration 14.
DROP TRIGGER order_outcomes_on_update;
CREATE TRIGGER order_outcomes_on_update
AFTER UPDATE OF finished, dialled, answered, upload_state, reject_reason, last_call_day, answered_started ON orders
WHEN OLD.finished <> NEW.finished OR OLD.dialled <> NEW.dialled OR OLD.answered <> NEW.answered
  OR OLD.last_call_day IS NOT NEW.last_call_day OR OLD.answered_started <> NEW.answered_started
  OR COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0)
     <> COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished, started,
                                answered_started)
    VALUES (NEW.user_task_id, 0, NEW.campaign_id,
            COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
                - COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0),
            NEW.dialled - OLD.dialled, NEW.answered - OLD.answered, NEW.finished - OLD.finished,
            (NEW.last_call_day IS NOT NULL) - (OLD.last_call_day IS NOT NULL),
            NEW.answered_started - OLD.answered_started)
    ON CONFLICT (user_task_id, shard) DO UPDATE SET
        suppressed = suppressed + excluded.suppressed, dialled = dialled + excluded.dialled,
        answered = answered + excluded.answered, finished = finished + excluded.finished,
        started = started + excluded.started, answered_started = answered_started + excluded.answered_started;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT OLD.user_task_id, OLD.last_call_day, 0, OLD.campaign_id, -1
    WHERE OLD.finished = 1 AND OLD.last_call_day IS NOT NULL
      AND NOT (NEW.finished = 1 AND NEW.last_call_day IS OLD.last_call_day AND NEW.user_task_id = OLD.user_task_id)
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished - 1;
    INSERT INTO call_rollups (user_task_id, day, shard, campaign_id, orders_finished)
    SELECT NEW.user_task_id, NEW.last_call_day, 0, NEW.campaign_id, 1
    WHERE NEW.finished = 1 AND NEW.last_call_day IS NOT NULL
      AND NOT (OLD.finished = 1 AND OLD.last_call_day IS NEW.last_call_day AND NEW.user_task_id = OLD.user_task_id)
    ON CONFLICT (user_task_id, day, shard) DO UPDATE SET orders_finished = orders_finished + 1;
END;
