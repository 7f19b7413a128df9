//! `dialer dnc add PHONE...` / `dialer dnc import FILE`: the do-not-call list.
//! FILE is one number a line, or a CSV with a `phone` column.

use super::{load, open_store, CliError, CliResult};
use crate::clock::Clock;
use std::path::Path;

/// Numbers read from a file, and the lines that are not numbers (line, why).
type NumbersAndInvalid = (Vec<String>, Vec<(usize, String)>);

/// Reads numbers from a file.
pub fn read_file(file: &Path, region: Option<&str>) -> Result<NumbersAndInvalid, CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut lines = text.lines().enumerate().peekable();
    let mut column = None;
    if let Some((_, first)) = lines.peek() {
        let headers: Vec<String> = first
            .split(',')
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        if let Some(i) = headers.iter().position(|h| h == "phone") {
            column = Some(i);
            lines.next();
        }
    }
    let mut numbers = Vec::new();
    let mut invalid = Vec::new();
    for (i, line) in lines {
        let raw = match column {
            Some(c) => line.split(',').nth(c).unwrap_or("").trim(),
            None => line.trim(),
        };
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        match crate::phone::normalize(raw, region) {
            Ok(p) => numbers.push(p),
            Err(why) => invalid.push((i + 1, why)),
        }
    }
    Ok((numbers, invalid))
}

pub async fn add(
    config: &Path,
    phones: &[String],
    region: Option<&str>,
    clock: &Clock,
) -> CliResult {
    crate::phone::check_region(region).map_err(CliError::Usage)?;
    // One bad number refuses the whole command, so that a fixed re-run adds
    // exactly the list the operator meant; every bad one is named at once.
    let mut numbers = Vec::new();
    let mut bad = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        match crate::phone::normalize(p, region) {
            Ok(n) => numbers.push(n),
            Err(why) => bad.push(format!("  number {} `{p}`: {why}", i + 1)),
        }
    }
    if !bad.is_empty() {
        return Err(CliError::Usage(format!(
            "{} of {} numbers are not valid; nothing was added:\n{}",
            bad.len(),
            phones.len(),
            bad.join("\n")
        )));
    }
    let loaded = load(config)?;
    let store = open_store(&loaded).await?;
    let added = store.add_dnc(&numbers, "manual", clock.now()).await?;
    println!(
        "added {added}, already listed {}",
        numbers.len() as u64 - added
    );
    Ok(())
}

pub async fn import(config: &Path, file: &Path, region: Option<&str>, clock: &Clock) -> CliResult {
    crate::phone::check_region(region).map_err(CliError::Usage)?;
    let loaded = load(config)?;
    let (numbers, invalid) = read_file(file, region)?;
    let store = open_store(&loaded).await?;
    let reason = format!(
        "import {}",
        file.file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    let added = store.add_dnc(&numbers, &reason, clock.now()).await?;
    println!(
        "{}: added {added}, already listed {}, invalid {}",
        file.display(),
        numbers.len() as u64 - added,
        invalid.len()
    );
    for (line, why) in invalid {
        println!("  line {line}: {why}");
    }
    Ok(())
}
