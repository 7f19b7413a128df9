//! Statutory calling rules, kept as data: each entry of `STATUTES` says whom
//! it covers (by area-code presumption or by country code), on which local
//! days and hours calls are allowed, which public holidays are closed, and
//! how many calls a number may receive in a rolling period. Rules here only
//! ever narrow the campaign's window; `compliance.local_hours = "off"` does
//! not lift them.

use super::nanp;
use super::window::Span;
use super::Rule;
use chrono::{Datelike, Duration, NaiveDate};

/// Who a statute covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `+1` numbers whose area code lies in one of these states or provinces.
    NanpRegions(&'static [&'static str]),
    /// Numbers under this country calling code.
    Country(&'static str),
}

/// At most `max` counted attempts to one number in any rolling `hours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub rule: Rule,
    pub max: u32,
    pub hours: i64,
}

impl Cap {
    pub fn period(&self) -> Duration {
        Duration::hours(self.hours)
    }
}

/// One law's calling restrictions.
#[derive(Debug, Clone, Copy)]
pub struct Statute {
    pub name: &'static str,
    /// The rule reported when its hours or days block a call.
    pub rule: Rule,
    pub scope: Scope,
    /// Allowed local weekdays, Monday first.
    pub days: [bool; 7],
    /// Allowed local hours on those days.
    pub hours: &'static [Span],
    /// Public holidays on which no call is allowed.
    pub closed_on: Option<fn(NaiveDate) -> bool>,
    pub cap: Option<Cap>,
}

const EVERY_DAY: [bool; 7] = [true; 7];
const WEEKDAYS: [bool; 7] = [true, true, true, true, true, false, false];

/// The statutes the dialer knows. US state entries apply by area-code
/// presumption (the number's area code lies in the state), the French one to
/// every `+33` number; all are evaluated in the lead's local time.
pub const STATUTES: &[Statute] = &[
    Statute {
        name: "Florida Telephone Solicitation Act (Fla. Stat. 501.059)",
        rule: Rule::StateRule,
        scope: Scope::NanpRegions(&["FL"]),
        days: EVERY_DAY,
        hours: &[(8 * 60, 20 * 60)],
        closed_on: None,
        cap: Some(Cap {
            rule: Rule::StateRule,
            max: 3,
            hours: 24,
        }),
    },
    Statute {
        name: "Oklahoma Telephone Solicitation Act of 2022",
        rule: Rule::StateRule,
        scope: Scope::NanpRegions(&["OK"]),
        days: EVERY_DAY,
        hours: &[(8 * 60, 20 * 60)],
        closed_on: None,
        cap: Some(Cap {
            rule: Rule::StateRule,
            max: 3,
            hours: 24,
        }),
    },
    Statute {
        name: "Maryland Stop the Spam Calls Act of 2023",
        rule: Rule::StateRule,
        scope: Scope::NanpRegions(&["MD"]),
        days: EVERY_DAY,
        hours: &[(8 * 60, 20 * 60)],
        closed_on: None,
        cap: Some(Cap {
            rule: Rule::StateRule,
            max: 3,
            hours: 24,
        }),
    },
    Statute {
        name: "France, décret n° 2022-1313 (Code de la consommation L. 223-1)",
        rule: Rule::CountryRule,
        scope: Scope::Country("33"),
        days: WEEKDAYS,
        hours: &[(10 * 60, 13 * 60), (14 * 60, 20 * 60)],
        closed_on: Some(is_french_public_holiday),
        cap: Some(Cap {
            rule: Rule::PeriodCap,
            max: 4,
            hours: 30 * 24,
        }),
    },
];

impl Statute {
    /// Whether this statute covers the number.
    pub fn covers(&self, phone: &str) -> bool {
        let phone = phone.trim();
        match self.scope {
            Scope::NanpRegions(regions) => {
                nanp::area_of(phone).is_some_and(|a| regions.contains(&a.region))
            }
            Scope::Country(code) => phone.strip_prefix('+').is_some_and(|d| d.starts_with(code)),
        }
    }

    /// The spans allowed on a local date.
    pub fn spans_on(&self, date: NaiveDate) -> &'static [Span] {
        let day_ok = self.days[date.weekday().num_days_from_monday() as usize];
        let holiday = self.closed_on.is_some_and(|f| f(date));
        if day_ok && !holiday {
            self.hours
        } else {
            &[]
        }
    }
}

/// The statutes covering a number.
pub fn statutes_for(phone: &str) -> impl Iterator<Item = &'static Statute> + '_ {
    STATUTES.iter().filter(move |s| s.covers(phone))
}

/// Easter Sunday (Gregorian), by the anonymous Gregorian computus.
pub fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

/// French public holidays (jours fériés) nationwide: the eight fixed dates
/// and Easter Monday, Ascension Thursday and Whit Monday. Alsace-Moselle's
/// extra Good Friday and December 26 are not included.
pub fn is_french_public_holiday(date: NaiveDate) -> bool {
    const FIXED: [(u32, u32); 8] = [
        (1, 1),
        (5, 1),
        (5, 8),
        (7, 14),
        (8, 15),
        (11, 1),
        (11, 11),
        (12, 25),
    ];
    if FIXED.contains(&(date.month(), date.day())) {
        return true;
    }
    easter(date.year()).is_some_and(|e| {
        let offset = (date - e).num_days();
        offset == 1 || offset == 39 || offset == 50
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn computes_easter_and_french_holidays() {
        assert_eq!(easter(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter(2025), Some(d(2025, 4, 20)));
        assert_eq!(easter(2026), Some(d(2026, 4, 5)));
        assert_eq!(easter(2027), Some(d(2027, 3, 28)));
        assert!(is_french_public_holiday(d(2026, 4, 6))); // Easter Monday
        assert!(is_french_public_holiday(d(2026, 5, 14))); // Ascension
        assert!(is_french_public_holiday(d(2026, 5, 25))); // Whit Monday
        assert!(is_french_public_holiday(d(2026, 7, 14)));
        assert!(is_french_public_holiday(d(2026, 11, 11)));
        assert!(!is_french_public_holiday(d(2026, 5, 13)));
        assert!(!is_french_public_holiday(d(2026, 4, 5))); // Easter Sunday itself is a Sunday anyway
    }

    #[test]
    fn scopes_select_numbers() {
        let names = |p: &str| statutes_for(p).map(|s| s.rule).collect::<Vec<_>>();
        assert_eq!(names("+13055550123"), vec![Rule::StateRule]); // Miami
        assert_eq!(names("+14055550123"), vec![Rule::StateRule]); // Oklahoma City
        assert_eq!(names("+14105550123"), vec![Rule::StateRule]); // Baltimore
        assert_eq!(names("+33142685300"), vec![Rule::CountryRule]);
        assert!(names("+12125550123").is_empty());
        assert!(names("+442079460000").is_empty());
    }
}
