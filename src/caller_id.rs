//! Which caller ID a call goes out from (`[caller_id]` of a campaign).
//!
//! The campaign's loop lists a lead's candidates, best first (`CallerIds::
//! candidates`); the store picks the first one under its caps inside the
//! transaction that commits the attempt (`first_free`), so the caps hold in
//! total across campaigns and daemons.

use crate::store::{FromChoice, NumberCap};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// `[caller_id] choose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choose {
    /// Each call takes the next number of `from_numbers`.
    #[default]
    RoundRobin,
    /// A number with the lead's NANP area code, else one in the same state
    /// or province, else one in the same country, else round robin.
    Local,
    /// The same number for every attempt to one lead.
    Sticky,
}

impl Choose {
    pub fn as_str(self) -> &'static str {
        match self {
            Choose::RoundRobin => "round_robin",
            Choose::Local => "local",
            Choose::Sticky => "sticky",
        }
    }
}

impl std::str::FromStr for Choose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round_robin" => Ok(Choose::RoundRobin),
            "local" => Ok(Choose::Local),
            "sticky" => Ok(Choose::Sticky),
            other => Err(format!(
                "`{other}` is not a way to choose (round_robin, local, sticky)"
            )),
        }
    }
}

/// One of a campaign's `from_numbers`, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct FromNumber {
    /// What the request carries: an E.164 number, or the provider's id of
    /// one of the account's numbers (VoiceDock's `number_id`).
    pub send: String,
    /// Where it dials from: North American area code, state or province,
    /// country. `None` when not known (a number id with no number given).
    place: Option<Place>,
}

/// Canada's provinces and territories, as the area-code table names them.
const CANADA: &[&str] = &[
    "AB", "BC", "MB", "NB", "NL", "NS", "ON", "PE", "QC", "SK", "YT/NT/NU",
];
/// Members of the North American plan that are countries of their own
/// (the other regions are US states, DC and territories).
const OWN_COUNTRY: &[&str] = &["BB", "BM", "BS", "DO", "JM", "TT"];

#[derive(Debug, Clone, PartialEq)]
struct Place {
    npa: Option<u16>,
    region: Option<&'static str>,
    /// `US` or `CA` for a North American number of a known area code,
    /// otherwise the country calling code.
    country: Option<String>,
}

impl Place {
    fn of(e164: &str) -> Self {
        let npa = e164
            .strip_prefix("+1")
            .and_then(|d| d.get(..3))
            .and_then(|d| d.parse::<u16>().ok());
        let region = crate::schedule::nanp_area_of(e164).map(|a| a.region);
        let country = match region {
            Some(r) if CANADA.contains(&r) => Some("CA".to_string()),
            Some(r) if OWN_COUNTRY.contains(&r) => Some(r.to_string()),
            Some(_) => Some("US".to_string()),
            None => crate::phone::country_code(e164).map(|c| c.to_string()),
        };
        Place {
            npa,
            region,
            country,
        }
    }

    /// 0: same area code, 1: same state or province, 2: same country, 3: none.
    fn tier(&self, lead: &Place) -> u8 {
        if self.npa.is_some() && self.npa == lead.npa {
            0
        } else if self.region.is_some() && self.region == lead.region {
            1
        } else if self.country.is_some() && self.country == lead.country {
            2
        } else {
            3
        }
    }
}

/// A campaign's caller IDs, how one is chosen, and their caps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallerIds {
    pub choose: Choose,
    pub numbers: Vec<FromNumber>,
    /// Per number, all campaigns and daemons together: `calls_per_hour`
    /// (rolling hour) and `calls_per_day` (rolling 24 h).
    pub caps: Vec<NumberCap>,
}

impl CallerIds {
    /// `numbers`: what `from_numbers` lists; `dialled`: for a number id,
    /// the E.164 number it stands for (`[caller_id.numbers]`).
    pub fn new(
        choose: Choose,
        numbers: &[String],
        dialled: &std::collections::BTreeMap<String, String>,
        caps: Vec<NumberCap>,
    ) -> Self {
        let numbers = numbers
            .iter()
            .map(|n| {
                let e164 = dialled
                    .get(n)
                    .map(String::as_str)
                    .or_else(|| crate::phone::is_e164(n).then_some(n.as_str()));
                FromNumber {
                    send: n.clone(),
                    place: e164.map(Place::of),
                }
            })
            .collect();
        CallerIds {
            choose,
            numbers,
            caps,
        }
    }

    /// What `begin_attempt` chooses from for one call: the candidates with
    /// the caps, or, with no cap to count, just the first candidate.
    pub fn choice(&self, campaign_id: &str, lead_id: i64, phone: &str, turn: usize) -> FromChoice {
        let mut ranked = self.ranked(campaign_id, Some(lead_id), phone, turn);
        if self.caps.is_empty() {
            ranked.truncate(1);
        }
        FromChoice {
            numbers: ranked
                .into_iter()
                .map(|i| self.numbers[i].send.clone())
                .collect(),
            caps: self.caps.clone(),
        }
    }

    /// The numbers a call of campaign `campaign_id` to lead `lead_id` at
    /// `phone` may go out from, best first. `turn` rotates the numbers of
    /// equal rank, call after call. `lead_id` `None` (a lead not yet
    /// stored): any number a sticky choice could give it.
    pub fn candidates(
        &self,
        campaign_id: &str,
        lead_id: Option<i64>,
        phone: &str,
        turn: usize,
    ) -> Vec<String> {
        self.ranked(campaign_id, lead_id, phone, turn)
            .into_iter()
            .map(|i| self.numbers[i].send.clone())
            .collect()
    }

    /// `candidates` as indices into `numbers`.
    fn ranked(
        &self,
        campaign_id: &str,
        lead_id: Option<i64>,
        phone: &str,
        turn: usize,
    ) -> Vec<usize> {
        let n = self.numbers.len();
        if n == 0 {
            return Vec::new();
        }
        let tiers: Vec<u8> = match (self.choose, lead_id) {
            (Choose::Sticky, Some(id)) => {
                return vec![(stable_hash(&[campaign_id, "caller_id"], id) % n as u64) as usize];
            }
            (Choose::Local, _) => {
                let lead = Place::of(phone);
                self.numbers
                    .iter()
                    .map(|f| f.place.as_ref().map_or(3, |p| p.tier(&lead)))
                    .collect()
            }
            _ => vec![0; n],
        };
        // Best rank first; within a rank the numbers take turns leading.
        let mut out = Vec::with_capacity(n);
        for tier in 0..=3 {
            let same: Vec<usize> = (0..n).filter(|&i| tiers[i] == tier).collect();
            if !same.is_empty() {
                let k = turn % same.len();
                out.extend_from_slice(&same[k..]);
                out.extend_from_slice(&same[..k]);
            }
        }
        out
    }
}

/// A lead's stable place among others (FNV-1a of `parts`, joined by `:`,
/// and the lead's id): the same on every attempt and in every daemon.
/// `[campaign_id]` places it among a campaign's agents; a caller ID is
/// chosen with a further part, so that the two choices are independent.
pub fn stable_hash(parts: &[&str], lead_id: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = parts
        .iter()
        .flat_map(|p| p.bytes().chain([b':']))
        .chain(lead_id.to_le_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mixes the high bits into the low ones before a modulo.
    h ^ (h >> 29)
}

/// The first of `numbers` under every cap at `now`, given the counted
/// attempts each made (`used`, any order); `Ok(None)` when there are no
/// numbers. When every one is at a cap: `Err` with the first instant one of
/// them is under its caps again.
pub fn first_free(
    numbers: &[String],
    caps: &[NumberCap],
    used: &HashMap<String, Vec<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> Result<Option<String>, DateTime<Utc>> {
    let mut earliest: Option<DateTime<Utc>> = None;
    for n in numbers {
        match free_at(caps, used.get(n).map_or(&[][..], Vec::as_slice), now) {
            None => return Ok(Some(n.clone())),
            Some(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
        }
    }
    match earliest {
        Some(t) => Err(t),
        None => Ok(None),
    }
}

/// `None` when a number with these attempts is under every cap at `now`;
/// otherwise the first instant at which it is.
fn free_at(
    caps: &[NumberCap],
    times: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut free = None::<DateTime<Utc>>;
    for (period, max) in caps {
        let mut inside: Vec<DateTime<Utc>> = times
            .iter()
            .copied()
            .filter(|t| *t > now - *period)
            .collect();
        let max = *max as usize;
        if inside.len() < max {
            continue;
        }
        inside.sort_unstable();
        // Under the cap once the oldest `len - max + 1` have left the period.
        let at = inside[inside.len() - max] + *period;
        free = Some(free.map_or(at, |f| f.max(at)));
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use std::collections::BTreeMap;

    fn ids(choose: Choose, numbers: &[&str]) -> CallerIds {
        let numbers: Vec<String> = numbers.iter().map(|s| s.to_string()).collect();
        CallerIds::new(choose, &numbers, &BTreeMap::new(), Vec::new())
    }

    const NYC: &str = "+12125550100"; // NY, area code 212
    const BUFFALO: &str = "+17165550100"; // NY, 716
    const CHICAGO: &str = "+13125550100"; // IL, 312
    const TORONTO: &str = "+14165550100"; // ON, Canada
    const PARIS: &str = "+33142685300";

    #[test]
    fn local_presence_prefers_area_code_then_state_then_country() {
        let c = ids(Choose::Local, &[CHICAGO, TORONTO, BUFFALO, NYC, PARIS]);
        // Area code 212 itself first, then New York state, then the US.
        assert_eq!(
            c.candidates("c", Some(1), "+12125551234", 0)[..3],
            [NYC, BUFFALO, CHICAGO]
        );
        // 646 is Manhattan too: same state, no number with its area code.
        assert_eq!(c.candidates("c", Some(1), "+16465551234", 0)[0], BUFFALO);
        assert_eq!(c.candidates("c", Some(1), "+16465551234", 1)[0], NYC);
        // Ottawa (613): same province as Toronto.
        assert_eq!(c.candidates("c", Some(1), "+16135551234", 0)[0], TORONTO);
        // Lyon: the French number.
        assert_eq!(c.candidates("c", Some(1), "+33472000000", 0)[0], PARIS);
        // Every number is a candidate, the unrelated ones last.
        assert_eq!(c.candidates("c", Some(1), "+61212345678", 0).len(), 5);
    }

    #[test]
    fn round_robin_rotates_and_sticky_keeps_one_number_per_lead() {
        let c = ids(Choose::RoundRobin, &[NYC, CHICAGO, TORONTO]);
        assert_eq!(c.candidates("c", Some(1), NYC, 0), [NYC, CHICAGO, TORONTO]);
        assert_eq!(c.candidates("c", Some(1), NYC, 1), [CHICAGO, TORONTO, NYC]);
        assert_eq!(c.candidates("c", Some(1), NYC, 5), [TORONTO, NYC, CHICAGO]);
        // With no cap to count the store is given the first one alone.
        assert_eq!(c.choice("c", 1, NYC, 1).numbers, [CHICAGO]);
        let capped = CallerIds {
            caps: vec![(chrono::Duration::hours(1), 5)],
            ..c.clone()
        };
        assert_eq!(
            capped.choice("c", 1, NYC, 1).numbers,
            [CHICAGO, TORONTO, NYC]
        );
        let local = CallerIds {
            choose: Choose::Local,
            ..c.clone()
        };
        assert_eq!(local.choice("c", 1, "+14165551234", 0).numbers, [TORONTO]);
        let s = ids(Choose::Sticky, &[NYC, CHICAGO, TORONTO]);
        let mut seen = std::collections::HashSet::new();
        for lead in 0..60 {
            let first = s.candidates("c", Some(lead), NYC, 0);
            assert_eq!(first.len(), 1);
            for turn in 1..4 {
                assert_eq!(s.candidates("c", Some(lead), NYC, turn), first);
            }
            seen.insert(first[0].clone());
        }
        assert_eq!(seen.len(), 3, "sticky spreads leads over every number");
        // A lead not yet stored may be given any of them.
        assert_eq!(s.candidates("c", None, NYC, 0).len(), 3);
    }

    #[test]
    fn a_sticky_number_does_not_follow_the_agent_split() {
        let mut both = std::collections::HashMap::<(u64, u64), usize>::new();
        for lead in 0..2000 {
            let agent = stable_hash(&["c"], lead) % 2;
            let number = stable_hash(&["c", "caller_id"], lead) % 2;
            *both.entry((agent, number)).or_default() += 1;
        }
        assert_eq!(both.len(), 4, "{both:?}");
        for n in both.values() {
            assert!((400..=600).contains(n), "{both:?}");
        }
    }

    #[test]
    fn a_number_id_is_placed_by_the_number_it_stands_for() {
        let dialled = BTreeMap::from([
            ("num_chi".to_string(), CHICAGO.to_string()),
            ("num_nyc".to_string(), NYC.to_string()),
        ]);
        let c = CallerIds::new(
            Choose::Local,
            &["num_chi".into(), "num_nyc".into(), "num_unknown".into()],
            &dialled,
            Vec::new(),
        );
        assert_eq!(c.candidates("c", Some(1), "+12125551234", 0)[0], "num_nyc");
        assert_eq!(c.candidates("c", Some(1), "+13125551234", 0)[0], "num_chi");
        assert_eq!(
            c.candidates("c", Some(1), "+13125551234", 0)[2],
            "num_unknown"
        );
    }

    #[test]
    fn the_first_number_under_its_caps_or_when_one_frees() {
        let now: DateTime<Utc> = "2026-12-02T15:00:00Z".parse().unwrap();
        let caps = vec![(Duration::hours(1), 2), (Duration::hours(24), 3)];
        let m = |mins: &[i64]| -> Vec<DateTime<Utc>> {
            mins.iter().map(|m| now - Duration::minutes(*m)).collect()
        };
        let numbers = vec!["a".to_string(), "b".to_string()];
        let mut used = HashMap::new();
        assert_eq!(
            first_free(&numbers, &caps, &used, now),
            Ok(Some("a".into()))
        );
        used.insert("a".to_string(), m(&[10, 50]));
        assert_eq!(
            first_free(&numbers, &caps, &used, now),
            Ok(Some("b".into()))
        );
        // b: two in the hour (the older 40 minutes ago frees at +20 min).
        used.insert("b".to_string(), m(&[5, 40, 61]));
        // a frees at +10 min (its 50-minute-old call leaves the hour); b is
        // also at its day cap until its oldest call (61 min ago) is a day old.
        assert_eq!(
            first_free(&numbers, &caps, &used, now),
            Err(now + Duration::minutes(10))
        );
        // An attempt stamped a little ahead of this clock counts all the same.
        used.insert("a".to_string(), m(&[-1, 70]));
        used.insert("b".to_string(), m(&[]));
        assert_eq!(
            first_free(&numbers, &caps, &used, now),
            Ok(Some("a".into()))
        );
        used.insert("a".to_string(), m(&[-1, 30]));
        assert_eq!(
            first_free(&numbers[..1], &caps, &used, now),
            Err(now + Duration::minutes(30))
        );
        assert_eq!(first_free(&[], &caps, &used, now), Ok(None));
        assert_eq!(first_free(&numbers, &[], &used, now), Ok(Some("a".into())));
    }
}
