//! Which time zone(s) a phone number is in, from its country calling code
//! (countries with a single zone) or, for `+1`, its area code (see
//! `nanp.rs`). Countries spanning several zones (Russia, Brazil, Mexico,
//! Australia, Indonesia, Chile, Ecuador ...) are deliberately absent: their
//! numbers fall back to the lead's or the campaign's zone.

use super::nanp;
use chrono_tz::Tz;
use chrono_tz::{Africa, America, Asia, Atlantic, Europe, Pacific};

/// Country calling code → zone, for countries on one zone (or whose parts
/// all share one clock). Codes are prefix-free, so the first match is the
/// only one.
pub const COUNTRY_ZONES: &[(&str, Tz)] = &[
    ("20", Africa::Cairo),
    ("27", Africa::Johannesburg),
    ("30", Europe::Athens),
    ("31", Europe::Amsterdam),
    ("32", Europe::Brussels),
    ("33", Europe::Paris),
    ("34", Europe::Madrid),
    ("36", Europe::Budapest),
    ("39", Europe::Rome),
    ("40", Europe::Bucharest),
    ("41", Europe::Zurich),
    ("43", Europe::Vienna),
    ("44", Europe::London),
    ("45", Europe::Copenhagen),
    ("46", Europe::Stockholm),
    ("47", Europe::Oslo),
    ("48", Europe::Warsaw),
    ("49", Europe::Berlin),
    ("51", America::Lima),
    ("54", America::Argentina::Buenos_Aires),
    ("57", America::Bogota),
    ("58", America::Caracas),
    ("60", Asia::Kuala_Lumpur),
    ("63", Asia::Manila),
    ("64", Pacific::Auckland),
    ("65", Asia::Singapore),
    ("66", Asia::Bangkok),
    ("81", Asia::Tokyo),
    ("82", Asia::Seoul),
    ("84", Asia::Ho_Chi_Minh),
    ("86", Asia::Shanghai),
    ("90", Europe::Istanbul),
    ("91", Asia::Kolkata),
    ("92", Asia::Karachi),
    ("94", Asia::Colombo),
    ("212", Africa::Casablanca),
    ("216", Africa::Tunis),
    ("233", Africa::Accra),
    ("234", Africa::Lagos),
    ("254", Africa::Nairobi),
    ("351", Europe::Lisbon),
    ("352", Europe::Luxembourg),
    ("353", Europe::Dublin),
    ("354", Atlantic::Reykjavik),
    ("356", Europe::Malta),
    ("357", Asia::Nicosia),
    ("358", Europe::Helsinki),
    ("359", Europe::Sofia),
    ("370", Europe::Vilnius),
    ("371", Europe::Riga),
    ("372", Europe::Tallinn),
    ("385", Europe::Zagreb),
    ("386", Europe::Ljubljana),
    ("420", Europe::Prague),
    ("421", Europe::Bratislava),
    ("502", America::Guatemala),
    ("503", America::El_Salvador),
    ("506", America::Costa_Rica),
    ("507", America::Panama),
    ("591", America::La_Paz),
    ("595", America::Asuncion),
    ("598", America::Montevideo),
    ("852", Asia::Hong_Kong),
    ("880", Asia::Dhaka),
    ("886", Asia::Taipei),
    ("966", Asia::Riyadh),
    ("971", Asia::Dubai),
    ("972", Asia::Jerusalem),
];

/// Number prefixes (country code + national digits) whose zone differs from
/// their country's; the longest match wins over `COUNTRY_ZONES`. Landline
/// prefixes only: mobile numbers do not say where their owner is.
pub const PREFIX_ZONES: &[(&str, Tz)] = &[
    // Canary Islands landlines (Spain is otherwise Europe/Madrid).
    ("34828", Atlantic::Canary),
    ("34922", Atlantic::Canary),
    ("34928", Atlantic::Canary),
    // Chatham Islands landlines (+64 3 305), 45 minutes ahead of Auckland.
    ("643305", Pacific::Chatham),
    // Azores landlines (Portugal is otherwise Europe/Lisbon).
    ("351292", Atlantic::Azores),
    ("351295", Atlantic::Azores),
    ("351296", Atlantic::Azores),
];

/// The zone(s) an E.164 number is in, when its prefix says so.
pub fn zones_of_number(phone: &str) -> Option<Vec<Tz>> {
    let digits = phone.trim().strip_prefix('+')?;
    if digits.starts_with('1') {
        return nanp::area_of(phone).map(|a| a.zones.clone());
    }
    if let Some((_, tz)) = PREFIX_ZONES
        .iter()
        .filter(|(p, _)| digits.starts_with(p))
        .max_by_key(|(p, _)| p.len())
    {
        return Some(vec![*tz]);
    }
    COUNTRY_ZONES
        .iter()
        .find(|(code, _)| digits.starts_with(code))
        .map(|(_, tz)| vec![*tz])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_prefix_free() {
        for (a, _) in COUNTRY_ZONES {
            for (b, _) in COUNTRY_ZONES {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
            assert!(!a.starts_with('1'));
        }
    }

    #[test]
    fn infers_from_country_and_exceptions() {
        assert_eq!(zones_of_number("+33142685300"), Some(vec![Europe::Paris]));
        assert_eq!(zones_of_number("+442079460000"), Some(vec![Europe::London]));
        assert_eq!(zones_of_number("+919876543210"), Some(vec![Asia::Kolkata]));
        assert_eq!(zones_of_number("+35312345678"), Some(vec![Europe::Dublin]));
        assert_eq!(
            zones_of_number("+34928123456"),
            Some(vec![Atlantic::Canary])
        );
        assert_eq!(zones_of_number("+34912345678"), Some(vec![Europe::Madrid]));
        assert_eq!(zones_of_number("+6433051234"), Some(vec![Pacific::Chatham]));
        assert_eq!(
            zones_of_number("+6493001234"),
            Some(vec![Pacific::Auckland])
        );
        assert_eq!(
            zones_of_number("+12125550123"),
            Some(vec![America::New_York])
        );
        // Russia spans eleven zones; toll-free numbers have no place.
        assert_eq!(zones_of_number("+74951234567"), None);
        assert_eq!(zones_of_number("+18005550123"), None);
        assert_eq!(zones_of_number("33142685300"), None);
    }
}
