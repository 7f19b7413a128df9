-- A provider on which placing is paused (a 429 with Retry-After, an
-- unusable account, an outage), written by the daemon that paused it so
-- that `dialer status`, `dialer explain` and other daemons see it. The row
-- stays after the pause runs out; it is paused while `paused_until` is in
-- the future, and deleted when a probe finds the account usable again.
CREATE TABLE provider_pauses (
    provider     TEXT PRIMARY KEY,
    paused_until TIMESTAMPTZ NOT NULL,
    reason       TEXT NOT NULL,
    since        TIMESTAMPTZ NOT NULL
);
