-- Openline initial schema, SQLite dialect.
-- Timestamps are TEXT holding RFC 3339 in UTC ("2026-05-01T10:00:00.123+00:00", written by sqlx's
-- chrono support), so they sort and compare as text. Keep in step with ../postgres/0001_init.sql.

CREATE TABLE operators (
    id          INTEGER PRIMARY KEY,
    extension   TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    realm       TEXT    NOT NULL,
    ha1_md5     TEXT    NOT NULL,
    ha1_sha256  TEXT    NOT NULL,
    max_calls   INTEGER NOT NULL DEFAULT 1,
    status      TEXT    NOT NULL DEFAULT 'online',
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE registrations (
    id          INTEGER PRIMARY KEY,
    extension   TEXT    NOT NULL,
    contact_uri TEXT    NOT NULL,
    received    TEXT,
    transport   TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,
    cseq        INTEGER NOT NULL,
    expires_at  TEXT    NOT NULL,
    user_agent  TEXT,
    node_id     TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    UNIQUE (extension, contact_uri)
);

CREATE INDEX registrations_expires_at ON registrations (expires_at);

CREATE TABLE calls (
    id          TEXT    PRIMARY KEY NOT NULL,
    node_id     TEXT    NOT NULL,
    direction   TEXT    NOT NULL,
    caller      TEXT    NOT NULL,
    caller_name TEXT,
    callee      TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    answered_at TEXT,
    ended_at    TEXT,
    duration_ms INTEGER,
    disposition TEXT,
    hangup_by   TEXT
);

CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_open_by_node ON calls (node_id) WHERE ended_at IS NULL;

CREATE TABLE call_legs (
    id           INTEGER PRIMARY KEY,
    call_id      TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    sip_call_id  TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    local_tag    TEXT,
    remote_tag   TEXT,
    remote_uri   TEXT    NOT NULL,
    remote_addr  TEXT,
    transport    TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    final_status INTEGER
);

CREATE INDEX call_legs_call_id ON call_legs (call_id);
CREATE INDEX call_legs_sip_call_id ON call_legs (sip_call_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    token_sha256 TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL,
    extension    TEXT,
    label        TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
);
