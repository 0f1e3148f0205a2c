-- Openline initial schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql.
-- Call ids are UUIDv7 text with the "C" collation, so `id < $1` keyset paging compares bytes,
-- which is time order for UUIDv7 whatever the database's locale.

CREATE TABLE operators (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    extension   TEXT        NOT NULL UNIQUE,
    name        TEXT        NOT NULL,
    realm       TEXT        NOT NULL,
    ha1_md5     TEXT        NOT NULL,
    ha1_sha256  TEXT        NOT NULL,
    max_calls   INTEGER     NOT NULL DEFAULT 1,
    status      TEXT        NOT NULL DEFAULT 'online',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE registrations (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    extension   TEXT        NOT NULL,
    contact_uri TEXT        NOT NULL,
    received    TEXT,
    transport   TEXT        NOT NULL,
    call_id     TEXT        NOT NULL,
    cseq        BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    user_agent  TEXT,
    node_id     TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (extension, contact_uri)
);

CREATE INDEX registrations_expires_at ON registrations (expires_at);

CREATE TABLE calls (
    id          TEXT COLLATE "C" PRIMARY KEY,
    node_id     TEXT        NOT NULL,
    direction   TEXT        NOT NULL,
    caller      TEXT        NOT NULL,
    caller_name TEXT,
    callee      TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    answered_at TIMESTAMPTZ,
    ended_at    TIMESTAMPTZ,
    duration_ms BIGINT,
    disposition TEXT,
    hangup_by   TEXT
);

CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_open_by_node ON calls (node_id) WHERE ended_at IS NULL;

CREATE TABLE call_legs (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id      TEXT COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    sip_call_id  TEXT        NOT NULL,
    direction    TEXT        NOT NULL,
    local_tag    TEXT,
    remote_tag   TEXT,
    remote_uri   TEXT        NOT NULL,
    remote_addr  TEXT,
    transport    TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    answered_at  TIMESTAMPTZ,
    ended_at     TIMESTAMPTZ,
    final_status INTEGER
);

CREATE INDEX call_legs_call_id ON call_legs (call_id);
CREATE INDEX call_legs_sip_call_id ON call_legs (sip_call_id);

CREATE TABLE api_tokens (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_sha256 TEXT        NOT NULL UNIQUE,
    role         TEXT        NOT NULL,
    extension    TEXT,
    label        TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
