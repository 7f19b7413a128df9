//! Command implementations, one file per command. `main.rs` only parses.

pub mod callback;
pub mod check;
pub mod demo;
pub mod dnc;
pub mod explain;
pub mod export;
pub mod import;
pub mod run;
pub mod status;

use crate::config::{self, Invalid, Loaded};
use crate::store::{self, Store};
use std::path::Path;
use std::sync::Arc;

/// A command's failure and its exit code (SPEC section 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid configuration: exit 2.
    #[error("{0}")]
    Config(#[from] Invalid),
    /// Bad usage: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Runtime failure, including an unknown campaign or lead: exit 1.
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
    /// Stopped by a signal before the end: 128 + the signal's number.
    #[error("{message}")]
    Interrupted { message: String, code: u8 },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
            CliError::Interrupted { code, .. } => *code,
        }
    }
}

impl From<store::StoreError> for CliError {
    fn from(e: store::StoreError) -> Self {
        CliError::Runtime(e.into())
    }
}

pub type CliResult = Result<(), CliError>;

/// Loads the configuration and reports its warnings.
pub fn load(path: &Path) -> Result<Loaded, CliError> {
    let loaded = config::load(path)?;
    warn(&loaded.warnings);
    Ok(loaded)
}

/// Configuration warnings: log events when logging is set up (`dialer run`,
/// and every command when `log.format = "json"`), `warning:` lines
/// otherwise. Each is said once a process: a reload of files that still
/// have the same problem does not repeat it.
pub fn warn(warnings: &[String]) {
    for w in warnings {
        if !crate::telemetry::first_time(&format!("config warning: {w}")) {
            continue;
        }
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{w}");
        } else {
            eprintln!("warning: {w}");
        }
    }
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(loaded: &Loaded) -> Result<Arc<dyn Store>, CliError> {
    let db = &loaded.daemon.database;
    let store = store::connect(&db.url, db.max_connections)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database ({}): {e}", redact_url(&db.url)))?;
    store.migrate().await?;
    Ok(store)
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
