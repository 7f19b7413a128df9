//! Limiters: a campaign's `calls_per_minute` (with `burst`) and a provider's
//! `requests_per_minute`, from which every request to the provider (place,
//! get, list, probe) takes one cell. Both live in the database
//! (`rate_limits`, one GCRA per key), so every daemon on it draws from the
//! same budget; concurrency limits are held by the database claim (see
//! `store`). A provider can be paused (429 `Retry-After`, an unusable
//! account).

use crate::clock::Clock;
use crate::store::{RateTake, RateTaken, Store};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much a daemon takes from the database at once, in real time: at high
/// rates it takes the cells for this long in one statement and hands them
/// out itself, so the database sees a few statements a second per limit.
const BLOCK_REAL: Duration = Duration::from_millis(100);
/// Wait after the database failed to answer, in real time.
const RETRY_REAL: Duration = Duration::from_secs(1);

/// A rate limit counted in clock time and held in the database under `key`
/// (`campaign:<id>`, `provider:<name>`), so it holds in total across the
/// daemons sharing it. Cells taken in a block are only handed out while the
/// GCRA would still have granted each of them at that instant: a cell kept
/// longer is dropped, never spent late, so the total never exceeds the limit.
pub struct Limiter {
    store: Arc<dyn Store>,
    clock: Clock,
    key: String,
    /// Clock microseconds between cells (rounded up: never faster than the limit).
    period_us: i64,
    burst: u32,
    /// Cells asked for in one statement: those of `BLOCK_REAL`, within the burst.
    block: u32,
    /// Cells taken and not yet handed out: the last instant (clock
    /// microseconds) each may still be spent. Only the waiter at the head
    /// of `queue` takes from it, one database statement at a time.
    held: tokio::sync::Mutex<VecDeque<i64>>,
    /// Waiters in the order they are served: higher priority first, then
    /// first come.
    queue: Mutex<Queue>,
    /// Told whenever the head of `queue` leaves.
    turn: tokio::sync::Notify,
    /// Where the real time each waiter waited for its cell is recorded.
    waits: std::sync::OnceLock<metrics::Histogram>,
}

/// Written by hand: a priority wait queue whose waiters can give up at a
/// deadline is a few lines over `BTreeSet` + `Notify`, and no maintained
/// crate offers one for async tasks.
#[derive(Default)]
struct Queue {
    next: u64,
    waiting: BTreeSet<(Reverse<i64>, u64)>,
}

/// A waiter's place in `Limiter::queue`, left however the wait ends.
struct Place<'a> {
    limiter: &'a Limiter,
    key: (Reverse<i64>, u64),
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut q = self.limiter.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_head = q.waiting.first() == Some(&self.key);
        q.waiting.remove(&self.key);
        drop(q);
        if was_head {
            self.limiter.turn.notify_waiters();
        }
    }
}

impl Limiter {
    pub fn shared(
        store: Arc<dyn Store>,
        clock: &Clock,
        key: impl Into<String>,
        per_minute: u32,
        burst: u32,
    ) -> Self {
        let per_minute = i64::from(per_minute.max(1));
        let period_us = (60_000_000 + per_minute - 1) / per_minute;
        let burst = burst.max(1);
        let block_us =
            i64::try_from(clock.scaled_from_real(BLOCK_REAL).as_micros()).unwrap_or(i64::MAX);
        let block = u32::try_from((block_us.saturating_add(period_us - 1)) / period_us)
            .unwrap_or(u32::MAX)
            .clamp(1, burst);
        Limiter {
            store,
            clock: clock.clone(),
            key: key.into(),
            period_us,
            burst,
            block,
            held: tokio::sync::Mutex::new(VecDeque::new()),
            queue: Mutex::new(Queue::default()),
            turn: tokio::sync::Notify::new(),
            waits: std::sync::OnceLock::new(),
        }
    }

    /// Records each wait for a cell (in real seconds) in `h`; the first
    /// histogram given is kept.
    pub fn observe_waits(&self, h: metrics::Histogram) {
        let _ = self.waits.set(h);
    }

    /// Waits for one cell, in first-come order among priority 0.
    pub async fn ready(&self) {
        self.ready_as(0, None).await;
    }

    /// Waits for one cell, served before every waiter of lower `priority`
    /// (and after those of higher). False, with no cell spent, when no cell
    /// can be had before `deadline` (clock time).
    pub async fn ready_as(&self, priority: i64, deadline: Option<DateTime<Utc>>) -> bool {
        let started = std::time::Instant::now();
        let got = self.wait_turn(priority, deadline).await;
        if got {
            if let Some(h) = self.waits.get() {
                h.record(started.elapsed().as_secs_f64());
            }
        }
        got
    }

    async fn wait_turn(&self, priority: i64, deadline: Option<DateTime<Utc>>) -> bool {
        let key = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let key = (Reverse(priority), q.next);
            q.next += 1;
            q.waiting.insert(key);
            let first = q.waiting.first() == Some(&key);
            drop(q);
            if first {
                // A waiter ahead of the one sleeping for the next cell.
                self.turn.notify_waiters();
            }
            key
        };
        let _place = Place { limiter: self, key };
        let until_deadline = async {
            match deadline {
                Some(at) => self.clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        loop {
            let turn = self.turn.notified();
            tokio::pin!(turn);
            turn.as_mut().enable();
            let head = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting
                .first()
                == Some(&key);
            if head {
                let wait = tokio::select! {
                    w = self.try_take() => w,
                    _ = &mut until_deadline => return false,
                };
                let Some(wait) = wait else {
                    return true;
                };
                // Sleeping for the next cell, but a waiter of higher
                // priority arriving meanwhile takes it instead.
                tokio::select! {
                    _ = wait.sleep(&self.clock) => {}
                    _ = &mut turn => {}
                    _ = &mut until_deadline => return false,
                }
            } else {
                tokio::select! {
                    _ = &mut turn => {}
                    _ = &mut until_deadline => return false,
                }
            }
        }
    }

    /// Takes one cell for the head of the queue, or says how long to wait
    /// before asking again.
    async fn try_take(&self) -> Option<Wait> {
        let mut held = self.held.lock().await;
        let tolerance_us = i64::from(self.burst) * self.period_us;
        let mut want = self.block;
        loop {
            let now_us = self.clock.now().timestamp_micros();
            while held.front().is_some_and(|&until| until < now_us) {
                held.pop_front();
            }
            if held.pop_front().is_some() {
                return None;
            }
            let cost_us = i64::from(want) * self.period_us;
            let take = RateTake {
                now_us,
                cost_us,
                tolerance_us,
            };
            match self.store.take_rate(&self.key, &take).await {
                Ok(RateTaken::Granted { tat_us }) => {
                    // Cell j of the block stays valid until the arrival time
                    // before it, `tat - (want - j + 1) * period`; the first
                    // is spent now.
                    held.extend(
                        (2..=i64::from(want))
                            .map(|j| tat_us - (i64::from(want) - j + 1) * self.period_us),
                    );
                    return None;
                }
                Ok(RateTaken::Refused { tat_us }) => {
                    let base_us = tat_us.max(now_us);
                    let free = (now_us + tolerance_us - base_us) / self.period_us;
                    if free >= 1 {
                        want = u32::try_from(free).unwrap_or(1).min(self.block);
                        continue;
                    }
                    // Another daemon took the budget: come back when a whole
                    // block is free rather than asking once a cell.
                    let at_us = base_us + i64::from(self.block) * self.period_us - tolerance_us;
                    return Some(match DateTime::<Utc>::from_timestamp_micros(at_us) {
                        Some(at) => Wait::Until(at),
                        None => Wait::Real(RETRY_REAL),
                    });
                }
                Err(e) => {
                    tracing::warn!(limit = %self.key, error = %e, "cannot take from the shared rate limit; retrying in 1 s");
                    return Some(Wait::Real(RETRY_REAL));
                }
            }
        }
    }
}

/// How long the head of a limiter's queue waits before asking again.
enum Wait {
    /// Until this clock time.
    Until(DateTime<Utc>),
    /// This long in real time (the database did not answer).
    Real(Duration),
}

impl Wait {
    async fn sleep(self, clock: &Clock) {
        match self {
            Wait::Until(at) => clock.sleep_until(at).await,
            Wait::Real(d) => tokio::time::sleep(d).await,
        }
    }
}

/// A provider's request budget, shared by its adapter (every request it
/// sends takes a cell through `provider::http`) and the dispatcher (which
/// takes the place request's cell itself, before committing the attempt).
/// Cheap to clone: the clones draw from the same limiter.
#[derive(Clone)]
pub struct Budget(Option<Arc<Limiter>>);

impl Budget {
    pub fn metered(limiter: Limiter) -> Self {
        Budget(Some(Arc::new(limiter)))
    }

    /// No limit: for adapters used outside a daemon (tests, tools), and for
    /// providers that send no requests.
    pub fn unmetered() -> Self {
        Budget(None)
    }

    /// Records each wait for a cell of this budget in `h`.
    pub fn observe_waits(&self, h: metrics::Histogram) {
        if let Some(l) = &self.0 {
            l.observe_waits(h);
        }
    }

    /// Waits for one cell for a lookup (get, list page, probe); the permit
    /// is the right to send one request. Lookups are served ahead of every
    /// campaign: learning how live calls ended is what frees their slots,
    /// and they are bounded by the calls in flight.
    pub async fn take(&self) -> Permit {
        if let Some(l) = &self.0 {
            l.ready_as(i64::MAX, None).await;
        }
        Permit { _cell: () }
    }

    /// Waits for one cell for a campaign of `priority` (higher first, then
    /// first come); `None`, with nothing spent, when none can be had before
    /// `deadline`.
    pub async fn take_as(&self, priority: i64, deadline: DateTime<Utc>) -> Option<Permit> {
        if let Some(l) = &self.0 {
            if !l.ready_as(priority, Some(deadline)).await {
                return None;
            }
        }
        Some(Permit { _cell: () })
    }
}

/// One cell of a provider's request budget, taken: the only way to get one
/// is `Budget::take`, and a place request cannot be sent without one.
#[derive(Debug)]
#[must_use = "a permit stands for a cell already taken from the budget"]
pub struct Permit {
    _cell: (),
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
    /// Every HTTP request to the provider takes one cell of it.
    pub requests: Budget,
    pause: Mutex<Option<Pause>>,
    /// Set by an `unusable` pause: placing resumes only after a probe succeeds.
    probe_needed: std::sync::atomic::AtomicBool,
    /// Place requests in a row whose fate was unknown (timeouts, 5xx): the
    /// circuit breaker that keeps an outage from spending leads' attempts.
    unknown_streak: std::sync::atomic::AtomicU32,
}

impl ProviderPacing {
    pub fn new(
        store: Arc<dyn Store>,
        clock: &Clock,
        provider: &str,
        requests_per_minute: u32,
    ) -> Self {
        ProviderPacing {
            // A second's worth of requests back to back (at most 1,000),
            // as a campaign's `burst` allows: a poll batch and placements
            // share a second, and at high rates a daemon takes its cells in
            // blocks of up to that many (one statement each) instead of
            // one statement per ten requests. Any 60 s window still sees
            // at most `requests_per_minute` plus this burst.
            requests: Budget::metered(Limiter::shared(
                store,
                clock,
                format!("provider:{provider}"),
                requests_per_minute,
                (requests_per_minute / 60).clamp(1, 1000),
            )),
            pause: Mutex::new(None),
            probe_needed: std::sync::atomic::AtomicBool::new(false),
            unknown_streak: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A place request got an answer whose meaning is known.
    pub fn known_fate(&self) {
        self.unknown_streak
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// A place request's fate is unknown. True when this makes `limit` in a
    /// row: the caller pauses placing until a probe succeeds.
    pub fn unknown_fate(&self, limit: u32) -> bool {
        let n = self
            .unknown_streak
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n >= limit.max(1) {
            self.known_fate();
            true
        } else {
            false
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
