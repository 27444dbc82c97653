-- campaignd store, SQLite backend: a call's transcript is kept on its `calls` row, as the one read of it
-- (Store::calls_of_order) wants it: a JSON array of its lines, one per record index, by index
-- ([{"index":1,"role":0,"kind":8,"word":"...","node_id":null,"node_desc":null,"at":"..."}, ...]). A poll writes about
-- 2.2 lines per call: kept as rows of call_transcript, they were most of the rows a poll wrote. The fact writers
-- merge a report's lines into the stored array by record index (a line of the same index replaces the stored one,
-- the others stay), so a repeated or partial report never duplicates or loses a line.
--
-- The lines already stored are copied across. call_transcript is left as it is (expand, then contract: a binary of
-- the previous release may still read it during a rolling deploy); nothing writes it any more, and a later release
-- drops it.
ALTER TABLE calls ADD COLUMN transcript TEXT;

UPDATE calls SET transcript = (
    SELECT json_group_array(json_object('index', t.record_index, 'role', t.role, 'kind', t.kind, 'word', t.word,
                                        'node_id', t.node_id, 'node_desc', t.node_desc, 'at', t.at)
                            ORDER BY t.record_index)
    FROM call_transcript t WHERE t.call_id = calls.call_id)
WHERE call_id IN (SELECT call_id FROM call_transcript);
