-- Queues on the call and the operators' state, PostgreSQL dialect. Keep in step with
-- ../sqlite/0012_queues.sql.
-- `queue`: the queue the caller waited in (the last one, after an overflow); `operator`: the
-- extension that talked to the caller; `wait_ms`: time in the queue until bridged or abandoned.
ALTER TABLE calls ADD COLUMN queue TEXT;
ALTER TABLE calls ADD COLUMN operator TEXT;
ALTER TABLE calls ADD COLUMN wait_ms BIGINT;

-- The call list by queue or operator, newest first; ratings newest first and per operator.
CREATE INDEX calls_queue ON calls (queue, id) WHERE queue IS NOT NULL;
CREATE INDEX calls_operator ON calls (operator, id) WHERE operator IS NOT NULL;
CREATE INDEX calls_rated ON calls (id) WHERE rating IS NOT NULL;

-- Why the status is what it is (`missed_rings:3` when the server set the operator away; NULL
-- when an operator or admin set it), and since when.
ALTER TABLE operators ADD COLUMN status_reason TEXT;
ALTER TABLE operators ADD COLUMN status_changed_at TIMESTAMPTZ;
