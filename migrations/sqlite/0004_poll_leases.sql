-- Which daemon polls an open attempt: the first to take it, until
-- `poll_after_us` (microseconds since the epoch by the daemons' clock).
-- Several daemons on one database split the polling of a provider's open
-- calls instead of each polling every one; any of them may still settle an
-- attempt from a webhook.
ALTER TABLE call_attempts ADD COLUMN poll_after_us BIGINT;
