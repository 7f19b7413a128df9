//! When a lead may be called: the lead's zone, the campaign's windows, legal
//! hours, holidays, attempt caps. Only this module knows about time zones and
//! the law.

use crate::config::CampaignConfig;
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

/// A campaign's compiled calling rules.
#[derive(Debug, Clone)]
pub struct Rules {
    campaign_tz: Option<Tz>,
}

impl Rules {
    /// No restriction at all (the demo's window).
    pub fn always_open() -> Self {
        Rules { campaign_tz: None }
    }

    /// Compiles a campaign's `[window]`, dates and `[compliance]`; errors are
    /// `(key, why)` pairs.
    pub fn compile(c: &CampaignConfig) -> Result<Rules, Vec<(String, String)>> {
        Ok(Rules {
            campaign_tz: c.timezone,
        })
    }

    pub fn zone_of(&self, lead_timezone: Option<&str>, _phone: &str) -> LeadZone {
        if let Some(tz) = lead_timezone.and_then(|t| t.parse::<Tz>().ok()) {
            return LeadZone {
                zones: vec![tz],
                source: ZoneSource::Lead,
            };
        }
        match self.campaign_tz {
            Some(tz) => LeadZone {
                zones: vec![tz],
                source: ZoneSource::Campaign,
            },
            None => LeadZone {
                zones: vec![chrono_tz::UTC],
                source: ZoneSource::Campaign,
            },
        }
    }

    /// Whether the lead may be called at `at`, every rule that blocks it, and
    /// the next instant it may be called.
    pub fn evaluate(&self, facts: &Facts<'_>, at: DateTime<Utc>) -> Verdict {
        let zone = self.zone_of(facts.timezone, facts.phone);
        let mut blocked_by = Vec::new();
        if facts.final_status {
            blocked_by.push(Rule::FinalStatus);
        }
        if facts.dnc {
            blocked_by.push(Rule::DoNotCall);
        }
        if facts.paused {
            blocked_by.push(Rule::Paused);
        }
        if zone.source == ZoneSource::Unknown {
            blocked_by.push(Rule::UnknownTimezone);
        }
        if facts.due_at.is_some_and(|d| d > at) {
            blocked_by.push(Rule::NotDue);
        }
        let next = if blocked_by.is_empty() {
            Some(at)
        } else if blocked_by == [Rule::NotDue] {
            facts.due_at
        } else {
            None
        };
        Verdict {
            zone,
            callable: blocked_by.is_empty(),
            blocked_by,
            next_callable_at: next,
        }
    }

    /// The first instant at or after `from` at which the time rules (windows,
    /// holidays, dates, cron, legal hours) allow calling this number.
    pub fn next_opening(
        &self,
        _zone: &LeadZone,
        _phone: &str,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        Some(from)
    }
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
