-- campaignd store, SQLite backend: which version of a task's contacts file was planned into it to its end, so a
-- restarted daemon does not read and insert the whole file again (each row skipped as already stored) before it
-- can tell nothing changed. One row per task, replaced when a newer version is planned.
--
-- `contacts_version` is opaque to the store: the daemon's text for the file's stamp, the campaign file's hash, the
-- contact limits and its build. A row whose version is not the daemon's own is ignored: the file is planned
-- again, which adds only what is new. Losing the table costs a re-read, never an order.
CREATE TABLE contacts_planned (
    user_task_id     TEXT    NOT NULL PRIMARY KEY,
    contacts_version TEXT    NOT NULL,
    valid_contacts   INTEGER NOT NULL,
    planned_at       TEXT    NOT NULL
);
