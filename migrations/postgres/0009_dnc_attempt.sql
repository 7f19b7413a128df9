-- The attempt whose callee asked not to be called again (`[opt_out]`).
ALTER TABLE dnc ADD COLUMN attempt_id TEXT;
