-- The outbox triggers' conditions move from inside their functions to the
-- triggers' WHEN clauses: PostgreSQL then queues no after-trigger event and
-- calls no function for the rows they leave alone (a lead claimed, moved to
-- its next opening or set pending again; an attempt placed), which are most
-- of the rows the daemon updates. Same events as before.
DROP TRIGGER outbox_attempt_ended ON call_attempts;
CREATE TRIGGER outbox_attempt_ended AFTER UPDATE OF state, outcome ON call_attempts
FOR EACH ROW
WHEN (NEW.state = 'ended' AND (OLD.state <> 'ended' OR OLD.outcome IS DISTINCT FROM NEW.outcome))
EXECUTE FUNCTION dialer_outbox_attempt_ended();

DROP TRIGGER outbox_lead_final ON leads;
CREATE TRIGGER outbox_lead_final AFTER UPDATE OF status ON leads
FOR EACH ROW
WHEN (NEW.status IN ('completed', 'exhausted', 'canceled', 'skipped')
      AND NEW.status = NEW.daemon_status
      AND OLD.daemon_status IS DISTINCT FROM NEW.daemon_status)
EXECUTE FUNCTION dialer_outbox_lead_final();
