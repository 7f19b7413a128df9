//! What `/metrics` serves: the series' names, their HELP texts, and the
//! helpers that record them, over a Prometheus recorder owned by the daemon
//! (not installed process-wide, so that several daemons in one process keep
//! separate series).
//!
//! Counters and histograms are recorded where things happen. The gauges
//! that describe the database (leads by status, live calls, provider
//! pauses) are read from it when `/metrics` is scraped, at most once every
//! `GAUGE_REFRESH`: they are the same on every daemon sharing the database,
//! so a dashboard takes their `max`, not their `sum`.

use crate::store::Store;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub const CALLS_PLACED: &str = "dialer_calls_placed_total";
pub const CALLS_NOT_PLACED: &str = "dialer_calls_not_placed_total";
pub const CALLER_ID_CAPPED: &str = "dialer_caller_id_capped_total";
pub const CALLS_UNKNOWN: &str = "dialer_calls_unknown_total";
pub const CALL_OUTCOMES: &str = "dialer_call_outcomes_total";
pub const PROVIDER_UNUSABLE: &str = "dialer_provider_unusable_total";
pub const LIVE_CALLS: &str = "dialer_live_calls";
pub const LEADS: &str = "dialer_leads";
pub const PROVIDER_PAUSED: &str = "dialer_provider_paused";
pub const LIMITER_WAIT: &str = "dialer_limiter_wait_seconds";
pub const PLACE_REQUEST: &str = "dialer_place_request_seconds";
pub const POLL_REQUEST: &str = "dialer_poll_request_seconds";
pub const CLAIM: &str = "dialer_claim_seconds";
pub const WEBHOOKS_ACCEPTED: &str = "dialer_webhooks_accepted_total";
pub const WEBHOOKS_REFUSED: &str = "dialer_webhooks_refused_total";
pub const DATABASE_ERRORS: &str = "dialer_database_errors_total";
pub const BUILD_INFO: &str = "dialer_build_info";
pub const OUTBOUND_DELIVERED: &str = "dialer_outbound_delivered_total";
pub const OUTBOUND_FAILURES: &str = "dialer_outbound_failures_total";
pub const OUTBOUND_GIVEN_UP: &str = "dialer_outbound_given_up_total";
pub const OUTBOUND_BACKLOG: &str = "dialer_outbound_backlog";
pub const OUTBOUND_OLDEST: &str = "dialer_outbound_oldest_seconds";

/// How stale the database gauges may be when `/metrics` is scraped: a
/// scrape reads the database at most this often, whatever the scrape rate.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Histogram buckets, in seconds: from a quick database statement to a
/// place request at its longest timeout.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Lead statuses the `dialer_leads` gauge always has a series for.
const LEAD_STATUSES: &[&str] = &[
    "pending",
    "in_progress",
    "completed",
    "exhausted",
    "skipped",
    "canceled",
];

/// Why a webhook was refused, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooLarge,
    Unauthorized,
    BadRequest,
    UnknownProvider,
    Database,
}

impl Refused {
    pub const ALL: [Refused; 5] = [
        Refused::TooLarge,
        Refused::Unauthorized,
        Refused::BadRequest,
        Refused::UnknownProvider,
        Refused::Database,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::Unauthorized => "unauthorized",
            Refused::BadRequest => "bad_request",
            Refused::UnknownProvider => "unknown_provider",
            Refused::Database => "database",
        }
    }
}

/// The series a daemon serves, and when its database gauges were read.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    refresh: tokio::sync::Mutex<Refresh>,
}

#[derive(Default)]
struct Refresh {
    at: Option<Instant>,
    /// Gauge series set at the last refresh, so that those the database no
    /// longer reports go back to 0 instead of keeping an old value.
    leads: BTreeSet<(String, String)>,
    live: BTreeSet<(String, String)>,
    paused: BTreeSet<(String, String)>,
}

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect::<Vec<_>>(),
    )
}

impl Metrics {
    /// A fresh set of series: every counter and histogram of the given
    /// campaigns (id, provider) and providers at 0, so that `/metrics`
    /// shows them before the first event.
    pub fn new(campaigns: &[(String, String)], providers: &[String]) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let m = Metrics {
            recorder,
            handle,
            refresh: tokio::sync::Mutex::new(Refresh::default()),
        };
        m.describe();
        m.gauge(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        m.counter(DATABASE_ERRORS, &[]).absolute(0);
        for (campaign, provider) in campaigns {
            m.register_campaign(campaign, provider);
        }
        for p in providers {
            m.register_provider(p);
        }
        m
    }

    /// Every series of a campaign, at 0 until something happens.
    pub fn register_campaign(&self, campaign: &str, provider: &str) {
        let l = [("campaign", campaign), ("provider", provider)];
        for name in [CALLS_PLACED, CALLS_NOT_PLACED, CALLS_UNKNOWN] {
            self.counter(name, &l).absolute(0);
        }
        self.counter(CALLER_ID_CAPPED, &[("campaign", campaign)])
            .absolute(0);
        for o in crate::domain::Outcome::ALL {
            self.outcome(campaign, provider, o.as_str()).absolute(0);
        }
        self.gauge(LIVE_CALLS, &l).set(0.0);
        for s in LEAD_STATUSES {
            self.gauge(LEADS, &[("campaign", campaign), ("status", s)])
                .set(0.0);
        }
        let _ = self.claim_latency(campaign);
        let _ = self.limiter_wait(&format!("campaign:{campaign}"));
    }

    /// Every series of a provider, at 0 until something happens.
    pub fn register_provider(&self, p: &str) {
        self.counter(PROVIDER_UNUSABLE, &[("provider", p)])
            .absolute(0);
        self.gauge(PROVIDER_PAUSED, &[("provider", p), ("reason", "")])
            .set(0.0);
        let _ = self.place_latency(p);
        let _ = self.poll_latency(p);
        let _ = self.limiter_wait(&format!("provider:{p}"));
        for r in ["applied", "unknown_call"] {
            self.webhook_accepted(p, r).absolute(0);
        }
        for r in Refused::ALL {
            self.webhook_refused(p, r).absolute(0);
        }
    }

    fn describe(&self) {
        let r = &self.recorder;
        let c = |name: &'static str, help: &'static str| {
            r.describe_counter(name.into(), Some(Unit::Count), help.into())
        };
        c(
            CALLS_PLACED,
            "Place requests the provider accepted (a call was placed), by campaign and provider.",
        );
        c(
            CALLS_NOT_PLACED,
            "Place requests the provider refused before placing (the same attempt is sent again later).",
        );
        c(
            CALLER_ID_CAPPED,
            "Leads not dialled because every caller ID they may use was at its [caller_id] cap, by campaign.",
        );
        c(
            CALLS_UNKNOWN,
            "Place requests whose fate is unknown (timeout, 5xx): never re-sent.",
        );
        c(
            CALL_OUTCOMES,
            "Calls that ended, by campaign, provider and outcome.",
        );
        c(
            PROVIDER_UNUSABLE,
            "Times a provider answered that the account is unusable (bad key, no credits).",
        );
        c(
            WEBHOOKS_ACCEPTED,
            "Webhook deliveries accepted, by provider and result (applied, unknown_call).",
        );
        c(
            WEBHOOKS_REFUSED,
            "Webhook deliveries refused, by provider and reason (too_large = 413, unauthorized = 401, bad_request = 400, unknown_provider = 404, database = 503).",
        );
        c(
            OUTBOUND_DELIVERED,
            "Outbound webhook events the receiver acknowledged with a 2xx, by webhook.",
        );
        c(
            OUTBOUND_FAILURES,
            "Outbound webhook deliveries that failed (non-2xx, timeout, connection error) and are tried again, by webhook.",
        );
        c(
            OUTBOUND_GIVEN_UP,
            "Outbound webhook events given up (older than give_up_after, never delivered), by webhook.",
        );
        c(
            DATABASE_ERRORS,
            "Database statements that failed (each is retried or handed back).",
        );
        let g = |name: &'static str, help: &'static str| {
            r.describe_gauge(name.into(), None, help.into())
        };
        g(
            LIVE_CALLS,
            "Attempts sending or placed (the call may be live), by campaign and provider, read from the database.",
        );
        g(
            LEADS,
            "Leads by campaign and status, read from the database.",
        );
        g(
            PROVIDER_PAUSED,
            "1 while placing on the provider is paused (429, unusable account, outage), with the reason; read from the database.",
        );
        g(
            OUTBOUND_BACKLOG,
            "Outbound webhook events neither delivered nor given up, by webhook, read from the database.",
        );
        g(
            OUTBOUND_OLDEST,
            "Age in seconds of the oldest undelivered outbound webhook event, by webhook (0 when none).",
        );
        g(
            BUILD_INFO,
            "Always 1; the version label says which build runs.",
        );
        let h = |name: &'static str, help: &'static str| {
            r.describe_histogram(name.into(), Some(Unit::Seconds), help.into())
        };
        h(
            LIMITER_WAIT,
            "Seconds waited for a cell of a rate limit (campaign:<id> or provider:<name>).",
        );
        h(PLACE_REQUEST, "Seconds a place request took, by provider.");
        h(
            POLL_REQUEST,
            "Seconds a status poll request took, by provider.",
        );
        h(
            CLAIM,
            "Seconds a claim of due leads took in the database, by campaign.",
        );
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &META)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &META)
    }

    pub fn placed(&self, campaign: &str, provider: &str) {
        self.counter(
            CALLS_PLACED,
            &[("campaign", campaign), ("provider", provider)],
        )
        .increment(1);
    }

    pub fn not_placed(&self, campaign: &str, provider: &str) {
        self.counter(
            CALLS_NOT_PLACED,
            &[("campaign", campaign), ("provider", provider)],
        )
        .increment(1);
    }

    pub fn unknown(&self, campaign: &str, provider: &str) {
        self.counter(
            CALLS_UNKNOWN,
            &[("campaign", campaign), ("provider", provider)],
        )
        .increment(1);
    }

    pub fn unusable(&self, provider: &str) {
        self.counter(PROVIDER_UNUSABLE, &[("provider", provider)])
            .increment(1);
    }

    fn outcome(&self, campaign: &str, provider: &str, outcome: &str) -> Counter {
        self.counter(
            CALL_OUTCOMES,
            &[
                ("campaign", campaign),
                ("provider", provider),
                ("outcome", outcome),
            ],
        )
    }

    pub fn ended(&self, campaign: &str, provider: &str, outcome: &str) {
        self.outcome(campaign, provider, outcome).increment(1);
    }

    fn webhook_accepted(&self, provider: &str, result: &str) -> Counter {
        self.counter(
            WEBHOOKS_ACCEPTED,
            &[("provider", provider), ("result", result)],
        )
    }

    fn webhook_refused(&self, provider: &str, reason: Refused) -> Counter {
        self.counter(
            WEBHOOKS_REFUSED,
            &[("provider", provider), ("reason", reason.as_str())],
        )
    }

    /// A webhook delivery was taken: `applied`, or `unknown_call`.
    pub fn webhook_ok(&self, provider: &str, result: &str) {
        self.webhook_accepted(provider, result).increment(1);
    }

    pub fn webhook_refused_for(&self, provider: &str, reason: Refused) {
        self.webhook_refused(provider, reason).increment(1);
    }

    /// Every series of an outbound webhook, at 0 until something happens.
    pub fn register_outbound(&self, webhook: &str) {
        for name in [OUTBOUND_DELIVERED, OUTBOUND_FAILURES, OUTBOUND_GIVEN_UP] {
            self.counter(name, &[("webhook", webhook)]).absolute(0);
        }
        self.outbound_backlog(webhook, 0, 0.0);
    }

    pub fn outbound_delivered(&self, webhook: &str) {
        self.counter(OUTBOUND_DELIVERED, &[("webhook", webhook)])
            .increment(1);
    }

    pub fn outbound_failed(&self, webhook: &str) {
        self.counter(OUTBOUND_FAILURES, &[("webhook", webhook)])
            .increment(1);
    }

    pub fn outbound_given_up(&self, webhook: &str) {
        self.counter(OUTBOUND_GIVEN_UP, &[("webhook", webhook)])
            .increment(1);
    }

    pub fn outbound_backlog(&self, webhook: &str, events: i64, oldest_seconds: f64) {
        self.gauge(OUTBOUND_BACKLOG, &[("webhook", webhook)])
            .set(events as f64);
        self.gauge(OUTBOUND_OLDEST, &[("webhook", webhook)])
            .set(oldest_seconds);
    }

    pub fn caller_id_capped(&self, campaign: &str) {
        self.counter(CALLER_ID_CAPPED, &[("campaign", campaign)])
            .increment(1);
    }

    pub fn database_error(&self) {
        self.counter(DATABASE_ERRORS, &[]).increment(1);
    }

    /// The histogram of waits for a cell of the rate limit `limit`.
    pub fn limiter_wait(&self, limit: &str) -> Histogram {
        self.histogram(LIMITER_WAIT, &[("limit", limit)])
    }

    pub fn place_latency(&self, provider: &str) -> Histogram {
        self.histogram(PLACE_REQUEST, &[("provider", provider)])
    }

    pub fn poll_latency(&self, provider: &str) -> Histogram {
        self.histogram(POLL_REQUEST, &[("provider", provider)])
    }

    pub fn claim_latency(&self, campaign: &str) -> Histogram {
        self.histogram(CLAIM, &[("campaign", campaign)])
    }

    /// Makes the next `/metrics` read the database gauges again (a pause
    /// was just written).
    pub async fn stale(&self) {
        self.refresh.lock().await.at = None;
    }

    /// The Prometheus text, with the database gauges read again first when
    /// they are older than `GAUGE_REFRESH`. A database that does not answer
    /// leaves them as they were and counts a database error.
    pub async fn render(&self, store: &dyn Store, providers: &[String]) -> String {
        {
            let mut r = self.refresh.lock().await;
            if r.at.is_none_or(|t| t.elapsed() >= GAUGE_REFRESH) {
                match self.read_gauges(store, providers, &mut r).await {
                    Ok(()) => r.at = Some(Instant::now()),
                    Err(e) => {
                        self.database_error();
                        tracing::warn!(error = %e, "metrics: cannot read the database gauges");
                    }
                }
            }
        }
        self.handle.run_upkeep();
        self.handle.render()
    }

    async fn read_gauges(
        &self,
        store: &dyn Store,
        providers: &[String],
        r: &mut Refresh,
    ) -> crate::store::Result<()> {
        let g = store.gauges().await?;
        let now = chrono::Utc::now();
        let pauses = store.provider_pauses().await?;
        let mut leads = BTreeMap::new();
        for ((campaign, status), n) in g.leads {
            leads.insert((campaign, status), n);
        }
        set_all(&mut r.leads, &leads, |(c, s), v| {
            self.gauge(LEADS, &[("campaign", c), ("status", s)]).set(v)
        });
        set_all(&mut r.live, &g.live, |(c, p), v| {
            self.gauge(LIVE_CALLS, &[("campaign", c), ("provider", p)])
                .set(v)
        });
        let mut paused = BTreeMap::new();
        for p in providers {
            paused.insert((p.clone(), String::new()), 0);
        }
        for p in pauses.into_iter().filter(|p| p.until > now) {
            paused.remove(&(p.provider.clone(), String::new()));
            paused.insert((p.provider, p.reason), 1);
        }
        set_all(&mut r.paused, &paused, |(p, why), v| {
            self.gauge(PROVIDER_PAUSED, &[("provider", p), ("reason", why)])
                .set(v)
        });
        Ok(())
    }
}

/// Sets each series in `now` to its value, and those set last time but
/// absent now to 0.
fn set_all(
    last: &mut BTreeSet<(String, String)>,
    now: &BTreeMap<(String, String), i64>,
    set: impl Fn((&str, &str), f64),
) {
    for k in last.iter().filter(|k| !now.contains_key(*k)) {
        set((&k.0, &k.1), 0.0);
    }
    for (k, v) in now {
        set((&k.0, &k.1), *v as f64);
    }
    *last = now.keys().cloned().collect();
}
