//! When a lead may be called: the lead's zone, the campaign's windows, legal
//! hours, holidays, attempt caps. Only this module knows about time zones and
//! the law.
//!
//! Files: `mod.rs` the public types; `rules.rs` compiling a campaign and
//! answering "callable now?" and "when next?"; `window.rs` the `weekly`
//! grammar and the minute-span algebra; `cron.rs` the cron translation;
//! `compliance.rs` the statutory rules table and French public holidays;
//! `zone.rs` zone inference from country codes; `nanp.rs` the North American
//! area-code table (`data/nanp_area_codes.txt`).
//!
//! # Time zone of a lead
//!
//! In this order: the lead's `timezone` column when it is a valid IANA name
//! (an invalid name counts as absent); else the zone(s) of the number: a
//! single-zone country code (`+33` Europe/Paris, `+44` Europe/London, ...,
//! with landline exceptions such as the Canary Islands and the Chatham
//! Islands) or, for `+1`, the area code's row in the shipped table; else the
//! campaign's `timezone`; else unknown, and the lead is not called
//! (`unknown_timezone`). An area code spanning several zones yields all of
//! them, and the lead is callable only when every one of them is open.
//!
//! # Windows and daylight saving time
//!
//! Every day-based rule (weekly window, holidays, `starts`/`ends`, legal
//! hours, state and country rules) and every cron entry is evaluated on the
//! lead's local wall clock. A window is the set of instants whose local
//! wall-clock time falls in one of its ranges, so `09:00-17:00` starts at
//! 09:00 local on the days after a DST change too. Consequences:
//!
//! - spring forward: the skipped local hour (02:00-03:00 in New York on
//!   2026-03-08) has no instants, so it is never open; a range `02:30-04:00`
//!   opens at 03:00 local that day (the first instant whose wall clock is in
//!   the range), and a range wholly inside the gap does not open at all;
//! - fall back: the repeated local hour (01:00-02:00 in New York on
//!   2026-11-01) happens twice, and a range covering it is open during both
//!   passes (two real hours); a range ending at 01:30 closes at the first
//!   01:30 and opens again when the clocks go back to 01:00.
//!
//! Caps count attempts in rolling real time (24 h means 24 h, not "the same
//! local day").
//!
//! # Next callable instant
//!
//! The search jumps between candidate boundaries instead of scanning
//! minutes: for each zone, the first open local minute is found on a naive
//! local timeline day by day (spans of the day, then the next cron match,
//! until both agree) and mapped back to an instant, restarting at each UTC
//! offset change it crosses; zones, caps and the due time are then combined
//! by iterating to a fixpoint where every rule allows. Nothing opening within
//! 366 days answers `None`.

mod compliance;
mod cron;
mod nanp;
mod rules;
mod window;
mod zone;

pub use compliance::{easter, is_french_public_holiday, Cap, Scope, Statute, STATUTES};
pub use cron::{translate as translate_cron, CronEntry};
pub use nanp::{area as nanp_area, area_of as nanp_area_of, NanpArea};
pub use rules::Rules;
pub use window::{Span, Weekly};
pub use zone::{zones_of_number, COUNTRY_ZONES, PREFIX_ZONES};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
/// Names of the rules that can block a call (SPEC section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Window,
    Holiday,
    CampaignDates,
    Cron,
    LegalHours,
    StateRule,
    CountryRule,
    DailyCap,
    PeriodCap,
    DoNotCall,
    NoConsent,
    UnknownTimezone,
    Paused,
    ProviderPaused,
    CallerIdCap,
    FinalStatus,
    NotDue,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Window => "window",
            Rule::Holiday => "holiday",
            Rule::CampaignDates => "campaign_dates",
            Rule::Cron => "cron",
            Rule::LegalHours => "legal_hours",
            Rule::StateRule => "state_rule",
            Rule::CountryRule => "country_rule",
            Rule::DailyCap => "daily_cap",
            Rule::PeriodCap => "period_cap",
            Rule::DoNotCall => "do_not_call",
            Rule::NoConsent => "no_consent",
            Rule::UnknownTimezone => "unknown_timezone",
            Rule::Paused => "paused",
            Rule::ProviderPaused => "provider_paused",
            Rule::CallerIdCap => "caller_id_cap",
            Rule::FinalStatus => "final_status",
            Rule::NotDue => "not_due",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    Lead,
    Number,
    Campaign,
    Unknown,
}

/// The zone(s) a lead is called in. Several when the number's prefix spans
/// several zones: every one must be open.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadZone {
    pub zones: Vec<Tz>,
    pub source: ZoneSource,
}

/// The facts about one lead that the rules need, gathered by the caller.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub phone: &'a str,
    /// The lead's `timezone` column.
    pub timezone: Option<&'a str>,
    pub consent: bool,
    pub dnc: bool,
    pub paused: bool,
    pub final_status: bool,
    /// `next_attempt_at`; `None` counts as due.
    pub due_at: Option<DateTime<Utc>>,
    /// Placing on the campaign's provider is paused until then.
    pub provider_paused_until: Option<DateTime<Utc>>,
    /// Every caller ID the lead may be called from is at a `[caller_id]`
    /// cap until then.
    pub caller_id_free_at: Option<DateTime<Utc>>,
    /// Counted attempts to this number, all campaigns, newest last, at most 31 days old.
    pub recent_attempts: &'a [DateTime<Utc>],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub zone: LeadZone,
    pub callable: bool,
    pub blocked_by: Vec<Rule>,
    /// `at` when callable; `None` when nothing opens within 366 days or never.
    pub next_callable_at: Option<DateTime<Utc>>,
}

/// Parses `HH:MM-HH:MM` into minutes of the day, `[start, end)`, end may be 24:00.
pub fn parse_time_range(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{s}` is not a time range like 08:00-21:00");
    let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
    let minutes = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (a, b) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
    if a >= b {
        return Err(format!(
            "`{s}`: the start must be before the end (no range crosses midnight)"
        ));
    }
    Ok((a, b))
}
