-- What happened during a call, in order: digits pressed, recordings, media problems.
-- (0002-0009 are kept for the CRM/API work developed alongside.)
CREATE TABLE call_events (
    id      INTEGER PRIMARY KEY,
    call_id TEXT    NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    at      TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX call_events_by_call ON call_events (call_id, id);
