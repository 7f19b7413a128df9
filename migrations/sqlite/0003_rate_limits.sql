-- The rate limits every daemon on this database shares (`calls_per_minute`
-- per campaign as `campaign:<id>`, `requests_per_minute` per provider as
-- `provider:<name>`): the GCRA's theoretical arrival time, in microseconds
-- since the epoch by the daemons' clock.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
