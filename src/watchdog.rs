//! Heartbeats of the daemon's loops, and the systemd watchdog they feed.
//! Each dispatcher and poller holds a `Heartbeat` and beats it as it goes
//! round; `WATCHDOG=1` is sent only while every live heartbeat is fresh, so
//! a loop stuck on a hung database query or a wedged runtime stops the
//! pings and systemd restarts the process. Deliberate waits (a rate limit,
//! a poll interval, a provider request bounded by its timeout) go through
//! `Heartbeat::beat_while`, which keeps beating while it waits.

use crate::shutdown;
use sd_notify::NotifyState;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a deliberate wait beats.
const BEAT_WHILE_WAITING: Duration = Duration::from_millis(500);

struct Entry {
    name: String,
    /// Microseconds since `Heartbeats::epoch` at the last beat.
    last: AtomicU64,
}

/// The registry of live heartbeats. A heartbeat leaves it when dropped (its
/// loop ended: a campaign removed on reload, a task being restarted).
#[derive(Clone)]
pub struct Heartbeats {
    epoch: Instant,
    entries: Arc<Mutex<Vec<Weak<Entry>>>>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            epoch: Instant::now(),
            entries: Arc::default(),
        }
    }
}

impl Heartbeats {
    /// A new heartbeat named after its loop, fresh as of now.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let entry = Arc::new(Entry {
            name: name.into(),
            last: AtomicU64::new(self.now_us()),
        });
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|w| w.strong_count() > 0);
            entries.push(Arc::downgrade(&entry));
        }
        Heartbeat {
            epoch: self.epoch,
            entry,
        }
    }

    /// The names of the live heartbeats that have not beaten within `max_age`.
    pub fn stale(&self, max_age: Duration) -> Vec<String> {
        let now = self.now_us();
        let max = max_age.as_micros() as u64;
        let Ok(mut entries) = self.entries.lock() else {
            return vec!["heartbeat registry".to_string()];
        };
        entries.retain(|w| w.strong_count() > 0);
        entries
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|e| now.saturating_sub(e.last.load(Ordering::Relaxed)) > max)
            .map(|e| e.name.clone())
            .collect()
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// One loop's heartbeat.
pub struct Heartbeat {
    epoch: Instant,
    entry: Arc<Entry>,
}

impl Heartbeat {
    /// The loop is making progress.
    pub fn beat(&self) {
        self.entry
            .last
            .store(self.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    /// Awaits `fut`, a wait that is bounded by design, beating meanwhile.
    pub async fn beat_while<F: Future>(&self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            self.beat();
            tokio::select! {
                out = &mut fut => {
                    self.beat();
                    return out;
                }
                _ = tokio::time::sleep(BEAT_WHILE_WAITING) => {}
            }
        }
    }
}

/// Sends `WATCHDOG=1` every quarter of `interval` while every heartbeat is
/// younger than half of it; logs which loops are stale when it holds back.
pub async fn run(heartbeats: Heartbeats, interval: Duration, stop: CancellationToken) {
    let every = interval / 4;
    let max_age = interval / 2;
    let mut held_back = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let stale = heartbeats.stale(max_age);
        if stale.is_empty() {
            if held_back {
                tracing::info!("every loop is making progress again; watchdog pings resume");
                held_back = false;
            }
            shutdown::notify(&[NotifyState::Watchdog]);
        } else if !held_back {
            held_back = true;
            tracing::error!(
                stale = %stale.join(", "),
                max_age_ms = max_age.as_millis() as u64,
                "loops not making progress: watchdog pings held back, systemd will restart the daemon if this lasts"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_not_beaten_goes_stale_and_a_dropped_one_is_forgotten() {
        let hb = Heartbeats::default();
        let a = hb.register("a");
        let b = hb.register("b");
        std::thread::sleep(Duration::from_millis(30));
        a.beat();
        assert_eq!(hb.stale(Duration::from_millis(20)), vec!["b".to_string()]);
        drop(b);
        assert!(hb.stale(Duration::from_millis(20)).is_empty());
    }

    #[tokio::test]
    async fn a_deliberate_wait_keeps_beating() {
        let hb = Heartbeats::default();
        let a = hb.register("a");
        let waiting = a.beat_while(tokio::time::sleep(Duration::from_millis(1300)));
        let check = async {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            hb.stale(Duration::from_millis(700))
        };
        let ((), stale) = tokio::join!(waiting, check);
        assert!(stale.is_empty(), "{stale:?}");
    }
}
