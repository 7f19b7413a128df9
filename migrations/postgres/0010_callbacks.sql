-- Callbacks the callee asked for (`[callbacks]`, `dialer callback`): how many a lead
-- was given (each allows one attempt beyond `max_attempts`), and the last instant asked.
ALTER TABLE leads ADD COLUMN callbacks INTEGER NOT NULL DEFAULT 0, ADD COLUMN callback_at TIMESTAMPTZ;

-- `dialer export` walks a campaign's leads by id, a page at a time.
CREATE INDEX leads_campaign_id ON leads (campaign_id, id);
