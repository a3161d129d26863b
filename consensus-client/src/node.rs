//! The running consensus client: connects to the execution client, brings it to the stored
//! head, mines on the head, imports and samples blocks, and keeps the execution client's
//! head on the fork-choice head. Survives the execution client going away: engine calls are
//! retried, and on reconnection the execution client is brought back to the head (blocks it
//! lost are replayed from the store).

use crate::metrics::ClMetrics;
use crate::params::{prev_randao, ChainParams};
use crate::sampling;
use crate::store::ChainStore;
use crate::validate::{validate_header, validate_payload, BlockMeta};
use alloy_primitives::{Address, B256};
use anyhow::Context as _;
use qoin_crypto::{Domain, Keypair};
use qoin_engine_api::{Attributes, EngineClient, EngineError, Payload, Status};
use qoin_kernels::{SealError, Solver};
use qoin_pow::Difficulty;
use qoin_primitives::{Genesis, Header, MAX_SIBLINGS};
use qoin_store::StoreOptions;
use qoin_tracing::targets;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio_stream::StreamExt as _;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The miner's part of the configuration.
pub struct MinerConfig {
    /// Signs the tickets.
    pub keypair: Keypair,
    /// Receives rewards and fees.
    pub coinbase: Address,
    /// Search threads.
    pub threads: usize,
}

/// Everything `qoin-cl` runs with.
pub struct Config {
    /// Where the chain store lives.
    pub datadir: PathBuf,
    /// The chain.
    pub genesis: Genesis,
    /// The execution client's engine API URL.
    pub engine_url: String,
    /// The shared JWT secret.
    pub jwt: qoin_engine_api::jwt::JwtSecret,
    /// Mining, if enabled.
    pub miner: Option<MinerConfig>,
    /// Accounts sampled per block besides the senders.
    pub sample_k: usize,
}

/// Why an import did not make a block canonical.
#[derive(Debug, thiserror::Error)]
enum ImportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The consensus client.
pub struct Node {
    params: ChainParams,
    store: ChainStore,
    engine: EngineClient,
    metrics: Arc<ClMetrics>,
    sample_k: usize,
}

async fn timed<T>(h: &qoin_metrics::Histogram, f: impl Future<Output = T>) -> T {
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

    fn head_meta(&self) -> anyhow::Result<BlockMeta> {
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

    /// Up to four valid siblings of `parent` to reference (the oldest first).
    fn choose_siblings(&self, parent: &BlockMeta) -> Vec<BlockMeta> {
        let mut s: Vec<BlockMeta> = self
            .store
            .tree()
            .siblings_of(&parent.hash)
            .iter()
            .filter_map(|h| self.store.meta(h).cloned())
            .collect();
        s.sort_by_key(|m| (m.timestamp_ms, m.hash));
        s.truncate(MAX_SIBLINGS);
        s
    }

    /// Asks the execution client for a payload on the head and makes the unsealed header.
    async fn prepare(&self, miner: &MinerConfig) -> Result<(Header, Payload), ImportError> {
        let parent = self.head_meta()?;
        let siblings = self.choose_siblings(&parent);
        let height = parent.height + 1;
        let timestamp_ms = now_ms().max(parent.timestamp_ms + 1);
        let sibling_coinbases: Vec<Address> = siblings.iter().map(|s| s.coinbase).collect();
        let attrs = Attributes {
            timestamp_ms,
            fee_recipient: miner.coinbase,
            credits: self.params.credits(height, miner.coinbase, &sibling_coinbases),
            prev_randao: prev_randao(&parent.hash),
        };
        let (status, id) = timed(
            &self.metrics.forkchoice,
            self.engine.forkchoice_updated(parent.payload_hash, None, Some(&attrs)),
        )
        .await?;
        let Some(id) = id.filter(|_| status.status == Status::Valid) else {
            return Err(ImportError::Rejected(format!(
                "the execution client cannot build on the head: {status:?}"
            )));
        };
        let (payload, _value) = timed(&self.metrics.get_payload, self.engine.get_payload(id)).await?;
        let txs: Vec<Vec<u8>> = payload.transactions.iter().map(|t| t.to_vec()).collect();
        let difficulty = self.params.child_difficulty(parent.height, parent.timestamp_ms);
        let mut header = Header {
            parent_hash: parent.hash,
            siblings: siblings.iter().map(|s| s.hash).collect(),
            height,
            timestamp_ms,
            difficulty: difficulty.to_compact(),
            payload_hash: payload.block_hash,
            state_root: payload.state_root,
            transactions_root: qoin_primitives::transactions_root(&txs).map_err(anyhow::Error::from)?,
            coinbase: miner.coinbase,
            miner_keys: miner.keypair.public().clone(),
            extra_nonce: 0,
            ticket: miner.keypair.sign(Domain::MiningTicket, b""),
            solution: [0; 16],
        };
        header.sign_ticket(&miner.keypair).map_err(anyhow::Error::from)?;
        Ok((header, payload))
    }

    /// Validates a block, has the execution client execute it, samples its state, stores it
    /// and moves the head by fork choice. Returns the new head's height.
    async fn import(&mut self, header: &Header, payload: &Payload) -> Result<(), ImportError> {
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
                    return Err(ImportError::Rejected(format!(
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

/// Follows the execution client's new transactions and wakes the miner.
fn spawn_tx_watch(engine: EngineClient, notify: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            if let Ok(mut stream) = engine.subscribe_transactions().await.map(Box::pin) {
                while let Some(Ok(_tx)) = stream.next().await {
                    notify.notify_one();
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// Runs the consensus client until `shutdown` resolves.
pub async fn run(
    config: Config,
    metrics: Arc<ClMetrics>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut node = Node::start(&config, metrics.clone()).await?;
    tokio::pin!(shutdown);
    let notify = Arc::new(Notify::new());
    spawn_tx_watch(node.engine.clone(), notify.clone());
    let (solver, pool) = match &config.miner {
        Some(m) => {
            let (solver, line) = qoin_kernels::choose();
            tracing::info!(target: targets::MINER, "{line}; {} search threads; mining to {:#x}", m.threads, m.coinbase);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(m.threads.max(1))
                .thread_name(|i| format!("qoin-mq-{i}"))
                .build()
                .context("cannot start the search threads")?;
            (Some(Arc::<dyn Solver>::from(solver)), Some(Arc::new(pool)))
        }
        None => {
            tracing::info!(target: targets::MINER, "mining off: following the chain only");
            (None, None)
        }
    };
    let mut synced = false;
    let mut restart_from: Option<Instant> = None;
    loop {
        if !synced {
            tokio::select! {
                r = node.sync_execution() => match r {
                    Ok(()) => {
                        synced = true;
                        let h = node.head_meta()?;
                        node.metrics.head_height.set(h.height as f64);
                        tracing::info!(target: targets::ENGINE, "execution client at head #{} {}", h.height, h.hash);
                    }
                    Err(EngineError::Transport(e)) => {
                        tracing::warn!(target: targets::ENGINE, "execution client unreachable ({e}); retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = &mut shutdown => break,
                        }
                        continue;
                    }
                    Err(e) => return Err(anyhow::anyhow!("cannot bring the execution client to the head: {e}")),
                },
                _ = &mut shutdown => break,
            }
        }
        let (Some(miner), Some(solver), Some(pool)) = (&config.miner, &solver, &pool) else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = &mut shutdown => break,
            }
        };
        let prepared = tokio::select! {
            r = node.prepare(miner) => r,
            _ = &mut shutdown => break,
        };
        let (header, payload) = match prepared {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: targets::MINER, "cannot prepare a block: {e}");
                if matches!(e, ImportError::Engine(EngineError::Transport(_))) {
                    synced = false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(t) = restart_from.take() {
            qoin_metrics::observe(&node.metrics.miner_restart, t.elapsed());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let search = {
            let (solver, pool, stop, mut header) =
                (solver.clone(), pool.clone(), stop.clone(), header.clone());
            tokio::task::spawn_blocking(move || {
                let r = pool.install(|| qoin_kernels::seal(&mut header, solver.as_ref(), &stop));
                (header, r)
            })
        };
        tokio::pin!(search);
        let outcome = tokio::select! {
            r = &mut search => Some(r),
            _ = notify.notified() => None,
            _ = &mut shutdown => {
                stop.store(true, Ordering::SeqCst);
                let _ = search.await;
                break;
            }
        };
        let Some(joined) = outcome else {
            // A new transaction: a better payload is available. Stop and rebuild.
            restart_from = Some(Instant::now());
            stop.store(true, Ordering::SeqCst);
            let _ = search.await;
            continue;
        };
        let (sealed_header, result) = joined.context("search task failed")?;
        let sealed = match result {
            Ok(s) => s,
            Err(SealError::Cancelled) => continue,
            Err(e) => {
                tracing::error!(target: targets::MINER, "sealing failed: {e}");
                continue;
            }
        };
        let elapsed = started.elapsed();
        node.metrics.hash_rate.set(sealed.candidates as f64 / elapsed.as_secs_f64().max(1e-6));
        let hash = sealed_header.hash().map_err(anyhow::Error::from)?;
        match node.import(&sealed_header, &payload).await {
            Ok(()) => {
                node.metrics.blocks_mined.inc();
                let d = Difficulty::from_compact(sealed_header.difficulty)
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                tracing::info!(
                    target: targets::MINER,
                    number = sealed_header.height,
                    hash = %hash,
                    txs = payload.transactions.len(),
                    difficulty = %d,
                    search_ms = (elapsed.as_secs_f64() * 1000.0).round(),
                    rate = %format_args!("{:.2e}", sealed.candidates as f64 / elapsed.as_secs_f64().max(1e-6)),
                    siblings = sealed_header.siblings.len(),
                    "mined block"
                );
            }
            Err(ImportError::Engine(EngineError::Transport(e))) => {
                tracing::warn!(target: targets::ENGINE, "execution client unreachable while importing #{} ({e})", sealed_header.height);
                synced = false;
            }
            Err(e) => {
                tracing::warn!(target: targets::MINER, "mined block #{} {hash} not imported: {e}", sealed_header.height)
            }
        }
    }
    tracing::info!(target: targets::NODE, "stopped");
    Ok(())
}
