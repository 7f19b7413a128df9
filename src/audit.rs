//! Rows the daemon cannot use are reported, never silently ignored: a pending
//! lead whose due time is NULL or unreadable, and leads of a campaign that no
//! campaign file has ever defined. Each is logged once (at start, then as new
//! ones appear); `dialer status` counts them.

use crate::daemon::Daemon;
use crate::store::Unusable;
use std::collections::HashSet;
use std::sync::Arc;

/// How often the tables are looked at again, in real time: the look is a
/// scan of `leads`, so it is kept rare.
const EVERY: std::time::Duration = std::time::Duration::from_secs(300);
/// Most rows reported per look.
const LIMIT: i64 = 1000;

pub async fn run(daemon: Arc<Daemon>) {
    let mut seen_leads = HashSet::new();
    let mut seen_campaigns = HashSet::new();
    loop {
        match daemon.store.unusable_leads(LIMIT).await {
            Ok(rows) => {
                for r in rows {
                    match r.why {
                        Unusable::NoDueTime if seen_leads.insert(r.id) => {
                            tracing::warn!(campaign = %r.campaign_id, lead = r.id, "pending lead has no readable next_attempt_at; it is not dialled until one is set");
                        }
                        Unusable::UnknownCampaign
                            if seen_campaigns.insert(r.campaign_id.clone()) =>
                        {
                            tracing::warn!(campaign = %r.campaign_id, lead = r.id, "leads name a campaign that no campaign file defines; they are not dialled (see `dialer status`)");
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for unusable leads"),
        }
        tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
