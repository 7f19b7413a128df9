//! Phone numbers: parsing to E.164 with the `phonenumber` crate.

use phonenumber::country::Id;

/// `^\+[1-9]\d{1,14}$`, the shape every provider documents.
pub fn is_e164(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_digit())
        && !rest.starts_with('0')
}

/// Normalises `raw` to E.164. National numbers need `region` (ISO 3166 alpha-2).
/// Checks a `--region` value before any row is read: an unknown region
/// would otherwise refuse every national number one line at a time.
pub fn check_region(region: Option<&str>) -> Result<(), String> {
    match region {
        Some(r) if r.to_ascii_uppercase().parse::<Id>().is_err() => Err(format!(
            "--region: `{r}` is not a region code (two letters, e.g. US, FR)"
        )),
        _ => Ok(()),
    }
}

pub fn normalize(raw: &str, region: Option<&str>) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("empty phone number".into());
    }
    let country = match region {
        Some(r) => Some(
            r.to_ascii_uppercase()
                .parse::<Id>()
                .map_err(|_| format!("`{r}` is not a region code (e.g. US, FR)"))?,
        ),
        None => None,
    };
    // An international number carries its own country; the region hint
    // would otherwise make the validity check use the hinted country's rules.
    let country = if trimmed.starts_with('+') {
        None
    } else {
        country
    };
    let parsed = phonenumber::parse(country, trimmed).map_err(|e| {
        if !trimmed.starts_with('+') && country.is_none() {
            format!("`{trimmed}` has no country code; pass --region for national numbers")
        } else {
            format!("`{trimmed}` is not a phone number ({e})")
        }
    })?;
    if !phonenumber::is_valid(&parsed) {
        return Err(format!("`{trimmed}` is not a valid number"));
    }
    Ok(parsed.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
