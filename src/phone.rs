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
        assert_eq!(normalize("(212) 555-0123", Some("US")).unwrap_err().contains("valid"), true);
        assert_eq!(normalize("+1 212-736-5000", None).unwrap(), "+12127365000");
        assert_eq!(normalize("212 736 5000", Some("us")).unwrap(), "+12127365000");
        assert_eq!(normalize("01 42 68 53 00", Some("FR")).unwrap(), "+33142685300");
        assert!(normalize("212 736 5000", None).unwrap_err().contains("--region"));
        assert!(normalize("hello", Some("US")).is_err());
        assert!(is_e164("+12127365000"));
        assert!(!is_e164("12127365000"));
        assert!(!is_e164("+0123"));
    }
}
