-- How far each node's records journal is applied: entries up to applied_seq are in the
-- database (written in the same transaction as their rows), so a restart replays the rest.
CREATE TABLE records_journal (
    node_id     TEXT   PRIMARY KEY,
    applied_seq BIGINT NOT NULL
);
