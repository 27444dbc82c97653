-- campaignd store, PostgreSQL backend: the zone groups (each a JSON object of zones and legal rules) whose contacts were ever planned into
-- a task. Written before the orders of a group are inserted and never deleted, so the calendar the daemon compiles for
-- a task always covers every order it holds, even after the contacts file drops or moves a contact.
CREATE TABLE task_zone_groups (
    user_task_id TEXT NOT NULL,
    zone_group   TEXT NOT NULL,
    PRIMARY KEY (user_task_id, zone_group)
);
