//! Phone numbers: parsing to E.164 with `rlibphonenumber`, a port of
//! Google's libphonenumber and its metadata. (The `phonenumber` crate
//! looks every pattern up in one regex cache of 100 entries behind one
//! lock: 5.6 µs per US number, and ~290 µs per number on a list of mixed
//! countries, whose patterns overflow the cache and are compiled again.)

use rlibphonenumber::enums::Region;
use rlibphonenumber::{PhoneNumberFormat, PHONE_NUMBER_UTIL};

/// `^\+[1-9]\d{1,14}$`, the shape every provider documents.
pub fn is_e164(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_digit())
        && !rest.starts_with('0')
}

/// A region code the phone metadata knows (ISO 3166 alpha-2, any case).
fn region(r: &str) -> Option<Region> {
    let region = r.parse::<Region>().ok()?;
    PHONE_NUMBER_UTIL
        .get_country_code_for_region(region)
        .is_some()
        .then_some(region)
}

/// Checks a `--region` value before any row is read: an unknown region
/// would otherwise refuse every national number one line at a time.
pub fn check_region(r: Option<&str>) -> Result<(), String> {
    match r {
        Some(r) if region(r).is_none() => Err(format!(
            "--region: `{r}` is not a region code (two letters, e.g. US, FR)"
        )),
        _ => Ok(()),
    }
}

/// Normalises `raw` to E.164. National numbers need `region` (ISO 3166 alpha-2).
pub fn normalize(raw: &str, region_hint: Option<&str>) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("empty phone number".into());
    }
    let country = match region_hint {
        Some(r) => {
            Some(region(r).ok_or_else(|| format!("`{r}` is not a region code (e.g. US, FR)"))?)
        }
        None => None,
    };
    // An international number carries its own country; the region hint
    // would otherwise make the validity check use the hinted country's rules.
    let country = if trimmed.starts_with('+') {
        None
    } else {
        country
    };
    let parsed = PHONE_NUMBER_UTIL.parse(trimmed, country).map_err(|e| {
        if !trimmed.starts_with('+') && country.is_none() {
            format!("`{trimmed}` has no country code; pass --region for national numbers")
        } else {
            format!("`{trimmed}` is not a phone number ({e})")
        }
    })?;
    if !PHONE_NUMBER_UTIL.is_valid_number(&parsed) {
        return Err(format!("`{trimmed}` is not a valid number"));
    }
    Ok(PHONE_NUMBER_UTIL
        .format(&parsed, PhoneNumberFormat::E164)
        .into_owned())
}

/// The country calling code of an E.164 number (`33` for `+33…`), when it
/// parses.
pub fn country_code(e164: &str) -> Option<i32> {
    PHONE_NUMBER_UTIL
        .parse(e164, None)
        .ok()
        .map(|n| n.country_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_many_countries_is_checked_by_each_country_s_rules() {
        // Each country's own example numbers, as written locally.
        for (raw, region, e164) in [
            ("0121 234 5678", "GB", "+441212345678"),
            ("030 123456", "DE", "+4930123456"),
            ("03-1234-5678", "JP", "+81312345678"),
            ("02 1234 5678", "AU", "+61212345678"),
            ("081234 56789", "IN", "+918123456789"),
            ("(11) 96123-4567", "BR", "+5511961234567"),
            ("131 2345 6789", "CN", "+8613123456789"),
        ] {
            assert_eq!(
                normalize(raw, Some(region)).as_deref(),
                Ok(e164),
                "{raw} ({region})"
            );
            assert_eq!(normalize(e164, None).as_deref(), Ok(e164), "{e164}");
        }
        // Too short for Germany, too long for Japan: refused, not trimmed.
        assert!(normalize("+49301", None).is_err());
        assert!(normalize("+8131234567890", None).is_err());
    }

    #[test]
    fn normalises_national_and_international() {
        assert_eq!(
            normalize("+33 1 42 68 53 00", Some("US")).unwrap(),
            "+33142685300"
        );
        assert_eq!(
            normalize("01 42 68 53 00", Some("FR")).unwrap(),
            "+33142685300"
        );
        assert_eq!(normalize("+1 212-736-5000", None).unwrap(), "+12127365000");
        assert_eq!(
            normalize("212 736 5000", Some("us")).unwrap(),
            "+12127365000"
        );
        assert!(normalize("212 736 5000", None)
            .unwrap_err()
            .contains("--region"));
        assert!(normalize("+1 099 555 0123", None)
            .unwrap_err()
            .contains("not a valid number"));
        assert!(normalize("hello", Some("US")).is_err());
        assert!(normalize("212 736 5000", Some("XX"))
            .unwrap_err()
            .contains("region"));
        assert!(is_e164("+12127365000"));
        assert!(!is_e164("12127365000"));
        assert!(!is_e164("+0123"));
    }
}
