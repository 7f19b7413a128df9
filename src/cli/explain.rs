//! `dialer explain --campaign ID --phone NUMBER [--at RFC3339] [--json]`:
//! for one lead, the zone used and why, whether it may be called at that
//! instant, every rule that blocks it, and the next instant it may be called.

use super::{load, open_store, CliError, CliResult};
use crate::clock::Clock;
use crate::domain::rfc3339;
use crate::schedule::{Facts, ZoneSource};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::Path;

pub async fn run(
    config: &Path,
    campaign: &str,
    phone: &str,
    at: Option<&str>,
    as_json: bool,
    clock: &Clock,
) -> CliResult {
    let loaded = load(config)?;
    let Some(c) = loaded.campaigns.iter().find(|c| c.id == campaign) else {
        return Err(anyhow::anyhow!("unknown campaign `{campaign}`").into());
    };
    let phone = crate::phone::normalize(phone, None)
        .map_err(|why| CliError::Usage(format!("--phone: {why}")))?;
    let at: DateTime<Utc> = match at {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| CliError::Usage(format!("--at: `{s}` is not an RFC 3339 time ({e})")))?
            .with_timezone(&Utc),
        None => clock.now(),
    };
    let store = open_store(&loaded).await?;
    let lead = store.find_lead(&c.id, &phone).await?;
    let known = store
        .number_facts(&[phone.as_str()], at - crate::dispatch::RECENT_LOOKBACK)
        .await?
        .remove(&phone)
        .unwrap_or_default();
    let dnc = known.dnc;
    let recent: Vec<DateTime<Utc>> = known
        .recent_attempts
        .into_iter()
        .filter(|t| *t <= at)
        .collect();
    // The provider's pause as recorded by the daemon that paused it.
    let pause = store
        .provider_pauses()
        .await?
        .into_iter()
        .find(|p| p.provider == c.provider && p.active(at));
    // The caller IDs the call would use, in order, and when every one of
    // them is at a `[caller_id]` cap, until when.
    let numbers = c
        .caller_ids
        .candidates(&c.id, lead.as_ref().map(|l| l.id), &phone, 0);
    let longest = c.caller_ids.caps.iter().map(|(p, _)| *p).max();
    let caller_id_free_at = match longest {
        Some(longest) if !numbers.is_empty() => {
            let mut used = store.caller_id_use(&numbers, at - longest).await?;
            for times in used.values_mut() {
                times.retain(|t| *t <= at);
            }
            crate::caller_id::first_free(&numbers, &c.caller_ids.caps, &used, at).err()
        }
        _ => None,
    };
    let facts = Facts {
        phone: &phone,
        timezone: lead.as_ref().and_then(|l| l.timezone.as_deref()),
        consent: lead.as_ref().is_some_and(|l| l.consent_at.is_some()),
        dnc,
        paused: c.paused,
        final_status: lead.as_ref().is_some_and(|l| l.status.is_final()),
        due_at: lead
            .as_ref()
            .filter(|l| !l.status.is_final())
            .and_then(|l| l.next_attempt_at),
        provider_paused_until: pause.as_ref().map(|p| p.until),
        caller_id_free_at,
        recent_attempts: &recent,
    };
    let v = c.rules.evaluate(&facts, at);
    let zones: Vec<&str> = v.zone.zones.iter().map(|z| z.name()).collect();
    let timezone = match (v.zone.source, zones.len()) {
        (ZoneSource::Unknown, _) | (_, 0) => Value::Null,
        (_, 1) => json!(zones[0]),
        _ => json!(zones),
    };
    let blocked: Vec<&str> = v.blocked_by.iter().map(|r| r.as_str()).collect();
    let out = json!({
        "campaign": c.id,
        "phone": phone,
        "lead_id": lead.as_ref().map(|l| l.id),
        "at": rfc3339(at),
        "timezone": timezone,
        "timezone_source": v.zone.source,
        "callable": v.callable,
        "blocked_by": blocked,
        "next_callable_at": v.next_callable_at.map(rfc3339),
        "callback": callback_json(lead.as_ref()),
        "caller_id": (!numbers.is_empty()).then(|| json!({
            "choose": c.caller_ids.choose.as_str(),
            "numbers": numbers,
            "capped_until": caller_id_free_at.map(rfc3339),
        })),
        "provider_paused": pause.as_ref().map(|p| json!({
            "provider": p.provider,
            "reason": p.reason,
            "until": rfc3339(p.until),
            "since": rfc3339(p.since),
        })),
    });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    match &lead {
        Some(l) => println!(
            "lead {} in campaign {}: {} ({}, {} attempt(s))",
            l.id, c.id, phone, l.status, l.attempts
        ),
        None => println!(
            "{phone} is not in campaign {}; explained as a new lead with that number",
            c.id
        ),
    }
    let source = match v.zone.source {
        ZoneSource::Lead => "the lead's timezone column",
        ZoneSource::Number => "inferred from the number",
        ZoneSource::Campaign => "the campaign's timezone",
        ZoneSource::Unknown => "unknown: the lead is not called",
    };
    let zone_text = if zones.is_empty() || v.zone.source == ZoneSource::Unknown {
        "none".to_string()
    } else {
        zones.join(", ")
    };
    println!("zone: {zone_text} ({source})");
    if let Some(l) = lead.as_ref().filter(|l| l.callback_at.is_some()) {
        println!("{}", callback_text(l));
    }
    if !numbers.is_empty() {
        println!(
            "caller ID ({}): {}",
            c.caller_ids.choose.as_str(),
            numbers.join(", ")
        );
    }
    if v.zone.zones.len() > 1 {
        println!("  the number's prefix spans several zones: called only when every one is open");
    }
    println!(
        "at {}: {}",
        rfc3339(at),
        if v.callable {
            "may be called"
        } else {
            "may not be called"
        }
    );
    for r in &v.blocked_by {
        match (&pause, r) {
            (Some(p), crate::schedule::Rule::ProviderPaused) => println!(
                "  blocked by {} (provider {} paused until {}: {})",
                r.as_str(),
                p.provider,
                rfc3339(p.until),
                p.reason
            ),
            (_, crate::schedule::Rule::CallerIdCap) => println!(
                "  blocked by {} (every caller ID it may use is at its [caller_id] cap until {})",
                r.as_str(),
                caller_id_free_at.map(rfc3339).unwrap_or_default()
            ),
            _ => println!("  blocked by {}", r.as_str()),
        }
    }
    match v.next_callable_at {
        Some(t) if v.callable => println!("next callable: now ({})", rfc3339(t)),
        Some(t) => println!("next callable: {}", rfc3339(t)),
        None => println!(
            "next callable: none (final, permanently blocked, or nothing opens within 366 days)"
        ),
    }
    Ok(())
}

/// The lead's last callback: asked for when, and when it is due (later
/// when the asked instant was outside its window or legal hours).
fn callback_json(lead: Option<&crate::domain::Lead>) -> Value {
    let Some(l) = lead else { return Value::Null };
    let Some(asked) = l.callback_at else {
        return Value::Null;
    };
    let due = l
        .next_attempt_at
        .filter(|_| l.status == crate::domain::LeadStatus::Pending);
    json!({
        "asked_for": rfc3339(asked),
        "due_at": due.map(rfc3339),
        "moved_to_next_opening": due.is_some_and(|d| d > asked),
        "callbacks": l.callbacks,
    })
}

/// When the lead is due, while it waits (`pending`).
fn callback_due(l: &crate::domain::Lead) -> Option<DateTime<Utc>> {
    l.next_attempt_at
        .filter(|_| l.status == crate::domain::LeadStatus::Pending)
}

fn callback_text(l: &crate::domain::Lead) -> String {
    let asked = l.callback_at.map(rfc3339).unwrap_or_default();
    match callback_due(l) {
        Some(due) if Some(due) > l.callback_at => format!(
            "callback asked for {asked}: outside the lead's window or legal hours, so due at the next opening after it, {}",
            rfc3339(due)
        ),
        Some(due) => format!("callback asked for {asked}: due at {}", rfc3339(due)),
        None => format!("callback asked for {asked} (the lead is {} now)", l.status),
    }
}
