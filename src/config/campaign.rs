//! Campaign files: one TOML file per campaign in `campaigns_dir`.

use super::bounds;
use super::daemon::DaemonConfig;
use super::table::{Problems, Table};
use super::{read_toml, Problem};
use crate::caller_id::{CallerIds, Choose};
use crate::domain::Outcome;
use crate::provider::CallerId;
use crate::schedule::Rules;
use chrono::NaiveDate;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CampaignConfig {
    pub id: String,
    pub file: PathBuf,
    pub provider: String,
    /// The agent of a campaign with one (the first of `agents` otherwise).
    pub agent_id: String,
    /// `[[agents]]` (agent id, weight); one entry, `agent_id` with weight
    /// 1, for a campaign that names a single agent.
    pub agents: Vec<(String, u32)>,
    pub skill_id: Option<String>,
    pub from_numbers: Vec<String>,
    /// `[caller_id]`: how a call's number is chosen from `from_numbers`,
    /// and the per-number caps.
    pub caller_ids: CallerIds,
    pub timezone: Option<Tz>,
    pub starts: Option<NaiveDate>,
    pub ends: Option<NaiveDate>,
    pub paused: bool,
    pub priority: i64,
    pub window: WindowConfig,
    pub pacing: Pacing,
    pub retry: RetryPolicy,
    pub compliance: Compliance,
    pub variables: BTreeMap<String, String>,
    /// `[opt_out]`: what in a call's end means "do not call me again".
    pub opt_out: OptOut,
    /// `[callbacks]`: where a call's end asks to be called back.
    pub callbacks: Option<Callbacks>,
    /// Compiled calling rules (windows, legal hours, caps).
    pub rules: Arc<Rules>,
    /// Hash of the file's bytes, stored in `campaigns.config_hash`.
    pub hash: String,
}

/// `[window]` as written; `schedule` compiles it.
#[derive(Debug, Clone, Default)]
pub struct WindowConfig {
    /// `None`: no weekly restriction (always open).
    pub weekly: Option<Vec<String>>,
    pub holidays: Vec<NaiveDate>,
    pub cron: Vec<String>,
}

/// `[opt_out]`: a field the agent sets on the call, and/or end reasons
/// (hangup causes) that mean the callee asked not to be called again.
#[derive(Debug, Clone, Default)]
pub struct OptOut {
    pub field: Option<String>,
    /// Compared without regard to case.
    pub end_reasons: Vec<String>,
}

impl OptOut {
    /// Whether a call that ended with `fields` and `hangup_cause` was an
    /// opt-out. A field whose value is what the daemon itself sent for it
    /// (the lead's or the campaign's variables, echoed back by RevRing and
    /// Elemente) was not learned on the call and does not count.
    pub fn says_so(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
        hangup_cause: Option<&str>,
        sent: impl Fn(&str) -> Option<serde_json::Value>,
    ) -> bool {
        use serde_json::Value;
        if let Some(h) = hangup_cause {
            if self.end_reasons.iter().any(|r| r.eq_ignore_ascii_case(h)) {
                return true;
            }
        }
        let Some(field) = &self.field else {
            return false;
        };
        let Some(v) = fields.get(field) else {
            return false;
        };
        if sent(field).as_ref() == Some(v) {
            return false;
        }
        match v {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "y" | "1" | "opt_out" | "opted_out"
            ),
            _ => false,
        }
    }
}

/// `[callbacks]`: the field the agent sets to the instant the callee asked
/// to be called back, and how many callbacks one lead may be given.
#[derive(Debug, Clone)]
pub struct Callbacks {
    pub field: String,
    pub max_per_lead: u32,
}

impl Callbacks {
    /// The instant a call's `fields` ask for, read in `zone` when it has no
    /// offset. `None` when the field is absent, empty, unreadable, or just
    /// what the daemon sent under that name.
    pub fn asked(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
        zone: Option<Tz>,
        sent: impl Fn(&str) -> Option<serde_json::Value>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let v = fields.get(&self.field)?;
        if sent(&self.field).as_ref() == Some(v) {
            return None;
        }
        parse_callback(v.as_str()?, zone)
    }
}

/// ISO 8601 with an offset (`2026-12-02T15:00:00-05:00`, `...Z`), or a local
/// date and time (`2026-12-02T15:00`, `2026-12-02 15:00:00`) read in `zone`.
/// A local time that occurs twice (clocks going back) is the first; one that
/// does not occur (clocks going forward) is read an hour later, after the gap.
pub fn parse_callback(s: &str, zone: Option<Tz>) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDateTime, TimeZone, Utc};
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    let zone = zone?;
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone)]
pub struct Pacing {
    pub calls_per_minute: u32,
    pub burst: u32,
    pub max_concurrent: u32,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub after: BTreeMap<Outcome, Duration>,
    pub default: Duration,
}

impl RetryPolicy {
    pub fn delay_after(&self, outcome: Outcome) -> Duration {
        self.after.get(&outcome).copied().unwrap_or(self.default)
    }

    /// Applies a file's `[retry.after]`: the outcomes it lists, and its
    /// `default`. A `default` the file sets wins over the built-in
    /// per-outcome delays (SPEC), so they are dropped; without one, the
    /// built-ins stay for the outcomes the file does not list.
    fn apply_listed(&mut self, listed: BTreeMap<Outcome, Duration>, default: Option<Duration>) {
        if let Some(d) = default {
            self.after.clear();
            self.default = d;
        }
        self.after.extend(listed);
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let m = |n: u64| Duration::from_secs(n * 60);
        RetryPolicy {
            max_attempts: 3,
            after: BTreeMap::from([
                (Outcome::NoAnswer, h(2)),
                (Outcome::Busy, m(20)),
                (Outcome::Voicemail, h(24)),
                (Outcome::Failed, m(30)),
                (Outcome::Unknown, h(2)),
            ]),
            default: h(1),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Compliance {
    /// `None` when explicitly `"off"`; `(start, end)` minutes of the day otherwise.
    pub local_hours: Option<(u32, u32)>,
    pub max_attempts_per_day: Option<u32>,
    pub require_consent: bool,
}

impl Default for Compliance {
    fn default() -> Self {
        Compliance {
            local_hours: Some((8 * 60, 21 * 60)),
            max_attempts_per_day: Some(3),
            require_consent: false,
        }
    }
}

/// `[[agents]]`: each an `agent_id` and a `weight` (1..=1000, default 1);
/// agent ids differ. Empty when the file has none.
fn agents(t: &mut Table<'_>) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for (prefix, map) in t.array_of_tables("agents") {
        let mut a = Table::new(map, &prefix, t.problems);
        let id = a.req::<String>("agent_id");
        let weight = a.int_in("weight", &bounds::AGENT_WEIGHT).unwrap_or(1);
        if let Some(id) = id {
            if id.trim().is_empty() {
                a.problem("agent_id", "is empty");
            } else if out.iter().any(|(o, _)| *o == id) {
                a.problem("agent_id", format!("`{id}` is listed twice"));
            } else {
                out.push((id, weight));
            }
        }
        a.finish();
    }
    out
}

impl CampaignConfig {
    /// The agent a lead is given: a stable hash of the campaign and lead
    /// ids placed on the agents' weights, so every attempt to the lead
    /// names the same agent while `[[agents]]` is unchanged, and the leads
    /// split by weight. (A hand-written FNV-1a: the standard library's
    /// hasher is not stable across releases, and this is eight lines.)
    pub fn agent_for(&self, lead_id: i64) -> &str {
        let total: u64 = self.agents.iter().map(|(_, w)| u64::from(*w)).sum();
        if self.agents.len() <= 1 || total == 0 {
            return &self.agent_id;
        }
        let h = crate::caller_id::stable_hash(&[&self.id], lead_id);
        let mut pick = h % total;
        for (id, w) in &self.agents {
            let w = u64::from(*w);
            if pick < w {
                return id;
            }
            pick -= w;
        }
        &self.agent_id
    }
}

/// Loads every `*.toml` in the daemon's `campaigns_dir`.
pub fn load_campaigns(
    daemon: &DaemonConfig,
    warnings: &mut Vec<String>,
) -> Result<Vec<CampaignConfig>, Vec<Problem>> {
    let dir = &daemon.campaigns_dir;
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            return Err(vec![Problem {
                file: daemon.file.clone(),
                key: "campaigns_dir".into(),
                why: format!("cannot read {}: {e}", dir.display()),
                variable: None,
            }])
        }
    };
    files.sort();
    let mut campaigns: Vec<CampaignConfig> = Vec::new();
    for file in files {
        match load_campaign(&file, daemon, warnings) {
            Ok(c) => {
                if let Some(other) = campaigns.iter().find(|o| o.id == c.id) {
                    problems.push(Problem {
                        file: file.clone(),
                        key: "id".into(),
                        why: format!("`{}` is also the id of {}", c.id, other.file.display()),
                        variable: None,
                    });
                } else {
                    campaigns.push(c);
                }
            }
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(campaigns)
    } else {
        Err(problems)
    }
}

pub fn load_campaign(
    file: &Path,
    daemon: &DaemonConfig,
    warnings: &mut Vec<String>,
) -> Result<CampaignConfig, Vec<Problem>> {
    let mut problems = Problems::new(file);
    let bytes = std::fs::read(file).unwrap_or_default();
    let Some(map) = read_toml(file, None, &mut problems) else {
        return Err(problems.list);
    };
    let mut t = Table::new(map, "", &mut problems);

    let id = t.req::<String>("id");
    if let Some(id) = &id {
        if id.trim().is_empty() || id.len() > 200 {
            t.problem("id", "must be a non-empty string of at most 200 characters");
        }
    }
    let provider = t.req::<String>("provider");
    let facts = match &provider {
        Some(p) => match daemon.providers.get(p) {
            Some(pc) => Some(pc.kind.facts()),
            None => {
                let known: Vec<&str> = daemon.providers.keys().map(String::as_str).collect();
                t.problem(
                    "provider",
                    format!(
                        "`{p}` is not a provider of the daemon file (known: {})",
                        known.join(", ")
                    ),
                );
                None
            }
        },
        None => None,
    };
    let agents = agents(&mut t);
    let agent_id = match (facts.and_then(|f| f.default_agent_id), agents.first()) {
        (_, Some((first, _))) => {
            if t.has("agent_id") {
                t.problem("agent_id", "set either agent_id or [[agents]], not both");
            }
            first.clone()
        }
        (Some(default), None) => t
            .opt::<String>("agent_id")
            .unwrap_or_else(|| default.into()),
        (None, None) => t.req::<String>("agent_id").unwrap_or_default(),
    };
    let agents = if agents.is_empty() {
        vec![(agent_id.clone(), 1)]
    } else {
        agents
    };
    let skill_id = t.opt::<String>("skill_id");
    if let Some(f) = facts.filter(|f| f.needs_skill_id) {
        if skill_id.is_none() {
            let a = if f.name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            t.problem(
                "skill_id",
                format!("is required for {a} {} provider", f.name),
            );
        }
    }
    let from_numbers = t.opt::<Vec<String>>("from_numbers").unwrap_or_default();
    if let Some(f) = facts.filter(|f| f.caller_id == CallerId::E164) {
        if from_numbers.is_empty() {
            t.problem(
                "from_numbers",
                format!("{} needs at least one E.164 caller ID", f.title),
            );
        }
        for n in &from_numbers {
            if !crate::phone::is_e164(n) {
                t.problem(
                    "from_numbers",
                    format!("`{n}` is not an E.164 number (+15551230001)"),
                );
            }
        }
    }
    let caller_ids = caller_ids(&mut t, facts, &from_numbers);
    let timezone = t.parsed("timezone", |v| {
        v.parse::<Tz>()
            .map_err(|_| format!("`{v}` is not an IANA time zone (e.g. America/New_York)"))
    });
    let date = |v: &str| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| format!("`{v}` is not a date (YYYY-MM-DD)"))
    };
    let starts = t.parsed("starts", date);
    let ends = t.parsed("ends", date);
    if let (Some(s), Some(e)) = (starts, ends) {
        if e < s {
            t.problem("ends", format!("{e} is before starts {s}"));
        }
    }
    let paused = t.bool("paused").unwrap_or(false);
    let priority = t.opt::<i64>("priority").unwrap_or(0);

    let mut window = WindowConfig::default();
    if let Some(mut w) = t.table("window") {
        window.weekly = w.opt::<Vec<String>>("weekly");
        window.holidays = w
            .opt::<Vec<String>>("holidays")
            .unwrap_or_default()
            .iter()
            .filter_map(|d| match date(d) {
                Ok(d) => Some(d),
                Err(why) => {
                    w.problem("holidays", why);
                    None
                }
            })
            .collect();
        window.cron = w.opt::<Vec<String>>("cron").unwrap_or_default();
        w.finish();
    }

    let mut pacing = Pacing {
        calls_per_minute: 10,
        burst: 1,
        max_concurrent: 5,
    };
    if let Some(mut p) = t.table("pacing") {
        for (key, slot, range) in [
            (
                "calls_per_minute",
                &mut pacing.calls_per_minute,
                &bounds::CALLS_PER_MINUTE,
            ),
            ("burst", &mut pacing.burst, &bounds::BURST),
            (
                "max_concurrent",
                &mut pacing.max_concurrent,
                &bounds::MAX_CONCURRENT,
            ),
        ] {
            if let Some(v) = p.int_in(key, range) {
                *slot = v;
            }
        }
        p.finish();
    }

    let mut retry = RetryPolicy::default();
    if let Some(mut r) = t.table("retry") {
        if let Some(n) = r.int_in("max_attempts", &bounds::MAX_ATTEMPTS) {
            retry.max_attempts = n;
        }
        if let Some(mut a) = r.table("after") {
            let mut listed = BTreeMap::new();
            let mut default = None;
            for (key, _) in a.take_all() {
                let Some(d) = a.duration_in(&key, &bounds::RETRY_AFTER) else {
                    continue;
                };
                if key == "default" {
                    default = Some(d);
                    continue;
                }
                match key.parse::<Outcome>() {
                    Ok(o) if o.is_final() => {
                        a.problem(&key, format!("`{key}` is final; it is never retried"));
                    }
                    Ok(o) => {
                        listed.insert(o, d);
                    }
                    Err(_) => a.problem(
                        &key,
                        "is not a retryable outcome (no_answer, busy, voicemail, failed, unknown, default)",
                    ),
                }
            }
            retry.apply_listed(listed, default);
            a.finish();
        }
        r.finish();
    }

    let mut compliance = Compliance::default();
    if let Some(mut c) = t.table("compliance") {
        if let Some(h) = c.parsed("local_hours", |v| {
            if v.trim() == "off" {
                Ok(None)
            } else {
                crate::schedule::parse_time_range(v).map(Some)
            }
        }) {
            compliance.local_hours = h;
        }
        if c.has("max_attempts_per_day") {
            compliance.max_attempts_per_day =
                c.int_in("max_attempts_per_day", &bounds::MAX_ATTEMPTS_PER_DAY);
        }
        compliance.require_consent = c.bool("require_consent").unwrap_or(false);
        c.finish();
    }
    if compliance.local_hours.is_none() {
        warnings.push(format!(
            "{}: compliance.local_hours = \"off\": the generic 08:00-21:00 guard is lifted (state and country rules still apply)",
            file.display()
        ));
    }

    let mut opt_out = OptOut::default();
    if let Some(mut o) = t.table("opt_out") {
        opt_out.field = o.opt::<String>("field").filter(|f| !f.trim().is_empty());
        opt_out.end_reasons = o.opt::<Vec<String>>("end_reasons").unwrap_or_default();
        if opt_out.field.is_none() && opt_out.end_reasons.is_empty() {
            o.problem(
                "field",
                "set field and/or end_reasons: [opt_out] names nothing to read",
            );
        }
        o.finish();
    }

    let mut callbacks = None;
    if let Some(mut cb) = t.table("callbacks") {
        let field = cb.req::<String>("field").filter(|f| !f.trim().is_empty());
        let max_per_lead = cb
            .int_in("max_per_lead", &bounds::CALLBACKS_PER_LEAD)
            .unwrap_or(2);
        if let Some(field) = field {
            callbacks = Some(Callbacks {
                field,
                max_per_lead,
            });
        }
        cb.finish();
    }

    let mut variables = BTreeMap::new();
    if let Some(mut v) = t.table("variables") {
        for (key, _) in v.take_all() {
            if let Some(s) = v.opt::<String>(&key) {
                variables.insert(key, s);
            }
        }
        v.finish();
    }
    t.finish();

    let mut partial = CampaignConfig {
        id: id.unwrap_or_default(),
        file: file.to_path_buf(),
        provider: provider.unwrap_or_default(),
        agent_id,
        agents,
        skill_id,
        from_numbers,
        caller_ids,
        timezone,
        starts,
        ends,
        paused,
        priority,
        window,
        pacing,
        retry,
        compliance,
        variables,
        opt_out,
        callbacks,
        rules: Arc::new(Rules::always_open()),
        hash: hash_hex(&bytes),
    };
    match Rules::compile(&partial) {
        Ok(rules) => partial.rules = Arc::new(rules),
        Err(list) => {
            for (key, why) in list {
                problems.add(key, why);
            }
        }
    }
    if problems.list.is_empty() {
        Ok(partial)
    } else {
        Err(problems.list)
    }
}

/// `[caller_id]`: how a call's number is chosen, and the per-number caps.
fn caller_ids(
    t: &mut Table<'_>,
    facts: Option<&crate::provider::Facts>,
    from_numbers: &[String],
) -> CallerIds {
    let Some(mut c) = t.table("caller_id") else {
        return CallerIds::new(
            Choose::RoundRobin,
            from_numbers,
            &BTreeMap::new(),
            Vec::new(),
        );
    };
    let choose = c
        .parsed("choose", |v| v.parse::<Choose>())
        .unwrap_or_default();
    let mut caps = Vec::new();
    if let Some(n) = c.int_in("calls_per_hour", &bounds::CALLER_ID_PER_HOUR) {
        caps.push((chrono::Duration::hours(1), n));
    }
    if let Some(n) = c.int_in("calls_per_day", &bounds::CALLER_ID_PER_DAY) {
        caps.push((chrono::Duration::hours(24), n));
    }
    let mut dialled = BTreeMap::new();
    if let Some(mut m) = c.table("numbers") {
        for (id, _) in m.take_all() {
            let Some(number) = m.opt::<String>(&id) else {
                continue;
            };
            if !crate::phone::is_e164(&number) {
                m.problem(
                    &id,
                    format!("`{number}` is not an E.164 number (+15551230001)"),
                );
            } else if !from_numbers.contains(&id) {
                m.problem(&id, "is not one of from_numbers");
            } else {
                dialled.insert(id, number);
            }
        }
        m.finish();
    }
    match facts.map(|f| (f.caller_id, f.title)) {
        Some((CallerId::Unused, title)) => c.problem(
            "choose",
            format!("{title} places calls from its own numbers (it has no caller-ID field): [caller_id] cannot apply"),
        ),
        _ if from_numbers.is_empty() => c.problem(
            "choose",
            "[caller_id] needs from_numbers to choose from",
        ),
        Some((CallerId::NumberId, title)) if choose == Choose::Local => {
            for id in from_numbers.iter().filter(|id| !dialled.contains_key(*id)) {
                c.problem(
                    "numbers",
                    format!("choose = \"local\" needs the number each {title} number id dials from: add `{id}` = \"+1...\" under [caller_id.numbers]"),
                );
            }
        }
        _ => {}
    }
    c.finish();
    CallerIds::new(choose, from_numbers, &dialled, caps)
}

fn hash_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_opt_out_is_a_true_field_or_a_listed_end_reason_not_an_echo() {
        let o = OptOut {
            field: Some("opt_out".into()),
            end_reasons: vec!["user_requested_dnc".into()],
        };
        let none = |_: &str| None;
        for yes in [
            json!(true),
            json!("Yes"),
            json!(" TRUE "),
            json!(1),
            json!("opted_out"),
        ] {
            assert!(
                o.says_so(&fields(json!({"opt_out": yes.clone()})), None, none),
                "{yes}"
            );
        }
        for no in [
            json!(false),
            json!("no"),
            json!(0),
            json!(null),
            json!({"a": 1}),
        ] {
            assert!(
                !o.says_so(&fields(json!({"opt_out": no.clone()})), None, none),
                "{no}"
            );
        }
        assert!(o.says_so(&Map::new(), Some("USER_REQUESTED_DNC"), none));
        assert!(!o.says_so(&Map::new(), Some("user_hangup"), none));
        // What the daemon sent itself, echoed back, is no opt-out.
        let sent = |_: &str| Some(json!("true"));
        assert!(!o.says_so(&fields(json!({"opt_out": "true"})), None, sent));
        assert!(o.says_so(&fields(json!({"opt_out": true})), None, sent));
    }

    #[test]
    fn a_callback_time_reads_offsets_and_local_times_across_dst() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let t = |s: &str| parse_callback(s, Some(la)).map(crate::domain::rfc3339);
        assert_eq!(
            t("2027-03-13T09:30").as_deref(),
            Some("2027-03-13T17:30:00Z")
        );
        assert_eq!(
            t("2027-03-14T09:30").as_deref(),
            Some("2027-03-14T16:30:00Z")
        );
        // Skipped by the clocks: an hour later. Repeated: the first.
        assert_eq!(
            t("2027-03-14 02:30").as_deref(),
            Some("2027-03-14T10:30:00Z")
        );
        assert_eq!(
            t("2027-11-07T01:30:00").as_deref(),
            Some("2027-11-07T08:30:00Z")
        );
        assert_eq!(
            t("2027-11-07T01:30:00+01:00").as_deref(),
            Some("2027-11-07T00:30:00Z")
        );
        assert_eq!(t("tomorrow at three"), None);
        assert_eq!(parse_callback("2027-11-07T01:30", None), None);
    }
}
