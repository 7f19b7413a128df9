//! `[window] cron`: standard 5-field cron expressions (minute hour
//! day-of-month month day-of-week, Sunday 0 or 7) translated to the `cron`
//! crate's Quartz-style syntax, and matched against local wall-clock minutes.
//!
//! The translation expands every field to an explicit value list, so the
//! crate only ever sees plain numbers: a leading seconds field `0` is added,
//! day-of-week numbers are shifted to the crate's Sunday = 1 ... Saturday = 7,
//! and names (`MON`, `JAN`) are resolved here. Classic cron ORs day-of-month
//! and day-of-week when both are restricted (neither starts with `*`); the
//! crate ANDs them, so such an entry becomes two schedules whose union is the
//! classic meaning.
//!
//! Matching runs on a naive local timeline (the crate is given the local
//! wall-clock time labelled as UTC), so the crate never sees a DST change;
//! mapping local minutes back to instants is the caller's job.

use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use std::str::FromStr;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One parsed field: its values and whether it was written starting with `*`
/// (which decides the day-of-month / day-of-week combination).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    values: Vec<u32>,
    star: bool,
}

/// One `cron` entry: the union of one or two crate schedules.
#[derive(Debug, Clone)]
pub struct CronEntry {
    source: String,
    schedules: Vec<cron::Schedule>,
}

impl CronEntry {
    pub fn parse(expr: &str) -> Result<CronEntry, String> {
        let quartz = translate(expr)?;
        let mut schedules = Vec::with_capacity(quartz.len());
        for q in quartz {
            let s = cron::Schedule::from_str(&q).map_err(|e| format!("`{expr}`: {e}"))?;
            schedules.push(s);
        }
        Ok(CronEntry {
            source: expr.to_string(),
            schedules,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the local minute containing `local` matches.
    pub fn matches(&self, local: NaiveDateTime) -> bool {
        let m = as_utc(floor_minute(local));
        self.schedules.iter().any(|s| s.includes(m))
    }

    /// The first local instant `>= local` in a matching minute: `local`
    /// itself when its minute matches, else the start of the next matching
    /// minute.
    pub fn next_match(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.matches(local) {
            return Some(local);
        }
        let m = as_utc(floor_minute(local));
        self.schedules
            .iter()
            .filter_map(|s| s.after(&m).next())
            .min()
            .map(|t| t.naive_utc())
    }
}

fn floor_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn as_utc(t: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t)
}

/// Translates a 5-field cron expression into one or two Quartz expressions
/// for the `cron` crate (`sec min hour dom month dow`, Sunday = 1).
pub fn translate(expr: &str) -> Result<Vec<String>, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "`{expr}` has {} fields; a cron entry has 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    let bad = |name: &str, why: String| format!("`{expr}`: {name} field: {why}");
    let minute = parse_field(fields[0], 0, 59, &[], 0).map_err(|w| bad("minute", w))?;
    let hour = parse_field(fields[1], 0, 23, &[], 0).map_err(|w| bad("hour", w))?;
    let dom = parse_field(fields[2], 1, 31, &[], 0).map_err(|w| bad("day-of-month", w))?;
    let month = parse_field(fields[3], 1, 12, &MONTHS, 1).map_err(|w| bad("month", w))?;
    let mut dow = parse_field(fields[4], 0, 7, &WEEKDAYS, 0).map_err(|w| bad("day-of-week", w))?;
    // 7 is another name for Sunday.
    for v in &mut dow.values {
        if *v == 7 {
            *v = 0;
        }
    }
    dow.values.sort_unstable();
    dow.values.dedup();

    let list = |f: &Field, min: u32, max: u32, shift: u32| -> String {
        if f.values.len() as u32 == max - min + 1 {
            "*".to_string()
        } else {
            f.values
                .iter()
                .map(|v| (v + shift).to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let (mi, ho, mo) = (
        list(&minute, 0, 59, 0),
        list(&hour, 0, 23, 0),
        list(&month, 1, 12, 0),
    );
    let (dm, dw) = (list(&dom, 1, 31, 0), list(&dow, 0, 6, 1));
    if dom.star || dow.star {
        Ok(vec![format!("0 {mi} {ho} {dm} {mo} {dw}")])
    } else {
        Ok(vec![
            format!("0 {mi} {ho} {dm} {mo} *"),
            format!("0 {mi} {ho} * {mo} {dw}"),
        ])
    }
}

/// Parses one field: `*`, `a`, `a-b`, any of them with `/step`, comma lists,
/// and names when `names` is given (`names[i]` is the value `i + name_base`).
fn parse_field(
    s: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Field, String> {
    let value = |t: &str| -> Result<u32, String> {
        let lower = t.to_ascii_lowercase();
        let v = match names.iter().position(|n| *n == lower) {
            Some(i) => i as u32 + name_base,
            None => t
                .parse::<u32>()
                .map_err(|_| format!("`{t}` is not a number or name"))?,
        };
        if v < min || v > max {
            return Err(format!("{v} is outside {min}-{max}"));
        }
        Ok(v)
    };
    let mut values = Vec::new();
    for item in s.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, st)) => {
                let st: u32 = st.parse().map_err(|_| format!("`{st}` is not a step"))?;
                if st == 0 {
                    return Err("a step of 0".into());
                }
                (b, Some(st))
            }
            None => (item, None),
        };
        let (lo, hi) = if base == "*" {
            (min, max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("`{base}`: the range is backwards"));
            }
            (a, b)
        } else {
            let a = value(base)?;
            // `a/step` means from a to the end of the field, as in Vixie cron.
            (a, if step.is_some() { max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            values.push(v);
            v += step;
        }
    }
    values.sort_unstable();
    values.dedup();
    Ok(Field {
        values,
        star: s.starts_with('*'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .unwrap()
    }

    #[test]
    fn translates_to_quartz() {
        assert_eq!(
            translate("* 9-11 * * 1-5").unwrap(),
            vec!["0 * 9,10,11 * * 2,3,4,5,6"]
        );
        assert_eq!(
            translate("*/15 * * * 0").unwrap(),
            vec!["0 0,15,30,45 * * * 1"]
        );
        assert_eq!(translate("0 9 * * 7").unwrap(), vec!["0 0 9 * * 1"]);
        assert_eq!(translate("0 9 * * sun,SAT").unwrap(), vec!["0 0 9 * * 1,7"]);
        assert_eq!(
            translate("30 8 * jan-feb mon").unwrap(),
            vec!["0 30 8 * 1,2 2"]
        );
        assert_eq!(
            translate("0 12 1 * 5").unwrap(),
            vec!["0 0 12 1 * *", "0 0 12 * * 6"]
        );
        assert!(translate("* * * *").unwrap_err().contains("4 fields"));
        assert!(translate("60 * * * *").unwrap_err().contains("minute"));
        assert!(translate("* * * * 8").unwrap_err().contains("day-of-week"));
        assert!(translate("*/0 * * * *").is_err());
        assert!(translate("* * * * funday").is_err());
    }

    #[test]
    fn matches_and_next_match_follow_classic_cron() {
        // 2026-03-02 is a Monday, 2026-03-08 a Sunday.
        let e = CronEntry::parse("* 9-11 * * 1-5").unwrap();
        assert!(e.matches(at(2026, 3, 2, 9, 0)));
        assert!(e.matches(at(2026, 3, 2, 11, 59)));
        assert!(!e.matches(at(2026, 3, 2, 12, 0)));
        assert!(!e.matches(at(2026, 3, 8, 10, 0)));
        assert_eq!(
            e.next_match(at(2026, 3, 6, 12, 0)),
            Some(at(2026, 3, 9, 9, 0))
        );

        let e = CronEntry::parse("*/15 * * * 0").unwrap();
        assert_eq!(
            e.next_match(at(2026, 3, 2, 9, 1)),
            Some(at(2026, 3, 8, 0, 0))
        );
        assert_eq!(
            e.next_match(at(2026, 3, 8, 10, 1)),
            Some(at(2026, 3, 8, 10, 15))
        );

        let e = CronEntry::parse("0 9 * * 7").unwrap();
        assert_eq!(
            e.next_match(at(2026, 3, 2, 0, 0)),
            Some(at(2026, 3, 8, 9, 0))
        );
        assert!(e.matches(at(2026, 3, 8, 9, 0)));

        // Day-of-month OR day-of-week: the 1st (a Wednesday in April 2026) and every Friday.
        let e = CronEntry::parse("0 12 1 * 5").unwrap();
        assert!(e.matches(at(2026, 4, 1, 12, 0)));
        assert!(e.matches(at(2026, 4, 3, 12, 0)));
        assert!(!e.matches(at(2026, 4, 2, 12, 0)));
        assert_eq!(
            e.next_match(at(2026, 4, 1, 12, 1)),
            Some(at(2026, 4, 3, 12, 0))
        );
    }
}
