-- campaignd store, SQLite backend: report_rejected reads a rollup too (see PostgreSQL's migration 15): the orders
-- never uploaded, per task and reject reason, counted by row triggers that fire only for rejected orders. The rows
-- already stored are counted when the store is next opened.
CREATE TABLE rejected_rollups (
    user_task_id  TEXT NOT NULL,
    reject_reason TEXT NOT NULL,
    shard         INTEGER NOT NULL,
    campaign_id   TEXT NOT NULL,
    orders        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, reject_reason, shard)
);
CREATE INDEX rejected_rollups_by_campaign ON rejected_rollups (campaign_id);
INSERT OR IGNORE INTO store_maintenance (name) VALUES ('rebuild_rollups');

CREATE TRIGGER rejected_rollups_on_insert AFTER INSERT ON orders
WHEN NEW.upload_state = 'rejected'
BEGIN
    INSERT INTO rejected_rollups (user_task_id, reject_reason, shard, campaign_id, orders)
    VALUES (NEW.user_task_id, COALESCE(NEW.reject_reason, ''), 0, NEW.campaign_id, 1)
    ON CONFLICT (user_task_id, reject_reason, shard) DO UPDATE SET orders = orders + 1;
END;
CREATE TRIGGER rejected_rollups_on_update AFTER UPDATE OF upload_state, reject_reason, user_task_id ON orders
WHEN (OLD.upload_state = 'rejected' OR NEW.upload_state = 'rejected')
  AND (OLD.upload_state IS NOT NEW.upload_state OR OLD.reject_reason IS NOT NEW.reject_reason
       OR OLD.user_task_id IS NOT NEW.user_task_id)
BEGIN
    INSERT INTO rejected_rollups (user_task_id, reject_reason, shard, campaign_id, orders)
    SELECT OLD.user_task_id, COALESCE(OLD.reject_reason, ''), 0, OLD.campaign_id, -1
    WHERE OLD.upload_state = 'rejected'
    ON CONFLICT (user_task_id, reject_reason, shard) DO UPDATE SET orders = orders - 1;
    INSERT INTO rejected_rollups (user_task_id, reject_reason, shard, campaign_id, orders)
    SELECT NEW.user_task_id, COALESCE(NEW.reject_reason, ''), 0, NEW.campaign_id, 1
    WHERE NEW.upload_state = 'rejected'
    ON CONFLICT (user_task_id, reject_reason, shard) DO UPDATE SET orders = orders + 1;
END;
CREATE TRIGGER rejected_rollups_on_delete AFTER DELETE ON orders
WHEN OLD.upload_state = 'rejected'
BEGIN
    UPDATE rejected_rollups SET orders = orders - 1
    WHERE user_task_id = OLD.user_task_id AND reject_reason = COALESCE(OLD.reject_reason, '') AND shard = 0;
END;

DROP VIEW report_rejected;
CREATE VIEW report_rejected_raw AS
SELECT campaign_id,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN 'suppressed' ELSE 'rejected' END AS kind,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN substr(reject_reason, 13)
            ELSE COALESCE(reject_reason, '') END                                                  AS reason,
       COUNT(*)                                                                                     AS orders
FROM orders
WHERE upload_state = 'rejected'
GROUP BY 1, 2, 3;
CREATE VIEW report_rejected AS
SELECT campaign_id,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN 'suppressed' ELSE 'rejected' END AS kind,
       CASE WHEN substr(reject_reason, 1, 12) = 'suppressed: ' THEN substr(reject_reason, 13)
            ELSE reject_reason END                                                                 AS reason,
       SUM(orders)                                                                                  AS orders
FROM rejected_rollups
GROUP BY 1, 2, 3
HAVING SUM(orders) <> 0;
