-- campaignd store, PostgreSQL backend: what is counted about each task's orders besides their upload states, kept as
-- the facts are written, so `status` reads a few rows instead of every order with a look-up of its calls. SQLite
-- keeps the same counts.
--
-- orders.dialled and orders.answered are flags the fact writes set from the order's calls (it has a call; one of
-- them has callStatus 6). Triggers on orders add each change of finished, dialled, answered and "suppressed" (rejected with a
-- reason beginning 'suppressed: ') to order_outcomes in the same transaction, so a count never goes backwards and
-- never counts a fact twice. Each connection adds to its own shard of the task's counts (its backend PID modulo 32),
-- so concurrent writers (the callback writers, a poll) never wait on one row; a reader sums the shards.
ALTER TABLE orders ADD COLUMN dialled boolean NOT NULL DEFAULT false;
ALTER TABLE orders ADD COLUMN answered boolean NOT NULL DEFAULT false;
UPDATE orders o
SET dialled = true,
    answered = EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id AND c.call_status = 6)
WHERE EXISTS (SELECT 1 FROM calls c WHERE c.order_id = o.order_id);
COMMENT ON COLUMN orders.dialled IS 'The order has at least one call (set by the fact writes from its calls).';
COMMENT ON COLUMN orders.answered IS 'The order has a call with callStatus 6 (set by the fact writes from its calls).';

CREATE TABLE order_outcomes (
    user_task_id text NOT NULL,
    shard        integer NOT NULL,
    campaign_id  text NOT NULL,
    suppressed   bigint NOT NULL DEFAULT 0,
    dialled      bigint NOT NULL DEFAULT 0,
    answered     bigint NOT NULL DEFAULT 0,
    finished     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_task_id, shard)
);
CREATE INDEX order_outcomes_by_campaign ON order_outcomes (campaign_id);
COMMENT ON TABLE order_outcomes IS 'Per task (in shards: sum them), its orders suppressed, dialled, answered and finished, kept by triggers on orders in the transactions that change them; a task''s row is made when its first orders are planned.';
INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished)
SELECT user_task_id, 0, MIN(campaign_id),
       COUNT(*) FILTER (WHERE upload_state = 'rejected' AND left(reject_reason, 12) = 'suppressed: '),
       COUNT(*) FILTER (WHERE dialled), COUNT(*) FILTER (WHERE answered), COUNT(*) FILTER (WHERE finished)
FROM orders
GROUP BY user_task_id;

CREATE FUNCTION order_outcomes_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s integer := 0; d integer := 0; a integer := 0; f integer := 0;
    ut text; campaign text;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        s := s + COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false)::int;
        d := d + NEW.dialled::int; a := a + NEW.answered::int; f := f + NEW.finished::int;
        ut := NEW.user_task_id; campaign := NEW.campaign_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        s := s - COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false)::int;
        d := d - OLD.dialled::int; a := a - OLD.answered::int; f := f - OLD.finished::int;
        ut := OLD.user_task_id; campaign := OLD.campaign_id;
    END IF;
    IF s <> 0 OR d <> 0 OR a <> 0 OR f <> 0 THEN
        INSERT INTO order_outcomes (user_task_id, shard, campaign_id, suppressed, dialled, answered, finished)
        VALUES (ut, pg_backend_pid() % 32, campaign, s, d, a, f)
        ON CONFLICT (user_task_id, shard) DO UPDATE SET
            suppressed = order_outcomes.suppressed + excluded.suppressed,
            dialled = order_outcomes.dialled + excluded.dialled,
            answered = order_outcomes.answered + excluded.answered,
            finished = order_outcomes.finished + excluded.finished;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER order_outcomes_on_insert AFTER INSERT ON orders FOR EACH ROW
WHEN (NEW.finished OR NEW.dialled OR NEW.answered
      OR COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();
CREATE TRIGGER order_outcomes_on_update AFTER UPDATE OF finished, dialled, answered, upload_state, reject_reason
ON orders FOR EACH ROW
WHEN (OLD.finished <> NEW.finished OR OLD.dialled <> NEW.dialled OR OLD.answered <> NEW.answered
      OR COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false)
         <> COALESCE(NEW.upload_state = 'rejected' AND left(NEW.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();
CREATE TRIGGER order_outcomes_on_delete AFTER DELETE ON orders FOR EACH ROW
WHEN (OLD.finished OR OLD.dialled OR OLD.answered
      OR COALESCE(OLD.upload_state = 'rejected' AND left(OLD.reject_reason, 12) = 'suppressed: ', false))
EXECUTE FUNCTION order_outcomes_count();
