//! Limiters: a campaign's `calls_per_minute` (with `burst`) and a provider's
//! `requests_per_minute`, shared by placing and polling. Concurrency limits
//! are held by the database claim (see `store`), so they hold in total across
//! daemons. A provider can be paused (429 `Retry-After`, an unusable account).

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// A rate limiter counted in clock time. governor runs on real time, so the
/// quota is converted with the clock's speed: under a test clock running
/// 60 times faster, 30 calls a (clock) minute are 30 calls a real second.
pub struct Limiter {
    inner: DefaultDirectRateLimiter,
}

impl Limiter {
    pub fn per_minute(clock: &Clock, per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(1);
        let period = clock.real(Duration::from_secs(60) / per_minute);
        let period = period.max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Limiter {
            inner: RateLimiter::direct(quota),
        }
    }

    /// Waits for one cell.
    pub async fn ready(&self) {
        self.inner.until_ready().await
    }

    /// Takes one cell if available now.
    pub fn try_take(&self) -> bool {
        self.inner.check().is_ok()
    }
}

/// Why placing on a provider is paused.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    pub until: DateTime<Utc>,
    pub reason: String,
    /// The account is unusable (bad key, no credits): loud, and lifted only by a probe.
    pub unusable: bool,
}

/// The provider-wide budget: one request limiter and a pause switch.
pub struct ProviderPacing {
    pub requests: Limiter,
    pause: Mutex<Option<Pause>>,
    /// Set by an `unusable` pause: placing resumes only after a probe succeeds.
    probe_needed: std::sync::atomic::AtomicBool,
}

impl ProviderPacing {
    pub fn new(clock: &Clock, requests_per_minute: u32) -> Self {
        ProviderPacing {
            // A small burst lets a poll batch and a placement share a second.
            requests: Limiter::per_minute(
                clock,
                requests_per_minute,
                (requests_per_minute / 60).clamp(1, 10),
            ),
            pause: Mutex::new(None),
            probe_needed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn pause(&self, p: Pause) {
        if p.unusable {
            self.probe_needed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut g = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the longer of two pauses.
        if g.as_ref().is_none_or(|old| old.until < p.until) {
            *g = Some(p);
        }
    }

    pub fn resume(&self) {
        *self.pause.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// True once, when an `unusable` pause has run out: the caller probes
    /// the account before placing again.
    pub fn take_probe(&self, now: DateTime<Utc>) -> bool {
        self.paused(now).is_none()
            && self
                .probe_needed
                .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// The pause in force at `now`, if any.
    pub fn paused(&self, now: DateTime<Utc>) -> Option<Pause> {
        let g = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().filter(|p| p.until > now).cloned()
    }
}
