//! Configuration: the daemon file (`config/dialer.toml`, with `DIALER__SECTION__KEY`
//! environment overrides) and one file per campaign, validated into typed
//! structs. Every problem is collected (file, key, why) before refusing.

mod campaign;
mod daemon;
mod table;

pub use campaign::{load_campaigns, CampaignConfig, Compliance, Pacing, RetryPolicy, WindowConfig};
pub use daemon::{
    DaemonConfig, DatabaseConfig, LogConfig, LogFormat, ProviderConfig, ProviderKind, ServerConfig,
    SimConfig,
};
pub use table::{parse_duration, Problem, Problems};

use std::path::{Path, PathBuf};

/// A secret (API key, webhook secret). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The whole configuration: the daemon file and every campaign file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub daemon: DaemonConfig,
    pub campaigns: Vec<CampaignConfig>,
    /// Things worth saying that do not stop the daemon.
    pub warnings: Vec<String>,
}

/// Every problem found, in file order.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Invalid(pub Vec<Problem>);

/// Loads and validates the daemon file and every campaign file it points to.
pub fn load(path: &Path) -> Result<Loaded, Invalid> {
    let mut warnings = Vec::new();
    let daemon = daemon::load(path, &mut warnings);
    let (daemon, mut problems) = match daemon {
        Ok((d, p)) => (Some(d), p),
        Err(p) => (None, p),
    };
    let campaigns = match &daemon {
        Some(d) => match load_campaigns(d, &mut warnings) {
            Ok(c) => c,
            Err(p) => {
                problems.extend(p);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    match daemon {
        Some(daemon) if problems.is_empty() => Ok(Loaded {
            daemon,
            campaigns,
            warnings,
        }),
        _ => Err(Invalid(problems)),
    }
}

/// Reads one TOML file with the `config` crate into its root table.
fn read_toml(
    path: &Path,
    env_prefix: Option<&str>,
    problems: &mut Problems,
) -> Option<config::Map<String, config::Value>> {
    if !path.exists() {
        problems.add("", "file not found");
        return None;
    }
    let mut builder = config::Config::builder().add_source(
        config::File::from(path.to_path_buf())
            .format(config::FileFormat::Toml)
            .required(true),
    );
    if let Some(prefix) = env_prefix {
        builder = builder.add_source(
            config::Environment::with_prefix(prefix)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
    }
    match builder
        .build()
        .and_then(|c| c.try_deserialize::<config::Map<String, config::Value>>())
    {
        Ok(map) => Some(map),
        Err(e) => {
            let msg = e.to_string();
            let msg = msg
                .strip_prefix(&format!("{} ", path.display()))
                .unwrap_or(&msg)
                .to_string();
            problems.add("", msg);
            None
        }
    }
}

/// Resolves `p` against the directory of `file` unless absolute.
pub fn resolve(file: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}
