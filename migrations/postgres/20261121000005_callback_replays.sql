-- campaignd store, PostgreSQL backend: a verified callback is stored once.
-- A signed callback sent again (a captured one replayed, or a delivery repeated after its answer was lost) carries
-- the same requestID: the store keeps the first and applies its facts once (Store::ingest_callbacks answers
-- `Repeat` for the others). Unverified callbacks are kept as received and never suppress anything: anyone can send
-- them.
-- Copies stored before this index existed go first, keeping the first of each requestID: their facts were applied
-- by then, and applying facts is idempotent, so no fact is lost.
DELETE FROM callbacks c
USING callbacks first
WHERE c.verified AND c.request_id IS NOT NULL
  AND first.verified AND first.request_id = c.request_id AND first.callback_id < c.callback_id;
CREATE UNIQUE INDEX callbacks_replay ON callbacks (request_id) WHERE verified AND request_id IS NOT NULL;
COMMENT ON INDEX callbacks_replay IS 'A verified callback (by its requestID) is stored once; a replay is answered as a repeat and its facts are not applied again. Unverified callbacks never dedupe.';
COMMENT ON COLUMN tasks.desired_status IS 'No longer written or read (always NULL for new tasks); dropped in a later release.';
