-- The claim takes due leads highest priority first, then longest due, then
-- oldest: this index hands them over in that order, so a claim reads the
-- leads it takes (and the not-yet-due leads it passes, see the README)
-- instead of sorting every due lead of the campaign. `leads_due` still
-- serves the earliest due time (`min(next_attempt_at)`).
CREATE INDEX leads_claim ON leads (campaign_id, status, priority DESC, next_attempt_at, id);
