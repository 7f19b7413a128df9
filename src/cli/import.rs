//! `dialer import --campaign ID FILE.csv [--region US]`: bulk-load leads.
//! A header row is required; `phone` is required, `name` and `timezone` are
//! optional, every other column goes into `variables`. Invalid rows are
//! reported by line number and not imported; existing numbers are counted as
//! duplicates, so importing the same file twice adds nothing.

use super::{load, open_store, CliError, CliResult};
use crate::clock::Clock;
use crate::store::NewLead;
use chrono_tz::Tz;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::Path;

/// A CSV read into leads.
pub struct Parsed {
    pub leads: Vec<NewLead>,
    /// (line, reason)
    pub invalid: Vec<(u64, String)>,
    /// Rows whose number appeared earlier in the same file.
    pub duplicates: u64,
}

/// Parses a CSV into leads and invalid rows.
pub fn parse_csv(file: &Path, region: Option<&str>) -> Result<Parsed, CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("{}: cannot read the header row: {e}", file.display()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let Some(phone_col) = headers.iter().position(|h| h == "phone") else {
        return Err(anyhow::anyhow!(
            "{}: line 1: the header has no `phone` column",
            file.display()
        )
        .into());
    };
    let name_col = headers.iter().position(|h| h == "name");
    let tz_col = headers.iter().position(|h| h == "timezone");
    let mut leads = Vec::new();
    let mut invalid = Vec::new();
    let mut in_file_dupes = 0;
    let mut seen = HashSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                invalid.push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != headers.len() {
            invalid.push((
                line,
                format!("{} fields, the header has {}", record.len(), headers.len()),
            ));
            continue;
        }
        let raw_phone = record.get(phone_col).unwrap_or("");
        let phone = match crate::phone::normalize(raw_phone, region) {
            Ok(p) => p,
            Err(why) => {
                invalid.push((line, format!("phone: {why}")));
                continue;
            }
        };
        let timezone = match tz_col
            .map(|i| record.get(i).unwrap_or(""))
            .filter(|s| !s.is_empty())
        {
            Some(t) => match t.parse::<Tz>() {
                Ok(_) => Some(t.to_string()),
                Err(_) => {
                    invalid.push((line, format!("timezone: `{t}` is not an IANA time zone")));
                    continue;
                }
            },
            None => None,
        };
        if !seen.insert(phone.clone()) {
            in_file_dupes += 1;
            continue;
        }
        let mut variables = Map::new();
        for (i, h) in headers.iter().enumerate() {
            if Some(i) == name_col || i == phone_col || Some(i) == tz_col || h.is_empty() {
                continue;
            }
            variables.insert(
                h.clone(),
                Value::String(record.get(i).unwrap_or("").to_string()),
            );
        }
        leads.push(NewLead {
            phone,
            name: name_col
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            timezone,
            variables,
        });
    }
    Ok(Parsed {
        leads,
        invalid,
        duplicates: in_file_dupes,
    })
}

pub async fn run(
    config: &Path,
    campaign: &str,
    file: &Path,
    region: Option<&str>,
    clock: &Clock,
) -> CliResult {
    let loaded = load(config)?;
    if !loaded.campaigns.iter().any(|c| c.id == campaign) {
        return Err(anyhow::anyhow!(
            "unknown campaign `{campaign}` (not in {})",
            loaded.daemon.campaigns_dir.display()
        )
        .into());
    }
    let Parsed {
        leads,
        invalid,
        duplicates: in_file_dupes,
    } = parse_csv(file, region)?;
    let store = open_store(&loaded).await?;
    crate::daemon::sync_campaign_rows(store.as_ref(), &loaded.campaigns, clock.now()).await?;
    let counts = store.insert_leads(campaign, &leads, clock.now()).await?;
    println!(
        "{}: imported {}, duplicate {}, invalid {}",
        file.display(),
        counts.imported,
        counts.duplicates + in_file_dupes,
        invalid.len()
    );
    for (line, why) in &invalid {
        println!("  line {line}: {why}");
    }
    Ok(())
}
