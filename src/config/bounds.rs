//! The range of every number and duration in the configuration, in one
//! place so that loading, the README and the tests agree. The upper bounds
//! keep the daemon's arithmetic (a time plus a delay, a rate times a window)
//! far from overflow; the lower bounds refuse values that would spin or
//! mean "never".

use std::ops::RangeInclusive;
use std::time::Duration;

/// An allowed span for a duration key. `zero` also allows exactly `0s`
/// below `min` (a retry delay of nothing, but not a few milliseconds that
/// would only be a typo for seconds).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub min: Duration,
    pub max: Duration,
    pub zero: bool,
    min_text: &'static str,
    max_text: &'static str,
}

impl Span {
    const fn new(
        min: Duration,
        min_text: &'static str,
        max: Duration,
        max_text: &'static str,
    ) -> Self {
        Span {
            min,
            max,
            zero: false,
            min_text,
            max_text,
        }
    }

    /// Why `d` (written `text`) is refused, or `None` when it is allowed.
    pub fn refuse(&self, text: &str, d: Duration) -> Option<String> {
        if d > self.max {
            Some(format!(
                "`{text}` is out of range (at most {})",
                self.max_text
            ))
        } else if d < self.min && !(self.zero && d.is_zero()) {
            Some(if self.zero {
                format!(
                    "`{text}` is out of range (0s, or at least {})",
                    self.min_text
                )
            } else {
                format!("`{text}` is out of range (at least {})", self.min_text)
            })
        } else {
            None
        }
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `providers.<name>.request_timeout`: under a second fails healthy
/// requests; over five minutes a lost request holds its lead for nothing.
pub const REQUEST_TIMEOUT: Span = Span::new(secs(1), "1s", secs(5 * MINUTE), "5m");
/// `providers.<name>.poll_interval`: below 100 ms the poller spins; a day
/// (12 days for old calls) is as rare as polling gets and still adds to a
/// time safely. A long interval suits an account settled by webhooks.
pub const POLL_INTERVAL: Span = Span::new(Duration::from_millis(100), "100ms", secs(DAY), "1d");
/// `providers.<name>.max_call_duration`: no provider keeps a call up for a day.
pub const MAX_CALL_DURATION: Span = Span::new(secs(1), "1s", secs(DAY), "1d");
/// `providers.<name>.min_duration` / `max_duration` (simulated calls).
pub const SIM_DURATION: Span = Span::new(Duration::ZERO, "0s", secs(DAY), "1d");
/// `retry.after.*`: at most a year; `0s` retries at the next opening.
pub const RETRY_AFTER: Span = Span {
    zero: true,
    ..Span::new(secs(1), "1s", secs(365 * DAY), "365d")
};

/// `outbound_webhooks[].timeout`: as `request_timeout`.
pub const OUTBOUND_TIMEOUT: Span = Span::new(secs(1), "1s", secs(5 * MINUTE), "5m");
/// `outbound_webhooks[].retry_min` / `retry_max`: the first and the longest
/// wait between deliveries of one event.
pub const OUTBOUND_RETRY: Span = Span::new(Duration::from_millis(100), "100ms", secs(DAY), "1d");
/// `outbound_webhooks[].give_up_after`: how old an undelivered event may get.
pub const OUTBOUND_GIVE_UP: Span = Span::new(secs(MINUTE), "1m", secs(365 * DAY), "365d");

/// `database.max_connections`: beyond a thousand a PostgreSQL server refuses anyway.
pub const MAX_CONNECTIONS: RangeInclusive<u32> = 1..=1000;
/// `providers.<name>.requests_per_minute`.
pub const REQUESTS_PER_MINUTE: RangeInclusive<u32> = 1..=1_000_000;
/// `providers.<name>.max_concurrent_calls`.
pub const MAX_CONCURRENT_CALLS: RangeInclusive<u32> = 1..=100_000;
/// `providers.<name>.pause_after_unknown`.
pub const PAUSE_AFTER_UNKNOWN: RangeInclusive<u32> = 1..=1000;
/// `pacing.calls_per_minute`.
pub const CALLS_PER_MINUTE: RangeInclusive<u32> = 1..=1_000_000;
/// `pacing.burst`.
pub const BURST: RangeInclusive<u32> = 1..=10_000;
/// `pacing.max_concurrent`.
pub const MAX_CONCURRENT: RangeInclusive<u32> = 1..=100_000;
/// `retry.max_attempts`.
pub const MAX_ATTEMPTS: RangeInclusive<u32> = 1..=1000;
/// `compliance.max_attempts_per_day`.
pub const MAX_ATTEMPTS_PER_DAY: RangeInclusive<u32> = 1..=1000;

/// `callbacks.max_per_lead`.
pub const CALLBACKS_PER_LEAD: RangeInclusive<u32> = 0..=100;
/// `agents[].weight`.
pub const AGENT_WEIGHT: RangeInclusive<u32> = 1..=1000;
/// `[caller_id] calls_per_hour`, per number.
pub const CALLER_ID_PER_HOUR: RangeInclusive<u32> = 1..=100_000;
/// `[caller_id] calls_per_day`, per number.
pub const CALLER_ID_PER_DAY: RangeInclusive<u32> = 1..=1_000_000;

/// Why the integer `v` is refused for `range`, or `None` when it is allowed.
pub fn refuse_int(v: i64, range: &RangeInclusive<u32>) -> Option<String> {
    let (min, max) = (i64::from(*range.start()), i64::from(*range.end()));
    if v < min {
        Some(format!("{v} is out of range (at least {min})"))
    } else if v > max {
        Some(format!("{v} is out of range (at most {max})"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_allows_zero_but_not_a_few_milliseconds() {
        assert_eq!(RETRY_AFTER.refuse("0s", Duration::ZERO), None);
        assert_eq!(RETRY_AFTER.refuse("1s", secs(1)), None);
        assert_eq!(RETRY_AFTER.refuse("365d", secs(365 * DAY)), None);
        assert_eq!(
            RETRY_AFTER.refuse("500ms", Duration::from_millis(500)),
            Some("`500ms` is out of range (0s, or at least 1s)".into())
        );
        assert_eq!(
            RETRY_AFTER.refuse("366d", secs(366 * DAY)),
            Some("`366d` is out of range (at most 365d)".into())
        );
        assert_eq!(
            POLL_INTERVAL.refuse("0s", Duration::ZERO),
            Some("`0s` is out of range (at least 100ms)".into())
        );
    }

    #[test]
    fn integers_are_checked_at_both_ends() {
        assert_eq!(refuse_int(1, &BURST), None);
        assert_eq!(refuse_int(10_000, &BURST), None);
        assert_eq!(
            refuse_int(0, &BURST),
            Some("0 is out of range (at least 1)".into())
        );
        assert_eq!(
            refuse_int(-3, &BURST),
            Some("-3 is out of range (at least 1)".into())
        );
        assert_eq!(
            refuse_int(10_001, &BURST),
            Some("10001 is out of range (at most 10000)".into())
        );
    }
}
