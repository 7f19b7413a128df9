//! The running daemon's shared parts, built once from configuration: store,
//! clock, provider handles, the current campaigns (replaced on reload).

use crate::clock::Clock;
use crate::config::{CampaignConfig, Loaded, ProviderConfig};
use crate::pacing::ProviderPacing;
use crate::provider::{self, Provider};
use crate::store::{CampaignRow, Store};
use crate::telemetry::Metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
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
}

impl Daemon {
    pub fn new(store: Arc<dyn Store>, clock: Clock, loaded: &Loaded) -> anyhow::Result<Arc<Self>> {
        let mut providers = BTreeMap::new();
        for (name, cfg) in &loaded.daemon.providers {
            let api = provider::build(cfg, &clock)?;
            providers.insert(
                name.clone(),
                Arc::new(ProviderHandle {
                    cfg: cfg.clone(),
                    api,
                    pacing: ProviderPacing::new(&clock, cfg.requests_per_minute),
                }),
            );
        }
        Ok(Self::with_providers(
            store,
            clock,
            providers,
            &loaded.campaigns,
        ))
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
            metrics: Metrics::default(),
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
        self.campaigns_tx.send_replace(index(campaigns));
        Ok(())
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
