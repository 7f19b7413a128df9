-- Outbound webhooks (`[[outbound_webhooks]]`). The daemon writes one row
-- per configured webhook into `outbound_routes` at start; the triggers below
-- write an event into `outbox` for each route that wants it, inside the
-- transaction that makes the change, so an event exists exactly when its
-- change was committed. Without routes nothing is written.
CREATE TABLE outbound_routes (
    webhook   TEXT PRIMARY KEY,
    -- ',attempt.ended,lead.final,' : the events wanted, comma-framed.
    events    TEXT NOT NULL,
    -- ',c1,c2,' : the campaigns wanted, comma-framed; NULL for every campaign.
    campaigns TEXT
);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    webhook      TEXT NOT NULL,
    event        TEXT NOT NULL,
    campaign_id  TEXT NOT NULL,
    lead_id      INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    -- NULL: due at once.
    next_try_at  TEXT,
    lease_owner  TEXT,
    lease_until  TEXT,
    last_error   TEXT,
    delivered_at TEXT,
    gave_up_at   TEXT
);

-- Undelivered events of a webhook, per lead in order: the head of each lead.
CREATE INDEX outbox_open ON outbox (webhook, lead_id, id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_open_order ON outbox (webhook, id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- An attempt ended (a final provider status, or given up as unknown), or an
-- ended attempt's outcome changed (a real status after `unknown`).
CREATE TRIGGER outbox_attempt_ended AFTER UPDATE OF state, outcome ON call_attempts
WHEN NEW.state = 'ended' AND (OLD.state <> 'ended' OR OLD.outcome IS NOT NEW.outcome)
BEGIN
  INSERT INTO outbox (event_id, webhook, event, campaign_id, lead_id, payload, created_at)
  SELECT lower(hex(randomblob(16))), r.webhook, 'attempt.ended', NEW.campaign_id, NEW.lead_id,
         json_object(
           'attempt_id', NEW.id,
           'attempt', NEW.attempt,
           'phone', NEW.to_number,
           'provider', NEW.provider,
           'provider_call_id', NEW.provider_call_id,
           'from_number', NEW.from_number,
           'outcome', NEW.outcome,
           'provider_status', NEW.provider_status,
           'hangup_cause', NEW.hangup_cause,
           'requested_at', NEW.requested_at,
           'answered_at', NEW.answered_at,
           'ended_at', NEW.ended_at,
           'duration_seconds', NEW.duration_seconds,
           'summary', NEW.summary,
           'recording_url', NEW.recording_url),
         strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM outbound_routes r
   WHERE instr(r.events, ',attempt.ended,') > 0
     AND (r.campaigns IS NULL OR instr(r.campaigns, ',' || NEW.campaign_id || ',') > 0);
END;

-- The daemon moved a lead to a final status (completed, exhausted,
-- canceled: `lead.final`; skipped: `lead.skipped`). Another system's change
-- of `status` alone (without `daemon_status`) is its own, and not reported.
CREATE TRIGGER outbox_lead_final AFTER UPDATE OF status ON leads
WHEN NEW.status IN ('completed', 'exhausted', 'canceled', 'skipped')
 AND NEW.status = NEW.daemon_status
 AND OLD.daemon_status IS NOT NEW.daemon_status
BEGIN
  INSERT INTO outbox (event_id, webhook, event, campaign_id, lead_id, payload, created_at)
  SELECT lower(hex(randomblob(16))), r.webhook, e.event, NEW.campaign_id, NEW.id,
         json_object(
           'phone', NEW.phone,
           'name', NEW.name,
           'status', NEW.status,
           'last_outcome', NEW.last_outcome,
           'attempts', NEW.attempts,
           'last_attempt_at', NEW.last_attempt_at,
           'variables', json(CASE WHEN json_valid(NEW.variables) THEN NEW.variables ELSE '{}' END)),
         strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM outbound_routes r,
         (SELECT CASE WHEN NEW.status = 'skipped' THEN 'lead.skipped' ELSE 'lead.final' END AS event) e
   WHERE instr(r.events, ',' || e.event || ',') > 0
     AND (r.campaigns IS NULL OR instr(r.campaigns, ',' || NEW.campaign_id || ',') > 0);
END;
