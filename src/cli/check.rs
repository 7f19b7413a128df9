//! `dialer check`: validate every file, list every problem, print each
//! campaign's next opening.

use super::{load, CliResult};
use crate::clock::Clock;
use crate::domain::rfc3339;
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
        let zone = c.rules.zone_of(None, "");
        let tz = c
            .timezone
            .map(|t| t.name().to_string())
            .unwrap_or_else(|| "UTC".into());
        let next = c.rules.next_opening(&zone, "", now);
        println!(
            "campaign {} ({}): provider {}, next opening {} for a lead in {}{}",
            c.id,
            c.file.display(),
            c.provider,
            next.map(rfc3339)
                .unwrap_or_else(|| "none within 366 days".into()),
            tz,
            if c.paused { " [paused]" } else { "" }
        );
    }
    Ok(())
}
