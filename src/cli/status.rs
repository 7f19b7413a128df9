//! `dialer status [--campaign ID] [--json]`.

use super::{load, open_store, CliResult};
use crate::clock::Clock;
use crate::domain::{rfc3339, LeadStatus, Outcome};
use serde_json::json;
use std::path::Path;

pub async fn run(config: &Path, only: Option<&str>, as_json: bool, clock: &Clock) -> CliResult {
    let loaded = load(config)?;
    if let Some(id) = only {
        if !loaded.campaigns.iter().any(|c| c.id == id) {
            return Err(anyhow::anyhow!("unknown campaign `{id}`").into());
        }
    }
    let store = open_store(&loaded).await?;
    let now = clock.now();
    let mut out = Vec::new();
    for c in loaded
        .campaigns
        .iter()
        .filter(|c| only.is_none_or(|id| id == c.id))
    {
        let stats = store.campaign_stats(&c.id).await?;
        let zone = c.rules.zone_of(None, "");
        let next = c.rules.next_opening(&zone, "", now);
        out.push((c, stats, next));
    }
    if as_json {
        let campaigns: Vec<_> = out
            .iter()
            .map(|(c, s, next)| {
                json!({
                    "id": c.id,
                    "provider": c.provider,
                    "paused": c.paused,
                    "leads": s.leads,
                    "outcomes": s.outcomes,
                    "in_flight": s.in_flight,
                    "next_opening": next.map(rfc3339),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "campaigns": campaigns }))
                .map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    for (c, s, next) in &out {
        println!(
            "campaign {}  provider {}{}  in flight {}  next opening {}",
            c.id,
            c.provider,
            if c.paused { " (paused)" } else { "" },
            s.in_flight,
            next.map(rfc3339)
                .unwrap_or_else(|| "none within 366 days".into())
        );
        let leads: Vec<String> = LeadStatus::ALL
            .iter()
            .map(|st| format!("{} {}", st, s.leads.get(st.as_str()).copied().unwrap_or(0)))
            .collect();
        println!("  leads     {}", leads.join("  "));
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| format!("{} {}", o, s.outcomes.get(o.as_str()).copied().unwrap_or(0)))
            .collect();
        println!("  attempts  {}", outcomes.join("  "));
    }
    Ok(())
}
