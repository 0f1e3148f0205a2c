-- The IVR on the call: which flow answered it, the nodes it passed with the keys pressed (JSON),
-- and the caller's post-call rating (1-5).
ALTER TABLE calls ADD COLUMN flow_id TEXT;
ALTER TABLE calls ADD COLUMN flow_path TEXT;
ALTER TABLE calls ADD COLUMN rating INTEGER;
