//! The daemon file: database, server, log, providers.

use super::bounds;
use super::table::{Problems, Table};
use super::{read_toml, resolve, Secret};
use crate::domain::Outcome;
use crate::provider::{self, Facts, Webhooks};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub file: PathBuf,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub campaigns_dir: PathBuf,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[[outbound_webhooks]]`, in file order.
    pub outbound_webhooks: Vec<OutboundWebhookConfig>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    RevRing,
    VoiceDock,
    Elemente,
    Simulated,
}

impl ProviderKind {
    /// The kind a daemon file's `kind = "..."` names.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(f) = provider::KINDS.iter().find(|f| f.name == s) {
            return Ok(f.kind);
        }
        let names: Vec<&str> = provider::KINDS.iter().map(|f| f.name).collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(format!("unknown kind `{s}`; expected {expected}"))
    }

    /// What configuration knows of this kind (its adapter's `FACTS`).
    pub fn facts(self) -> &'static Facts {
        provider::facts(self)
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        self.facts().default_base_url
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The table name: what campaigns and webhook URLs refer to.
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub username: Option<String>,
    pub requests_per_minute: u32,
    pub max_concurrent_calls: u32,
    pub request_timeout: Duration,
    pub poll_interval: Duration,
    pub max_call_duration: Duration,
    /// Consecutive place requests of unknown fate (timeout, 5xx, lost
    /// connection) after which placing on this provider pauses until a probe
    /// answers.
    pub pause_after_unknown: u32,
    pub sim: Option<SimConfig>,
}

/// Events an outbound webhook can ask for.
pub const OUTBOUND_EVENTS: [&str; 3] = ["attempt.ended", "lead.final", "lead.skipped"];

/// One `[[outbound_webhooks]]` entry: where outcomes are pushed.
#[derive(Debug, Clone)]
pub struct OutboundWebhookConfig {
    /// Names its events in `outbox`; the URL when the file sets none.
    pub name: String,
    pub url: String,
    pub secret: Secret,
    /// A subset of `OUTBOUND_EVENTS`.
    pub events: Vec<String>,
    /// `None`: every campaign.
    pub campaigns: Option<Vec<String>>,
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
}

/// `pause_after_unknown` when the file does not set it.
pub const DEFAULT_PAUSE_AFTER_UNKNOWN: u32 = 5;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub min_duration: Duration,
    pub max_duration: Duration,
    pub seed: u64,
    pub outcomes: Vec<(Outcome, f64)>,
}

/// Reads the daemon file. `Err` when it cannot be read at all; otherwise the
/// best-effort configuration and its problems, so that the campaign files
/// can be checked too and every problem reported at once.
#[allow(clippy::type_complexity)]
pub(super) fn load(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<(DaemonConfig, Vec<super::Problem>), Vec<super::Problem>> {
    let mut problems = Problems::new(path);
    let Some(map) = read_toml(path, Some("DIALER"), &mut problems) else {
        return Err(problems.list);
    };
    let mut t = Table::new(map, "", &mut problems);

    let database = {
        let mut url = None;
        let mut max_connections = None;
        if let Some(mut d) = t.table("database") {
            url = d.opt::<String>("url");
            max_connections = d.int_in("max_connections", &bounds::MAX_CONNECTIONS);
            d.finish();
        }
        let url = url.unwrap_or_else(|| "sqlite://dialer.db".to_string());
        let state_dir = env_dir("STATE_DIRECTORY");
        let url = match resolve_sqlite_url(path, state_dir.as_deref(), &url) {
            Ok(u) => u,
            Err(why) => {
                t.problem("database.url", why);
                url
            }
        };
        DatabaseConfig {
            url,
            max_connections: max_connections.unwrap_or(8),
        }
    };

    let server = {
        let mut listen = None;
        if let Some(mut s) = t.table("server") {
            listen = s.parsed("listen", |v| {
                v.parse::<SocketAddr>()
                    .map_err(|e| format!("`{v}` is not an address:port ({e})"))
            });
            s.finish();
        }
        ServerConfig {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        }
    };

    // An earlier sample file wrote `campaigns_dir` after `[log]`, which TOML
    // reads as `log.campaigns_dir`; it is still accepted there, with a
    // warning, and the top-level key wins.
    let mut log_campaigns_dir = None;
    let log = {
        let mut format = LogFormat::Text;
        let mut level = "info".to_string();
        if let Some(mut l) = t.table("log") {
            if let Some(f) = l.parsed("format", |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!(
                    "`{other}` is not a log format; expected text or json"
                )),
            }) {
                format = f;
            }
            if let Some(v) = l.parsed("level", check_level) {
                level = v;
            }
            log_campaigns_dir = l.opt::<String>("campaigns_dir");
            l.finish();
        }
        LogConfig { format, level }
    };

    let top_campaigns_dir = t.opt::<String>("campaigns_dir");
    if log_campaigns_dir.is_some() {
        let what = if top_campaigns_dir.is_some() {
            "is ignored: the top-level campaigns_dir wins"
        } else {
            "is deprecated and still read for now"
        };
        warnings.push(format!(
            "{}: `log.campaigns_dir` (campaigns_dir written after [log]) {what}; \
             move campaigns_dir to the top of the file, before any [table]",
            path.display()
        ));
    }
    let campaigns_dir = top_campaigns_dir
        .or(log_campaigns_dir)
        .unwrap_or_else(|| "campaigns".into());
    let campaigns_dir = resolve(path, Path::new(&campaigns_dir));

    let mut providers = BTreeMap::new();
    if let Some(mut p) = t.table("providers") {
        for (name, _) in p.take_all() {
            if let Some(pt) = p.table(&name) {
                if let Some(cfg) = provider(path, &name, pt, warnings) {
                    providers.insert(name, cfg);
                }
            }
        }
    }
    let outbound_webhooks = outbound_webhooks(path, &mut t);
    t.finish();
    name_overriding_variables(path, &mut problems.list);

    Ok((
        DaemonConfig {
            file: path.to_path_buf(),
            database,
            server,
            log,
            campaigns_dir,
            providers,
            outbound_webhooks,
        },
        problems.list,
    ))
}

/// Names the environment variable behind each problem whose value came
/// from a `DIALER__SECTION__KEY` override rather than from the file: the
/// operator must fix the variable, and the file has nothing to show.
fn name_overriding_variables(path: &Path, problems: &mut [super::Problem]) {
    let overrides: Vec<(String, String)> = std::env::vars()
        .filter_map(|(var, _)| {
            let rest = var.to_lowercase().strip_prefix("dialer__")?.to_string();
            Some((rest.replace("__", "."), var))
        })
        .collect();
    if overrides.is_empty() || problems.is_empty() {
        return;
    }
    let mut scratch = Problems::new(path);
    let file_only = read_toml(path, None, &mut scratch).unwrap_or_default();
    for p in problems.iter_mut().filter(|p| !p.key.is_empty()) {
        let exact = overrides.iter().find(|(key, _)| *key == p.key);
        // A key the file does not have at all (an unknown table, say) came
        // from the variable that set something under it.
        let under = || {
            let prefix = format!("{}.", p.key);
            overrides
                .iter()
                .find(|(key, _)| key.starts_with(&prefix))
                .filter(|_| !file_has(&file_only, &p.key))
        };
        if let Some((_, var)) = exact.or_else(under) {
            p.variable = Some(var.clone());
        }
    }
}

/// Whether the dotted `key` is set in `map`.
fn file_has(map: &config::Map<String, config::Value>, key: &str) -> bool {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    match (map.get(head), rest) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(rest)) => match &v.kind {
            config::ValueKind::Table(t) => file_has(t, rest),
            _ => false,
        },
    }
}

/// The first directory of a systemd directory variable (`STATE_DIRECTORY`,
/// `CREDENTIALS_DIRECTORY`): set by the service manager for a unit that
/// asks for it; a list separated by `:` when the unit names several.
fn env_dir(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    let first = v.to_str()?.split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// A relative `sqlite://FILE` is the daemon's state: it resolves against
/// `state_dir` (systemd's `$STATE_DIRECTORY`, from `StateDirectory=`) when
/// there is one, else against the config file's directory like every other
/// path. Under systemd the config directory is read-only.
fn resolve_sqlite_url(file: &Path, state_dir: Option<&Path>, url: &str) -> Result<String, String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err("sqlite URL names no file".into());
        }
        if rest == ":memory:" || rest.starts_with('/') {
            return Ok(url.to_string());
        }
        let (file_part, query) = match rest.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (rest, None),
        };
        let abs = match state_dir {
            Some(dir) => dir.join(file_part),
            None => resolve(file, Path::new(file_part)),
        };
        let mut out = format!("sqlite://{}", abs.display());
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Ok(out)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_string())
    } else {
        Err("must start with sqlite:// or postgres://".into())
    }
}

/// Reads `[[outbound_webhooks]]`: each needs `url` and a secret; names must
/// differ (they key the events in `outbox`).
fn outbound_webhooks(file: &Path, t: &mut Table<'_>) -> Vec<OutboundWebhookConfig> {
    let mut out: Vec<OutboundWebhookConfig> = Vec::new();
    for (prefix, map) in t.array_of_tables("outbound_webhooks") {
        let mut w = Table::new(map, &prefix, t.problems);
        let url = w.req::<String>("url");
        if let Some(u) = &url {
            match reqwest::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                _ => w.problem("url", format!("`{u}` is not an http(s) URL")),
            }
        }
        let name = w.opt::<String>("name").or_else(|| url.clone());
        let secret = secret(file, &mut w, "secret", None);
        if secret.is_none() && !w.has("secret_env") && !w.has("secret_file") {
            w.problem(
                "secret_env",
                "set secret_env or secret_file: events are signed",
            );
        }
        let events = match w.opt::<Vec<String>>("events") {
            None => OUTBOUND_EVENTS.iter().map(|e| e.to_string()).collect(),
            Some(list) => {
                for e in list
                    .iter()
                    .filter(|e| !OUTBOUND_EVENTS.contains(&e.as_str()))
                {
                    w.problem(
                        "events",
                        format!(
                            "`{e}` is not an event; expected any of {}",
                            OUTBOUND_EVENTS.join(", ")
                        ),
                    );
                }
                if list.is_empty() {
                    w.problem("events", "names no event");
                }
                list
            }
        };
        let campaigns = w.opt::<Vec<String>>("campaigns");
        let timeout = w.duration_in("timeout", &bounds::OUTBOUND_TIMEOUT);
        let retry_min = w.duration_in("retry_min", &bounds::OUTBOUND_RETRY);
        let retry_max = w.duration_in("retry_max", &bounds::OUTBOUND_RETRY);
        let give_up_after = w.duration_in("give_up_after", &bounds::OUTBOUND_GIVE_UP);
        let (retry_min, retry_max) = (
            retry_min.unwrap_or(Duration::from_secs(1)),
            retry_max.unwrap_or(Duration::from_secs(300)),
        );
        if retry_max < retry_min {
            w.problem("retry_max", "must not be shorter than retry_min");
        }
        if let Some(n) = &name {
            if out.iter().any(|o| &o.name == n) {
                w.problem("name", format!("`{n}` names another outbound webhook too"));
            }
        }
        w.finish();
        if let (Some(name), Some(url), Some(secret)) = (name, url, secret) {
            out.push(OutboundWebhookConfig {
                name,
                url,
                secret,
                events,
                campaigns,
                timeout: timeout.unwrap_or(Duration::from_secs(10)),
                retry_min,
                retry_max,
                give_up_after: give_up_after.unwrap_or(Duration::from_secs(3 * 24 * 3600)),
            });
        }
    }
    out
}

fn provider(
    file: &Path,
    name: &str,
    mut t: Table<'_>,
    warnings: &mut Vec<String>,
) -> Option<ProviderConfig> {
    let kind = t
        .req::<String>("kind")
        .and_then(|k| match ProviderKind::parse(&k) {
            Ok(kind) => Some(kind),
            Err(why) => {
                t.problem("kind", why);
                None
            }
        });
    let base_url = t.opt::<String>("base_url");
    if let Some(u) = &base_url {
        if reqwest::Url::parse(u).is_err() {
            t.problem("base_url", format!("`{u}` is not a URL"));
        }
    }
    let api_key = secret(file, &mut t, "api_key", None);
    let mut secret_warnings = Vec::new();
    let webhook_secret = secret(file, &mut t, "webhook_secret", Some(&mut secret_warnings));
    for w in secret_warnings {
        warnings.push(format!("provider `{name}`: {w}"));
    }
    let username = t.opt::<String>("username");
    let requests_per_minute = t.int_in("requests_per_minute", &bounds::REQUESTS_PER_MINUTE);
    let max_concurrent_calls = t.int_in("max_concurrent_calls", &bounds::MAX_CONCURRENT_CALLS);
    let pause_after_unknown = t.int_in("pause_after_unknown", &bounds::PAUSE_AFTER_UNKNOWN);
    let request_timeout = t.duration_in("request_timeout", &bounds::REQUEST_TIMEOUT);
    let poll_interval = t.duration_in("poll_interval", &bounds::POLL_INTERVAL);
    let max_call_duration = t.duration_in("max_call_duration", &bounds::MAX_CALL_DURATION);

    let sim_keys = ["min_duration", "max_duration", "seed", "outcomes"];
    let sim = if kind.is_some_and(|k| k.facts().simulation) {
        let refused = |t: &Table<'_>, key: &str, d: Option<Duration>| t.has(key) && d.is_none();
        let min_duration = t.duration_in("min_duration", &bounds::SIM_DURATION);
        let max_duration = t.duration_in("max_duration", &bounds::SIM_DURATION);
        // A value already refused is not compared with its default partner.
        let either_refused =
            refused(&t, "min_duration", min_duration) || refused(&t, "max_duration", max_duration);
        let min_duration = min_duration.unwrap_or(Duration::from_secs(1));
        let max_duration = max_duration.unwrap_or(Duration::from_secs(5));
        if !either_refused && max_duration < min_duration {
            t.problem("max_duration", "must not be shorter than min_duration");
        }
        let seed = t.opt::<u64>("seed").unwrap_or(42);
        let mut outcomes = Vec::new();
        if let Some(mut o) = t.table("outcomes") {
            for (key, _) in o.take_all() {
                let Ok(outcome) = key.parse::<Outcome>() else {
                    o.problem(&key, "is not an outcome (completed, transferred, no_answer, busy, voicemail, failed, canceled, unknown)");
                    continue;
                };
                // Re-read the value through the typed path for a clear error.
                let weight = o.opt::<f64>(&key);
                match weight {
                    Some(w) if w >= 0.0 && w.is_finite() => outcomes.push((outcome, w)),
                    Some(_) => o.problem(&key, "weight must be a non-negative number"),
                    None => {}
                }
            }
            o.finish();
        }
        if outcomes.is_empty() {
            outcomes = vec![
                (Outcome::Completed, 0.5),
                (Outcome::NoAnswer, 0.25),
                (Outcome::Busy, 0.1),
                (Outcome::Voicemail, 0.1),
                (Outcome::Failed, 0.05),
            ];
        } else if outcomes.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            t.problem("outcomes", "weights must not all be zero");
        }
        Some(SimConfig {
            min_duration,
            max_duration,
            seed,
            outcomes,
        })
    } else {
        let simulated: Vec<String> = provider::KINDS
            .iter()
            .filter(|f| f.simulation)
            .map(|f| format!("kind = \"{}\"", f.name))
            .collect();
        let only_for = format!("only for {}", simulated.join(" or "));
        for key in sim_keys {
            if t.has(key) {
                t.problem(key, only_for.clone());
                let _ = t.opt::<config::Value>(key);
            }
        }
        None
    };

    let kind = kind?;
    let facts = kind.facts();
    if facts.needs_api_key && api_key.is_none() && !t.has("api_key_env") && !t.has("api_key_file") {
        t.problem(
            "api_key_env",
            "an API key is required: set api_key_env or api_key_file",
        );
    }
    if facts.webhooks == Webhooks::SecretRequired && webhook_secret.is_none() {
        warnings.push(format!(
            "provider `{name}`: no webhook secret is set, so every webhook to /webhooks/{name} is refused (401); calls are still followed by polling"
        ));
    }
    if facts.needs_username && username.is_none() {
        t.problem(
            "username",
            format!(
                "is required for kind = \"{}\" (HTTP Basic user)",
                facts.name
            ),
        );
    }
    let base_url = base_url
        .or_else(|| facts.default_base_url.map(str::to_string))
        .unwrap_or_default();
    let default_rpm = facts.default_requests_per_minute;
    t.finish();
    Some(ProviderConfig {
        name: name.to_string(),
        kind,
        base_url,
        api_key,
        webhook_secret,
        username,
        requests_per_minute: requests_per_minute.unwrap_or(default_rpm),
        max_concurrent_calls: max_concurrent_calls.unwrap_or(20),
        pause_after_unknown: pause_after_unknown.unwrap_or(DEFAULT_PAUSE_AFTER_UNKNOWN),
        request_timeout: request_timeout.unwrap_or(Duration::from_secs(15)),
        poll_interval: poll_interval.unwrap_or(Duration::from_secs(5)),
        max_call_duration: max_call_duration.unwrap_or(Duration::from_secs(30 * 60)),
        sim,
    })
}

/// `<base>_env` names an environment variable, `<base>_file` a file (systemd
/// credentials); at most one of them. With `soft`, an environment variable
/// that is not set is a warning there instead of a problem (a missing webhook
/// secret only means webhooks are refused); a file that cannot be read is
/// always a problem.
fn secret(
    file: &Path,
    t: &mut Table<'_>,
    base: &str,
    soft: Option<&mut Vec<String>>,
) -> Option<Secret> {
    let env_key = format!("{base}_env");
    let file_key = format!("{base}_file");
    let env = t.opt::<String>(&env_key);
    let path = t.opt::<String>(&file_key);
    match (env, path) {
        (Some(_), Some(_)) => {
            t.problem(
                &file_key,
                format!("set either {env_key} or {file_key}, not both"),
            );
            None
        }
        (Some(var), None) => match std::env::var(&var) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => {
                let why = format!("environment variable {var} is not set");
                match soft {
                    Some(w) => w.push(format!("{env_key}: {why}")),
                    None => t.problem(&env_key, why),
                }
                None
            }
        },
        (None, Some(p)) => {
            let full = secret_path(file, env_dir("CREDENTIALS_DIRECTORY").as_deref(), &p);
            match std::fs::read_to_string(&full) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                Ok(_) | Err(_) => {
                    let why = match std::fs::metadata(&full) {
                        Ok(_) => format!("{} is empty or unreadable", full.display()),
                        Err(e) => format!("cannot read {}: {e}", full.display()),
                    };
                    // A file named but unreadable is a mistake to fix
                    // (a wrong path, a missing credential), even for a
                    // secret whose absence only refuses webhooks.
                    t.problem(&file_key, why);
                    None
                }
            }
        }
        (None, None) => None,
    }
}

/// Where a `*_file` secret is read: a relative name is first looked up in
/// `credentials` (systemd's `$CREDENTIALS_DIRECTORY`, from `LoadCredential=`)
/// when that is set and holds it, else relative to the config file.
fn secret_path(file: &Path, credentials: Option<&Path>, p: &str) -> PathBuf {
    let p = Path::new(p);
    if let Some(dir) = credentials.filter(|_| p.is_relative()) {
        let in_credentials = dir.join(p);
        if in_credentials.is_file() {
            return in_credentials;
        }
    }
    resolve(file, p)
}

/// A `log.level`: a level, or comma-separated `target=level` directives.
/// A bare word that is not a level (`warning`, `infoo`) would be read as a
/// target name and silence every log line, so it is refused.
fn check_level(v: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in v.split(',') {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, l)| l)
            .trim();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{v}` is not a log level: `{level}` is not one of {}",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(v)
        .map(|_| v.to_string())
        .map_err(|e| format!("`{v}` is not a log level ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_sqlite_file_is_in_the_state_directory_when_there_is_one() {
        let file = Path::new("/etc/dialer/dialer.toml");
        let state = Path::new("/var/lib/dialer");
        let url = |s, u| resolve_sqlite_url(file, s, u).unwrap();
        assert_eq!(
            url(Some(state), "sqlite://dialer.db"),
            "sqlite:///var/lib/dialer/dialer.db"
        );
        assert_eq!(
            url(Some(state), "sqlite://db/d.db?mode=rwc"),
            "sqlite:///var/lib/dialer/db/d.db?mode=rwc"
        );
        assert_eq!(
            url(None, "sqlite://dialer.db"),
            "sqlite:///etc/dialer/dialer.db"
        );
        assert_eq!(url(Some(state), "sqlite:///srv/d.db"), "sqlite:///srv/d.db");
        assert_eq!(url(Some(state), "sqlite://:memory:"), "sqlite://:memory:");
    }

    #[test]
    fn a_relative_secret_file_is_found_among_the_credentials_first() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("revring"), "k").unwrap();
        let file = Path::new("/etc/dialer/dialer.toml");
        let c = Some(creds.path());
        assert_eq!(
            secret_path(file, c, "revring"),
            creds.path().join("revring")
        );
        assert_eq!(
            secret_path(file, c, "other"),
            PathBuf::from("/etc/dialer/other")
        );
        assert_eq!(
            secret_path(file, None, "revring"),
            PathBuf::from("/etc/dialer/revring")
        );
        assert_eq!(
            secret_path(file, c, "/k/revring"),
            PathBuf::from("/k/revring")
        );
    }
}
