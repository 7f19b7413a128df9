-- Which agent a request named (campaign `[[agents]]`, or its `agent_id`).
ALTER TABLE call_attempts ADD COLUMN agent_id TEXT;
