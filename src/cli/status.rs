//! `dialer status [--campaign ID] [--json]`.

use super::{load, open_store, CliResult};
use crate::clock::Clock;
use crate::domain::{rfc3339, LeadStatus, Outcome};
use crate::store::CampaignStats;
use serde_json::json;
use std::path::Path;

pub async fn run(config: &Path, only: Option<&str>, as_json: bool, clock: &Clock) -> CliResult {
    let loaded = load(config)?;
    let store = open_store(&loaded).await?;
    // A campaign whose file was removed still has its leads: show them.
    let mut gone = None;
    if let Some(id) = only {
        if !loaded.campaigns.iter().any(|c| c.id == id) {
            let stats = store.campaign_stats(id).await?;
            if stats.leads.values().all(|n| *n == 0) {
                return Err(anyhow::anyhow!("unknown campaign `{id}`").into());
            }
            gone = Some(stats);
        }
    }
    let now = clock.now();
    let mut unknown_campaigns: std::collections::BTreeMap<String, i64> = Default::default();
    for u in store.unusable_leads(100_000).await? {
        if u.why == crate::store::Unusable::UnknownCampaign {
            *unknown_campaigns.entry(u.campaign_id).or_default() += 1;
        }
    }
    let pauses: Vec<_> = store
        .provider_pauses()
        .await?
        .into_iter()
        .filter(|p| p.active(now))
        .collect();
    let mut out = Vec::new();
    for c in loaded
        .campaigns
        .iter()
        .filter(|c| only.is_none_or(|id| id == c.id))
    {
        let stats = store.campaign_stats(&c.id).await?;
        let (next, _) = super::check::next_opening(c, now);
        out.push((c, stats, next));
    }
    if let (Some(id), Some(s)) = (only, gone) {
        return show_gone(id, &s, as_json);
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
                    "agents": agents_json(s),
                    "unusable_leads": s.unusable,
                    "next_opening": next.map(rfc3339),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "campaigns": campaigns,
                "unknown_campaign_leads": unknown_campaigns,
                "paused_providers": pauses.iter().map(|p| json!({
                    "provider": p.provider,
                    "reason": p.reason,
                    "until": rfc3339(p.until),
                    "since": rfc3339(p.since),
                })).collect::<Vec<_>>(),
            }))
            .map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    for (c, s, next) in &out {
        let next = next
            .map(rfc3339)
            .unwrap_or_else(|| "none within 366 days".into());
        let next = match c.timezone {
            Some(_) => next,
            None => format!("{next} for a lead in UTC ({})", super::check::OWN_ZONE),
        };
        println!(
            "campaign {}  provider {}{}  in flight {}  next opening {}",
            c.id,
            c.provider,
            if c.paused { " (paused)" } else { "" },
            s.in_flight,
            next
        );
        print_counts(s);
    }
    for p in &pauses {
        println!(
            "provider {} paused until {} (since {}): {}",
            p.provider,
            rfc3339(p.until),
            rfc3339(p.since),
            p.reason
        );
    }
    for (id, n) in &unknown_campaigns {
        println!("{n} leads name campaign `{id}`, which no campaign file defines (not dialled)");
    }
    Ok(())
}

/// Leads by status, attempts by outcome, and unusable rows of one campaign.
fn print_counts(s: &CampaignStats) {
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
    if s.by_agent.len() > 1 {
        for (agent, outcomes) in &s.by_agent {
            let (ended, done, rate) = completion(outcomes);
            let counts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
            println!(
                "  agent {agent}: {ended} ended, {done} completed ({:.1}%)  {}",
                rate * 100.0,
                counts.join("  ")
            );
        }
    }
    if s.unusable > 0 {
        println!(
            "  unusable  {} pending leads without a readable next_attempt_at (not dialled)",
            s.unusable
        );
    }
}

/// Attempts ended, of them completed (`completed` or `transferred`), and
/// the share completed (0 when none ended).
fn completion(outcomes: &std::collections::BTreeMap<String, i64>) -> (i64, i64, f64) {
    let ended: i64 = outcomes.values().sum();
    let done: i64 = ["completed", "transferred"]
        .iter()
        .map(|o| outcomes.get(*o).copied().unwrap_or(0))
        .sum();
    let rate = if ended > 0 {
        done as f64 / ended as f64
    } else {
        0.0
    };
    (ended, done, rate)
}

/// `agents` of `status --json`: per agent, outcomes with counts and the completion rate.
fn agents_json(s: &CampaignStats) -> serde_json::Value {
    s.by_agent
        .iter()
        .map(|(agent, outcomes)| {
            let (ended, done, rate) = completion(outcomes);
            (
                agent.clone(),
                json!({
                    "outcomes": outcomes,
                    "ended": ended,
                    "completed": done,
                    "completion_rate": (rate * 10_000.0).round() / 10_000.0,
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A campaign no file defines any more, whose leads are still stored.
fn show_gone(id: &str, s: &CampaignStats, as_json: bool) -> CliResult {
    if as_json {
        let campaign = json!({
            "id": id,
            "provider": null,
            "paused": null,
            "file_gone": true,
            "leads": s.leads,
            "outcomes": s.outcomes,
            "in_flight": s.in_flight,
            "unusable_leads": s.unusable,
            "next_opening": null,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "campaigns": [campaign] }))
                .map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    println!(
        "campaign {id}  campaign file gone: no campaign file defines it any more, so its leads are not dialled  in flight {}",
        s.in_flight
    );
    print_counts(s);
    Ok(())
}
