//! A campaign's compiled calling rules (`Rules`): compiling `[window]`,
//! dates and `[compliance]`, choosing a lead's zone, and answering for one
//! lead "may it be called at this instant, what blocks it, and when next?".

use super::compliance::{statutes_for, Cap, Statute};
use super::cron::CronEntry;
use super::window::{self, Span, Weekly, WHOLE_DAY};
use super::{zone, Facts, LeadZone, Rule, Verdict, ZoneSource};
use crate::config::CampaignConfig;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use std::borrow::Cow;

/// How far ahead the next opening is searched.
const HORIZON_DAYS: i64 = 366;

/// Loop guards: every loop below advances time strictly and stops at the
/// horizon; these bounds only turn a logic error into `None` instead of a hang.
const MAX_STEPS: usize = 100_000;

/// A campaign's compiled calling rules.
#[derive(Debug, Clone)]
pub struct Rules {
    campaign_tz: Option<Tz>,
    /// `None`: no weekly restriction.
    weekly: Option<Weekly>,
    /// Sorted, deduplicated.
    holidays: Vec<NaiveDate>,
    starts: Option<NaiveDate>,
    ends: Option<NaiveDate>,
    cron: Vec<CronEntry>,
    local_hours: Option<Span>,
    max_attempts_per_day: Option<u32>,
    require_consent: bool,
    /// Whether the statutes table applies (off only for `always_open`).
    statutory: bool,
}

/// One rule that opens a set of minutes on each local date.
#[derive(Debug, Clone, Copy)]
enum DayRule {
    Window,
    Holiday,
    Dates,
    LegalHours(Span),
    Statute(&'static Statute),
}

impl DayRule {
    fn rule(self) -> Rule {
        match self {
            DayRule::Window => Rule::Window,
            DayRule::Holiday => Rule::Holiday,
            DayRule::Dates => Rule::CampaignDates,
            DayRule::LegalHours(_) => Rule::LegalHours,
            DayRule::Statute(s) => s.rule,
        }
    }
}

/// The rules that apply to one number.
struct Plan {
    day_rules: Vec<DayRule>,
    caps: Vec<Cap>,
}

impl Rules {
    /// No restriction at all (the demo's window): always open, no legal
    /// hours, no statutes, no caps, and UTC for leads of unknown zone.
    pub fn always_open() -> Self {
        Rules {
            campaign_tz: Some(chrono_tz::UTC),
            weekly: None,
            holidays: Vec::new(),
            starts: None,
            ends: None,
            cron: Vec::new(),
            local_hours: None,
            max_attempts_per_day: None,
            require_consent: false,
            statutory: false,
        }
    }

    /// Compiles a campaign's `[window]`, dates and `[compliance]`; errors are
    /// `(key, why)` pairs.
    pub fn compile(c: &CampaignConfig) -> Result<Rules, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let weekly = match &c.window.weekly {
            None => None,
            Some(entries) if entries.is_empty() => {
                problems.push((
                    "window.weekly".to_string(),
                    "is empty, so no call would ever be placed; remove the key for an always-open window"
                        .to_string(),
                ));
                None
            }
            Some(entries) => match Weekly::parse(entries) {
                Ok(w) => Some(w),
                Err(list) => {
                    for (i, why) in list {
                        problems.push((format!("window.weekly[{i}]"), why));
                    }
                    None
                }
            },
        };
        let mut cron = Vec::new();
        for (i, expr) in c.window.cron.iter().enumerate() {
            match CronEntry::parse(expr) {
                Ok(e) => cron.push(e),
                Err(why) => problems.push((format!("window.cron[{i}]"), why)),
            }
        }
        if c.compliance.max_attempts_per_day == Some(0) {
            problems.push((
                "compliance.max_attempts_per_day".to_string(),
                "must be at least 1".to_string(),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut holidays = c.window.holidays.clone();
        holidays.sort_unstable();
        holidays.dedup();
        Ok(Rules {
            campaign_tz: c.timezone,
            weekly,
            holidays,
            starts: c.starts,
            ends: c.ends,
            cron,
            local_hours: c.compliance.local_hours,
            max_attempts_per_day: c.compliance.max_attempts_per_day,
            require_consent: c.compliance.require_consent,
            statutory: true,
        })
    }

    /// The campaign's fallback zone.
    pub fn campaign_timezone(&self) -> Option<Tz> {
        self.campaign_tz
    }

    /// The statutes that apply to a number under these rules.
    pub fn statutes(&self, phone: &str) -> Vec<&'static Statute> {
        if self.statutory {
            statutes_for(phone).collect()
        } else {
            Vec::new()
        }
    }

    /// The zone(s) a lead is called in: its own valid `timezone`, else the
    /// number's, else the campaign's, else unknown (no zones).
    pub fn zone_of(&self, lead_timezone: Option<&str>, phone: &str) -> LeadZone {
        if let Some(tz) = lead_timezone.and_then(|t| t.trim().parse::<Tz>().ok()) {
            return LeadZone {
                zones: vec![tz],
                source: ZoneSource::Lead,
            };
        }
        if let Some(zones) = zone::zones_of_number(phone) {
            return LeadZone {
                zones,
                source: ZoneSource::Number,
            };
        }
        match self.campaign_tz {
            Some(tz) => LeadZone {
                zones: vec![tz],
                source: ZoneSource::Campaign,
            },
            None => LeadZone {
                zones: Vec::new(),
                source: ZoneSource::Unknown,
            },
        }
    }

    /// Whether the lead may be called at `at`, every rule that blocks it, and
    /// the next instant it may be called.
    pub fn evaluate(&self, facts: &Facts<'_>, at: DateTime<Utc>) -> Verdict {
        let zone = self.zone_of(facts.timezone, facts.phone);
        let plan = self.plan(facts.phone);
        let mut blocked_by = Vec::new();
        // Blocks that no waiting lifts: the next callable instant is `None`.
        let mut permanent = false;
        let mut block = |rule: Rule, is_permanent: bool, list: &mut Vec<Rule>| {
            list.push(rule);
            permanent |= is_permanent;
        };
        if facts.final_status {
            block(Rule::FinalStatus, true, &mut blocked_by);
        }
        if facts.dnc {
            block(Rule::DoNotCall, true, &mut blocked_by);
        }
        if self.require_consent && !facts.consent {
            block(Rule::NoConsent, true, &mut blocked_by);
        }
        if facts.paused {
            block(Rule::Paused, true, &mut blocked_by);
        }
        if zone.zones.is_empty() {
            block(Rule::UnknownTimezone, true, &mut blocked_by);
        } else {
            blocked_by.extend(self.blocked_at(&plan, &zone.zones, at));
        }
        if facts.due_at.is_some_and(|d| d > at) {
            block(Rule::NotDue, false, &mut blocked_by);
        }
        if facts.provider_paused_until.is_some_and(|u| u > at) {
            block(Rule::ProviderPaused, false, &mut blocked_by);
        }
        if facts.caller_id_free_at.is_some_and(|u| u > at) {
            block(Rule::CallerIdCap, false, &mut blocked_by);
        }
        for cap in &plan.caps {
            if count_in_window(facts.recent_attempts, cap.period(), at) >= cap.max as usize {
                block(cap.rule, cap.max == 0, &mut blocked_by);
            }
        }
        blocked_by.sort_unstable();
        blocked_by.dedup();
        let callable = blocked_by.is_empty();
        let next_callable_at = if callable {
            Some(at)
        } else if permanent {
            None
        } else {
            self.search(&plan, &zone.zones, facts, at)
        };
        Verdict {
            zone,
            callable,
            blocked_by,
            next_callable_at,
        }
    }

    /// The first instant at or after `from` at which the time rules (windows,
    /// holidays, dates, cron, legal hours, state and country hours) allow
    /// calling this number in every one of the zones; `None` when that is
    /// more than 366 days away or the zone is unknown.
    pub fn next_opening(
        &self,
        zone: &LeadZone,
        phone: &str,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if zone.zones.is_empty() {
            return None;
        }
        let plan = self.plan(phone);
        self.time_next(
            &plan,
            &zone.zones,
            from,
            from + Duration::days(HORIZON_DAYS),
        )
    }

    /// Whether the time rules allow calling this number at `at` in every zone.
    pub fn is_open(&self, zone: &LeadZone, phone: &str, at: DateTime<Utc>) -> bool {
        !zone.zones.is_empty()
            && self
                .blocked_at(&self.plan(phone), &zone.zones, at)
                .is_empty()
    }

    /// The attempt caps on a number under these rules, as `(rolling period,
    /// most counted attempts in it)`: the campaign's daily cap and the caps
    /// of the statutes covering the number. The store holds them again when
    /// it commits an attempt, against attempts other campaigns and daemons
    /// committed since `evaluate` read them.
    pub fn caps_for(&self, phone: &str) -> Vec<(Duration, u32)> {
        self.plan(phone)
            .caps
            .iter()
            .map(|c| (c.period(), c.max))
            .collect()
    }

    fn plan(&self, phone: &str) -> Plan {
        let mut day_rules = Vec::new();
        if self.weekly.is_some() {
            day_rules.push(DayRule::Window);
        }
        if !self.holidays.is_empty() {
            day_rules.push(DayRule::Holiday);
        }
        if self.starts.is_some() || self.ends.is_some() {
            day_rules.push(DayRule::Dates);
        }
        if let Some(span) = self.local_hours {
            day_rules.push(DayRule::LegalHours(span));
        }
        let mut caps = Vec::new();
        if let Some(max) = self.max_attempts_per_day {
            caps.push(Cap {
                rule: Rule::DailyCap,
                max,
                hours: 24,
            });
        }
        for s in self.statutes(phone) {
            day_rules.push(DayRule::Statute(s));
            caps.extend(s.cap);
        }
        Plan { day_rules, caps }
    }

    /// The spans a rule opens on a local date.
    fn day_spans(&self, rule: DayRule, date: NaiveDate) -> Cow<'_, [Span]> {
        match rule {
            DayRule::Window => Cow::Borrowed(
                self.weekly
                    .as_ref()
                    .map_or(WHOLE_DAY, |w| w.spans(date.weekday())),
            ),
            DayRule::Holiday => {
                if self.holidays.binary_search(&date).is_ok() {
                    Cow::Borrowed(&[])
                } else {
                    Cow::Borrowed(WHOLE_DAY)
                }
            }
            DayRule::Dates => {
                let before = self.starts.is_some_and(|s| date < s);
                let after = self.ends.is_some_and(|e| date > e);
                if before || after {
                    Cow::Borrowed(&[])
                } else {
                    Cow::Borrowed(WHOLE_DAY)
                }
            }
            DayRule::LegalHours(span) => Cow::Owned(vec![span]),
            DayRule::Statute(s) => Cow::Borrowed(s.spans_on(date)),
        }
    }

    /// The spans every day rule opens on a local date.
    fn combined(&self, plan: &Plan, date: NaiveDate) -> Vec<Span> {
        let mut acc = WHOLE_DAY.to_vec();
        for rule in &plan.day_rules {
            acc = window::intersect(&acc, &self.day_spans(*rule, date));
            if acc.is_empty() {
                break;
            }
        }
        acc
    }

    /// The time rules that block a call at `at` in at least one zone.
    fn blocked_at(&self, plan: &Plan, zones: &[Tz], at: DateTime<Utc>) -> Vec<Rule> {
        let mut blocked = Vec::new();
        for z in zones {
            let local = at.with_timezone(z).naive_local();
            let minute = local.hour() * 60 + local.minute();
            for rule in &plan.day_rules {
                if !window::contains(&self.day_spans(*rule, local.date()), minute) {
                    blocked.push(rule.rule());
                }
            }
            if !self.cron.is_empty() && !self.cron.iter().any(|c| c.matches(local)) {
                blocked.push(Rule::Cron);
            }
        }
        blocked.sort_unstable();
        blocked.dedup();
        blocked
    }

    /// The first instant `>= at` (and `<= at + 366 days`) at which the time
    /// rules and every cap allow a call.
    fn search(
        &self,
        plan: &Plan,
        zones: &[Tz],
        facts: &Facts<'_>,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let limit = at + Duration::days(HORIZON_DAYS);
        // Not before the lead is due, the provider's pause ends, nor a
        // caller ID is under its caps again.
        let mut t = facts
            .due_at
            .into_iter()
            .chain(facts.provider_paused_until)
            .chain(facts.caller_id_free_at)
            .fold(at, DateTime::max);
        for _ in 0..MAX_STEPS {
            if t > limit {
                return None;
            }
            t = self.time_next(plan, zones, t, limit)?;
            let mut next = t;
            for cap in &plan.caps {
                next = next.max(cap_release(cap, facts.recent_attempts, t)?);
            }
            if next == t {
                return Some(t);
            }
            t = next;
        }
        None
    }

    /// The first instant in `[from, limit]` open in every zone.
    fn time_next(
        &self,
        plan: &Plan,
        zones: &[Tz],
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut t = from;
        for _ in 0..MAX_STEPS {
            let mut moved = false;
            for z in zones {
                let n = self.zone_next(plan, *z, t, limit)?;
                if n > t {
                    t = n;
                    moved = true;
                }
            }
            if !moved {
                return Some(t);
            }
        }
        None
    }

    /// The first instant in `[from, limit]` open in one zone. Between two UTC
    /// offset changes, local time is `instant + offset`, a straight line, so
    /// the first open local time at or after `from`'s maps straight back to
    /// the answer unless an offset change comes first; then the search starts
    /// again at that change.
    fn zone_next(
        &self,
        plan: &Plan,
        z: Tz,
        from: DateTime<Utc>,
        limit: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut t = from;
        for _ in 0..MAX_STEPS {
            if t > limit {
                return None;
            }
            let off = offset_seconds(z, t);
            let shift = Duration::seconds(off);
            let local = t.naive_utc() + shift;
            // A day of slack covers any offset difference between segments.
            let local_limit = limit.naive_utc() + shift + Duration::days(1);
            match self.next_open_local(plan, local, local_limit) {
                Some(n) => {
                    let candidate = Utc.from_utc_datetime(&(n - shift));
                    match first_transition(z, t, off, candidate) {
                        None => return (candidate <= limit).then_some(candidate),
                        Some(change) => t = change,
                    }
                }
                // Nothing opens on this offset's timeline; a later offset
                // change may still replay an open local hour.
                None => t = first_transition(z, t, off, limit)?,
            }
        }
        None
    }

    /// The first local time `>= x` that every day rule and one cron entry
    /// allow, on a naive (offset-free) local timeline.
    fn next_open_local(
        &self,
        plan: &Plan,
        x: NaiveDateTime,
        limit: NaiveDateTime,
    ) -> Option<NaiveDateTime> {
        let mut x = x;
        for _ in 0..MAX_STEPS {
            if x > limit {
                return None;
            }
            let d = self.next_daily(plan, x, limit)?;
            if self.cron.is_empty() {
                return Some(d);
            }
            let c = self.cron.iter().filter_map(|e| e.next_match(d)).min()?;
            if c == d {
                return Some(d);
            }
            x = c;
        }
        None
    }

    /// The first local time `>= x` that every day rule allows.
    fn next_daily(
        &self,
        plan: &Plan,
        x: NaiveDateTime,
        limit: NaiveDateTime,
    ) -> Option<NaiveDateTime> {
        let mut date = x.date();
        while date <= limit.date() {
            let midnight = date.and_time(NaiveTime::MIN);
            for (s, e) in self.combined(plan, date) {
                if x < midnight + Duration::minutes(i64::from(e)) {
                    return Some(x.max(midnight + Duration::minutes(i64::from(s))));
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

fn offset_seconds(z: Tz, t: DateTime<Utc>) -> i64 {
    i64::from(
        z.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The first instant in `(t, end]` whose UTC offset differs from `off` (the
/// offset at `t`). Steps a day at a time, then bisects to the second; zones
/// never change offset twice within a day.
fn first_transition(
    z: Tz,
    t: DateTime<Utc>,
    off: i64,
    end: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let off_at = |s: i64| DateTime::from_timestamp(s, 0).map(|d| offset_seconds(z, d));
    let end_s = end.timestamp() + i64::from(end.timestamp_subsec_nanos() > 0);
    let mut lo = t.timestamp();
    while lo < end_s {
        let hi = (lo + 86_400).min(end_s);
        if off_at(hi)? != off {
            let (mut a, mut b) = (lo, hi);
            while b - a > 1 {
                let mid = a + (b - a) / 2;
                if off_at(mid)? == off {
                    a = mid;
                } else {
                    b = mid;
                }
            }
            let change = DateTime::from_timestamp(b, 0)?;
            return (change <= end).then_some(change);
        }
        lo = hi;
    }
    None
}

/// Attempts counted by a cap at `t`: those in `(t - period, t]`.
fn count_in_window(attempts: &[DateTime<Utc>], period: Duration, t: DateTime<Utc>) -> usize {
    attempts
        .iter()
        .filter(|a| **a > t - period && **a <= t)
        .count()
}

/// The first instant `>= t` at which the cap is no longer reached, given the
/// attempts known so far: when enough of the oldest counted attempts have
/// left the rolling window. `None` for a cap of zero.
fn cap_release(cap: &Cap, attempts: &[DateTime<Utc>], t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let max = cap.max as usize;
    if max == 0 {
        return None;
    }
    let mut counted: Vec<DateTime<Utc>> = attempts
        .iter()
        .copied()
        .filter(|a| *a > t - cap.period() && *a <= t)
        .collect();
    if counted.len() < max {
        return Some(t);
    }
    counted.sort_unstable();
    // After the k - max + 1 oldest have left, max - 1 remain.
    Some(counted[counted.len() - max] + cap.period())
}
