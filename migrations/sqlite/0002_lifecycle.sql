-- What the daemon itself last wrote into a lead's `status` and
-- `next_attempt_at`. When the live columns differ, another system has
-- reopened, rescheduled or stopped the lead since, and the daemon keeps that
-- change when an attempt settles.
ALTER TABLE leads ADD COLUMN daemon_status TEXT;
ALTER TABLE leads ADD COLUMN daemon_next_attempt_at TEXT;
UPDATE leads SET daemon_status = status, daemon_next_attempt_at = next_attempt_at;

-- Due times are compared as RFC 3339 text. Another system may write any form
-- SQLite's date functions read ('2026-12-01 15:00:00', fractions of a
-- second, an offset, a Unix time as a number): normalise it to
-- '2026-12-01T15:00:00Z', rounding a fraction up (never early). A bare number
-- (the column's TEXT affinity stores it as text) is a Unix time. Text no date
-- function reads is left as it is, and reported as unusable.
CREATE TRIGGER leads_due_normalised_on_insert AFTER INSERT ON leads
WHEN NEW.next_attempt_at IS NOT NULL AND NEW.next_attempt_at NOT GLOB
     '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'
BEGIN
  UPDATE leads SET next_attempt_at = COALESCE(
      CASE WHEN NEW.next_attempt_at NOT GLOB '*[^0-9.]*'
           THEN strftime('%Y-%m-%dT%H:%M:%SZ', NEW.next_attempt_at, 'unixepoch', '+0.999 seconds')
           ELSE strftime('%Y-%m-%dT%H:%M:%SZ', NEW.next_attempt_at, '+0.999 seconds') END,
      NEW.next_attempt_at)
   WHERE id = NEW.id;
END;

CREATE TRIGGER leads_due_normalised_on_update AFTER UPDATE OF next_attempt_at ON leads
WHEN NEW.next_attempt_at IS NOT NULL AND NEW.next_attempt_at NOT GLOB
     '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'
BEGIN
  UPDATE leads SET next_attempt_at = COALESCE(
      CASE WHEN NEW.next_attempt_at NOT GLOB '*[^0-9.]*'
           THEN strftime('%Y-%m-%dT%H:%M:%SZ', NEW.next_attempt_at, 'unixepoch', '+0.999 seconds')
           ELSE strftime('%Y-%m-%dT%H:%M:%SZ', NEW.next_attempt_at, '+0.999 seconds') END,
      NEW.next_attempt_at)
   WHERE id = NEW.id;
END;

-- Open attempts are polled live first, oldest request first.
DROP INDEX call_attempts_open;
CREATE INDEX call_attempts_open ON call_attempts (provider, requested_at) WHERE state IN ('sending', 'placed', 'unknown');
