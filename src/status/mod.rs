//! Learning each call's fate: `poller` asks the providers, `webhook` hears
//! from them; both end in `apply`, the one place a status changes an attempt
//! and its lead.

pub mod poller;
pub mod webhook;

use crate::daemon::Daemon;
use crate::domain::{AttemptState, CallStatus, LeadStatus, Outcome};
use crate::outcome;
use crate::store::{LeadNext, OpenAttempt, Settled};

/// Applies a status to its attempt: the attempt is updated unless the status
/// is a duplicate or older than the stored one; the lead moves on when the
/// call ended and this is still its newest attempt.
pub async fn apply(
    daemon: &Daemon,
    open: &OpenAttempt,
    status: &CallStatus,
) -> anyhow::Result<Settled> {
    let now = daemon.clock.now();
    let (state, lead_next) = match status.outcome {
        None => (AttemptState::Placed, None),
        Some(outcome) => {
            let next = match daemon.campaign(&open.attempt.campaign_id) {
                // Retry delays run from when we learned the end, on our own
                // clock: a provider's clock may be skewed from ours.
                Some(c) => outcome::decide(&c, &open.lead, open.attempt.attempt, outcome, now),
                // A campaign whose file was removed: its leads are not dialled again.
                None => {
                    let status = match outcome {
                        Outcome::Completed | Outcome::Transferred => LeadStatus::Completed,
                        Outcome::Canceled => LeadStatus::Canceled,
                        _ => LeadStatus::Exhausted,
                    };
                    LeadNext::finished(status, outcome.as_str())
                }
            };
            (AttemptState::Ended, Some(next))
        }
    };
    let settled = daemon
        .store
        .settle(&open.attempt.id, status, state, lead_next.as_ref(), now)
        .await?;
    if settled == Settled::Applied {
        if let Some(o) = status.outcome {
            daemon.metrics.inc(
                "dialer_call_outcomes_total",
                &[
                    ("provider", &open.attempt.provider),
                    ("outcome", o.as_str()),
                ],
            );
            tracing::info!(
                campaign = %open.attempt.campaign_id,
                lead = open.attempt.lead_id,
                attempt = %open.attempt.id,
                outcome = %o,
                provider_status = %status.provider_status,
                "call ended"
            );
        }
    }
    Ok(settled)
}
