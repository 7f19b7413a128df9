-- What the daemon itself last wrote into a lead's `status` and
-- `next_attempt_at`. When the live columns differ, another system has
-- reopened, rescheduled or stopped the lead since, and the daemon keeps that
-- change when an attempt settles.
ALTER TABLE leads ADD COLUMN daemon_status TEXT, ADD COLUMN daemon_next_attempt_at TIMESTAMPTZ;
UPDATE leads SET daemon_status = status, daemon_next_attempt_at = next_attempt_at;

-- Open attempts are polled live first, oldest request first.
DROP INDEX call_attempts_open;
CREATE INDEX call_attempts_open ON call_attempts (provider, requested_at) WHERE state IN ('sending', 'placed', 'unknown');
