//! The live page at `/`: per campaign, its leads by status, outcomes, calls
//! per minute over the last hour, live calls against the limits, paused
//! providers and the next opening of the calling window. Read-only. The
//! page is plain HTML, CSS and JavaScript compiled into the binary (no build
//! step, nothing fetched from elsewhere); it polls `/api/overview` every two
//! seconds and draws the chart itself as SVG.

use crate::daemon::Daemon;
use crate::domain::{rfc3339, LeadStatus, Outcome};
use crate::store::StoreError;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("live.js");
const STYLE: &str = include_str!("live.css");

/// Minutes of history in the chart, the current one last.
pub const CHART_MINUTES: usize = 60;

/// However many pages are open, the database answers one overview per this
/// much real time; the others get the same answer.
const FRESH_FOR: Duration = Duration::from_secs(1);

struct Live {
    daemon: Arc<Daemon>,
    /// The last overview and when it was built.
    cache: Mutex<Option<(Instant, Arc<String>)>>,
}

pub fn routes(daemon: Arc<Daemon>) -> Router {
    let live = Arc::new(Live {
        daemon,
        cache: Mutex::new(None),
    });
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/live/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/live/live.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/overview", get(overview))
        .with_state(live)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn overview(State(live): State<Arc<Live>>) -> Response {
    let mut cache = live.cache.lock().await;
    let body = match cache.as_ref() {
        Some((at, body)) if at.elapsed() < FRESH_FOR => body.clone(),
        _ => match build(&live.daemon).await {
            Ok(o) => {
                let body = Arc::new(serde_json::to_string(&o).unwrap_or_else(|_| "{}".into()));
                *cache = Some((Instant::now(), body.clone()));
                body
            }
            Err(e) => {
                tracing::warn!(error = %e, "live page: overview not available");
                let body = serde_json::json!({ "error": format!("database unavailable: {e}") });
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CACHE_CONTROL, "no-store")],
                    axum::Json(body),
                )
                    .into_response();
            }
        },
    };
    drop(cache);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.as_str().to_owned(),
    )
        .into_response()
}

/// What `/api/overview` answers.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub now: String,
    pub campaigns: Vec<CampaignView>,
    pub providers: Vec<ProviderView>,
}

#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: String,
    pub provider: String,
    pub paused: bool,
    /// Every lead status, zero included.
    pub leads: BTreeMap<String, i64>,
    /// Every outcome, zero included.
    pub outcomes: BTreeMap<String, i64>,
    /// Attempts whose call may be live now (`sending`, `placed`).
    pub live_calls: i64,
    pub max_concurrent: u32,
    pub calls_per_minute_limit: u32,
    /// Counted attempts per minute, `CHART_MINUTES` of them, oldest first;
    /// the last is the minute under way.
    pub calls_per_minute: Vec<i64>,
    /// Whether the time rules allow calling now in the campaign's zone.
    pub window_open: bool,
    /// The first instant from now the window is open (`now` itself when it
    /// is); `None` when none within 366 days.
    pub next_opening: Option<String>,
    pub unusable_leads: i64,
}

#[derive(Debug, Serialize)]
pub struct ProviderView {
    pub name: String,
    pub kind: String,
    /// Attempts whose call may be live now, over every campaign on it.
    pub live_calls: i64,
    pub max_concurrent_calls: u32,
    pub requests_per_minute: u32,
    /// Set while this daemon holds placing on the provider.
    pub paused: Option<PauseView>,
}

#[derive(Debug, Serialize)]
pub struct PauseView {
    pub until: String,
    pub reason: String,
    /// The account is unusable: placing resumes only after a probe answers.
    pub unusable: bool,
}

/// Reads the overview: a few grouped counts per campaign, one grouped count
/// of the last hour's attempts and one of live calls.
pub async fn build(d: &Daemon) -> Result<Overview, StoreError> {
    let now = d.clock.now();
    let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    let first_minute = this_minute - TimeDelta::minutes(CHART_MINUTES as i64 - 1);
    let mut per_minute: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in d.store.attempts_per_minute(first_minute).await? {
        if let Some(i) = chart_index(first_minute, m.minute) {
            per_minute
                .entry(m.campaign_id)
                .or_insert_with(|| vec![0; CHART_MINUTES])[i] += m.attempts;
        }
    }
    let live = d.store.live_calls_by_provider().await?;

    let mut campaigns = Vec::new();
    for c in d.campaigns().values() {
        let stats = d.store.campaign_stats(&c.id).await?;
        let zone = c.rules.zone_of(None, "");
        let window_open = c.rules.is_open(&zone, "", now);
        let next_opening = if window_open {
            Some(now)
        } else {
            c.rules.next_opening(&zone, "", now)
        };
        campaigns.push(CampaignView {
            id: c.id.clone(),
            provider: c.provider.clone(),
            paused: c.paused,
            leads: every(LeadStatus::ALL.iter().map(|s| s.as_str()), &stats.leads),
            outcomes: every(Outcome::ALL.iter().map(|o| o.as_str()), &stats.outcomes),
            live_calls: stats.in_flight,
            max_concurrent: c.pacing.max_concurrent,
            calls_per_minute_limit: c.pacing.calls_per_minute,
            calls_per_minute: per_minute
                .remove(&c.id)
                .unwrap_or_else(|| vec![0; CHART_MINUTES]),
            window_open,
            next_opening: next_opening.map(rfc3339),
            unusable_leads: stats.unusable,
        });
    }
    let providers = d
        .providers
        .iter()
        .map(|(name, h)| ProviderView {
            name: name.clone(),
            kind: h.cfg.kind.facts().name.to_string(),
            live_calls: live.get(name).copied().unwrap_or(0),
            max_concurrent_calls: h.cfg.max_concurrent_calls,
            requests_per_minute: h.cfg.requests_per_minute,
            paused: h.pacing.paused(now).map(|p| PauseView {
                until: rfc3339(p.until),
                reason: p.reason,
                unusable: p.unusable,
            }),
        })
        .collect();
    Ok(Overview {
        now: rfc3339(now),
        campaigns,
        providers,
    })
}

/// Where the minute starting at `minute` goes in a chart whose first bar is
/// `first`; `None` outside it.
fn chart_index(first: DateTime<Utc>, minute: DateTime<Utc>) -> Option<usize> {
    let i = (minute - first).num_minutes();
    usize::try_from(i).ok().filter(|&i| i < CHART_MINUTES)
}

/// `counts` with a zero for every name it lacks.
fn every<'a>(
    names: impl Iterator<Item = &'a str>,
    counts: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = names
        .map(|n| (n.to_string(), counts.get(n).copied().unwrap_or(0)))
        .collect();
    for (k, v) in counts {
        out.entry(k.clone()).or_insert(*v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_minute_lands_on_its_bar_and_older_ones_on_none() {
        let first = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        assert_eq!(chart_index(first, first), Some(0));
        assert_eq!(chart_index(first, first + TimeDelta::minutes(59)), Some(59));
        assert_eq!(chart_index(first, first + TimeDelta::minutes(60)), None);
        assert_eq!(chart_index(first, first - TimeDelta::minutes(1)), None);
    }
}
