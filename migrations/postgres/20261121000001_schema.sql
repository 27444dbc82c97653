-- campaignd store, PostgreSQL backend: tables.
-- There are no foreign keys between campaigns, tasks, orders and calls: the daemon may learn of them in any order
-- (a callback may describe a call before its order's poll). Reports join on the IDs.

CREATE TABLE campaigns (
    campaign_id  text PRIMARY KEY,
    generation   bigint NOT NULL,
    source_file  text NOT NULL,
    content_hash text NOT NULL,
    spec         jsonb,
    state        text NOT NULL,
    last_error   text,
    updated_at   timestamptz NOT NULL
);
COMMENT ON TABLE campaigns IS 'One row per campaign file, as the daemon last loaded it.';
COMMENT ON COLUMN campaigns.generation IS 'The file''s generation: bumped by the user to run the same campaign again for the same contacts.';
COMMENT ON COLUMN campaigns.source_file IS 'Path of the campaign file.';
COMMENT ON COLUMN campaigns.content_hash IS 'Hash of the file''s content.';
COMMENT ON COLUMN campaigns.spec IS 'The last spec that parsed and validated.';
COMMENT ON COLUMN campaigns.state IS 'The daemon''s state for the campaign.';
COMMENT ON COLUMN campaigns.last_error IS 'Why the last load or action failed, if it did.';

CREATE TABLE tasks (
    user_task_id     text PRIMARY KEY,
    campaign_id      text NOT NULL,
    generation       bigint NOT NULL,
    task_index       bigint NOT NULL,
    task_id          text,
    settings         jsonb,
    settings_sent_at timestamptz,
    platform_status  bigint,
    desired_status   bigint,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX tasks_by_campaign ON tasks (campaign_id, generation, task_index);
COMMENT ON TABLE tasks IS 'One row per platform task.';
COMMENT ON COLUMN tasks.user_task_id IS 'Our task key on the platform (userTaskID).';
COMMENT ON COLUMN tasks.task_id IS 'The platform''s own taskID, once known.';
COMMENT ON COLUMN tasks.settings IS 'The settings last sent to the platform (createTask/updateTask).';
COMMENT ON COLUMN tasks.platform_status IS 'taskStatus as last seen: 1 pending start, 2 running, 3 completed, 4 ended, 5 paused.';
COMMENT ON COLUMN tasks.desired_status IS 'The status the daemon wants the task in (same values).';

CREATE TABLE orders (
    order_id         text PRIMARY KEY,
    campaign_id      text NOT NULL,
    user_task_id     text NOT NULL,
    phone            text NOT NULL,
    name             text,
    customer         text,
    other            text,
    variables        jsonb NOT NULL DEFAULT '{}',
    source_line      bigint NOT NULL,
    upload_state     text NOT NULL DEFAULT 'planned'
                     CHECK (upload_state IN ('planned', 'sending', 'sent', 'rejected')),
    reject_reason    text,
    state_changed_at timestamptz,
    finished         boolean NOT NULL DEFAULT false,
    last_call_status bigint,
    last_polled_at   timestamptz,
    UNIQUE (user_task_id, phone)
);
CREATE INDEX orders_by_task_state ON orders (user_task_id, upload_state, source_line);
CREATE INDEX orders_to_poll ON orders (user_task_id, last_polled_at NULLS FIRST, order_id)
    WHERE upload_state = 'sent' AND NOT finished;
COMMENT ON TABLE orders IS 'One row per order: one phone number of one campaign. A phone is planned at most once per task, and so per campaign generation.';
COMMENT ON COLUMN orders.order_id IS 'Our globally unique orderID.';
COMMENT ON COLUMN orders.phone IS 'Country code and national number, digits only.';
COMMENT ON COLUMN orders.other IS 'Passthrough sent to the platform as `other`.';
COMMENT ON COLUMN orders.variables IS 'Script variables (JSON object).';
COMMENT ON COLUMN orders.source_line IS 'Line of the contact in its source file; also the upload order.';
COMMENT ON COLUMN orders.upload_state IS 'planned, sending (request in flight), sent (platform accepted), rejected.';
COMMENT ON COLUMN orders.finished IS 'The platform says no further rounds will follow. Never goes back to false.';
COMMENT ON COLUMN orders.last_call_status IS 'callStatus of the latest call by start time.';

CREATE TABLE calls (
    call_id        text PRIMARY KEY,
    order_id       text NOT NULL,
    call_status    bigint NOT NULL,
    started_at     timestamptz,
    answered_at    timestamptz,
    ended_at       timestamptz,
    duration_secs  bigint,
    talk_secs      bigint,
    audio_url      text,
    hangup_cause   text,
    term_sip_code  text,
    calling_number text,
    agent          jsonb,
    source         text NOT NULL
);
CREATE INDEX calls_by_order ON calls (order_id, started_at);
CREATE INDEX calls_by_start ON calls (started_at);
COMMENT ON TABLE calls IS 'One row per call (dialling round) the platform reported.';
COMMENT ON COLUMN calls.call_id IS 'The platform''s callID.';
COMMENT ON COLUMN calls.call_status IS 'callStatus: 1..5 in flight, 6 and above final (see call_status_names). A final status is never overwritten by an in-flight one.';
COMMENT ON COLUMN calls.duration_secs IS 'callDuration as reported, seconds.';
COMMENT ON COLUMN calls.talk_secs IS 'callDuration, else answered_at..ended_at, seconds.';
COMMENT ON COLUMN calls.audio_url IS 'Recording URL.';
COMMENT ON COLUMN calls.calling_number IS 'Caller ID used.';
COMMENT ON COLUMN calls.agent IS 'The agent leg, when an agent took part.';
COMMENT ON COLUMN calls.source IS 'poll or callback: which one last updated the row.';

CREATE TABLE call_intents (
    call_id      text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    position     bigint NOT NULL,
    intent_id    text NOT NULL,
    intent_tag   text NOT NULL,
    intent_name  text NOT NULL,
    intent_level bigint,
    PRIMARY KEY (call_id, position)
);
COMMENT ON TABLE call_intents IS 'Intent labels of a call, in the order reported.';

CREATE TABLE call_sms (
    call_id        text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    position       bigint NOT NULL,
    sys_message_id text NOT NULL,
    sent_at        timestamptz,
    content        text NOT NULL,
    status         bigint,
    PRIMARY KEY (call_id, position)
);
COMMENT ON TABLE call_sms IS 'SMS reported for a call, in the order reported.';
COMMENT ON COLUMN call_sms.status IS '0 not sent, 1 sent, 2 delivered, 3 failed, 4 clicked, when the platform gives one.';

CREATE TABLE call_transcript (
    call_id      text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    record_index bigint NOT NULL,
    role         bigint NOT NULL,
    kind         bigint NOT NULL,
    word         text NOT NULL,
    node_id      text,
    node_desc    text,
    at           timestamptz,
    PRIMARY KEY (call_id, record_index)
);
COMMENT ON TABLE call_transcript IS 'Dialogue record of a call (recordDetail), keyed by recordIndex.';
COMMENT ON COLUMN call_transcript.role IS 'recordRole: 0 robot, 1 user, 2 agent.';
COMMENT ON COLUMN call_transcript.kind IS 'recordType: 5 user timeout, 6 user interruption, 7 user normal answer, 8 server answer, 18 agent reply.';

CREATE TABLE api_actions (
    action_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    endpoint     text NOT NULL,
    request_id   text NOT NULL,
    response_id  text,
    ret_code     bigint,
    message      text,
    http_status  bigint,
    duration_ms  bigint NOT NULL,
    outcome      text NOT NULL,
    campaign_id  text,
    user_task_id text
);
CREATE INDEX api_actions_by_at ON api_actions (at);
CREATE INDEX api_actions_by_campaign ON api_actions (campaign_id, at);
COMMENT ON TABLE api_actions IS 'Ledger: every request made to the platform, whatever its outcome.';

CREATE TABLE callbacks (
    callback_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    kind        text NOT NULL,
    request_id  text,
    verified    boolean NOT NULL,
    body        text NOT NULL
);
CREATE INDEX callbacks_by_received_at ON callbacks (received_at);
COMMENT ON TABLE callbacks IS 'Ledger: every callback received (raw body), stored before it is processed.';

CREATE TABLE leases (
    campaign_id text PRIMARY KEY,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE leases IS 'Which replica owns each campaign, until when.';

CREATE TABLE call_status_names (
    call_status bigint PRIMARY KEY,
    status_name text NOT NULL,
    is_final    boolean NOT NULL
);
COMMENT ON TABLE call_status_names IS 'The vendor''s names for callStatus values.';
INSERT INTO call_status_names (call_status, status_name, is_final) VALUES
    (1, 'preparing', false), (2, 'dispatching', false), (3, 'dialing', false), (4, 'ringing', false),
    (5, 'in call', false), (6, 'completed (answered)', true), (8, 'invalid number', true),
    (9, 'temporarily unreachable', true), (10, 'busy', true), (11, 'busy and rejected', true), (12, 'rejected', true),
    (13, 'rejected', true), (15, 'TTS synthesis failed', true), (16, 'unknown reason', true),
    (17, 'blacklisted number', true), (18, 'terminated by user', true), (21, 'invalid number (number check)', true),
    (22, 'ring missed', true), (23, 'no response', true), (24, 'early media / voice mail', true),
    (25, 'rang too long', true);
