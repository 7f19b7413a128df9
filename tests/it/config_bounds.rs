//! Bounded configuration and supervised tasks: values the daemon's time
//! arithmetic cannot hold are refused at load, and a long-lived task that
//! dies is logged with its cause and restarted instead of leaving a
//! half-alive daemon.

use async_trait::async_trait;
use dialer::clock::Clock;
use dialer::daemon::{Daemon, ProviderHandle};
use dialer::engine;
use dialer::pacing::ProviderPacing;
use dialer::provider::{
    self, PlaceRequest, PlaceResult, PollTarget, Polled, Provider, ProviderError,
};
use dialer::store::NewLead;
use serde_json::Map;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PANIC_MESSAGE: &str = "adapter bug: a status answer it cannot read";

/// The simulated provider, except that its first status lookup panics, as an
/// adapter bug meeting an unexpected answer would.
struct PanicsOnFirstPoll {
    inner: Arc<dyn Provider>,
    polls: Arc<AtomicUsize>,
}

#[async_trait]
impl Provider for PanicsOnFirstPoll {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn place(&self, req: &PlaceRequest) -> PlaceResult {
        self.inner.place(req).await
    }
    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("{PANIC_MESSAGE}");
        }
        self.inner.poll(targets).await
    }
}

const CAMPAIGN: &str = r#"
id = "c1"
provider = "sim"
[pacing]
calls_per_minute = 600
burst = 10
max_concurrent = 10
[compliance]
local_hours = "off"
"#;

/// The poller of a provider panics on its first round: the panic is logged
/// with its message and the poller is restarted, so the calls placed before
/// it still get their final status.
#[tokio::test]
async fn a_panicking_poller_is_logged_and_restarted() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("dialer=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: every task of the daemon runs on this thread
    // and logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = crate::support::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon_toml = format!(
        r#"
campaigns_dir = "campaigns"
[database]
url = "{}"
[providers.sim]
kind = "simulated"
min_duration = "0s"
max_duration = "500ms"
seed = 7
requests_per_minute = 60000
poll_interval = "200ms"
outcomes = {{ completed = 1.0 }}
"#,
        db.url
    );
    let loaded = crate::support::write_config(dir.path(), &daemon_toml, &[("c1.toml", CAMPAIGN)]);
    let clock = Clock::system();
    let polls = Arc::new(AtomicUsize::new(0));
    let mut providers = BTreeMap::new();
    for (name, cfg) in &loaded.daemon.providers {
        let inner = provider::build(cfg, &clock).unwrap();
        providers.insert(
            name.clone(),
            Arc::new(ProviderHandle {
                cfg: cfg.clone(),
                api: Arc::new(PanicsOnFirstPoll {
                    inner,
                    polls: polls.clone(),
                }),
                pacing: ProviderPacing::new(
                    db.store.clone(),
                    &clock,
                    name,
                    cfg.requests_per_minute,
                ),
            }),
        );
    }
    let daemon = Daemon::with_providers(
        db.store.clone(),
        clock.clone(),
        providers,
        &loaded.campaigns,
    );
    daemon.set_campaigns(&loaded.campaigns).await.unwrap();
    let leads: Vec<NewLead> = (0..5)
        .map(|i| NewLead {
            phone: format!("+1212736{:04}", 100 + i),
            name: None,
            timezone: None,
            variables: Map::new(),
        })
        .collect();
    db.store
        .insert_leads("c1", &leads, clock.now())
        .await
        .unwrap();

    let running = engine::start(daemon, None);
    let started = Instant::now();
    let mut open = i64::MAX;
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = db
            .scalar("SELECT count(*) FROM leads WHERE status IN ('pending', 'in_progress')")
            .await;
        if open == 0 {
            break;
        }
    }
    running.stop(Duration::from_secs(5)).await;

    let log = logs.text();
    assert!(
        polls.load(Ordering::SeqCst) >= 2,
        "the provider was never polled again after the panic\n{log}"
    );
    assert_eq!(
        open, 0,
        "{open} leads still open: polling did not resume\n{log}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM leads WHERE status = 'completed'")
            .await,
        5
    );
    let line = log
        .lines()
        .find(|l| l.contains(PANIC_MESSAGE))
        .unwrap_or_else(|| panic!("the panic message is not logged:\n{log}"));
    assert!(line.contains("ERROR"), "not logged as an error: {line}");
    assert!(line.contains("restart"), "does not say it restarts: {line}");
}
