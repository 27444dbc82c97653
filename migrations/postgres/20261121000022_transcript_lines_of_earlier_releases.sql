-- During a rolling deploy, a binary of the release before migration 17 may still run. It writes a call's transcript
-- as rows of call_transcript, which this release no longer reads: without this trigger the lines it wrote after
-- migration 17 ran would never reach calls.transcript, not even once the rollout ends. Each line written there is
-- merged into the call's transcript by record index, as the fact writers merge a report (a line of the same index
-- replaces the stored one, the others stay).
--
-- Only that direction is kept: this release writes no rows to call_transcript (that was the point of migration 17),
-- so an earlier binary does not see the lines this release writes until it is replaced. Nothing else is lost. The
-- trigger costs nothing while no earlier binary writes, and goes with call_transcript in a later release.
CREATE FUNCTION call_transcript_into_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE calls c SET transcript = (
        SELECT jsonb_agg(l.line ORDER BY (l.line ->> 'index')::bigint) FROM (
            SELECT s.line FROM jsonb_array_elements(COALESCE(c.transcript, '[]'::jsonb)) AS s(line)
            WHERE (s.line ->> 'index')::bigint <> NEW.record_index
            UNION ALL
            SELECT jsonb_build_object('index', NEW.record_index, 'role', NEW.role, 'kind', NEW.kind,
                                      'word', NEW.word, 'node_id', NEW.node_id, 'node_desc', NEW.node_desc,
                                      'at', NEW.at)
        ) l)
    WHERE c.call_id = NEW.call_id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION call_transcript_into_calls() IS 'Merges a line written to call_transcript (by a binary of a release before migration 17) into calls.transcript by record index.';
CREATE TRIGGER call_transcript_into_calls AFTER INSERT OR UPDATE ON call_transcript
    FOR EACH ROW EXECUTE FUNCTION call_transcript_into_calls();
