-- Times are TEXT in RFC 3339 UTC with whole seconds and `Z` (2026-12-01T14:00:00Z),
-- so that text order is time order. JSON columns are TEXT.

CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    config_hash TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    removed_at  TEXT
);

CREATE TABLE leads (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id      TEXT NOT NULL,
    phone            TEXT NOT NULL,
    name             TEXT,
    timezone         TEXT,
    variables        TEXT NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    consent_at       TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'completed', 'exhausted', 'skipped', 'canceled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_attempt_at  TEXT,
    last_outcome     TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    UNIQUE (campaign_id, phone)
);

-- The claim: due leads of one campaign, by due time.
CREATE INDEX leads_due ON leads (campaign_id, status, next_attempt_at);
-- Concurrency: leads in progress per campaign.
CREATE INDEX leads_in_progress ON leads (campaign_id, lease_expires_at) WHERE status = 'in_progress';
CREATE INDEX leads_phone ON leads (phone);

CREATE TABLE call_attempts (
    id               TEXT PRIMARY KEY,
    lead_id          INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    campaign_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    provider         TEXT NOT NULL,
    provider_call_id TEXT,
    from_number      TEXT,
    to_number        TEXT NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('sending', 'not_placed', 'placed', 'ended', 'unknown')),
    provider_status  TEXT,
    status_at        TEXT,
    outcome          TEXT
                     CHECK (outcome IS NULL OR outcome IN ('completed', 'transferred', 'no_answer', 'busy', 'voicemail', 'failed', 'canceled', 'unknown')),
    hangup_cause     TEXT,
    error            TEXT,
    requested_at     TEXT NOT NULL,
    answered_at      TEXT,
    ended_at         TEXT,
    duration_seconds INTEGER,
    summary          TEXT,
    transcript       TEXT,
    recording_url    TEXT,
    UNIQUE (lead_id, attempt)
);

CREATE INDEX call_attempts_open ON call_attempts (provider, status_at) WHERE state IN ('sending', 'placed', 'unknown');
CREATE INDEX call_attempts_provider_call ON call_attempts (provider, provider_call_id);
CREATE INDEX call_attempts_to_number ON call_attempts (to_number, requested_at);

CREATE TABLE dnc (
    phone    TEXT PRIMARY KEY,
    reason   TEXT,
    added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
