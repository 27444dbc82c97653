-- A start, pause or completion (mgrTaskStatus) is recorded before it is sent, and cleared when the platform's
-- answer, or a listTask after it, gives the task's status. A mark left set means the request may have been applied
-- without the store knowing (the daemon was killed, or the answer and the follow-up listTask were both lost): the
-- stored status cannot be trusted, so the daemon asks the platform before it starts anything, and pauses anyway when
-- the task must not run. Old binaries never read or write it.
ALTER TABLE tasks ADD COLUMN status_in_doubt_since TIMESTAMPTZ;
COMMENT ON COLUMN tasks.status_in_doubt_since IS 'When a mgrTaskStatus was about to be sent whose outcome is not recorded yet (NULL: the stored status is the platform''s last answer).';
