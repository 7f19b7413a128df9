//! The retry policy: what a lead becomes once an attempt's outcome is known.
//! `completed`, `transferred` and `canceled` are final; any other outcome is
//! retried after the campaign's delay for it, moved to the lead's next
//! opening, until `max_attempts` counted attempts are spent.

use crate::config::CampaignConfig;
use crate::domain::{Lead, LeadStatus, Outcome};
use crate::store::LeadNext;
use chrono::{DateTime, Utc};

/// The lead's next state after attempt number `attempt` ended with `outcome` at `at`.
pub fn decide(
    c: &CampaignConfig,
    lead: &Lead,
    attempt: i32,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> LeadNext {
    match outcome {
        Outcome::Completed | Outcome::Transferred => {
            LeadNext::finished(LeadStatus::Completed, outcome.as_str())
        }
        Outcome::Canceled => LeadNext::finished(LeadStatus::Canceled, outcome.as_str()),
        _ if attempt >= c.retry.max_attempts as i32 => {
            LeadNext::finished(LeadStatus::Exhausted, outcome.as_str())
        }
        _ => LeadNext::pending(
            retry_at(c, lead, outcome, at),
            Some(outcome.as_str().to_string()),
        ),
    }
}

/// When the next attempt may happen after `outcome` at `at`: the delay for
/// the outcome, then the lead's next opening (a delay that ends outside the
/// window moves to the next opening).
pub fn retry_at(
    c: &CampaignConfig,
    lead: &Lead,
    outcome: Outcome,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    let delay = chrono::Duration::from_std(c.retry.delay_after(outcome))
        .unwrap_or(chrono::Duration::hours(1));
    let earliest = at + delay;
    let zone = c.rules.zone_of(lead.timezone.as_deref(), &lead.phone);
    c.rules
        .next_opening(&zone, &lead.phone, earliest)
        .unwrap_or(earliest)
}
