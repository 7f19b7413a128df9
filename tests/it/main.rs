//! The integration tests, linked as one binary: every module below talks to
//! the daemon over real HTTP and real databases; `support` holds what they
//! share (fresh databases on both backends, fake providers, schedule helpers).

#[macro_use]
mod support;

mod agents;
mod budget;
mod callbacks;
mod caller_id;
mod chaos;
mod cli;
mod config_bounds;
mod elemente_fields;
mod engine;
mod explain;
mod export;
mod fairness;
mod import;
mod json_logs;
mod lifecycle;
mod limits;
mod live_page;
mod metrics;
mod opt_out;
mod outbound;
mod pacing;
mod plans;
mod provider_elemente;
mod provider_revring;
mod provider_voicedock;
mod revring_e2e;
mod scale_out;
mod schedule_cases;
mod schedule_props;
mod shutdown;
mod store;
mod systemd;
mod unusable;
mod voicedock_fields;
mod webhooks;
mod windows_e2e;
mod wire_limits;
