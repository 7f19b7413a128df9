//! `dialer`: a campaign dialer daemon for hosted voice-AI agents.
//!
//! One lead's path: `store` claims it, `schedule` says whether it may be
//! called, `pacing` says whether now, `store` commits the attempt, `provider`
//! places the call, `status` learns its fate, `outcome` decides what next.

pub mod audit;
pub mod caller_id;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dispatch;
pub mod domain;
pub mod engine;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod outbound;
pub mod pacing;
pub mod phone;
pub mod provider;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod watchdog;
