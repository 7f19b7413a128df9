//! Learning each call's fate: `poller` asks the providers, `webhook` hears
//! from them; both hand each status to `lifecycle::apply_status`, the one
//! path a status takes to an attempt and its lead.

pub mod poller;
pub mod webhook;
