-- campaignd store, SQLite backend: tables.
-- Timestamps are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sortable as text, readable by SQLite's date functions).
-- Booleans are 0/1 integers. JSON columns hold JSON text.
-- There are no foreign keys between campaigns, tasks, orders and calls: the daemon may learn of them in any order
-- (a callback may describe a call before its order's poll). Reports join on the IDs.

-- One row per campaign file, as the daemon last loaded it.
CREATE TABLE campaigns (
    campaign_id  TEXT PRIMARY KEY,
    generation   INTEGER NOT NULL,          -- the file's `generation`: bumped to run the same contacts again
    source_file  TEXT NOT NULL,             -- path of the campaign file
    content_hash TEXT NOT NULL,             -- hash of the file's content
    spec         TEXT,                      -- last spec that validated (JSON)
    state        TEXT NOT NULL,             -- the daemon's state for the campaign
    last_error   TEXT,                      -- why the last load or action failed
    updated_at   TEXT NOT NULL
);

-- One row per platform task (userTaskID).
CREATE TABLE tasks (
    user_task_id     TEXT PRIMARY KEY,      -- our task key on the platform (userTaskID)
    campaign_id      TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    task_index       INTEGER NOT NULL,
    task_id          TEXT,                  -- the platform's taskID, once known
    settings         TEXT,                  -- settings last sent (JSON)
    settings_sent_at TEXT,
    platform_status  INTEGER,               -- taskStatus: 1 pending, 2 running, 3 completed, 4 ended, 5 paused
    desired_status   INTEGER,
    updated_at       TEXT NOT NULL
);
CREATE INDEX tasks_by_campaign ON tasks (campaign_id, generation, task_index);

-- One row per order (one phone number of one campaign).
CREATE TABLE orders (
    order_id         TEXT PRIMARY KEY,      -- our globally unique orderID
    campaign_id      TEXT NOT NULL,
    user_task_id     TEXT NOT NULL,
    phone            TEXT NOT NULL,         -- country code + national number, digits only
    name             TEXT,
    customer         TEXT,
    other            TEXT,                  -- passthrough sent as `other`
    variables        TEXT NOT NULL DEFAULT '{}', -- script variables (JSON object)
    source_line      INTEGER NOT NULL,      -- line in the source file; also the upload order
    upload_state     TEXT NOT NULL DEFAULT 'planned'
                     CHECK (upload_state IN ('planned', 'sending', 'sent', 'rejected')),
    reject_reason    TEXT,
    state_changed_at TEXT,
    finished         INTEGER NOT NULL DEFAULT 0 CHECK (finished IN (0, 1)), -- never goes back to 0
    last_call_status INTEGER,               -- callStatus of the latest call by start time
    last_polled_at   TEXT,
    UNIQUE (user_task_id, phone)            -- a phone is planned at most once per task (task = campaign + generation)
);
CREATE INDEX orders_by_task_state ON orders (user_task_id, upload_state, source_line);
CREATE INDEX orders_to_poll ON orders (user_task_id, last_polled_at, order_id)
    WHERE upload_state = 'sent' AND finished = 0;

-- One row per call (dialling round) the platform reported.
CREATE TABLE calls (
    call_id        TEXT PRIMARY KEY,        -- the platform's callID
    order_id       TEXT NOT NULL,
    call_status    INTEGER NOT NULL,        -- 1..5 in flight, 6 and above final; see call_status_names
    started_at     TEXT,
    answered_at    TEXT,
    ended_at       TEXT,
    duration_secs  INTEGER,                 -- callDuration as reported
    talk_secs      INTEGER,                 -- callDuration, else answered_at..ended_at
    audio_url      TEXT,                    -- recording
    hangup_cause   TEXT,
    term_sip_code  TEXT,
    calling_number TEXT,                    -- caller ID used
    agent          TEXT,                    -- agent leg (JSON), when an agent took part
    source         TEXT NOT NULL            -- 'poll' or 'callback': which one last updated the row
);
CREATE INDEX calls_by_order ON calls (order_id, started_at);
CREATE INDEX calls_by_start ON calls (started_at);

-- Intent labels of a call, in the order reported.
CREATE TABLE call_intents (
    call_id      TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    intent_id    TEXT NOT NULL,
    intent_tag   TEXT NOT NULL,
    intent_name  TEXT NOT NULL,
    intent_level INTEGER,
    PRIMARY KEY (call_id, position)
);

-- SMS reported for a call, in the order reported.
CREATE TABLE call_sms (
    call_id        TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    sys_message_id TEXT NOT NULL,
    sent_at        TEXT,
    content        TEXT NOT NULL,
    status         INTEGER,                 -- 0 not sent, 1 sent, 2 delivered, 3 failed, 4 clicked (when given)
    PRIMARY KEY (call_id, position)
);

-- Dialogue record of a call (recordDetail), keyed by recordIndex.
CREATE TABLE call_transcript (
    call_id      TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    record_index INTEGER NOT NULL,
    role         INTEGER NOT NULL,          -- 0 robot, 1 user, 2 agent
    kind         INTEGER NOT NULL,          -- recordType
    word         TEXT NOT NULL,
    node_id      TEXT,
    node_desc    TEXT,
    at           TEXT,
    PRIMARY KEY (call_id, record_index)
);

-- Ledger: every request made to the platform.
CREATE TABLE api_actions (
    action_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    response_id  TEXT,
    ret_code     INTEGER,
    message      TEXT,
    http_status  INTEGER,
    duration_ms  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    campaign_id  TEXT,
    user_task_id TEXT
);
CREATE INDEX api_actions_by_at ON api_actions (at);
CREATE INDEX api_actions_by_campaign ON api_actions (campaign_id, at);

-- Ledger: every callback received, stored before it is processed.
CREATE TABLE callbacks (
    callback_id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    kind        TEXT NOT NULL,              -- task, order, call
    request_id  TEXT,
    verified    INTEGER NOT NULL CHECK (verified IN (0, 1)),
    body        TEXT NOT NULL               -- raw body as received
);
CREATE INDEX callbacks_by_received_at ON callbacks (received_at);

-- Which replica owns each campaign, until when.
CREATE TABLE leases (
    campaign_id TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- The vendor's names for callStatus values.
CREATE TABLE call_status_names (
    call_status INTEGER PRIMARY KEY,
    status_name TEXT NOT NULL,
    is_final    INTEGER NOT NULL
);
INSERT INTO call_status_names (call_status, status_name, is_final) VALUES
    (1, 'preparing', 0), (2, 'dispatching', 0), (3, 'dialing', 0), (4, 'ringing', 0), (5, 'in call', 0),
    (6, 'completed (answered)', 1), (8, 'invalid number', 1), (9, 'temporarily unreachable', 1), (10, 'busy', 1),
    (11, 'busy and rejected', 1), (12, 'rejected', 1), (13, 'rejected', 1), (15, 'TTS synthesis failed', 1),
    (16, 'unknown reason', 1), (17, 'blacklisted number', 1), (18, 'terminated by user', 1),
    (21, 'invalid number (number check)', 1), (22, 'ring missed', 1), (23, 'no response', 1),
    (24, 'early media / voice mail', 1), (25, 'rang too long', 1);
