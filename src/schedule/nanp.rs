//! North American area codes (+1 NPA): which state or province and which
//! time zone(s) each geographic area code covers. The table itself is the
//! shipped data file `data/nanp_area_codes.txt` (format documented at its
//! top); this file parses it once and answers look-ups.

use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The data file, compiled into the binary.
pub const NANP_DATA: &str = include_str!("../../data/nanp_area_codes.txt");

/// What an area code tells about where the number is.
#[derive(Debug, Clone, PartialEq)]
pub struct NanpArea {
    /// US state / DC / territory or Canadian province code (`FL`, `ON`, `PR`).
    pub region: &'static str,
    /// Every zone the area code's territory spans, in the table's order.
    pub zones: Vec<Tz>,
}

/// A problem in one line of the data file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataProblem {
    pub line: usize,
    pub why: String,
}

/// Parses the table. Bad lines are reported and skipped, so a mistake in the
/// data can never make the daemon panic; a unit test asserts there are none.
pub fn parse_table(text: &'static str) -> (HashMap<u16, NanpArea>, Vec<DataProblem>) {
    let mut map = HashMap::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(region), Some(zones)) = (parts.next(), parts.next()) else {
            problems.push(DataProblem {
                line: i + 1,
                why: "expected REGION ZONES NPA...".into(),
            });
            continue;
        };
        let parsed: Result<Vec<Tz>, String> = zones
            .split('|')
            .map(|z| {
                z.parse::<Tz>()
                    .map_err(|_| format!("`{z}` is not an IANA zone"))
            })
            .collect();
        let zones = match parsed {
            Ok(z) => z,
            Err(why) => {
                problems.push(DataProblem { line: i + 1, why });
                continue;
            }
        };
        for npa in parts {
            match npa.parse::<u16>() {
                Ok(n) if (200..=999).contains(&n) => {
                    let area = NanpArea {
                        region,
                        zones: zones.clone(),
                    };
                    if map.insert(n, area).is_some() {
                        problems.push(DataProblem {
                            line: i + 1,
                            why: format!("{n} is listed twice"),
                        });
                    }
                }
                _ => problems.push(DataProblem {
                    line: i + 1,
                    why: format!("`{npa}` is not an area code"),
                }),
            }
        }
    }
    (map, problems)
}

fn table() -> &'static HashMap<u16, NanpArea> {
    static TABLE: OnceLock<HashMap<u16, NanpArea>> = OnceLock::new();
    TABLE.get_or_init(|| parse_table(NANP_DATA).0)
}

/// The area behind a `+1` number (E.164, `+1NPANXXXXXX`), if the area code
/// is geographic and listed.
pub fn area_of(phone: &str) -> Option<&'static NanpArea> {
    let digits = phone.trim().strip_prefix("+1")?;
    let npa: u16 = digits.get(..3)?.parse().ok()?;
    table().get(&npa)
}

/// The area behind an area code.
pub fn area(npa: u16) -> Option<&'static NanpArea> {
    table().get(&npa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_is_clean_and_covers_every_state_and_province() {
        let (map, problems) = parse_table(NANP_DATA);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(map.len() > 380, "only {} area codes", map.len());
        let regions: std::collections::BTreeSet<&str> = map.values().map(|a| a.region).collect();
        for r in [
            "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL",
            "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE",
            "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
            "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "AB", "BC", "MB", "NB", "NL",
            "NS", "ON", "QC", "SK",
        ] {
            assert!(regions.contains(r), "no area code for {r}");
        }
    }

    #[test]
    fn looks_up_single_and_multi_zone_codes() {
        let ny = area_of("+12125550123").unwrap();
        assert_eq!(
            (ny.region, ny.zones.clone()),
            ("NY", vec![chrono_tz::America::New_York])
        );
        let id = area_of("+12085550123").unwrap();
        assert_eq!(
            id.zones,
            vec![chrono_tz::America::Boise, chrono_tz::America::Los_Angeles]
        );
        assert_eq!(area(915).unwrap().zones, vec![chrono_tz::America::Denver]);
        assert_eq!(area(808).unwrap().zones, vec![chrono_tz::Pacific::Honolulu]);
        assert_eq!(area(602).unwrap().zones, vec![chrono_tz::America::Phoenix]);
        assert_eq!(area(850).unwrap().region, "FL");
        assert!(area(850)
            .unwrap()
            .zones
            .contains(&chrono_tz::America::Chicago));
        assert_eq!(area(308).unwrap().zones.len(), 2);
        assert!(area_of("+18005550123").is_none());
        assert!(area_of("+33142685300").is_none());
        assert!(area_of("+1").is_none());
    }
}
