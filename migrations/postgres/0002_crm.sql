-- CRM (leads, contacts, phones, e-mails, timelines), recordings, web sessions, idempotency keys and
-- the CRM sync outbox, PostgreSQL dialect. Keep in step with ../sqlite/0002_crm.sql.
-- Ids are UUIDv7 text with the "C" collation (byte order = time order), as in 0001.

-- Leads and contacts share one table: converting a lead flips `kind` and keeps the id, so the
-- timeline (keyed by person id) stays with it.
CREATE TABLE crm_people (
    id           TEXT COLLATE "C" PRIMARY KEY,   -- UUIDv7
    kind         TEXT    NOT NULL,               -- lead | contact
    name         TEXT,
    title        TEXT,                           -- a lead's subject: "Incoming call from +380…"
    company      TEXT,
    source       TEXT    NOT NULL,               -- telephony | api
    responsible  TEXT,                           -- operator extension
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    converted_at TIMESTAMPTZ                            -- when a lead became a contact
);

CREATE INDEX crm_people_kind ON crm_people (kind, id);

-- Numbers in E.164. `person_kind` mirrors crm_people.kind for the partial unique index: one lead
-- per number (match-or-create is an upsert on it), while contacts may share a number.
CREATE TABLE crm_phones (
    person_id   TEXT COLLATE "C" NOT NULL REFERENCES crm_people (id) ON DELETE CASCADE,
    person_kind TEXT NOT NULL,
    e164        TEXT NOT NULL,
    PRIMARY KEY (person_id, e164)
);

CREATE INDEX crm_phones_e164 ON crm_phones (e164);
CREATE UNIQUE INDEX crm_phones_one_lead_per_number ON crm_phones (e164) WHERE person_kind = 'lead';

CREATE TABLE crm_emails (
    person_id TEXT COLLATE "C" NOT NULL REFERENCES crm_people (id) ON DELETE CASCADE,
    email     TEXT NOT NULL,
    PRIMARY KEY (person_id, email)
);

-- Which person each ended call was put on (person_id NULL: nobody, e.g. an internal call). A row
-- here means the call was handled, so the start-up backfill skips it.
CREATE TABLE crm_call_links (
    call_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    person_id TEXT COLLATE "C" REFERENCES crm_people (id) ON DELETE SET NULL,
    linked_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX crm_call_links_person ON crm_call_links (person_id);

-- Timeline entries: a JSON snapshot (`data`) taken when the entry is written; call entries keep
-- their call id while the call row exists (retention may delete it later).
CREATE TABLE crm_timeline (
    id        TEXT COLLATE "C" PRIMARY KEY,         -- UUIDv7
    person_id TEXT COLLATE "C" NOT NULL REFERENCES crm_people (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,                     -- call | voicemail | note
    call_id   TEXT COLLATE "C" REFERENCES calls (id) ON DELETE SET NULL,
    at        TIMESTAMPTZ NOT NULL,
    data      TEXT NOT NULL,
    UNIQUE (call_id, kind)
);

CREATE INDEX crm_timeline_person ON crm_timeline (person_id, at);

-- Recordings written by the media engine; `path` is relative to the data directory.
CREATE TABLE recordings (
    id           TEXT COLLATE "C" PRIMARY KEY,   -- UUIDv7
    call_id      TEXT COLLATE "C" NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    path         TEXT    NOT NULL,
    format       TEXT    NOT NULL DEFAULT 'wav',
    channels     INTEGER NOT NULL,
    sample_rate  INTEGER NOT NULL,
    duration_ms  BIGINT,
    size_bytes   BIGINT,
    status       TEXT    NOT NULL,               -- recording | complete | failed
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE INDEX recordings_call_id ON recordings (call_id);
CREATE INDEX recordings_created_at ON recordings (created_at);

-- Browser sessions of the web page: only the SHA-256 of the cookie value is kept.
CREATE TABLE web_sessions (
    id_sha256    TEXT PRIMARY KEY NOT NULL,
    token_sha256 TEXT NOT NULL REFERENCES api_tokens (token_sha256) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);

-- Idempotency-Key on POSTs: the first response per (credential, key) is kept and replayed.
CREATE TABLE idempotency_keys (
    principal      TEXT    NOT NULL,             -- SHA-256 of the credential
    key            TEXT    NOT NULL,
    request_sha256 TEXT    NOT NULL,             -- method, path and body
    status         INTEGER,                      -- NULL while the first request runs
    body           TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- CRM sync outbox: one row per webhook call; `id` is the event id sent with every attempt.
CREATE TABLE crm_outbox (
    id              TEXT COLLATE "C" PRIMARY KEY, -- UUIDv7
    dedupe_key      TEXT    NOT NULL UNIQUE,      -- register:CALL | finish:CALL | attach:RECORDING
    call_id         TEXT COLLATE "C" NOT NULL,
    method          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,             -- JSON fields known when queued
    status          TEXT    NOT NULL,             -- pending | done | failed
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ
);

CREATE INDEX crm_outbox_due ON crm_outbox (status, next_attempt_at);
CREATE INDEX crm_outbox_call ON crm_outbox (call_id);

-- The external CRM's id for a call (CALL_ID from telephony.externalcall.register).
CREATE TABLE crm_sync_calls (
    call_id     TEXT COLLATE "C" PRIMARY KEY,
    external_id TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
