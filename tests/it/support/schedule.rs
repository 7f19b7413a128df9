//! Helpers shared by the schedule tests: a campaign built in code, instants
//! from RFC 3339, and lead facts with neutral defaults.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use dialer::config::{CampaignConfig, Compliance, Pacing, RetryPolicy, WindowConfig};
use dialer::schedule::{Facts, Rules};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Default)]
pub struct Campaign {
    pub timezone: Option<Tz>,
    pub weekly: Option<Vec<String>>,
    pub holidays: Vec<NaiveDate>,
    pub cron: Vec<String>,
    pub starts: Option<NaiveDate>,
    pub ends: Option<NaiveDate>,
    pub compliance: Compliance,
}

/// No generic guard, no daily cap: only the campaign's own window (and the
/// statutes, which cannot be lifted).
pub fn no_compliance() -> Compliance {
    Compliance {
        local_hours: None,
        max_attempts_per_day: None,
        require_consent: false,
    }
}

pub fn weekly(entries: &[&str]) -> Option<Vec<String>> {
    Some(entries.iter().map(|s| s.to_string()).collect())
}

impl Campaign {
    pub fn config(&self) -> CampaignConfig {
        CampaignConfig {
            id: "test".into(),
            file: PathBuf::from("test.toml"),
            provider: "sim".into(),
            agent_id: "agent".into(),
            agents: vec![("agent".into(), 1)],
            skill_id: None,
            from_numbers: Vec::new(),
            caller_ids: Default::default(),
            timezone: self.timezone,
            starts: self.starts,
            ends: self.ends,
            paused: false,
            priority: 0,
            window: WindowConfig {
                weekly: self.weekly.clone(),
                holidays: self.holidays.clone(),
                cron: self.cron.clone(),
            },
            pacing: Pacing {
                calls_per_minute: 10,
                burst: 1,
                max_concurrent: 1,
            },
            retry: RetryPolicy::default(),
            compliance: self.compliance.clone(),
            opt_out: Default::default(),
            callbacks: None,
            variables: BTreeMap::new(),
            rules: Arc::new(Rules::always_open()),
            hash: String::new(),
        }
    }

    pub fn rules(&self) -> Rules {
        match Rules::compile(&self.config()) {
            Ok(r) => r,
            Err(problems) => panic!("campaign does not compile: {problems:?}"),
        }
    }
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A pending, due lead with consent and no history.
pub fn facts<'a>(phone: &'a str, timezone: Option<&'a str>) -> Facts<'a> {
    Facts {
        phone,
        timezone,
        consent: true,
        dnc: false,
        paused: false,
        final_status: false,
        due_at: None,
        provider_paused_until: None,
        caller_id_free_at: None,
        recent_attempts: &[],
    }
}
