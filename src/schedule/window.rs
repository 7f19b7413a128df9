//! The campaign's own weekly calendar: parsing `[window] weekly` entries into
//! sets of local minutes of the day, and the small interval algebra every
//! day-based rule (windows, legal hours, state and country rules) shares.

use chrono::Weekday;

/// A half-open range of minutes of the local day, `[start, end)`; `end` may
/// be 1440 (24:00).
pub type Span = (u32, u32);

/// Minutes in a wall-clock day.
pub const DAY_MINUTES: u32 = 1440;

/// The whole local day.
pub const WHOLE_DAY: &[Span] = &[(0, DAY_MINUTES)];

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// `weekly` compiled: for each weekday (Monday first), the open spans,
/// sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Weekly {
    days: [Vec<Span>; 7],
}

impl Weekly {
    /// Compiles every entry; on failure, the index and reason of each bad one.
    pub fn parse(entries: &[String]) -> Result<Weekly, Vec<(usize, String)>> {
        let mut weekly = Weekly::default();
        let mut errors = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match parse_entry(entry) {
                Ok((days, spans)) => {
                    for (d, on) in days.iter().enumerate() {
                        if *on {
                            weekly.days[d].extend_from_slice(&spans);
                        }
                    }
                }
                Err(why) => errors.push((i, why)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for day in &mut weekly.days {
            *day = normalize(std::mem::take(day));
        }
        Ok(weekly)
    }

    /// The open spans of a weekday.
    pub fn spans(&self, day: Weekday) -> &[Span] {
        &self.days[day.num_days_from_monday() as usize]
    }
}

/// Parses one entry, `mon-fri 09:00-12:00,13:00-20:00`: the days it covers
/// (Monday first) and its spans.
pub fn parse_entry(entry: &str) -> Result<([bool; 7], Vec<Span>), String> {
    let entry = entry.trim();
    let (days, ranges) = entry.split_once(char::is_whitespace).ok_or_else(|| {
        format!("`{entry}` is not `DAYS HH:MM-HH:MM[,HH:MM-HH:MM...]` (e.g. `mon-fri 09:00-17:00`)")
    })?;
    let days = parse_days(days)?;
    let mut spans = Vec::new();
    // Accept `09:00-12:00, 13:00-20:00` as well as `09:00-12:00,13:00-20:00`.
    for range in ranges.split(',') {
        let range = range.trim();
        if range.is_empty() {
            return Err(format!("`{entry}`: an empty time range"));
        }
        spans.push(super::parse_time_range(range)?);
    }
    Ok((days, spans))
}

/// Parses `mon,wed,fri`, `mon-fri`, `sat-sun` or a wrapping `fri-mon`.
pub fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in s.split(',') {
        let item = item.trim();
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                // A range wraps past Sunday when its end comes before its start.
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(item)?] = true,
        }
    }
    Ok(days)
}

fn day_index(name: &str) -> Result<usize, String> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .ok_or_else(|| format!("`{name}` is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

/// Sorts spans and merges those that overlap or touch.
pub fn normalize(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|(s, e)| s < e);
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The intersection of two normalized span lists.
pub fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Whether `minute` of the day lies in one of the spans.
pub fn contains(spans: &[Span], minute: u32) -> bool {
    spans.iter().any(|&(s, e)| s <= minute && minute < e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days_ranges_lists_and_wrapping() {
        let d = parse_days("mon-fri").unwrap();
        assert_eq!(d, [true, true, true, true, true, false, false]);
        let d = parse_days("fri-mon").unwrap();
        assert_eq!(d, [true, false, false, false, true, true, true]);
        let d = parse_days("mon,wed,Friday").unwrap();
        assert_eq!(d, [true, false, true, false, true, false, false]);
        assert!(parse_days("mon-fry").unwrap_err().contains("fry"));
    }

    #[test]
    fn parses_entries_and_rejects_bad_ones() {
        let w = Weekly::parse(&[
            "mon-fri 09:00-12:00,13:00-20:00".into(),
            "sat 10:00-14:00".into(),
        ])
        .unwrap();
        assert_eq!(w.spans(Weekday::Mon), &[(540, 720), (780, 1200)]);
        assert_eq!(w.spans(Weekday::Sat), &[(600, 840)]);
        assert!(w.spans(Weekday::Sun).is_empty());
        let w = Weekly::parse(&["sun 20:00-24:00".into()]).unwrap();
        assert_eq!(w.spans(Weekday::Sun), &[(1200, 1440)]);
        let bad = Weekly::parse(&[
            "mon 09:00-12:00".into(),
            "funday 09:00-10:00".into(),
            "tue 12:00-09:00".into(),
            "wed 25:00-26:00".into(),
            "thu".into(),
        ])
        .unwrap_err();
        assert_eq!(
            bad.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn interval_algebra() {
        assert_eq!(
            normalize(vec![(5, 10), (0, 3), (3, 4), (8, 12)]),
            vec![(0, 4), (5, 12)]
        );
        assert_eq!(
            intersect(&[(0, 10), (20, 30)], &[(5, 25)]),
            vec![(5, 10), (20, 25)]
        );
        assert!(contains(&[(540, 600)], 540));
        assert!(!contains(&[(540, 600)], 600));
    }
}
