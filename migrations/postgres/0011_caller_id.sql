-- `[caller_id]` caps: a caller ID's counted attempts in the last hour or day,
-- read in the transaction that commits each attempt from a capped number.
CREATE INDEX call_attempts_from ON call_attempts (from_number, requested_at);
