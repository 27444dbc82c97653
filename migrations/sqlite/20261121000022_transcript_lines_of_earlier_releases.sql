-- During a rolling deploy, a binary of the release before migration 17 may still run. It writes a call's transcript
-- as rows of call_transcript, which this release no longer reads: without these triggers the lines it wrote after
-- migration 17 ran would never reach calls.transcript, not even once the rollout ends. Each line written there is
-- merged into the call's transcript by record index, as the fact writers merge a report (a line of the same index
-- replaces the stored one, the others stay).
--
-- Only that direction is kept: this release writes no rows to call_transcript (that was the point of migration 17),
-- so an earlier binary does not see the lines this release writes until it is replaced. Nothing else is lost. The
-- triggers cost nothing while no earlier binary writes, and go with call_transcript in a later release.
CREATE TRIGGER call_transcript_into_calls_on_insert AFTER INSERT ON call_transcript
BEGIN
    UPDATE calls SET transcript = (
        SELECT json_group_array(json(l.line) ORDER BY l.i) FROM (
            SELECT s.value AS line, s.value ->> '$.index' AS i FROM json_each(COALESCE(calls.transcript, '[]')) s
            WHERE s.value ->> '$.index' <> NEW.record_index
            UNION ALL
            SELECT json_object('index', NEW.record_index, 'role', NEW.role, 'kind', NEW.kind, 'word', NEW.word,
                               'node_id', NEW.node_id, 'node_desc', NEW.node_desc, 'at', NEW.at),
                   NEW.record_index
        ) l)
    WHERE call_id = NEW.call_id;
END;
CREATE TRIGGER call_transcript_into_calls_on_update AFTER UPDATE ON call_transcript
BEGIN
    UPDATE calls SET transcript = (
        SELECT json_group_array(json(l.line) ORDER BY l.i) FROM (
            SELECT s.value AS line, s.value ->> '$.index' AS i FROM json_each(COALESCE(calls.transcript, '[]')) s
            WHERE s.value ->> '$.index' <> NEW.record_index
            UNION ALL
            SELECT json_object('index', NEW.record_index, 'role', NEW.role, 'kind', NEW.kind, 'word', NEW.word,
                               'node_id', NEW.node_id, 'node_desc', NEW.node_desc, 'at', NEW.at),
                   NEW.record_index
        ) l)
    WHERE call_id = NEW.call_id;
END;
