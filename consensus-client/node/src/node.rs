//! The consensus client's node: connects to the execution client, brings it to the stored
//! head, imports and samples blocks, and keeps the execution client's
//! head on the fork-choice head. Survives the execution client going away: engine calls are
//! retried, and on reconnection the execution client is brought back to the head (blocks it
//! lost are replayed from the store).

use crate::config::{now_ms, Config};
use crate::metrics::ClMetrics;
use alloy_primitives::{Address, B256};
use anyhow::Context as _;
use qoin_cl_sampling as sampling;
use qoin_cl_store::ChainStore;
use qoin_consensus::params::ChainParams;
use qoin_consensus::validate::{validate_header, validate_payload, BlockMeta};
use qoin_engine_api::{EngineClient, EngineError, Payload, Status};
use qoin_primitives::Header;
use qoin_store::StoreOptions;
use qoin_tracing::targets;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an import did not make a block canonical.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The block is invalid (the sender's fault).
    #[error("{0}")]
    Rejected(String),
    /// Sampling caught the execution client (not the block's sender's fault).
    #[error("{0}")]
    ExecutionFaulty(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The consensus client.
pub struct Node {
    pub(crate) params: ChainParams,
    pub(crate) store: ChainStore,
    pub(crate) engine: EngineClient,
    pub(crate) metrics: Arc<ClMetrics>,
    sample_k: usize,
}

pub(crate) async fn timed<T>(h: &qoin_metrics::Histogram, f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    qoin_metrics::observe(h, start.elapsed());
    out
}

/// Connects to the execution client, retrying while it is unreachable; any other failure
/// (a refused token, another protocol version) is returned.
pub async fn connect(
    engine: &EngineClient,
    url: &str,
) -> Result<qoin_engine_api::client::ServerInfo, EngineError> {
    let mut tries = 0u32;
    loop {
        match engine.exchange_capabilities().await {
            Ok(info) => return Ok(info),
            Err(EngineError::Transport(e)) => {
                if tries.is_multiple_of(20) {
                    tracing::info!(target: targets::ENGINE, "waiting for the execution client at {url} ({e})");
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Node {
    /// Connects to the execution client and opens the store.
    pub async fn start(config: &Config, metrics: Arc<ClMetrics>) -> anyhow::Result<Self> {
        let name = format!("qoin-cl/{}", env!("CARGO_PKG_VERSION"));
        let engine = EngineClient::new(&config.engine_url, config.jwt.clone(), &name)?;
        let info = connect(&engine, &config.engine_url).await.map_err(|e| match e {
            EngineError::Unauthenticated(why) => anyhow::anyhow!(
                "the execution client refused our JWT ({why}); qoin-cl and qoin-el must share one secret file"
            ),
            e => anyhow::anyhow!("cannot use the execution client at {}: {e}", config.engine_url),
        })?;
        if info.chain_id != config.genesis.chain_id {
            anyhow::bail!(
                "{} runs chain {}, this genesis is chain {}",
                info.client,
                info.chain_id,
                config.genesis.chain_id
            );
        }
        tracing::info!(target: targets::ENGINE, "connected to {} (engine API v{:?}), genesis {}",
            info.client, info.versions, info.genesis_hash);
        let params = ChainParams::new(&config.genesis, info.genesis_hash, info.genesis_state_root)
            .context("genesis pow parameters")?;
        std::fs::create_dir_all(&config.datadir)?;
        let store = ChainStore::open(
            &config.datadir.join("chaindata"),
            BlockMeta::genesis(&params),
            params.chain_id,
            StoreOptions::default(),
        )?;
        let head = store.head();
        tracing::info!(target: targets::STORE, "chain store: {} blocks, head #{} {head}",
            store.tree().len(),
            store.meta(&head).map_or(0, |m| m.height));
        Ok(Self { params, store, engine, metrics, sample_k: config.sample_k })
    }

    /// The chain store.
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    pub(crate) fn head_meta(&self) -> anyhow::Result<BlockMeta> {
        let head = self.store.head();
        self.store.meta(&head).cloned().context("head block missing from the store")
    }

    /// Brings the execution client to the stored head: tells it the head, and if it does not
    /// know it (it lost blocks), replays them from the store.
    pub async fn sync_execution(&mut self) -> Result<(), EngineError> {
        loop {
            // The fork-choice head, which may be ahead of the head last confirmed (a block
            // stored just before the execution client went away).
            let best = self.store.tree().head();
            let head = self
                .store
                .meta(&best)
                .cloned()
                .ok_or_else(|| EngineError::Internal("head meta missing".into()))?;
            let (status, _) = timed(
                &self.metrics.forkchoice,
                self.engine.forkchoice_updated(head.payload_hash, None, None),
            )
            .await?;
            match status.status {
                Status::Valid => {
                    self.store.set_head(best).map_err(|e| EngineError::Internal(e.to_string()))?;
                    return Ok(());
                }
                Status::Invalid => {
                    let why = status.validation_error.unwrap_or_default();
                    tracing::warn!(target: targets::ENGINE, "the execution client calls head #{} invalid: {why}", head.height);
                    self.store
                        .mark_invalid(&head.hash, &why)
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    let new = self.store.tree().head();
                    self.store.set_head(new).map_err(|e| EngineError::Internal(e.to_string()))?;
                }
                Status::Syncing | Status::Accepted => self.replay(&head.hash).await?,
            }
        }
    }

    /// Sends the blocks of the path to `head` that the execution client lacks.
    async fn replay(&mut self, head: &B256) -> Result<(), EngineError> {
        let path = self.store.tree().path_to(head);
        let mut start = path.len();
        while start > 1 {
            let (_, payload) = self.stored(&path[start - 1])?;
            let st = timed(&self.metrics.new_payload, self.engine.new_payload(&payload)).await?;
            if st.status != Status::Syncing {
                break;
            }
            start -= 1;
        }
        tracing::info!(target: targets::ENGINE, "replaying {} blocks to the execution client", path.len() - start);
        for h in &path[start..] {
            let (_, payload) = self.stored(h)?;
            let st = timed(&self.metrics.new_payload, self.engine.new_payload(&payload)).await?;
            if st.status == Status::Invalid {
                let why = st.validation_error.unwrap_or_default();
                self.store.mark_invalid(h, &why).map_err(|e| EngineError::Internal(e.to_string()))?;
                break;
            }
        }
        Ok(())
    }

    fn stored(&self, hash: &B256) -> Result<(Header, Payload), EngineError> {
        self.store
            .block(hash)
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .ok_or_else(|| EngineError::Internal(format!("block {hash} missing from the store")))
    }

    /// Validates a block, has the execution client execute it, samples its state, stores it
    /// and moves the head by fork choice. Returns the new head's height.
    pub(crate) async fn import(&mut self, header: &Header, payload: &Payload) -> Result<(), ImportError> {
        let parent = self
            .store
            .meta(&header.parent_hash)
            .cloned()
            .ok_or_else(|| ImportError::Rejected(format!("unknown parent {}", header.parent_hash)))?;
        let siblings: Vec<BlockMeta> =
            header.siblings.iter().filter_map(|h| self.store.meta(h).cloned()).collect();
        let meta = validate_header(header, &parent, &siblings, &self.params, now_ms())
            .map_err(|e| ImportError::Rejected(format!("invalid header: {e}")))?;
        let sibling_coinbases: Vec<Address> = siblings.iter().map(|s| s.coinbase).collect();
        validate_payload(header, payload, &parent, &sibling_coinbases, &self.params)
            .map_err(|e| ImportError::Rejected(e.to_string()))?;
        // Stored before the execution client sees it: whatever the execution client commits
        // is then in the store too, so a crash of either side loses no block (on reconnection
        // the stored head is sent again).
        let hash = meta.hash;
        self.store.insert(header, payload, meta).map_err(anyhow::Error::from)?;
        let status = timed(&self.metrics.new_payload, self.engine.new_payload(payload)).await?;
        match status.status {
            Status::Valid => {
                let verdict = self.sample(payload, &parent).await?;
                if let Err(why) = verdict {
                    self.metrics.sampling_failures.inc();
                    tracing::error!(target: targets::SAMPLING, "EXECUTION CLIENT FAULTY: sampling block #{} {hash} found {why}; block marked invalid",
                        header.height);
                    self.store
                        .mark_invalid(&hash, &format!("sampling: {why}"))
                        .map_err(anyhow::Error::from)?;
                    // The execution client made the block its tentative head: move it back.
                    self.update_head(true).await?;
                    return Err(ImportError::ExecutionFaulty(format!(
                        "sampling found the execution client wrong: {why}"
                    )));
                }
            }
            Status::Invalid => {
                self.metrics.invalid_payloads.inc();
                let why = status.validation_error.unwrap_or_default();
                self.store.mark_invalid(&hash, &why).map_err(anyhow::Error::from)?;
                return Err(ImportError::Rejected(format!(
                    "the execution client found the payload invalid: {why}"
                )));
            }
            Status::Accepted | Status::Syncing => {}
        }
        self.update_head(false).await?;
        Ok(())
    }

    /// Samples the block's accounts; `Ok(Err(why))` when the execution client lied.
    async fn sample(&self, payload: &Payload, parent: &BlockMeta) -> Result<Result<(), String>, EngineError> {
        let seed = sampling::fresh_seed(&payload.block_hash);
        let plan = match sampling::plan(payload, &seed, self.sample_k) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let before =
            timed(&self.metrics.proofs, self.engine.account_proofs(parent.state_root, &plan.fetch)).await?;
        let after =
            timed(&self.metrics.proofs, self.engine.account_proofs(payload.state_root, &plan.fetch)).await?;
        self.metrics.sampled_accounts.inc_by(plan.sampled.len() as u64);
        Ok(match sampling::check(&plan, payload, parent.state_root, &before, &after) {
            Ok(n) => {
                self.metrics.recomputed_balances.inc_by(n as u64);
                tracing::debug!(
                    target: targets::SAMPLING,
                    number = payload.number,
                    accounts = plan.sampled.len(),
                    recomputed_balances = n,
                    "sampled state agrees with the block"
                );
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        })
    }

    /// Points the execution client at the fork-choice head if it moved (or, with `force`,
    /// anyway: after the execution client took a block that turned out invalid).
    async fn update_head(&mut self, force: bool) -> Result<(), ImportError> {
        let best = self.store.tree().head();
        if best == self.store.head() && !force {
            return Ok(());
        }
        let meta = self.store.meta(&best).cloned().context("head meta")?;
        let (status, _) =
            timed(&self.metrics.forkchoice, self.engine.forkchoice_updated(meta.payload_hash, None, None))
                .await?;
        match status.status {
            Status::Valid => {
                self.store.set_head(best).map_err(anyhow::Error::from)?;
                self.metrics.head_height.set(meta.height as f64);
                if let Some(p) = self.store.meta(&meta.parent_hash) {
                    self.metrics
                        .block_time
                        .set(meta.timestamp_ms.saturating_sub(p.timestamp_ms) as f64 / 1000.0);
                }
                let next = self.params.child_difficulty(meta.height, meta.timestamp_ms);
                self.metrics.difficulty.set(2f64.powf(next.log2_work()));
                Ok(())
            }
            Status::Invalid => {
                let why = status.validation_error.unwrap_or_default();
                self.store.mark_invalid(&best, &why).map_err(anyhow::Error::from)?;
                Err(ImportError::Rejected(format!("the execution client refused head {best}: {why}")))
            }
            Status::Syncing | Status::Accepted => {
                self.replay(&best).await?;
                Box::pin(self.update_head(force)).await
            }
        }
    }
}
