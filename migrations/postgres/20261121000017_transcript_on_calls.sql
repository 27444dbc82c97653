-- campaignd store, PostgreSQL backend: a call's transcript is kept on its `calls` row, as the one read of it
-- (Store::calls_of_order) wants it: a JSON array of its lines, one per record index, by index
-- ([{"index":1,"role":0,"kind":8,"word":"...","node_id":null,"node_desc":null,"at":"..."}, ...]). A poll writes about
-- 2.2 lines per call: kept as rows of call_transcript, they were most of the rows a poll wrote. The fact writers
-- merge a report's lines into the stored array by record index (a line of the same index replaces the stored one,
-- the others stay), so a repeated or partial report never duplicates or loses a line.
--
-- The lines already stored are copied across. call_transcript is left as it is (expand, then contract: a binary of
-- the previous release may still read it during a rolling deploy); nothing writes it any more, and a later release
-- drops it.
ALTER TABLE calls ADD COLUMN transcript jsonb;
COMMENT ON COLUMN calls.transcript IS 'Dialogue record (recordDetail): a JSON array of the call''s lines, one per record index, by index; each {"index", "role" (0 robot, 1 user, 2 agent), "kind" (recordType), "word", "node_id", "node_desc", "at"}. Reports merge into it by record index. NULL: no line reported.';
COMMENT ON TABLE call_transcript IS 'Superseded by calls.transcript (migration 17: its rows were copied there); no longer written, dropped by a later release.';

UPDATE calls c SET transcript = t.lines
FROM (
    SELECT call_id, jsonb_agg(jsonb_build_object('index', record_index, 'role', role, 'kind', kind, 'word', word,
                                                 'node_id', node_id, 'node_desc', node_desc, 'at', at)
                              ORDER BY record_index) AS lines
    FROM call_transcript GROUP BY call_id
) t
WHERE t.call_id = c.call_id;
