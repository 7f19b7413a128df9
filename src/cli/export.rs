//! `dialer export --campaign ID [--since RFC3339] [--format csv|jsonl]`:
//! the campaign's leads with their attempts and outcomes, streamed to
//! stdout a page of leads at a time, so memory stays flat whatever the
//! campaign's size. Leads come in id order.

use super::{load, open_store, CliError, CliResult};
use crate::domain::rfc3339;
use crate::store::ExportLead;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::Path;

/// Leads read per statement.
const PAGE: i64 = 1_000;

/// CSV columns: the lead's, then one attempt's (empty for a lead never called).
pub const CSV_HEADER: [&str; 25] = [
    "lead_id",
    "phone",
    "name",
    "timezone",
    "status",
    "attempts",
    "last_outcome",
    "last_attempt_at",
    "next_attempt_at",
    "updated_at",
    "variables",
    "attempt",
    "attempt_id",
    "provider",
    "provider_call_id",
    "from_number",
    "state",
    "outcome",
    "provider_status",
    "hangup_cause",
    "requested_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "summary",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
}

pub async fn run(config: &Path, campaign: &str, since: Option<&str>, format: &str) -> CliResult {
    let format = match format {
        "csv" => Format::Csv,
        "jsonl" => Format::Jsonl,
        other => {
            return Err(CliError::Usage(format!(
                "--format `{other}`: expected csv or jsonl"
            )))
        }
    };
    let since = since
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    CliError::Usage(format!("--since `{s}` is not an RFC 3339 time ({e})"))
                })
        })
        .transpose()?;
    let loaded = load(config)?;
    let store = open_store(&loaded).await?;
    let known = loaded.campaigns.iter().any(|c| c.id == campaign)
        || store.campaign_ids().await?.iter().any(|c| c == campaign);
    if !known {
        return Err(anyhow::anyhow!("unknown campaign `{campaign}`").into());
    }
    match stream(store.as_ref(), campaign, since, format).await {
        Ok(()) => Ok(()),
        // Whoever read the output stopped reading (`| head`): not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(e) => Err(e.context("export").into()),
    }
}

async fn stream(
    store: &dyn crate::store::Store,
    campaign: &str,
    since: Option<DateTime<Utc>>,
    format: Format,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(CSV_HEADER).map_err(io)?;
        w.flush()?;
    }
    let mut after = 0;
    loop {
        let page = store.export_page(campaign, since, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.lead.id;
        if format == Format::Csv {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut out);
            for l in &page {
                csv_rows(&mut w, l).map_err(io)?;
            }
            w.flush()?;
        } else {
            for l in &page {
                serde_json::to_writer(&mut out, &json_line(l))?;
                out.write_all(b"\n")?;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

/// The I/O error inside a CSV error, so a closed pipe is recognised.
fn io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

fn csv_rows<W: Write>(w: &mut csv::Writer<W>, l: &ExportLead) -> csv::Result<()> {
    let lead = &l.lead;
    let head = [
        lead.id.to_string(),
        lead.phone.clone(),
        lead.name.clone().unwrap_or_default(),
        lead.timezone.clone().unwrap_or_default(),
        lead.status.as_str().to_string(),
        lead.attempts.to_string(),
        lead.last_outcome.clone().unwrap_or_default(),
        time(lead.last_attempt_at),
        time(lead.next_attempt_at),
        time(l.updated_at),
        serde_json::Value::Object(lead.variables.clone()).to_string(),
    ];
    if l.attempts.is_empty() {
        let empty = std::iter::repeat_n(String::new(), CSV_HEADER.len() - head.len());
        return w.write_record(head.iter().cloned().chain(empty));
    }
    for a in &l.attempts {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let tail = [
            a.attempt.to_string(),
            a.attempt_id.clone(),
            a.provider.clone(),
            o(&a.provider_call_id),
            o(&a.from_number),
            a.state.clone(),
            o(&a.outcome),
            o(&a.provider_status),
            o(&a.hangup_cause),
            time(a.requested_at),
            time(a.answered_at),
            time(a.ended_at),
            a.duration_seconds
                .map(|d| d.to_string())
                .unwrap_or_default(),
            o(&a.summary),
        ];
        w.write_record(head.iter().cloned().chain(tail))?;
    }
    Ok(())
}

fn json_line(l: &ExportLead) -> serde_json::Value {
    let lead = &l.lead;
    serde_json::json!({
        "lead_id": lead.id,
        "campaign_id": lead.campaign_id,
        "phone": lead.phone,
        "name": lead.name,
        "timezone": lead.timezone,
        "status": lead.status.as_str(),
        "attempts": lead.attempts,
        "last_outcome": lead.last_outcome,
        "last_attempt_at": lead.last_attempt_at.map(rfc3339),
        "next_attempt_at": lead.next_attempt_at.map(rfc3339),
        "updated_at": l.updated_at.map(rfc3339),
        "variables": lead.variables,
        "calls": l.attempts,
    })
}
