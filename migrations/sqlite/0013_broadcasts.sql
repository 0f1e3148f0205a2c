-- Voice broadcasts, SQLite dialect. Keep in step with ../postgres/0013_broadcasts.sql.

-- A campaign. `settings` is the JSON of `broadcast::StoredSettings` (message, answer flow,
-- opt-out digit, calling window, retry rules, maximum ring time, answering-machine detection).
CREATE TABLE broadcasts (
    id          TEXT    PRIMARY KEY NOT NULL,   -- UUIDv7
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL,               -- draft | running | paused | cancelled | completed
    trunk       TEXT    NOT NULL,
    caller_id   TEXT,
    concurrency INTEGER NOT NULL,
    cps         REAL    NOT NULL,
    settings    TEXT    NOT NULL,
    created_by  TEXT,
    created_at  TEXT    NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    updated_at  TEXT    NOT NULL
);

CREATE INDEX broadcasts_state ON broadcasts (state);

-- One person to call. `e164` is NULL for a number that could not be read (outcome
-- invalid_number, never dialled); `zones` are the IANA zones its window is judged in.
-- `state`: pending (due at next_attempt_at) | calling (claimed by lease_owner until
-- lease_until) | done (final `outcome`). `attempts` counts calls made, the claimed one included.
CREATE TABLE broadcast_recipients (
    id              INTEGER PRIMARY KEY,
    broadcast_id    TEXT    NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,           -- order given (CSV row, list index)
    raw_number      TEXT    NOT NULL,
    e164            TEXT,
    name            TEXT,
    person_id       TEXT,                       -- the CRM lead or contact
    zones           TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    lease_owner     TEXT,
    lease_until     TEXT,
    outcome         TEXT,                       -- the last attempt's, final once done
    sip_status      INTEGER,
    digit           TEXT,                       -- the answer digit, once pressed
    error           TEXT,                       -- why the number is invalid
    updated_at      TEXT    NOT NULL
);

CREATE INDEX broadcast_recipients_due ON broadcast_recipients (broadcast_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX broadcast_recipients_leased ON broadcast_recipients (lease_owner)
    WHERE state = 'calling';
CREATE INDEX broadcast_recipients_list ON broadcast_recipients (broadcast_id, position);

-- One call (or claim) of a recipient. Open (ended_at NULL) while its node works on it; a node
-- closes its open ones at start (a crash), survivors close those of expired leases.
CREATE TABLE broadcast_attempts (
    id           TEXT    PRIMARY KEY NOT NULL,  -- UUIDv7
    broadcast_id TEXT    NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    recipient_id INTEGER NOT NULL REFERENCES broadcast_recipients (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,              -- 1 for the first call of the recipient
    node_id      TEXT    NOT NULL,
    call_id      TEXT,                          -- the calls row, once dialled
    claimed_at   TEXT    NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    outcome      TEXT,                          -- an outcome, trunk_congested, released, crashed
    sip_status   INTEGER,
    amd          TEXT,                          -- human | machine | unsure
    amd_reason   TEXT,
    message      TEXT,                          -- complete | partial | none
    digit        TEXT
);

CREATE INDEX broadcast_attempts_open ON broadcast_attempts (node_id) WHERE ended_at IS NULL;
CREATE INDEX broadcast_attempts_recipient ON broadcast_attempts (recipient_id, attempt);
CREATE INDEX broadcast_attempts_ended ON broadcast_attempts (broadcast_id, ended_at);

-- Numbers never to be called by any campaign (opted out by pressing the digit, or added by
-- an admin).
CREATE TABLE do_not_call (
    e164         TEXT PRIMARY KEY NOT NULL,
    reason       TEXT NOT NULL,                 -- opt_out | api
    broadcast_id TEXT,
    call_id      TEXT,
    added_at     TEXT NOT NULL
);

-- A call placed by a campaign: its id, and the attempt's result as JSON
-- ({"attempt", "answered", "amd", "amd_reason", "message", "digit", "opted_out", "sip"}), for the call view and the timeline.
ALTER TABLE calls ADD COLUMN broadcast_id TEXT;
ALTER TABLE calls ADD COLUMN broadcast_result TEXT;
CREATE INDEX calls_broadcast ON calls (broadcast_id, id) WHERE broadcast_id IS NOT NULL;
