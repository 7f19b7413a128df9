//! `dialer check`: validate every file, list every problem, print each
//! campaign's next opening.

use super::{load, CliResult};
use crate::clock::Clock;
use crate::config::CampaignConfig;
use crate::domain::rfc3339;
use crate::schedule::{LeadZone, ZoneSource};
use chrono::{DateTime, Utc};
use std::path::Path;

pub fn run(config: &Path, clock: &Clock) -> CliResult {
    let loaded = load(config)?;
    let now = clock.now();
    println!(
        "{}: ok ({} provider(s))",
        config.display(),
        loaded.daemon.providers.len()
    );
    for c in &loaded.campaigns {
        let (next, zone) = next_opening(c, now);
        println!(
            "campaign {} ({}): provider {}, next opening {} for a lead in {}{}{}",
            c.id,
            c.file.display(),
            c.provider,
            next.map(rfc3339)
                .unwrap_or_else(|| "none within 366 days".into()),
            zone,
            if c.timezone.is_none() {
                format!(" ({OWN_ZONE})")
            } else {
                String::new()
            },
            if c.paused { " [paused]" } else { "" }
        );
    }
    Ok(())
}

/// What a campaign without `timezone` means for its openings.
pub(super) const OWN_ZONE: &str = "no campaign timezone: each lead is called in its own zone, \
     from its timezone column or its number; a lead whose zone is unknown is skipped";

/// The campaign's next opening for a lead in the campaign's `timezone`, or
/// in UTC when it has none (SPEC), and the name of that zone. Without a
/// campaign zone, a lead of unknown zone is never called, but a lead in UTC
/// shows when the window itself opens.
pub(super) fn next_opening(
    c: &CampaignConfig,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, String) {
    let tz = c.timezone.unwrap_or(chrono_tz::UTC);
    let zone = LeadZone {
        zones: vec![tz],
        source: ZoneSource::Campaign,
    };
    (c.rules.next_opening(&zone, "", now), tz.name().to_string())
}
