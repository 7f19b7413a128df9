//! Property tests: for random instants over 2024-2030 (uniform, and packed
//! around every DST change) in zones with odd offsets and odd DST rules, and
//! random weekly windows, the schedule agrees with a direct wall-clock check
//! written independently here, and the next opening is open with no earlier
//! open minute before it.

use crate::support::schedule::*;
use chrono::{DateTime, Datelike, Duration, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use dialer::schedule::{LeadZone, Rules, ZoneSource};
use proptest::prelude::*;
use std::sync::OnceLock;

const ZONES: [Tz; 8] = [
    chrono_tz::America::New_York,
    chrono_tz::America::Los_Angeles,
    chrono_tz::America::Phoenix,
    chrono_tz::Europe::Paris,
    chrono_tz::Europe::London,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const PHONE: &str = "+442079460000"; // covered by no statute

/// Open minutes per weekday (Monday first), as the oracle sees them.
type Spec = Vec<Vec<(u32, u32)>>;

fn start_2024() -> i64 {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp()
}

fn end_2030() -> i64 {
    Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp()
}

/// Every UTC offset change of the test zones in 2024-2030, found by an hourly
/// scan refined to the minute (independent of the code under test).
fn transitions() -> &'static Vec<i64> {
    static T: OnceLock<Vec<i64>> = OnceLock::new();
    T.get_or_init(|| {
        let off = |z: &Tz, s: i64| {
            z.offset_from_utc_datetime(&DateTime::from_timestamp(s, 0).unwrap().naive_utc())
                .fix()
                .local_minus_utc()
        };
        let mut out = Vec::new();
        for z in &ZONES {
            let mut s = start_2024();
            while s < end_2030() {
                if off(z, s) != off(z, s + 3600) {
                    let mut m = s;
                    while off(z, m) == off(z, s) {
                        m += 60;
                    }
                    out.push(m);
                }
                s += 3600;
            }
        }
        assert!(out.len() > 70, "only {} transitions found", out.len());
        out
    })
}

fn day_spans(required: bool) -> impl Strategy<Value = Vec<(u32, u32)>> {
    let span = (0u32..96, 1u32..=96).prop_map(|(s, len)| (s * 15, (s * 15 + len * 15).min(1440)));
    prop::collection::vec(span, if required { 1..=2 } else { 0..=2 })
}

/// Random weekly windows on quarter-hour boundaries; Monday, Wednesday,
/// Friday and Sunday always have one range, so a gap is under three days.
fn spec() -> impl Strategy<Value = Spec> {
    (0..7usize)
        .map(|d| day_spans(d % 2 == 0).boxed())
        .collect::<Vec<_>>()
}

/// Instants over 2024-2030: uniform, or within three days of a DST change
/// (on a whole minute, or anywhere).
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let uniform = (start_2024()..end_2030()).boxed();
    let near = (
        any::<prop::sample::Index>(),
        -3 * 86_400i64..3 * 86_400,
        any::<bool>(),
    )
        .prop_map(|(i, d, whole)| {
            let t = transitions();
            let s = t[i.index(t.len())] + d;
            if whole {
                s - s.rem_euclid(60)
            } else {
                s
            }
        })
        .boxed();
    prop_oneof![uniform, near].prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

fn entries(spec: &Spec) -> Vec<String> {
    let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    spec.iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(d, spans)| {
            let ranges: Vec<String> = spans
                .iter()
                .map(|&(s, e)| format!("{}-{}", hm(s), hm(e)))
                .collect();
            format!("{} {}", DAYS[d], ranges.join(","))
        })
        .collect()
}

fn rules_for(spec: &Spec) -> Rules {
    let entries = entries(spec);
    Campaign {
        weekly: weekly(&entries.iter().map(String::as_str).collect::<Vec<_>>()),
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules()
}

/// The direct check: the local wall-clock weekday and minute are in a range.
fn oracle(spec: &Spec, z: Tz, t: DateTime<Utc>) -> bool {
    let local = t.with_timezone(&z);
    let m = local.hour() * 60 + local.minute();
    spec[local.weekday().num_days_from_monday() as usize]
        .iter()
        .any(|&(s, e)| s <= m && m < e)
}

fn all_open(spec: &Spec, zones: &[Tz], t: DateTime<Utc>) -> bool {
    zones.iter().all(|z| oracle(spec, *z, t))
}

/// Asserts nothing is open in `[from, to)`, minute by minute. Spans start and
/// end on quarter hours and every test zone's offset is a whole number of
/// quarter hours, so beyond eight days quarter-hour steps see every change.
fn assert_closed_between(spec: &Spec, zones: &[Tz], from: DateTime<Utc>, to: DateTime<Utc>) {
    let step = if to - from > Duration::days(8) { 15 } else { 1 };
    let mut t = from;
    while t < to {
        assert!(
            !all_open(spec, zones, t),
            "open at {t}, before the answer {to} (from {from})"
        );
        let floor = t.timestamp() - t.timestamp().rem_euclid(step * 60);
        t = DateTime::from_timestamp(floor + step * 60, 0).unwrap();
    }
}

/// A random cron entry `M H * * D` and the sets it stands for: minutes as
/// `*/k`, a range or a list; hours as a range; days as a list written with
/// numbers or names (Sunday as 0, 7 or `sun`) that always holds Monday,
/// Wednesday, Friday and Sunday, so a gap stays under three days.
fn cron_entry() -> impl Strategy<Value = (String, Vec<u32>, Vec<u32>, Vec<u32>)> {
    let minutes = prop_oneof![
        (1u32..=30).prop_map(|k| (
            format!("*/{k}"),
            (0..60).step_by(k as usize).collect::<Vec<_>>()
        )),
        (0u32..60, 0u32..60).prop_map(|(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            (format!("{a}-{b}"), (a..=b).collect())
        }),
        prop::collection::btree_set(0u32..60, 1..6).prop_map(|set| {
            let list: Vec<u32> = set.into_iter().collect();
            (
                list.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                list,
            )
        }),
    ];
    let hours = (0u32..24, 0u32..24).prop_map(|(a, b)| {
        let (a, b) = (a.min(b), a.max(b));
        (format!("{a}-{b}"), (a..=b).collect::<Vec<_>>())
    });
    // Days numbered as classic cron (0 = Sunday); chosen freely plus the four fixed ones.
    let days = (
        prop::collection::btree_set(0u32..7, 0..4),
        0u32..3,
        any::<bool>(),
    )
        .prop_map(|(mut set, sunday_style, names)| {
            set.extend([0, 1, 3, 5]);
            const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
            let text: Vec<String> = set
                .iter()
                .map(|&d| match (d, sunday_style, names) {
                    (0, 1, _) => "7".to_string(),
                    (0, 2, _) => "SUN".to_string(),
                    (d, _, true) => NAMES[d as usize].to_string(),
                    (d, _, false) => d.to_string(),
                })
                .collect();
            (text.join(","), set.into_iter().collect::<Vec<_>>())
        });
    (minutes, hours, days)
        .prop_map(|((mt, m), (ht, h), (dt, d))| (format!("{mt} {ht} * * {dt}"), m, h, d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    #[test]
    fn cron_entries_agree_with_the_wall_clock(
        zi in 0..ZONES.len(),
        (expr, minutes, hours, days) in cron_entry(),
        at in instant(),
    ) {
        let z = ZONES[zi];
        let rules = Campaign {
            cron: vec![expr.clone()],
            compliance: no_compliance(),
            ..Campaign::default()
        }
        .rules();
        let matches = |t: DateTime<Utc>| {
            let l = t.with_timezone(&z);
            minutes.contains(&l.minute())
                && hours.contains(&l.hour())
                && days.contains(&l.weekday().num_days_from_sunday())
        };
        let v = rules.evaluate(&facts(PHONE, Some(z.name())), at);
        prop_assert_eq!(v.callable, matches(at), "`{}` in {} at {}", expr, z.name(), at.with_timezone(&z));
        let next = v.next_callable_at.expect("a gap is under three days");
        prop_assert!(next >= at);
        prop_assert!(matches(next), "`{}`: answer {} is not a match", expr, next.with_timezone(&z));
        let mut t = at;
        while t < next {
            prop_assert!(!matches(t), "`{}`: {} matches, before the answer {}", expr, t.with_timezone(&z), next);
            t = DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60) + 60, 0).unwrap();
        }
    }

    #[test]
    fn callable_and_next_opening_agree_with_the_wall_clock(
        zi in 0..ZONES.len(),
        spec in spec(),
        at in instant(),
    ) {
        let z = ZONES[zi];
        let rules = rules_for(&spec);
        let name = z.name();
        let v = rules.evaluate(&facts(PHONE, Some(name)), at);
        prop_assert_eq!(v.zone.source, ZoneSource::Lead);
        let expected = oracle(&spec, z, at);
        prop_assert_eq!(v.callable, expected, "{} at {} ({})", name, at, at.with_timezone(&z));
        let next = v.next_callable_at.expect("a gap is under three days");
        if expected {
            prop_assert_eq!(next, at);
        }
        prop_assert!(next >= at);
        prop_assert!(oracle(&spec, z, next), "answer {} ({}) is closed", next, next.with_timezone(&z));
        assert_closed_between(&spec, &[z], at, next);
        prop_assert_eq!(rules.next_opening(&v.zone, PHONE, at), Some(next));
    }

    #[test]
    fn several_zones_open_only_together(
        a in 0..ZONES.len(),
        b in 0..ZONES.len(),
        spec in spec(),
        at in instant(),
    ) {
        let zones = vec![ZONES[a], ZONES[b]];
        let rules = rules_for(&spec);
        let zone = LeadZone { zones: zones.clone(), source: ZoneSource::Number };
        prop_assert_eq!(rules.is_open(&zone, PHONE, at), all_open(&spec, &zones, at));
        match rules.next_opening(&zone, PHONE, at) {
            Some(next) => {
                prop_assert!(next >= at);
                prop_assert!(all_open(&spec, &zones, next), "answer {} is closed", next);
                assert_closed_between(&spec, &zones, at, next);
            }
            None => assert_closed_between(&spec, &zones, at, at + Duration::days(366)),
        }
    }
}
