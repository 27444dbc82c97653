-- campaignd store, SQLite backend: a verified callback is stored once.
-- A signed callback sent again (a captured one replayed, or a delivery repeated after its answer was lost) carries
-- the same requestID: the store keeps the first and applies its facts once (Store::ingest_callbacks answers
-- `Repeat` for the others). Unverified callbacks are kept as received and never suppress anything: anyone can send
-- them.
-- Copies stored before this index existed go first, keeping the first of each requestID: their facts were applied
-- by then, and applying facts is idempotent, so no fact is lost.
DELETE FROM callbacks
WHERE verified = 1 AND request_id IS NOT NULL
  AND callback_id NOT IN (
      SELECT MIN(callback_id) FROM callbacks
      WHERE verified = 1 AND request_id IS NOT NULL
      GROUP BY request_id);
CREATE UNIQUE INDEX callbacks_replay ON callbacks (request_id) WHERE verified = 1 AND request_id IS NOT NULL;
-- tasks.desired_status is no longer written or read; it is dropped in a later release, once no binary reads it.
