//! The simulated provider (`kind = "simulated"`): accepts every call; each
//! call ends after a duration drawn between `min_duration` and
//! `max_duration` with an outcome drawn from the configured weights (seeded).
//! The daemon learns the end by polling, the same path as a real provider.
//! Calls are rows in a map compared against the clock: no task sleeps per
//! call, so thousands can be live at once.

use super::*;
use crate::config::SimConfig;
use crate::domain::Outcome;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Mutex;

/// The simulated provider as configuration sees it: no account, no
/// requests, no agent of its own, calls drawn from the simulation keys.
pub const FACTS: Facts = Facts {
    kind: ProviderKind::Simulated,
    name: "simulated",
    title: "Simulated",
    default_base_url: None,
    default_requests_per_minute: 60_000,
    needs_api_key: false,
    needs_username: false,
    needs_skill_id: false,
    default_agent_id: Some("simulated"),
    caller_id: CallerId::Recorded,
    webhooks: Webhooks::NotSent,
    simulation: true,
    // Makes no requests: polls take no cell.
    build: |cfg, clock, _budget| Ok(Arc::new(Simulated::new(cfg, clock))),
};

pub struct Simulated {
    name: String,
    cfg: SimConfig,
    clock: Clock,
    state: Mutex<State>,
}

struct State {
    rng: StdRng,
    next_id: u64,
    calls: HashMap<String, SimCall>,
}

struct SimCall {
    attempt_id: String,
    started: DateTime<Utc>,
    ends: DateTime<Utc>,
    outcome: Outcome,
}

impl Simulated {
    pub fn new(cfg: &ProviderConfig, clock: Clock) -> Self {
        let sim = cfg.sim.clone().unwrap_or(SimConfig {
            min_duration: Duration::from_secs(1),
            max_duration: Duration::from_secs(5),
            seed: 42,
            outcomes: vec![(Outcome::Completed, 1.0)],
        });
        Simulated {
            name: cfg.name.clone(),
            state: Mutex::new(State {
                rng: StdRng::seed_from_u64(sim.seed),
                next_id: 1,
                calls: HashMap::new(),
            }),
            cfg: sim,
            clock,
        }
    }

    /// Calls accepted and not yet reported ended.
    pub fn live_calls(&self) -> usize {
        self.lock().calls.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn draw_outcome(&self, rng: &mut StdRng) -> Outcome {
        let total: f64 = self.cfg.outcomes.iter().map(|(_, w)| w).sum();
        let mut x = rng.random::<f64>() * total;
        for (o, w) in &self.cfg.outcomes {
            if x < *w {
                return *o;
            }
            x -= w;
        }
        self.cfg
            .outcomes
            .last()
            .map(|(o, _)| *o)
            .unwrap_or(Outcome::Completed)
    }
}

fn answered(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::Completed | Outcome::Transferred | Outcome::Voicemail
    )
}

#[async_trait]
impl Provider for Simulated {
    fn name(&self) -> &str {
        &self.name
    }

    async fn place(&self, req: &PlaceRequest) -> PlaceResult {
        let now = self.clock.now();
        let mut st = self.lock();
        let outcome = self.draw_outcome(&mut st.rng);
        let (min, max) = (self.cfg.min_duration, self.cfg.max_duration);
        let secs = if max > min {
            st.rng.random_range(min.as_secs_f64()..=max.as_secs_f64())
        } else {
            min.as_secs_f64()
        };
        let id = format!("sim-{}", st.next_id);
        st.next_id += 1;
        st.calls.insert(
            id.clone(),
            SimCall {
                attempt_id: req.attempt_id.clone(),
                started: now,
                ends: now + chrono::Duration::milliseconds((secs * 1000.0) as i64),
                outcome,
            },
        );
        PlaceResult::Placed {
            provider_call_id: id,
            provider_status: "ringing".into(),
        }
    }

    async fn poll(&self, targets: &[PollTarget]) -> Result<Vec<Polled>, ProviderError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let mut out = Vec::new();
        for t in targets {
            let Some(id) = &t.provider_call_id else {
                continue;
            };
            let Some(call) = st.calls.get(id) else {
                continue;
            };
            let status = if now >= call.ends {
                let answered_at = answered(call.outcome).then_some(call.started);
                CallStatus {
                    provider_call_id: Some(id.clone()),
                    attempt_id: Some(call.attempt_id.clone()),
                    provider_status: format!("ended:{}", call.outcome),
                    outcome: Some(call.outcome),
                    status_at: Some(call.ends),
                    answered_at,
                    ended_at: Some(call.ends),
                    duration_seconds: answered_at.map(|a| (call.ends - a).num_seconds()),
                    summary: answered(call.outcome).then(|| "Simulated conversation.".into()),
                    ..Default::default()
                }
            } else {
                CallStatus {
                    provider_call_id: Some(id.clone()),
                    attempt_id: Some(call.attempt_id.clone()),
                    provider_status: "in-progress".into(),
                    status_at: Some(call.started),
                    ..Default::default()
                }
            };
            if status.outcome.is_some() {
                st.calls.remove(id);
            }
            out.push(Polled {
                attempt_id: t.attempt_id.clone(),
                status,
            });
        }
        Ok(out)
    }

    fn poll_batch_size(&self) -> usize {
        1000
    }
}
