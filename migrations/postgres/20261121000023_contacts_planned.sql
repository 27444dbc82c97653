-- campaignd store, PostgreSQL backend: which version of a task's contacts file was planned into it to its end, so a
-- restarted daemon does not read and insert the whole file again (each row skipped as already stored) before it
-- can tell nothing changed. One row per task, replaced when a newer version is planned.
CREATE TABLE contacts_planned (
    user_task_id     TEXT        NOT NULL PRIMARY KEY,
    contacts_version TEXT        NOT NULL,
    valid_contacts   BIGINT      NOT NULL,
    planned_at       TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE contacts_planned IS
    'The version of each task''s contacts file last planned into it to its end. A restarted daemon whose version matches skips reading the file again; any other version is planned again, which adds only new rows.';
COMMENT ON COLUMN contacts_planned.contacts_version IS
    'Opaque to the store: the daemon''s text for the file stamp, the campaign file hash, the contact limits and the daemon build.';
COMMENT ON COLUMN contacts_planned.valid_contacts IS
    'Rows of that version that passed validation (the daemon decides on it, e.g. a campaign with no valid contact is done).';
