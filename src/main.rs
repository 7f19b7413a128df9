//! Command-line parsing only; each command lives in `dialer::cli`.

use clap::{Parser, Subcommand};
use dialer::cli::{self, CliError};
use dialer::clock::Clock;
use dialer::config::LogFormat;
use dialer::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dialer",
    version,
    about = "Campaign dialer daemon for hosted voice-AI agents"
)]
struct Cli {
    /// The daemon configuration file.
    #[arg(
        long,
        global = true,
        env = "DIALER_CONFIG",
        default_value = "config/dialer.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT; SIGHUP reloads campaign files.
    Run,
    /// Validate the configuration and print each campaign's next opening.
    Check,
    /// Apply database migrations.
    Migrate,
    /// Bulk-load leads from a CSV file with a header row.
    Import {
        #[arg(long)]
        campaign: String,
        file: PathBuf,
        /// Region (ISO 3166 alpha-2) for national numbers, e.g. US.
        #[arg(long)]
        region: Option<String>,
    },
    /// The do-not-call list.
    Dnc {
        #[command(subcommand)]
        command: DncCommand,
    },
    /// Leads by status, attempts by outcome, calls in flight, next opening.
    Status {
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Why a lead may or may not be called, and when it next may be.
    Explain {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        phone: String,
        /// The instant to ask about (RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Schedule a callback for one lead (moved to the next opening when
    /// outside its window; says so).
    Callback {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        phone: String,
        /// RFC 3339, or a local date and time in the lead's zone.
        #[arg(long)]
        at: String,
    },
    /// Stream a campaign's leads with their attempts and outcomes to stdout.
    Export {
        #[arg(long)]
        campaign: String,
        /// Only leads changed at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// `csv` (one row per attempt) or `jsonl` (one lead per line).
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// The whole daemon on a throw-away database with the simulated provider.
    Demo {
        /// How many sample leads.
        #[arg(long, default_value_t = 300)]
        leads: usize,
    },
}

#[derive(Subcommand)]
enum DncCommand {
    /// Add numbers.
    Add {
        #[arg(required = true)]
        phones: Vec<String>,
        #[arg(long)]
        region: Option<String>,
    },
    /// Add every number of a file (one a line, or a CSV with a `phone` column).
    Import {
        file: PathBuf,
        #[arg(long)]
        region: Option<String>,
    },
}

fn main() -> ExitCode {
    // Errors from here until the daemon file's `[log]` is read (usage
    // errors) are plain text: the log format is not known yet.
    let args = Cli::parse();
    let log_cfg = dialer::config::log_settings(&args.config);
    let json = log_cfg.format == LogFormat::Json;
    // `run` always logs; `demo` sets up its own; the other commands print
    // for a person, and log only when JSON was asked for, so that every
    // line on stderr is then one JSON object.
    let log = match args.command {
        Command::Run => Some(telemetry::init(&log_cfg)),
        Command::Demo { .. } => None,
        _ if json => Some(telemetry::init(&log_cfg)),
        _ => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                json && log.is_some(),
                &format!("cannot start the runtime: {e}"),
                1,
            );
        }
    };
    let clock = Clock::system();
    let config = args.config;
    let result = runtime.block_on(async {
        match args.command {
            Command::Run => cli::run::run(&config, log.as_ref()).await,
            Command::Check => cli::check::run(&config, &clock),
            Command::Migrate => migrate(&config).await,
            Command::Import {
                campaign,
                file,
                region,
            } => cli::import::run(&config, &campaign, &file, region.as_deref(), &clock).await,
            Command::Dnc {
                command: DncCommand::Add { phones, region },
            } => cli::dnc::add(&config, &phones, region.as_deref(), &clock).await,
            Command::Dnc {
                command: DncCommand::Import { file, region },
            } => cli::dnc::import(&config, &file, region.as_deref(), &clock).await,
            Command::Status { campaign, json } => {
                cli::status::run(&config, campaign.as_deref(), json, &clock).await
            }
            Command::Explain {
                campaign,
                phone,
                at,
                json,
            } => cli::explain::run(&config, &campaign, &phone, at.as_deref(), json, &clock).await,
            Command::Callback {
                campaign,
                phone,
                at,
            } => cli::callback::run(&config, &campaign, &phone, &at, &clock).await,
            Command::Export {
                campaign,
                since,
                format,
            } => cli::export::run(&config, &campaign, since.as_deref(), &format).await,
            Command::Demo { leads } => cli::demo::run(leads).await,
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json && log.is_some(), &e.to_string(), e.exit_code()),
    };
    // Dropping the guard writes out the lines still queued.
    drop(log);
    code
}

/// Reports the error that ends the process: a log event when logging is
/// JSON (the multi-line list of configuration problems becomes one line),
/// an `error:` line otherwise.
fn fail(json: bool, message: &str, code: u8) -> ExitCode {
    if json {
        tracing::error!(exit_code = code, "{message}");
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(code)
}

async fn migrate(config: &std::path::Path) -> Result<(), CliError> {
    let loaded = cli::load(config)?;
    cli::open_store(&loaded).await?;
    println!(
        "migrations applied ({})",
        cli::redact_url(&loaded.daemon.database.url)
    );
    Ok(())
}
