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
use qoin_cl_store::{ChainStore, StoreRun};
use qoin_consensus::params::ChainParams;
use qoin_consensus::validate::{validate_body, validate_header, validate_payload, BlockMeta};
use qoin_engine_api::{EngineClient, EngineError, Payload, Status};
use qoin_primitives::{Header, SignedTx};
use qoin_store::StoreOptions;
use qoin_tracing::targets;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an import did not make a block canonical.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An engine call failed (the execution client unreachable or erring): not a verdict.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The block is invalid (the sender's fault).
    #[error("{0}")]
    Rejected(String),
    /// Sampling caught the execution client (not the block's sender's fault).
    #[error("{0}")]
    ExecutionFaulty(String),
    /// A local failure (the store).
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
    /// The blocks imported last (one, or a sync's run), with their transactions decoded by the
    /// block checks: sampling them (usually at once) then neither reads them back from the
    /// store nor decodes them again.
    recent: Vec<(B256, Payload, Vec<SignedTx>)>,
    /// Blocks up to the execution client's head whose sampling is under way, oldest first, the
    /// first a child of the stored head (sync's pipelined imports: their proofs are asked
    /// while the next blocks execute). The stored head stays behind them until their samples
    /// are in; [`Self::update_head`] settles them first.
    pending: VecDeque<SampleJob>,
}

/// What a sampling task found: the accounts sampled, and how many balances were recomputed
/// (`Ok`) or why the execution client is wrong (`Err`).
type SampleOutcome = Result<(usize, Result<usize, String>), EngineError>;

/// Most blocks whose samples are under way at once: a pipelined run's (as many as a sync
/// imports in one `NewPayloads` call), or a path of blocks sampled after a reorg or replay.
pub(crate) const SAMPLES_AHEAD: usize = 16;

/// Waits until every job of `jobs` is done.
async fn all_ready(jobs: &mut VecDeque<SampleJob>) {
    for job in jobs.iter_mut() {
        job.ready().await;
    }
}

/// One block's sampling, running in a task of its own: the plan, both states' proofs asked at
/// once, and the check on the blocking threads (proof verification hashes every node).
struct SampleJob {
    hash: B256,
    height: u64,
    task: tokio::task::JoinHandle<SampleOutcome>,
    /// The task's outcome once it has been awaited.
    outcome: Option<SampleOutcome>,
}

impl SampleJob {
    /// Waits until the task is done (cancel-safe: a second call after a cancelled one waits
    /// on the same task).
    async fn ready(&mut self) {
        if self.outcome.is_none() {
            let outcome = (&mut self.task)
                .await
                .unwrap_or_else(|e| Err(EngineError::Internal(format!("sampling task: {e}"))));
            self.outcome = Some(outcome);
        }
    }
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
        Ok(Self {
            params,
            store,
            engine,
            metrics,
            sample_k: config.sample_k,
            recent: Vec::new(),
            pending: VecDeque::new(),
        })
    }

    /// The chain store.
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    pub(crate) fn head_meta(&self) -> anyhow::Result<BlockMeta> {
        let head = self.store.head();
        self.store.meta(&head).cloned().context("head block missing from the store")
    }

    /// Brings the execution client to the fork-choice head: tells it the head, replays the
    /// blocks it lacks from the store, and samples every canonical block not sampled yet.
    pub async fn sync_execution(&mut self) -> Result<(), EngineError> {
        match self.update_head(true).await {
            Ok(()) => Ok(()),
            Err(ImportError::Engine(e)) => Err(e),
            // Blocks were found invalid on the way; the head settled on a valid one.
            Err(ImportError::Rejected(why) | ImportError::ExecutionFaulty(why)) => {
                tracing::warn!(target: targets::CHAIN, "while bringing the execution client to the head: {why}");
                Ok(())
            }
            Err(ImportError::Other(e)) => Err(EngineError::Internal(e.to_string())),
        }
    }

    /// The block to mark invalid when the execution client answers INVALID for `reported`:
    /// the child of its latest valid ancestor on the path to `reported` (the ancestors before
    /// it are valid, the ones after it inherit), or `reported` itself when the execution client
    /// names no ancestor of it.
    fn first_invalid(&self, reported: &B256, latest_valid: Option<B256>) -> B256 {
        let Some(lvh) = latest_valid else { return *reported };
        let path = self.store.tree().path_to(reported);
        match path.iter().position(|h| self.store.meta(h).is_some_and(|m| m.payload_hash == lvh)) {
            Some(i) if i + 1 < path.len() => path[i + 1],
            _ => *reported,
        }
    }

    /// Records the execution client's INVALID for `reported`; returns the block marked.
    fn mark_reported_invalid(
        &mut self,
        reported: &B256,
        status: &qoin_engine_api::PayloadStatus,
    ) -> Result<B256, ImportError> {
        let why = status.validation_error.clone().unwrap_or_default();
        let bad = self.first_invalid(reported, status.latest_valid_hash);
        let height = self.store.meta(&bad).map_or(0, |m| m.height);
        tracing::warn!(target: targets::ENGINE, "the execution client found block #{height} {bad} invalid: {why}");
        self.store.mark_invalid(&bad, &why).map_err(anyhow::Error::from)?;
        Ok(bad)
    }

    /// Sends the blocks of the path to `head` that the execution client lacks: back from
    /// `head` (through the fork window, then the canonical index below its root) until the
    /// execution client answers VALID (a block on its chain, or one it executed now) or
    /// INVALID, then forward.
    async fn replay(&mut self, head: &B256) -> Result<(), EngineError> {
        let internal = |e: qoin_cl_store::ChainStoreError| EngineError::Internal(e.to_string());
        let window = self.store.tree().path_to(head);
        let mut missing: Vec<B256> = Vec::new();
        let mut below = self.store.tree().root_height();
        let mut i = window.len();
        loop {
            let hash = if i > 1 {
                i -= 1;
                window[i]
            } else {
                // Below the window's root: the canonical chain (genesis has no payload).
                if below == 0 {
                    break;
                }
                let h = self.store.canonical_hash(below).map_err(internal)?;
                below -= 1;
                match h {
                    Some(h) => h,
                    None => break,
                }
            };
            let (_, payload) = self.stored(&hash)?;
            let st = timed(&self.metrics.new_payload, self.engine.new_payload(&payload, true)).await?;
            // Down to a block the execution client has on its chain (or executed now, its
            // parent being its head). A kept side block (ACCEPTED) is no proof that the
            // blocks below it are kept too: the execution client may have dropped one, or
            // never been sent it, and then the forkchoice would stay SYNCING for ever.
            if matches!(st.status, Status::Valid | Status::Invalid) {
                break;
            }
            missing.push(hash);
        }
        tracing::info!(target: targets::ENGINE, "replaying {} blocks to the execution client", missing.len());
        for h in missing.iter().rev() {
            let (_, payload) = self.stored(h)?;
            let st = timed(&self.metrics.new_payload, self.engine.new_payload(&payload, true)).await?;
            if st.status == Status::Invalid {
                self.metrics.invalid_payloads.inc();
                self.mark_reported_invalid(h, &st).map_err(|e| EngineError::Internal(e.to_string()))?;
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

    /// Validates a block's header, then imports it as [`Self::import_checked`] does.
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
        self.import_checked(header, payload, meta).await
    }

    /// Imports a block whose header passed [`validate_header`] (giving `meta`): checks the
    /// payload and its transactions, has the execution client execute it, stores it and moves
    /// the head by fork choice (sampling what becomes canonical). Gossip, back-fill and sync
    /// check headers before fetching or forwarding, so they pass the meta on rather than
    /// verify the seal and ticket a second time.
    pub(crate) async fn import_checked(
        &mut self,
        header: &Header,
        payload: &Payload,
        meta: BlockMeta,
    ) -> Result<(), ImportError> {
        // The cheap checks first.
        self.check_payload(header, payload, &meta, None)?;
        // The transactions root, signatures and chain ids (in parallel), off the async threads.
        let (h, body, chain_id) = (header.clone(), payload.clone(), self.params.chain_id);
        let txs = tokio::task::spawn_blocking(move || validate_body(&h, &body, chain_id))
            .await
            .context("block body check task")?
            .map_err(|e| ImportError::Rejected(e.to_string()))?;
        self.store_and_execute(header, payload, meta, txs, false).await
    }

    /// [`Self::import_checked`] for a block whose body already passed [`validate_body`],
    /// giving `txs` (sync checks a slice's bodies ahead of its imports). Pipelined: the block
    /// is executed while the block imported before it is still being sampled, and its own
    /// sampling is left under way when it extends the head (see [`Self::pending`]); a fault
    /// sampling finds in the block before is returned by this import, after the head settled.
    /// The caller settles the last sample with [`Self::update_head`].
    pub(crate) async fn import_pipelined(
        &mut self,
        header: &Header,
        payload: &Payload,
        meta: BlockMeta,
        txs: Vec<SignedTx>,
    ) -> Result<(), ImportError> {
        self.check_payload(header, payload, &meta, None)?;
        self.store_and_execute(header, payload, meta, txs, true).await
    }

    /// A fully checked block is stored, executed by the execution client (told the signatures
    /// were verified here), and fork choice runs; `pipelined`: see [`Self::import_pipelined`].
    async fn store_and_execute(
        &mut self,
        header: &Header,
        payload: &Payload,
        meta: BlockMeta,
        txs: Vec<SignedTx>,
        pipelined: bool,
    ) -> Result<(), ImportError> {
        // Stored before the execution client sees it: whatever the execution client commits
        // is then in the store too, so a crash of either side loses no block (on reconnection
        // the stored head is sent again).
        let hash = meta.hash;
        self.store.insert(header, payload, meta).map_err(anyhow::Error::from)?;
        // The samples under way (the parent's, when pipelined) finish beside the execution.
        let mut pending = std::mem::take(&mut self.pending);
        let (status, ()) = tokio::join!(
            timed(&self.metrics.new_payload, self.engine.new_payload(payload, true)),
            all_ready(&mut pending)
        );
        self.pending = pending;
        let status = status?;
        if status.status == Status::Invalid {
            self.metrics.invalid_payloads.inc();
            let why = status.validation_error.clone().unwrap_or_default();
            self.mark_reported_invalid(&hash, &status)?;
            // The parent's sample is settled before the refusal is returned.
            self.update_head(false).await?;
            return Err(ImportError::Rejected(format!(
                "the execution client found the payload invalid: {why}"
            )));
        }
        self.recent = vec![(hash, payload.clone(), txs)];
        // Sampled when it becomes canonical (now, if it extends the head).
        self.settle_head(false, pipelined).await
    }

    /// [`Self::import_pipelined`] for a run of blocks in import order (usually each the child
    /// of the one before; a sibling a later block names may come between) whose bodies were
    /// checked already ([`validate_body`] gave their `txs`): the blocks are checked against
    /// their headers one by one, then written to the store in one transaction while the
    /// execution client executes them in one `NewPayloads` call (which may import them in one
    /// database transaction) beside the samples still under way, and their own samples are
    /// left under way when they extend the head. Returns how many blocks the execution client
    /// took (VALID, or kept as ACCEPTED or SYNCING), and the first fault: a block that fails
    /// its checks ends the run there (those before it are imported).
    pub async fn import_pipelined_run(
        &mut self,
        blocks: Vec<(&Header, &Payload, BlockMeta, Vec<SignedTx>)>,
    ) -> (usize, Result<(), ImportError>) {
        let mut run = self.store.begin_run();
        let mut stored = Vec::with_capacity(blocks.len());
        let mut early = Ok(());
        for (header, payload, meta, txs) in blocks {
            let hash = meta.hash;
            let checked = self.check_payload(header, payload, &meta, Some(&run)).and_then(|()| {
                run.push(header, payload.clone(), meta).map_err(|e| anyhow::Error::from(e).into())
            });
            if let Err(e) = checked {
                early = Err(e);
                break;
            }
            stored.push((hash, payload, txs));
        }
        if stored.is_empty() {
            return (0, early);
        }
        let payloads: Vec<&Payload> = stored.iter().map(|(_, p, _)| *p).collect();
        let mut pending = std::mem::take(&mut self.pending);
        // The run is written to the store in one transaction on a blocking thread while the
        // execution client executes it (an execution client that took blocks the store then
        // failed to keep is told them again on a later import).
        let write = tokio::task::spawn_blocking(move || {
            let written = run.write();
            (run, written)
        });
        let (statuses, (), written) = tokio::join!(
            timed(&self.metrics.new_payloads, self.engine.new_payloads(&payloads, true)),
            all_ready(&mut pending),
            write
        );
        self.pending = pending;
        match written {
            Ok((run, Ok(()))) => self.store.add_run(run),
            Ok((_, Err(e))) => return (0, Err(anyhow::Error::from(e).into())),
            Err(e) => return (0, Err(anyhow::anyhow!("storing a run: {e}").into())),
        }
        let statuses = match statuses {
            Ok(s) => s,
            Err(e) => return (0, Err(e.into())),
        };
        // Blocks answered ACCEPTED or SYNCING are kept by the execution client, as by NewPayload.
        let invalid_at = statuses.iter().position(|s| s.status == Status::Invalid);
        let valid = invalid_at.unwrap_or(statuses.len());
        let refused = invalid_at.and_then(|i| statuses.get(i).zip(stored.get(i).map(|(hash, ..)| *hash)));
        self.recent =
            stored.into_iter().take(valid).map(|(hash, payload, txs)| (hash, payload.clone(), txs)).collect();
        if let Some((status, hash)) = refused {
            self.metrics.invalid_payloads.inc();
            let why = status.validation_error.clone().unwrap_or_default();
            if let Err(e) = self.mark_reported_invalid(&hash, status) {
                return (valid, Err(e));
            }
            // The samples before it are settled before the refusal is returned.
            let settled = self.update_head(false).await;
            return (
                valid,
                settled.and(Err(ImportError::Rejected(format!(
                    "the execution client found the payload invalid: {why}"
                )))),
            );
        }
        // A payload left SYNCING or ACCEPTED is replayed by the head update, as in a single import.
        let settled = self.settle_head(false, true).await;
        (valid, settled.and(early))
    }

    /// What needs no execution: the payload against its header and its parent's fee fields.
    /// A block's parent and siblings may be earlier in `run` (blocks checked and not yet stored).
    fn check_payload(
        &self,
        header: &Header,
        payload: &Payload,
        meta: &BlockMeta,
        run: Option<&StoreRun>,
    ) -> Result<(), ImportError> {
        let meta_of = |h: &B256| self.store.meta(h).or_else(|| run.and_then(|r| r.meta(h)));
        let parent = meta_of(&meta.parent_hash)
            .cloned()
            .ok_or_else(|| ImportError::Rejected(format!("unknown parent {}", meta.parent_hash)))?;
        let sibling_coinbases: Vec<Address> =
            meta.siblings.iter().filter_map(meta_of).map(|s| s.coinbase).collect();
        let parent_exec = if parent.hash == self.params.genesis_hash {
            self.params.genesis_exec
        } else if let Some(fields) = run.and_then(|r| r.exec_fields(&parent.hash)) {
            fields
        } else {
            self.store
                .exec_fields(&parent.hash)
                .map_err(anyhow::Error::from)?
                .context("the parent's exec fields are missing from the store")?
        };
        validate_payload(header, payload, &parent, &parent_exec, &sibling_coinbases, &self.params)
            .map_err(|e| ImportError::Rejected(e.to_string()))?;
        Ok(())
    }

    /// Starts sampling `hash` (at `height`, child of `parent`): a task plans the accounts from
    /// `payload` (with its decoded transactions when the block checks decoded them), asks both
    /// states' proofs at once (the execution client answers each on its own thread) and checks
    /// them.
    fn start_sample(
        &self,
        hash: B256,
        height: u64,
        payload: Payload,
        decoded: Option<Vec<SignedTx>>,
        parent: &BlockMeta,
    ) -> SampleJob {
        let (engine, metrics, k, parent_root) =
            (self.engine.clone(), self.metrics.clone(), self.sample_k, parent.state_root);
        let task = tokio::spawn(async move {
            let blocking =
                |what: &str, e: tokio::task::JoinError| EngineError::Internal(format!("{what}: {e}"));
            let (payload, plan) = tokio::task::spawn_blocking(move || {
                let seed = sampling::fresh_seed(&payload.block_hash);
                let plan = match decoded {
                    Some(txs) => Ok(sampling::plan_decoded(&payload, txs, &seed, k)),
                    None => sampling::plan(&payload, &seed, k),
                };
                (payload, plan)
            })
            .await
            .map_err(|e| blocking("sampling plan", e))?;
            let plan = match plan {
                Ok(p) => p,
                Err(e) => return Ok((0, Err(e.to_string()))),
            };
            let (before, after) = tokio::join!(
                timed(&metrics.proofs, engine.account_proofs(parent_root, &plan.fetch)),
                timed(&metrics.proofs, engine.account_proofs(payload.state_root, &plan.fetch)),
            );
            let (before, after) = (before?, after?);
            tokio::task::spawn_blocking(move || {
                let checked = sampling::check(&plan, &payload, parent_root, &before, &after);
                (plan.sampled.len(), checked.map_err(|e| e.to_string()))
            })
            .await
            .map_err(|e| blocking("sampling check", e))
        });
        SampleJob { hash, height, task, outcome: None }
    }

    /// Waits for a sampling job and records what it found: the block is marked sampled, or,
    /// when the execution client lied, marked invalid (`Ok(Some(why))`). An engine failure
    /// leaves the block unsampled, to be sampled again by the next head update.
    async fn finish_sample(&mut self, mut job: SampleJob) -> Result<Option<String>, ImportError> {
        job.ready().await;
        let outcome = job.outcome.take().unwrap_or_else(|| Err(EngineError::Internal("no sample".into())));
        let (sampled, checked) = outcome?;
        self.metrics.sampled_accounts.inc_by(sampled as u64);
        match checked {
            Ok(n) => {
                self.metrics.recomputed_balances.inc_by(n as u64);
                tracing::debug!(
                    target: targets::SAMPLING,
                    number = job.height,
                    accounts = sampled,
                    recomputed_balances = n,
                    "sampled state agrees with the block"
                );
                self.store.mark_sampled(&job.hash).map_err(anyhow::Error::from)?;
                Ok(None)
            }
            Err(why) => {
                self.metrics.sampling_failures.inc();
                tracing::error!(target: targets::SAMPLING, "EXECUTION CLIENT FAULTY: sampling block #{} {} found {why}; block marked invalid",
                    job.height, job.hash);
                self.store
                    .mark_invalid(&job.hash, &format!("sampling: {why}"))
                    .map_err(anyhow::Error::from)?;
                Ok(Some(format!("sampling found the execution client wrong: {why}")))
            }
        }
    }

    /// Samples every block on the path to `best` that has not been sampled, oldest first
    /// (the execution client has just made `best` its head, so each block's state and its
    /// parent's are there). Returns the first block sampling caught, and why, after marking it
    /// invalid.
    async fn sample_path(&mut self, best: &B256) -> Result<Option<String>, ImportError> {
        // Back from `best` to the last sampled ancestor (usually its parent): not the whole path.
        let mut unsampled = Vec::new();
        let mut cursor = *best;
        while !self.store.is_sampled(&cursor) {
            unsampled.push(cursor);
            cursor = self.store.meta(&cursor).context("meta of a block in the tree")?.parent_hash;
        }
        // Up to `SAMPLES_AHEAD` asked at once, settled in order.
        unsampled.reverse();
        for window in unsampled.chunks(SAMPLES_AHEAD) {
            let jobs = window.iter().map(|h| self.sample_job(h)).collect::<Result<Vec<_>, _>>()?;
            let mut jobs = jobs.into_iter();
            while let Some(job) = jobs.next() {
                if let Some(why) = self.finish_sample(job).await? {
                    jobs.for_each(|j| j.task.abort());
                    return Ok(Some(why));
                }
            }
        }
        Ok(None)
    }

    /// The blocks from the stored head's child to `best`, oldest first, when none of them is
    /// sampled yet and there are at most `SAMPLES_AHEAD` (a pipelined import's, whose samples
    /// may be left under way); `None` otherwise.
    fn unsampled_run(&self, best: &B256) -> Option<Vec<B256>> {
        let head = self.store.head();
        let mut run = Vec::new();
        let mut cursor = *best;
        while cursor != head {
            if run.len() == SAMPLES_AHEAD || self.store.is_sampled(&cursor) {
                return None;
            }
            run.push(cursor);
            cursor = self.store.meta(&cursor)?.parent_hash;
        }
        run.reverse();
        (!run.is_empty()).then_some(run)
    }

    /// A sampling job for a stored block (the block imported last is taken as the import left
    /// it, transactions decoded).
    fn sample_job(&mut self, hash: &B256) -> Result<SampleJob, ImportError> {
        let (payload, decoded) = match self.recent.iter().position(|(h, ..)| h == hash) {
            Some(i) => {
                let (_, payload, txs) = self.recent.swap_remove(i);
                (payload, Some(txs))
            }
            None => (self.stored(hash)?.1, None),
        };
        let meta = self.store.meta(hash).cloned().context("meta of a stored block")?;
        let parent = self.store.meta(&meta.parent_hash).cloned().context("meta of a parent")?;
        Ok(self.start_sample(*hash, meta.height, payload, decoded, &parent))
    }

    /// Points the execution client at the fork-choice head if it moved (or, with `force`,
    /// anyway), replaying blocks it lacks, and samples every block that thereby became
    /// canonical for the first time: blocks imported on the head, side blocks a reorg made
    /// canonical, replayed blocks. A block the execution client calls invalid, or that sampling
    /// catches, is marked invalid and fork choice runs again, so the stored head only ever
    /// names a block that was sampled. An engine failure leaves the stored head where it was
    /// and the next call tries again. Returns the first fault found on the way, after the
    /// head settled. A sample left under way by a pipelined import is settled first.
    pub async fn update_head(&mut self, force: bool) -> Result<(), ImportError> {
        self.settle_head(force, false).await
    }

    /// [`Self::update_head`]; with `defer`, when the new head is a child of the stored head
    /// and the only block left to sample, its sampling is started and left under way
    /// ([`Self::pending`]): the stored head stays at the parent until the sample is in.
    async fn settle_head(&mut self, force: bool, defer: bool) -> Result<(), ImportError> {
        /// Rounds before giving up on an execution client that never settles.
        const MAX_ROUNDS: usize = 64;
        let mut force = force;
        let mut fault: Option<ImportError> = None;
        let mut jobs = std::mem::take(&mut self.pending).into_iter();
        while let Some(job) = jobs.next() {
            let hash = job.hash;
            let stop = match self.finish_sample(job).await? {
                // Its parent is the stored head and the execution client was told it; unless
                // the execution client has since named it invalid (then fork choice moves on).
                None if !self.store.tree().is_invalid(&hash) => {
                    self.set_head(hash)?;
                    false
                }
                None => true,
                Some(why) => {
                    fault = Some(ImportError::ExecutionFaulty(why));
                    true
                }
            };
            if stop {
                // The blocks after it cannot become the head through it.
                force = true;
                jobs.by_ref().for_each(|j| j.task.abort());
            }
        }
        for _ in 0..MAX_ROUNDS {
            let best = self.store.tree().head();
            if best == self.store.head() && !force {
                return fault.map_or(Ok(()), Err);
            }
            force = false;
            let meta = self.store.meta(&best).cloned().context("head meta")?;
            let (status, _) = timed(
                &self.metrics.forkchoice,
                self.engine.forkchoice_updated(meta.payload_hash, None, None),
            )
            .await?;
            let deferred = match status.status {
                Status::Valid if defer && fault.is_none() => self.unsampled_run(&best),
                _ => None,
            };
            if let Some(run) = deferred {
                for hash in &run {
                    let job = self.sample_job(hash)?;
                    self.pending.push_back(job);
                }
                return Ok(());
            }
            match status.status {
                Status::Valid => match self.sample_path(&best).await? {
                    None => self.set_head(best)?,
                    Some(why) => {
                        fault.get_or_insert(ImportError::ExecutionFaulty(why));
                        force = true;
                    }
                },
                Status::Invalid => {
                    self.metrics.invalid_payloads.inc();
                    let why = status.validation_error.clone().unwrap_or_default();
                    self.mark_reported_invalid(&best, &status)?;
                    fault.get_or_insert(ImportError::Rejected(format!(
                        "the execution client refused head {best}: {why}"
                    )));
                    force = true;
                }
                Status::Syncing | Status::Accepted => {
                    self.replay(&best).await?;
                    force = true;
                }
            }
        }
        Err(ImportError::Other(anyhow::anyhow!(
            "the execution client did not settle on a head in {MAX_ROUNDS} rounds"
        )))
    }

    /// Records `hash` as the stored head (a sampled block the execution client was told) and
    /// updates the head metrics.
    fn set_head(&mut self, hash: B256) -> Result<(), ImportError> {
        self.store.set_head(hash).map_err(anyhow::Error::from)?;
        let meta = self.store.meta(&hash).context("head meta")?;
        self.metrics.head_height.set(meta.height as f64);
        if let Some(p) = self.store.meta(&meta.parent_hash) {
            self.metrics.block_time.set(meta.timestamp_ms.saturating_sub(p.timestamp_ms) as f64 / 1000.0);
        }
        let next = self.params.child_difficulty(meta.height, meta.timestamp_ms);
        self.metrics.difficulty.set(2f64.powf(next.log2_work()));
        Ok(())
    }
}
