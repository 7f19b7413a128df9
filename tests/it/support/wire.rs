//! What reached a fake provider and when, read on the fake's own clock: the
//! log a test judges the daemon by, whatever the daemon wrote about itself;
//! and the serving of a fake on a port of its own.

use axum::Router;
use chrono::{DateTime, Utc};
use dialer::clock::Clock;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request that places a call.
    Place,
    /// A get of one call by its id.
    Get,
    /// A list page (or a probe that lists).
    List,
}

/// One request as it reached the fake.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub kind: Kind,
    /// On the fake's clock.
    pub at: DateTime<Utc>,
    /// The HTTP status the fake answered.
    pub status: u16,
    /// For a place request, the number it asked to call.
    pub to: Option<String>,
}

/// When the place requests to `to` that the fake accepted (2xx) arrived,
/// in order.
pub fn placed_to(log: &[Arrival], to: &str) -> Vec<DateTime<Utc>> {
    log.iter()
        .filter(|a| {
            a.kind == Kind::Place && a.to.as_deref() == Some(to) && (200..300).contains(&a.status)
        })
        .map(|a| a.at)
        .collect()
}

/// A fake's log of arrivals, each stamped on the fake's clock as it comes.
#[derive(Clone)]
pub struct Log {
    clock: Clock,
    entries: Arc<Mutex<Vec<Arrival>>>,
}

impl Log {
    pub fn new(clock: Clock) -> Self {
        Log {
            clock,
            entries: Arc::default(),
        }
    }

    pub fn arrived(&self, kind: Kind, status: u16, to: Option<String>) {
        let at = self.clock.now();
        self.entries.lock().unwrap().push(Arrival {
            kind,
            at,
            status,
            to,
        });
    }

    pub fn entries(&self) -> Vec<Arrival> {
        self.entries.lock().unwrap().clone()
    }
}

/// Serves `app` on a loopback port of its own; returns `http://host:port`.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}
