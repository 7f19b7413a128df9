//! The daemon file: database, server, log, providers.

use super::table::{Problems, Table};
use super::{read_toml, resolve, Secret};
use crate::domain::Outcome;
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
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "revring" => Ok(ProviderKind::RevRing),
            "voicedock" => Ok(ProviderKind::VoiceDock),
            "elemente" => Ok(ProviderKind::Elemente),
            "simulated" => Ok(ProviderKind::Simulated),
            other => Err(format!(
                "unknown kind `{other}`; expected revring, voicedock, elemente or simulated"
            )),
        }
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::RevRing => Some("https://api.revring.ai"),
            ProviderKind::VoiceDock => Some("https://api.hmsovereign.com/api/v1"),
            ProviderKind::Elemente => Some("https://api.elemente.ai"),
            ProviderKind::Simulated => None,
        }
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
    pub sim: Option<SimConfig>,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub min_duration: Duration,
    pub max_duration: Duration,
    pub seed: u64,
    pub outcomes: Vec<(Outcome, f64)>,
}

pub(super) fn load(path: &Path, warnings: &mut Vec<String>) -> Result<DaemonConfig, Vec<super::Problem>> {
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
            max_connections = d.opt::<u32>("max_connections");
            if max_connections == Some(0) {
                d.problem("max_connections", "must be at least 1");
            }
            d.finish();
        }
        let url = url.unwrap_or_else(|| "sqlite://dialer.db".to_string());
        let url = match resolve_sqlite_url(path, &url) {
            Ok(u) => u,
            Err(why) => {
                t.problem("database.url", why);
                url
            }
        };
        DatabaseConfig {
            url,
            max_connections: max_connections.unwrap_or(8).max(1),
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

    let log = {
        let mut format = LogFormat::Text;
        let mut level = "info".to_string();
        if let Some(mut l) = t.table("log") {
            if let Some(f) = l.parsed("format", |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("`{other}` is not a log format; expected text or json")),
            }) {
                format = f;
            }
            if let Some(v) = l.parsed("level", |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .map(|_| v.to_string())
                    .map_err(|e| format!("`{v}` is not a log level ({e})"))
            }) {
                level = v;
            }
            l.finish();
        }
        LogConfig { format, level }
    };

    let campaigns_dir = t
        .opt::<String>("campaigns_dir")
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
    t.finish();

    if problems.list.is_empty() {
        Ok(DaemonConfig {
            file: path.to_path_buf(),
            database,
            server,
            log,
            campaigns_dir,
            providers,
        })
    } else {
        Err(problems.list)
    }
}

/// `sqlite://relative.db` is relative to the config file like every other path.
fn resolve_sqlite_url(file: &Path, url: &str) -> Result<String, String> {
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
        let abs = resolve(file, Path::new(file_part));
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

fn provider(
    file: &Path,
    name: &str,
    mut t: Table<'_>,
    warnings: &mut Vec<String>,
) -> Option<ProviderConfig> {
    let kind = t.req::<String>("kind").and_then(|k| match ProviderKind::parse(&k) {
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
    let api_key = secret(file, &mut t, "api_key");
    let webhook_secret = secret(file, &mut t, "webhook_secret");
    let username = t.opt::<String>("username");
    let requests_per_minute = t.opt::<u32>("requests_per_minute");
    let max_concurrent_calls = t.opt::<u32>("max_concurrent_calls");
    for (key, v) in [
        ("requests_per_minute", requests_per_minute),
        ("max_concurrent_calls", max_concurrent_calls),
    ] {
        if v == Some(0) {
            t.problem(key, "must be at least 1");
        }
    }
    let request_timeout = t.duration("request_timeout");
    let poll_interval = t.duration("poll_interval");
    let max_call_duration = t.duration("max_call_duration");

    let sim_keys = ["min_duration", "max_duration", "seed", "outcomes"];
    let sim = if kind == Some(ProviderKind::Simulated) {
        let min_duration = t.duration("min_duration").unwrap_or(Duration::from_secs(1));
        let max_duration = t.duration("max_duration").unwrap_or(Duration::from_secs(5));
        if max_duration < min_duration {
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
        for key in sim_keys {
            if t.has(key) {
                t.problem(key, "only for kind = \"simulated\"");
                let _ = t.opt::<config::Value>(key);
            }
        }
        None
    };

    let kind = kind?;
    match kind {
        ProviderKind::Simulated => {}
        _ => {
            if api_key.is_none() && !t.has("api_key_env") && !t.has("api_key_file") {
                t.problem("api_key_env", "an API key is required: set api_key_env or api_key_file");
            }
            if webhook_secret.is_none() && kind != ProviderKind::Elemente {
                warnings.push(format!(
                    "provider `{name}`: no webhook secret is set, so every webhook to /webhooks/{name} is refused (401); calls are still followed by polling"
                ));
            }
        }
    }
    if kind == ProviderKind::Elemente && username.is_none() {
        t.problem("username", "is required for kind = \"elemente\" (HTTP Basic user)");
    }
    let base_url = base_url
        .or_else(|| kind.default_base_url().map(str::to_string))
        .unwrap_or_default();
    let default_rpm = match kind {
        ProviderKind::VoiceDock => 100,
        ProviderKind::Simulated => 60_000,
        _ => 600,
    };
    t.finish();
    Some(ProviderConfig {
        name: name.to_string(),
        kind,
        base_url,
        api_key,
        webhook_secret,
        username,
        requests_per_minute: requests_per_minute.unwrap_or(default_rpm).max(1),
        max_concurrent_calls: max_concurrent_calls.unwrap_or(20).max(1),
        request_timeout: request_timeout.unwrap_or(Duration::from_secs(15)),
        poll_interval: poll_interval.unwrap_or(Duration::from_secs(5)),
        max_call_duration: max_call_duration.unwrap_or(Duration::from_secs(30 * 60)),
        sim,
    })
}

/// `<base>_env` names an environment variable, `<base>_file` a file (systemd
/// credentials); at most one of them.
fn secret(file: &Path, t: &mut Table<'_>, base: &str) -> Option<Secret> {
    let env_key = format!("{base}_env");
    let file_key = format!("{base}_file");
    let env = t.opt::<String>(&env_key);
    let path = t.opt::<String>(&file_key);
    match (env, path) {
        (Some(_), Some(_)) => {
            t.problem(&file_key, format!("set either {env_key} or {file_key}, not both"));
            None
        }
        (Some(var), None) => match std::env::var(&var) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => {
                t.problem(&env_key, format!("environment variable {var} is not set"));
                None
            }
        },
        (None, Some(p)) => {
            let full = resolve(file, Path::new(&p));
            match std::fs::read_to_string(&full) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                Ok(_) => {
                    t.problem(&file_key, format!("{} is empty", full.display()));
                    None
                }
                Err(e) => {
                    t.problem(&file_key, format!("cannot read {}: {e}", full.display()));
                    None
                }
            }
        }
        (None, None) => None,
    }
}
