//! The running daemon's shared parts, built once from configuration: store,
//! clock, provider handles, the current campaigns (replaced on reload).

use crate::clock::Clock;
use crate::config::{CampaignConfig, Loaded, ProviderConfig};
use crate::metrics::Metrics;
use crate::pacing::{Pause, ProviderPacing};
use crate::provider::{self, Provider};
use crate::store::{CampaignRow, ProviderPause, Store};
use crate::watchdog::Heartbeats;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub type Campaigns = Arc<BTreeMap<String, Arc<CampaignConfig>>>;

/// A provider account: its adapter and its budget.
pub struct ProviderHandle {
    pub cfg: ProviderConfig,
    pub api: Arc<dyn Provider>,
    pub pacing: ProviderPacing,
}

pub struct Daemon {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub providers: BTreeMap<String, Arc<ProviderHandle>>,
    campaigns_tx: watch::Sender<Campaigns>,
    /// Identifies this process in `leads.lease_owner`.
    pub owner: String,
    pub shutdown: CancellationToken,
    pub metrics: Metrics,
    /// The loops' heartbeats, which the systemd watchdog pings depend on.
    pub heartbeats: Heartbeats,
    /// Per provider: woken when one of this daemon's attempts settles or a
    /// claimed lead is handed back, so a campaign waiting at a concurrency
    /// limit claims again at once instead of polling the database.
    slots: BTreeMap<String, Notify>,
    /// `[[outbound_webhooks]]`: one delivery loop each.
    pub outbound: Vec<crate::config::OutboundWebhookConfig>,
}

impl Daemon {
    pub fn new(store: Arc<dyn Store>, clock: Clock, loaded: &Loaded) -> anyhow::Result<Arc<Self>> {
        let mut providers = BTreeMap::new();
        for (name, cfg) in &loaded.daemon.providers {
            let pacing = ProviderPacing::new(store.clone(), &clock, name, cfg.requests_per_minute);
            // The adapter sends every request on a cell of this same budget.
            let api = provider::build_metered(cfg, &clock, pacing.requests.clone())?;
            providers.insert(
                name.clone(),
                Arc::new(ProviderHandle {
                    cfg: cfg.clone(),
                    api,
                    pacing,
                }),
            );
        }
        let mut daemon = Self::with_providers(store, clock, providers, &loaded.campaigns);
        let outbound = loaded.daemon.outbound_webhooks.clone();
        for w in &outbound {
            daemon.metrics.register_outbound(&w.name);
        }
        Arc::get_mut(&mut daemon)
            .expect("the daemon is not shared yet")
            .outbound = outbound;
        Ok(daemon)
    }

    /// Builds a daemon around ready-made provider handles (tests inject
    /// adapters pointed at servers they run).
    pub fn with_providers(
        store: Arc<dyn Store>,
        clock: Clock,
        providers: BTreeMap<String, Arc<ProviderHandle>>,
        campaigns: &[CampaignConfig],
    ) -> Arc<Self> {
        let (campaigns_tx, _) = watch::channel(index(campaigns));
        let slots = providers
            .keys()
            .map(|k| (k.clone(), Notify::new()))
            .collect();
        let metrics = Metrics::new(
            &campaigns
                .iter()
                .map(|c| (c.id.clone(), c.provider.clone()))
                .collect::<Vec<_>>(),
            &providers.keys().cloned().collect::<Vec<_>>(),
        );
        for (name, p) in &providers {
            p.pacing
                .requests
                .observe_waits(metrics.limiter_wait(&format!("provider:{name}")));
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        Arc::new(Daemon {
            store,
            clock,
            providers,
            campaigns_tx,
            owner: format!(
                "{host}:{}:{}",
                std::process::id(),
                &uuid::Uuid::new_v4().to_string()[..8]
            ),
            shutdown: CancellationToken::new(),
            metrics,
            heartbeats: Heartbeats::default(),
            slots,
            outbound: Vec::new(),
        })
    }

    pub fn campaigns(&self) -> Campaigns {
        self.campaigns_tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Campaigns> {
        self.campaigns_tx.subscribe()
    }

    /// Replaces the campaigns and writes them to the `campaigns` table.
    pub async fn set_campaigns(&self, campaigns: &[CampaignConfig]) -> anyhow::Result<()> {
        sync_campaign_rows(self.store.as_ref(), campaigns, self.clock.now()).await?;
        for c in campaigns {
            self.metrics.register_campaign(&c.id, &c.provider);
        }
        self.campaigns_tx.send_replace(index(campaigns));
        Ok(())
    }

    /// Writes `outbound_routes` for the configured outbound webhooks, so
    /// that from now on the changes they want leave events in `outbox`.
    pub async fn sync_outbound_routes(&self) -> anyhow::Result<()> {
        self.store
            .sync_outbound_routes(&crate::outbound::routes(&self.outbound))
            .await?;
        Ok(())
    }

    /// A lead of `provider` left `in_progress`: a concurrency slot may be free.
    pub fn slot_freed(&self, provider: &str) {
        if let Some(n) = self.slots.get(provider) {
            n.notify_waiters();
        }
    }

    /// What `slot_freed` wakes, for a dispatcher waiting at a limit.
    pub fn slot_signal(&self, provider: &str) -> Option<&Notify> {
        self.slots.get(provider)
    }

    /// Pauses placing on a provider and records the pause in the database
    /// (best effort: the pause holds in this process either way), so that
    /// `status`, `explain`, `/metrics` and other daemons see it.
    pub async fn pause_provider(&self, p: &ProviderHandle, pause: Pause) {
        let since = self.clock.now();
        p.pacing.pause(pause);
        // The longer of two pauses is the one in force.
        let Some(now_paused) = p.pacing.paused(since) else {
            return;
        };
        let row = ProviderPause {
            provider: p.cfg.name.clone(),
            until: now_paused.until,
            reason: now_paused.reason,
            since,
        };
        if let Err(e) = self.store.set_provider_pause(&row).await {
            self.metrics.database_error();
            tracing::warn!(provider = %p.cfg.name, error = %e, "could not record the provider's pause in the database");
        }
        self.metrics.stale().await;
    }

    /// The provider answers again: its pause is lifted here and in the database.
    pub async fn resume_provider(&self, p: &ProviderHandle) {
        p.pacing.resume();
        if let Err(e) = self.store.clear_provider_pause(&p.cfg.name).await {
            self.metrics.database_error();
            tracing::warn!(provider = %p.cfg.name, error = %e, "could not clear the provider's pause in the database");
        }
        self.metrics.stale().await;
    }

    /// Names of the configured providers.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    pub fn campaign(&self, id: &str) -> Option<Arc<CampaignConfig>> {
        self.campaigns_tx.borrow().get(id).cloned()
    }
}

fn index(campaigns: &[CampaignConfig]) -> Campaigns {
    Arc::new(
        campaigns
            .iter()
            .map(|c| (c.id.clone(), Arc::new(c.clone())))
            .collect(),
    )
}

pub async fn sync_campaign_rows(
    store: &dyn Store,
    campaigns: &[CampaignConfig],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let rows: Vec<CampaignRow> = campaigns
        .iter()
        .map(|c| CampaignRow {
            id: c.id.clone(),
            provider: c.provider.clone(),
            paused: c.paused,
            config_hash: c.hash.clone(),
        })
        .collect();
    store.sync_campaigns(&rows, now).await?;
    Ok(())
}
