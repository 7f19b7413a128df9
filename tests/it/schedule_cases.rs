//! Explicit calling-window cases: the 2026 DST days of New York and Paris,
//! holidays, a window ending at 24:00, legal hours, the Florida and France
//! rules, caps, permanent blocks, cron entries and zone inference.

use crate::support::schedule::*;
use chrono::Duration;
use chrono_tz::Tz;
use dialer::schedule::{LeadZone, Rule, Rules, ZoneSource};

const UK: &str = "+442079460000"; // no statute; the lead's column gives the zone
const NYC: &str = "+12125550123";
const MIAMI: &str = "+13055550123";
const PENSACOLA: &str = "+18505550123";
const BOISE: &str = "+12085550123";
const PARIS: &str = "+33142685300";

fn window_only(tz: &str, entries: &[&str]) -> (Rules, Campaign) {
    let c = Campaign {
        timezone: Some(tz.parse::<Tz>().unwrap()),
        weekly: weekly(entries),
        compliance: no_compliance(),
        ..Campaign::default()
    };
    (c.rules(), c)
}

/// (callable, blocked_by, next) for a lead on the campaign's zone.
fn check(rules: &Rules, tz: &str, at: &str) -> (bool, Vec<Rule>, Option<String>) {
    let v = rules.evaluate(&facts(UK, Some(tz)), utc(at));
    (
        v.callable,
        v.blocked_by,
        v.next_callable_at.map(dialer::domain::rfc3339),
    )
}

fn next(rules: &Rules, tz: &str, at: &str) -> Option<String> {
    check(rules, tz, at).2
}

fn open(rules: &Rules, tz: &str, at: &str) -> bool {
    check(rules, tz, at).0
}

// ---- New York, 2026-03-08: 02:00 EST (07:00Z) jumps to 03:00 EDT ----

#[test]
fn new_york_spring_forward_skipped_hour_never_opens() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["sun 02:00-03:00"]);
    // 01:30 EST and 03:00 EDT on either side of the gap are closed.
    assert!(!open(&r, ny, "2026-03-08T06:30:00Z"));
    assert!(!open(&r, ny, "2026-03-08T07:00:00Z"));
    // So the next opening is the following Sunday, 02:00 EDT.
    assert_eq!(
        next(&r, ny, "2026-03-08T06:30:00Z").as_deref(),
        Some("2026-03-15T06:00:00Z")
    );
}

#[test]
fn new_york_spring_forward_range_over_the_gap_opens_at_the_jump() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["sun 02:30-04:00"]);
    assert!(!open(&r, ny, "2026-03-08T06:59:00Z")); // 01:59 EST
    assert!(open(&r, ny, "2026-03-08T07:00:00Z")); // 03:00 EDT
    assert!(open(&r, ny, "2026-03-08T07:59:00Z")); // 03:59 EDT
    assert!(!open(&r, ny, "2026-03-08T08:00:00Z")); // 04:00 EDT
    assert_eq!(
        next(&r, ny, "2026-03-08T05:00:00Z").as_deref(),
        Some("2026-03-08T07:00:00Z")
    );
    // The week before, 02:30 EST is 07:30Z.
    assert_eq!(
        next(&r, ny, "2026-03-01T05:00:00Z").as_deref(),
        Some("2026-03-01T07:30:00Z")
    );
}

#[test]
fn new_york_nine_o_clock_stays_nine_o_clock_across_the_change() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["mon-sun 09:00-17:00"]);
    assert_eq!(
        next(&r, ny, "2026-03-07T23:00:00Z").as_deref(),
        Some("2026-03-08T13:00:00Z")
    );
    assert_eq!(
        next(&r, ny, "2026-03-06T23:00:00Z").as_deref(),
        Some("2026-03-07T14:00:00Z")
    );
    assert!(open(&r, ny, "2026-03-08T20:59:00Z")); // 16:59 EDT
    assert!(!open(&r, ny, "2026-03-08T21:00:00Z")); // 17:00 EDT
}

// ---- New York, 2026-11-01: 02:00 EDT (06:00Z) goes back to 01:00 EST ----

#[test]
fn new_york_fall_back_repeated_hour_is_open_twice() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["sun 01:00-02:00"]);
    assert!(!open(&r, ny, "2026-11-01T04:59:00Z"));
    assert!(open(&r, ny, "2026-11-01T05:00:00Z")); // 01:00 EDT
    assert!(open(&r, ny, "2026-11-01T05:59:00Z")); // 01:59 EDT
    assert!(open(&r, ny, "2026-11-01T06:00:00Z")); // 01:00 EST
    assert!(open(&r, ny, "2026-11-01T06:59:00Z")); // 01:59 EST
    assert!(!open(&r, ny, "2026-11-01T07:00:00Z")); // 02:00 EST
    assert_eq!(
        next(&r, ny, "2026-11-01T04:00:00Z").as_deref(),
        Some("2026-11-01T05:00:00Z")
    );
}

#[test]
fn new_york_fall_back_range_ending_inside_the_repeated_hour_reopens() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["sun 00:00-01:30"]);
    assert!(open(&r, ny, "2026-11-01T05:29:00Z")); // 01:29 EDT
    assert!(!open(&r, ny, "2026-11-01T05:30:00Z")); // 01:30 EDT
                                                    // The clocks go back to 01:00 at 06:00Z: open again until 01:30 EST.
    assert_eq!(
        next(&r, ny, "2026-11-01T05:30:00Z").as_deref(),
        Some("2026-11-01T06:00:00Z")
    );
    assert!(open(&r, ny, "2026-11-01T06:29:00Z"));
    assert_eq!(
        next(&r, ny, "2026-11-01T06:30:00Z").as_deref(),
        Some("2026-11-08T05:00:00Z")
    );
}

// ---- Paris, 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST ----

#[test]
fn paris_spring_forward() {
    let p = "Europe/Paris";
    let (r, _) = window_only(p, &["sun 02:00-02:30"]);
    assert!(!open(&r, p, "2026-03-29T01:00:00Z"));
    assert_eq!(
        next(&r, p, "2026-03-29T00:30:00Z").as_deref(),
        Some("2026-04-05T00:00:00Z")
    );
    let (r, _) = window_only(p, &["sun 02:45-03:15"]);
    assert_eq!(
        next(&r, p, "2026-03-29T00:00:00Z").as_deref(),
        Some("2026-03-29T01:00:00Z")
    );
    assert!(!open(&r, p, "2026-03-29T01:15:00Z")); // 03:15 CEST
}

#[test]
fn paris_window_ending_at_midnight_on_the_change_weekend() {
    let p = "Europe/Paris";
    let (r, _) = window_only(p, &["sat-sun 20:00-24:00"]);
    assert!(open(&r, p, "2026-03-28T22:59:00Z")); // Sat 23:59 CET
    let (ok, blocked, n) = check(&r, p, "2026-03-28T23:00:00Z"); // Sun 00:00 CET
    assert!(!ok);
    assert_eq!(blocked, vec![Rule::Window]);
    // Sunday 20:00 is CEST by then.
    assert_eq!(n.as_deref(), Some("2026-03-29T18:00:00Z"));
    assert!(open(&r, p, "2026-03-29T21:59:00Z")); // Sun 23:59 CEST
    assert!(!open(&r, p, "2026-03-29T22:00:00Z")); // Mon 00:00 CEST
}

// ---- Paris, 2026-10-25: 03:00 CEST (01:00Z) goes back to 02:00 CET ----

#[test]
fn paris_fall_back_repeated_hour() {
    let p = "Europe/Paris";
    let (r, _) = window_only(p, &["sun 02:15-02:45"]);
    assert!(open(&r, p, "2026-10-25T00:15:00Z")); // 02:15 CEST
    assert!(!open(&r, p, "2026-10-25T00:45:00Z")); // 02:45 CEST
    assert_eq!(
        next(&r, p, "2026-10-25T00:50:00Z").as_deref(),
        Some("2026-10-25T01:15:00Z")
    );
    assert!(open(&r, p, "2026-10-25T01:44:00Z")); // 02:44 CET
    assert!(!open(&r, p, "2026-10-25T01:45:00Z"));
    let (r, _) = window_only(p, &["sun 02:00-03:00"]);
    assert!(open(&r, p, "2026-10-25T00:00:00Z"));
    assert!(open(&r, p, "2026-10-25T01:59:00Z"));
    assert!(!open(&r, p, "2026-10-25T02:00:00Z")); // 03:00 CET
}

#[test]
fn window_ending_at_24_00_closes_at_midnight() {
    let ny = "America/New_York";
    let (r, _) = window_only(ny, &["fri 18:00-24:00"]);
    assert!(open(&r, ny, "2026-06-06T03:59:00Z")); // Fri 23:59 EDT
    assert!(!open(&r, ny, "2026-06-06T04:00:00Z")); // Sat 00:00 EDT
    assert_eq!(
        next(&r, ny, "2026-06-06T04:00:00Z").as_deref(),
        Some("2026-06-12T22:00:00Z")
    );
}

#[test]
fn holidays_are_in_the_leads_local_calendar() {
    let c = Campaign {
        weekly: weekly(&["mon-fri 09:00-17:00"]),
        holidays: vec![date("2026-12-25")],
        compliance: no_compliance(),
        ..Campaign::default()
    };
    let r = c.rules();
    let ny = r.evaluate(
        &facts(UK, Some("America/New_York")),
        utc("2026-12-25T15:00:00Z"),
    );
    assert_eq!(ny.blocked_by, vec![Rule::Holiday]);
    assert_eq!(ny.next_callable_at, Some(utc("2026-12-28T14:00:00Z")));
    // 09:30 on the 25th in Tokyo is still the 24th in New York.
    let tokyo = r.evaluate(&facts(UK, Some("Asia/Tokyo")), utc("2026-12-25T00:30:00Z"));
    assert_eq!(tokyo.blocked_by, vec![Rule::Holiday]);
    let ny = r.evaluate(
        &facts(UK, Some("America/New_York")),
        utc("2026-12-25T00:30:00Z"),
    );
    assert_eq!(ny.blocked_by, vec![Rule::Window]);
}

#[test]
fn campaign_dates_are_inclusive_local_days() {
    let c = Campaign {
        starts: Some(date("2026-12-01")),
        ends: Some(date("2026-12-02")),
        compliance: no_compliance(),
        ..Campaign::default()
    };
    let r = c.rules();
    let f = facts(UK, Some("America/New_York"));
    let v = r.evaluate(&f, utc("2026-11-30T12:00:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::CampaignDates]);
    assert_eq!(v.next_callable_at, Some(utc("2026-12-01T05:00:00Z")));
    assert!(r.evaluate(&f, utc("2026-12-03T04:59:00Z")).callable);
    let v = r.evaluate(&f, utc("2026-12-03T05:00:00Z"));
    assert_eq!((v.callable, v.next_callable_at), (false, None));
}

#[test]
fn generic_legal_hours_guard_and_switching_it_off() {
    let r = Campaign::default().rules();
    let f = facts(NYC, None);
    let v = r.evaluate(&f, utc("2026-06-01T11:30:00Z")); // 07:30 EDT
    assert_eq!(v.blocked_by, vec![Rule::LegalHours]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-01T12:00:00Z")));
    assert!(!r.evaluate(&f, utc("2026-06-02T01:00:00Z")).callable); // 21:00 EDT
    let off = Campaign {
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    assert!(off.evaluate(&f, utc("2026-06-01T07:30:00Z")).callable);
}

// ---- Florida (by area code): 08:00-20:00 and at most 3 calls in 24 h ----

#[test]
fn florida_hours_apply_even_with_the_generic_guard_off() {
    let r = Campaign {
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let f = facts(MIAMI, None);
    let v = r.evaluate(&f, utc("2026-06-01T00:30:00Z")); // Sun 20:30 EDT
    assert_eq!(v.zone.source, ZoneSource::Number);
    assert_eq!(v.blocked_by, vec![Rule::StateRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-01T12:00:00Z")));
    assert!(r.evaluate(&f, utc("2026-06-01T23:59:00Z")).callable); // 19:59 EDT
                                                                   // With the generic guard on as well, both are reported.
    let v = Campaign::default()
        .rules()
        .evaluate(&f, utc("2026-06-01T11:00:00Z")); // 07:00
    assert_eq!(v.blocked_by, vec![Rule::LegalHours, Rule::StateRule]);
}

#[test]
fn florida_three_calls_in_24_hours() {
    let r = Campaign {
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let attempts = [
        utc("2026-06-01T14:00:00Z"),
        utc("2026-06-01T15:00:00Z"),
        utc("2026-06-01T16:00:00Z"),
    ];
    let mut f = facts(MIAMI, None);
    f.recent_attempts = &attempts[..2];
    assert!(r.evaluate(&f, utc("2026-06-01T17:00:00Z")).callable);
    f.recent_attempts = &attempts;
    let v = r.evaluate(&f, utc("2026-06-01T17:00:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::StateRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-02T14:00:00Z")));
    // A number elsewhere has no such cap.
    let mut ny = facts(NYC, None);
    ny.recent_attempts = &attempts;
    assert!(r.evaluate(&ny, utc("2026-06-01T17:00:00Z")).callable);
}

#[test]
fn pensacola_area_code_spans_two_zones_and_needs_both_open() {
    let r = Campaign {
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let f = facts(PENSACOLA, None);
    let v = r.evaluate(&f, utc("2026-06-01T12:30:00Z")); // 08:30 EDT, 07:30 CDT
    assert_eq!(
        v.zone.zones,
        vec![chrono_tz::America::Chicago, chrono_tz::America::New_York]
    );
    assert_eq!(v.blocked_by, vec![Rule::StateRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-01T13:00:00Z")));
    assert!(r.evaluate(&f, utc("2026-06-01T23:59:00Z")).callable); // 19:59 EDT
    let v = r.evaluate(&f, utc("2026-06-02T00:00:00Z")); // 20:00 EDT, 19:00 CDT
    assert!(!v.callable);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-02T13:00:00Z")));
}

// ---- France (+33): Mon-Fri 10-13 and 14-20, not on public holidays, 4 in 30 days ----

#[test]
fn france_hours_and_days() {
    let r = Campaign::default().rules();
    let f = facts(PARIS, None);
    let v = r.evaluate(&f, utc("2026-05-12T07:30:00Z")); // Tue 09:30 CEST
    assert_eq!(v.zone.zones, vec![chrono_tz::Europe::Paris]);
    assert_eq!(v.blocked_by, vec![Rule::CountryRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-05-12T08:00:00Z")));
    let v = r.evaluate(&f, utc("2026-05-12T11:30:00Z")); // 13:30
    assert_eq!(v.next_callable_at, Some(utc("2026-05-12T12:00:00Z")));
    assert!(r.evaluate(&f, utc("2026-05-12T17:59:00Z")).callable); // 19:59
    let v = r.evaluate(&f, utc("2026-05-16T08:00:00Z")); // Saturday
    assert_eq!(v.blocked_by, vec![Rule::CountryRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-05-18T08:00:00Z")));
}

#[test]
fn france_public_holiday_ascension_2026() {
    let r = Campaign::default().rules();
    let f = facts(PARIS, None);
    let v = r.evaluate(&f, utc("2026-05-14T08:00:00Z")); // Thu 10:00 CEST, Ascension
    assert_eq!(v.blocked_by, vec![Rule::CountryRule]);
    assert_eq!(v.next_callable_at, Some(utc("2026-05-15T08:00:00Z")));
    // Whit Monday 2026-05-25 too.
    let v = r.evaluate(&f, utc("2026-05-22T18:30:00Z")); // Fri 20:30
    assert_eq!(v.next_callable_at, Some(utc("2026-05-26T08:00:00Z")));
}

#[test]
fn france_four_attempts_in_thirty_days() {
    let r = Campaign::default().rules();
    let attempts = [
        utc("2026-04-20T10:00:00Z"),
        utc("2026-04-27T10:00:00Z"),
        utc("2026-05-04T10:00:00Z"),
        utc("2026-05-11T10:00:00Z"),
    ];
    let mut f = facts(PARIS, None);
    f.recent_attempts = &attempts;
    let v = r.evaluate(&f, utc("2026-05-12T08:00:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::PeriodCap]);
    // The oldest leaves the 30-day window on May 20 at 10:00Z (12:00 CEST, open).
    assert_eq!(v.next_callable_at, Some(utc("2026-05-20T10:00:00Z")));
    f.recent_attempts = &attempts[1..];
    assert!(r.evaluate(&f, utc("2026-05-12T08:00:00Z")).callable);
}

#[test]
fn daily_cap_release_moves_to_the_next_window_opening() {
    let r = Campaign {
        weekly: weekly(&["mon-fri 09:00-17:00"]),
        ..Campaign::default()
    }
    .rules();
    let attempts = [
        utc("2026-06-05T18:00:00Z"), // Fri 14:00 EDT
        utc("2026-06-05T19:00:00Z"),
        utc("2026-06-05T20:00:00Z"),
    ];
    let mut f = facts(NYC, None);
    f.recent_attempts = &attempts;
    let v = r.evaluate(&f, utc("2026-06-05T20:30:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::DailyCap]);
    // Released Saturday 14:00 EDT, but the window opens Monday 09:00 EDT.
    assert_eq!(v.next_callable_at, Some(utc("2026-06-08T13:00:00Z")));
    let v = r.evaluate(&f, utc("2026-06-05T21:30:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::Window, Rule::DailyCap]);
    // Released within the window: exactly 24 h after the oldest.
    let v = r.evaluate(&f, utc("2026-06-04T20:30:00Z"));
    assert!(v.callable);
}

#[test]
fn permanent_blocks_list_every_rule_and_have_no_next() {
    let r = Campaign {
        compliance: dialer::config::Compliance {
            require_consent: true,
            ..dialer::config::Compliance::default()
        },
        ..Campaign::default()
    }
    .rules();
    let mut f = facts(MIAMI, None);
    f.dnc = true;
    f.consent = false;
    let v = r.evaluate(&f, utc("2026-06-01T07:00:00Z")); // 03:00 EDT
    assert_eq!(
        v.blocked_by,
        vec![
            Rule::LegalHours,
            Rule::StateRule,
            Rule::DoNotCall,
            Rule::NoConsent
        ]
    );
    assert_eq!(v.next_callable_at, None);
    for set in [
        |f: &mut dialer::schedule::Facts| f.paused = true,
        |f: &mut dialer::schedule::Facts| f.final_status = true,
    ] {
        let mut f = facts(NYC, None);
        set(&mut f);
        let v = r.evaluate(&f, utc("2026-06-01T15:00:00Z"));
        assert!(!v.callable);
        assert_eq!(v.next_callable_at, None);
    }
}

#[test]
fn not_due_moves_to_the_first_opening_after_the_due_time() {
    let r = Campaign::default().rules();
    let mut f = facts(NYC, None);
    f.due_at = Some(utc("2026-06-02T02:00:00Z")); // 22:00 EDT
    let v = r.evaluate(&f, utc("2026-06-01T15:00:00Z"));
    assert_eq!(v.blocked_by, vec![Rule::NotDue]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-02T12:00:00Z")));
}

#[test]
fn cron_entries_in_local_time() {
    let ny = "America/New_York";
    let cron = |e: &[&str]| {
        Campaign {
            timezone: Some(chrono_tz::America::New_York),
            cron: e.iter().map(|s| s.to_string()).collect(),
            compliance: no_compliance(),
            ..Campaign::default()
        }
        .rules()
    };
    // `0 9 * * 7`: Sunday 09:00, which on 2026-03-08 is already EDT.
    let r = cron(&["0 9 * * 7"]);
    assert_eq!(
        next(&r, ny, "2026-03-02T12:00:00Z").as_deref(),
        Some("2026-03-08T13:00:00Z")
    );
    assert!(open(&r, ny, "2026-03-08T13:00:59Z"));
    assert_eq!(check(&r, ny, "2026-03-08T13:01:00Z").1, vec![Rule::Cron]);
    // `*/15 * * * 0`: every quarter hour on Sundays.
    let r = cron(&["*/15 * * * 0"]);
    assert_eq!(
        next(&r, ny, "2026-03-08T04:50:00Z").as_deref(),
        Some("2026-03-08T05:00:00Z")
    );
    assert_eq!(
        next(&r, ny, "2026-03-08T05:01:00Z").as_deref(),
        Some("2026-03-08T05:15:00Z")
    );
    // `* 9-11 * * 1-5`: weekday mornings.
    let r = cron(&["* 9-11 * * 1-5"]);
    assert!(open(&r, ny, "2026-03-06T16:59:00Z")); // Fri 11:59 EST
    assert_eq!(
        next(&r, ny, "2026-03-06T17:00:00Z").as_deref(),
        Some("2026-03-09T13:00:00Z")
    );
    // Cron and weekly together: both must allow the minute.
    let r = Campaign {
        timezone: Some(chrono_tz::America::New_York),
        weekly: weekly(&["mon-fri 10:00-12:00"]),
        cron: vec!["*/30 * * * *".into()],
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let (ok, blocked, n) = check(&r, ny, "2026-06-01T14:10:00Z");
    assert!(!ok);
    assert_eq!(blocked, vec![Rule::Cron]);
    assert_eq!(n.as_deref(), Some("2026-06-01T14:30:00Z"));
}

#[test]
fn compile_lists_every_problem_with_its_key() {
    let c = Campaign {
        weekly: weekly(&[
            "mon-fri 09:00-17:00",
            "funday 09:00-10:00",
            "tue 18:00-09:00",
        ]),
        cron: vec!["* * * *".into(), "0 9 * * *".into(), "61 * * * *".into()],
        ..Campaign::default()
    };
    let problems = Rules::compile(&c.config()).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "window.weekly[1]",
            "window.weekly[2]",
            "window.cron[0]",
            "window.cron[2]"
        ]
    );
    assert!(problems[0].1.contains("funday"));
}

// ---- Zone inference ----

#[test]
fn zone_inference_order() {
    let r = Campaign {
        timezone: Some(chrono_tz::America::Chicago),
        ..Campaign::default()
    }
    .rules();
    let lead = r.zone_of(Some("America/New_York"), PARIS);
    assert_eq!(
        (lead.zones, lead.source),
        (vec![chrono_tz::America::New_York], ZoneSource::Lead)
    );
    let bad_column = r.zone_of(Some("Mars/Olympus_Mons"), PARIS);
    assert_eq!(
        (bad_column.zones, bad_column.source),
        (vec![chrono_tz::Europe::Paris], ZoneSource::Number)
    );
    let ny = r.zone_of(None, NYC);
    assert_eq!(
        (ny.zones, ny.source),
        (vec![chrono_tz::America::New_York], ZoneSource::Number)
    );
    let russia = r.zone_of(None, "+74951234567");
    assert_eq!(
        (russia.zones, russia.source),
        (vec![chrono_tz::America::Chicago], ZoneSource::Campaign)
    );
    let none = Campaign::default().rules();
    let v = none.evaluate(&facts("+74951234567", None), utc("2026-06-01T12:00:00Z"));
    assert_eq!(
        v.zone,
        LeadZone {
            zones: vec![],
            source: ZoneSource::Unknown
        }
    );
    assert_eq!(v.blocked_by, vec![Rule::UnknownTimezone]);
    assert_eq!(v.next_callable_at, None);
    assert_eq!(
        none.next_opening(&v.zone, "+74951234567", utc("2026-06-01T12:00:00Z")),
        None
    );
}

#[test]
fn multi_zone_area_code_is_callable_only_when_every_zone_is_open() {
    let r = Campaign {
        weekly: weekly(&["mon-sun 09:00-17:00"]),
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let f = facts(BOISE, None);
    let v = r.evaluate(&f, utc("2026-06-01T15:30:00Z")); // 09:30 MDT, 08:30 PDT
    assert_eq!(v.zone.source, ZoneSource::Number);
    assert_eq!(
        v.zone.zones,
        vec![chrono_tz::America::Boise, chrono_tz::America::Los_Angeles]
    );
    assert_eq!(v.blocked_by, vec![Rule::Window]);
    assert_eq!(v.next_callable_at, Some(utc("2026-06-01T16:00:00Z")));
    assert!(r.evaluate(&f, utc("2026-06-01T22:59:00Z")).callable); // 16:59 MDT
    assert!(!r.evaluate(&f, utc("2026-06-01T23:00:00Z")).callable); // 17:00 MDT, 16:00 PDT
    assert_eq!(
        r.next_opening(&v.zone, BOISE, utc("2026-06-01T23:00:00Z")),
        Some(utc("2026-06-02T16:00:00Z"))
    );
}

#[test]
fn nothing_within_366_days_is_none_and_stays_cheap() {
    // A cron minute that never falls inside the weekly window.
    let r = Campaign {
        timezone: Some(chrono_tz::Europe::London),
        weekly: weekly(&["mon 09:00-10:00"]),
        cron: vec!["0 3 * * *".into()],
        compliance: no_compliance(),
        ..Campaign::default()
    }
    .rules();
    let started = std::time::Instant::now();
    let v = r.evaluate(&facts(UK, None), utc("2026-06-01T12:00:00Z"));
    assert_eq!(v.next_callable_at, None);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A typical evaluation is far cheaper.
    let r = Campaign::default().rules();
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let at = utc("2026-06-01T00:00:00Z") + Duration::minutes(37 * i);
        let v = r.evaluate(&facts(MIAMI, None), at);
        assert!(v.next_callable_at.is_some());
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
