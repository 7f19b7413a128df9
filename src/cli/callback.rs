//! `dialer callback --campaign ID --phone NUMBER --at T`: a callback by
//! hand. The lead is due at `T`, or at the next opening of its window and
//! legal hours after it (said so), with one more attempt than
//! `max_attempts` allows. `T` is RFC 3339, or a local date and time read in
//! the lead's zone.

use super::{load, open_store, CliError, CliResult};
use crate::clock::Clock;
use crate::config::parse_callback;
use crate::domain::rfc3339;
use std::path::Path;

pub async fn run(config: &Path, campaign: &str, phone: &str, at: &str, clock: &Clock) -> CliResult {
    let loaded = load(config)?;
    let Some(c) = loaded.campaigns.iter().find(|c| c.id == campaign) else {
        return Err(anyhow::anyhow!("unknown campaign `{campaign}`").into());
    };
    let phone = crate::phone::normalize(phone, None)
        .map_err(|why| CliError::Usage(format!("--phone: {why}")))?;
    let store = open_store(&loaded).await?;
    let Some(lead) = store.find_lead(&c.id, &phone).await? else {
        return Err(anyhow::anyhow!("no lead with number {phone} in campaign `{campaign}`").into());
    };
    let zone = c.rules.zone_of(lead.timezone.as_deref(), &lead.phone);
    let asked = parse_callback(at, zone.zones.first().copied()).ok_or_else(|| {
        CliError::Usage(format!(
            "--at: `{at}` is neither an RFC 3339 time nor a local date and time (2026-12-02T15:00)"
        ))
    })?;
    let now = clock.now();
    let from = asked.max(now);
    let Some(due) = c.rules.next_opening(&zone, &lead.phone, from) else {
        return Err(anyhow::anyhow!(
            "{phone} has no opening in its window and legal hours within 366 days after {}",
            rfc3339(from)
        )
        .into());
    };
    store.schedule_callback(lead.id, asked, due, now).await?;
    if due > asked {
        println!(
            "callback for {phone} (lead {}) asked for {}: outside its window or legal hours, so due at the next opening, {}",
            lead.id,
            rfc3339(asked),
            rfc3339(due)
        );
    } else {
        println!(
            "callback for {phone} (lead {}) due at {}",
            lead.id,
            rfc3339(due)
        );
    }
    Ok(())
}
