//! The one source of time (SPEC section 6). Production uses the system clock;
//! tests and the demo use a clock that runs faster than real time, so a day of
//! schedule passes in seconds while every component agrees on "now".

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

enum Inner {
    System,
    /// Simulated time: `origin + (real elapsed since start) * speed`.
    Scaled {
        origin: DateTime<Utc>,
        start: Instant,
        speed: f64,
    },
}

impl Clock {
    pub fn system() -> Self {
        Clock {
            inner: Arc::new(Inner::System),
        }
    }

    /// A clock that starts at `origin` and runs `speed` times faster than
    /// real time (speed 3600: an hour a second).
    pub fn scaled(origin: DateTime<Utc>, speed: f64) -> Self {
        assert!(speed > 0.0, "clock speed must be positive");
        Clock {
            inner: Arc::new(Inner::Scaled {
                origin,
                start: Instant::now(),
                speed,
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.inner {
            Inner::System => Utc::now(),
            Inner::Scaled {
                origin,
                start,
                speed,
            } => {
                let nanos = start.elapsed().as_secs_f64() * speed * 1e9;
                *origin + ChronoDuration::nanoseconds(nanos as i64)
            }
        }
    }

    /// Real time that passes while this clock advances by `d`.
    pub fn real(&self, d: Duration) -> Duration {
        match &*self.inner {
            Inner::System => d,
            Inner::Scaled { speed, .. } => d.div_f64(*speed),
        }
    }

    /// Clock time that passes in real time `d`.
    pub fn scaled_from_real(&self, d: Duration) -> Duration {
        match &*self.inner {
            Inner::System => d,
            Inner::Scaled { speed, .. } => d.mul_f64(*speed),
        }
    }

    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real(d)).await
    }

    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        let d = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        self.sleep(d).await
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::System => f.write_str("Clock::System"),
            Inner::Scaled { speed, .. } => write!(f, "Clock::Scaled(x{speed})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_fast() {
        let origin = "2026-03-08T06:00:00Z".parse().unwrap();
        let c = Clock::scaled(origin, 3600.0);
        std::thread::sleep(Duration::from_millis(50));
        let advanced = c.now() - origin;
        assert!(advanced >= ChronoDuration::seconds(170), "{advanced}");
        assert!(advanced < ChronoDuration::seconds(3600));
        assert_eq!(c.real(Duration::from_secs(3600)), Duration::from_secs(1));
    }
}
