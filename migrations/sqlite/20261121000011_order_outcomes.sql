-- campaignd store, SQLite backend: what is counted about each task's orders besides their upload states, kept as the
-- facts are written, so `status` reads a few rows instead of every order with a look-up of its calls. PostgreSQL
-- keeps the same counts.
--
-- orders.dialled and orders.answered are flags the fact writes set from the order's calls (it has a call; one of
-- them has callStatus 6). Triggers on orders add each change of finished, dialled, answered and "suppressed" (rejected with a
-- reason beginning 'suppressed: ') to order_outcomes in the same transaction, so a count never goes backwards and
-- never counts a fact twice. The row of a task (with its campaign) is made when its first orders are planned; SQLite
-- has one writer, so each task has one row (shard 0).
ALTER TABLE orders ADD COLUMN dialled INTEGER NOT NULL DEFAULT 0 CHECK (dialled IN (0, 1));
ALTER TABLE orders ADD COLUMN answered INTEGER NOT NULL DEFAULT 0 CHECK (answered IN (0, 1));
UPDATE orders SET dialled = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.order_id),
                  answered = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = orders.order_id AND c.call_status = 6);

CREATE TABLE order_outcomes (
    user_task_id TEXT NOT NULL,
    shard        INTEGER NOT NULL,
    campaign_id  TEXT NOT NULL,
    suppressed   INTEGER NOT NULL DEFAULT 0,
    dialled      INTEGER NOT NULL DEFAULT 0,
    answered     INTEGER NOT NULL DEFAULT 0,
    finished     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, shard)
);
CREATE INDEX order_outcomes_by_campaign ON order_outcomes (campaign_id);
INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished)
SELECT user_task_id, 0, MIN(campaign_id),
       COALESCE(SUM(upload_state = 'rejected' AND substr(reject_reason, 1, 12) = 'suppressed: '), 0),
       SUM(dialled), SUM(answered), SUM(finished)
FROM orders
GROUP BY user_task_id;

CREATE TRIGGER order_outcomes_on_insert AFTER INSERT ON orders
WHEN NEW.finished = 1 OR NEW.dialled = 1 OR NEW.answered = 1
  OR COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    INSERT OR IGNORE INTO order_outcomes (user_task_id, shard, campaign_id) VALUES (NEW.user_task_id, 0, NEW.campaign_id);
    UPDATE order_outcomes SET
        suppressed = suppressed + COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled + NEW.dialled, answered = answered + NEW.answered, finished = finished + NEW.finished
    WHERE user_task_id = NEW.user_task_id AND shard = 0;
END;

CREATE TRIGGER order_outcomes_on_update AFTER UPDATE OF finished, dialled, answered, upload_state, reject_reason ON orders
WHEN OLD.finished <> NEW.finished OR OLD.dialled <> NEW.dialled OR OLD.answered <> NEW.answered
  OR COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0)
     <> COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    INSERT OR IGNORE INTO order_outcomes (user_task_id, shard, campaign_id) VALUES (NEW.user_task_id, 0, NEW.campaign_id);
    UPDATE order_outcomes SET
        suppressed = suppressed
            + COALESCE(NEW.upload_state = 'rejected' AND substr(NEW.reject_reason, 1, 12) = 'suppressed: ', 0)
            - COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled + NEW.dialled - OLD.dialled,
        answered = answered + NEW.answered - OLD.answered,
        finished = finished + NEW.finished - OLD.finished
    WHERE user_task_id = NEW.user_task_id AND shard = 0;
END;

CREATE TRIGGER order_outcomes_on_delete AFTER DELETE ON orders
WHEN OLD.finished = 1 OR OLD.dialled = 1 OR OLD.answered = 1
  OR COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0)
BEGIN
    UPDATE order_outcomes SET
        suppressed = suppressed - COALESCE(OLD.upload_state = 'rejected' AND substr(OLD.reject_reason, 1, 12) = 'suppressed: ', 0),
        dialled = dialled - OLD.dialled, answered = answered - OLD.answered, finished = finished - OLD.finished
    WHERE user_task_id = OLD.user_task_id AND shard = 0;
END;
