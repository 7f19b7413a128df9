-- `[caller_id]` caps: a caller ID's counted attempts in the last hour or day,
-- read in the transaction that commits each attempt from a capped number.
-- Attempts sent with no caller ID (Elemente, the simulated provider without
-- `from_numbers`) are left out of it.
CREATE INDEX call_attempts_from ON call_attempts (from_number, requested_at)
  WHERE from_number IS NOT NULL;
