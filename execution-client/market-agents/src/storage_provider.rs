//! `qoin-provider storage`: a storage provider's daemon.
//!
//! Each new head it: reads the storage market's logs since the last block it read (so a
//! restart, even after SIGKILL, misses nothing: the block is saved with the rest of its
//! state), takes the bids and reopened slots that fit its ask, and for every deal it holds
//! proves the period due, gives up a slot whose data never came before the first proof is
//! due (free of charge), repairs a retaken slot from a surviving replica, and ends the deal
//! after its last period (which returns its collateral). It keeps one ask open, posting a new
//! one when the old one nears its expiry. Its HTTP server takes uploads and serves chunks
//! ([`crate::transfer`]).
//!
//! The data directory holds `state.json` (the ask, the last block read, the deals held) and
//! `deals/<id>.bin` (each deal's coded file), both written to a temporary file first and
//! renamed, so a crash leaves the old or the new one. Uploads go to disk as they arrive, and
//! chunks are read back from disk ([`crate::deal_file`]): memory holds each file's Merkle
//! tree, not its data.

use crate::daemon::{declared_above, drain, follow, serve, Daemon};
use crate::deal_file::{DealFile, FileError, FrameReader};
use crate::disk::{load_json, write_atomic};
use crate::node::{decode_events, log_range, publish_endpoint, CallError, Node};
use crate::transfer::{encode_records, ChunkReader, ChunkRecord, MAX_CHUNKS_PER_REQUEST};
use crate::wallet::Wallet;
use alloy_primitives::{Address, B256, U256};
use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::Router;
use qoin_markets::storage::{challenges, randomness_of, StorageMarket as M, CHUNK_SIZE};
use qoin_primitives::system::STORAGE_MARKET;
use qoin_tracing::targets::MARKET;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// An ask is replaced when fewer blocks than this remain before its expiry.
const ASK_RENEW_MARGIN: u64 = 50;

/// What the provider offers (`qoin-provider storage`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct StorageConfig {
    /// Where the provider keeps its state and its deals' data.
    #[arg(long)]
    pub datadir: PathBuf,
    /// Space offered (`10GiB`, `512MiB`, `1000000`).
    #[arg(long, value_parser = crate::cli::parse_size)]
    pub capacity: u64,
    /// Price in shor per byte per period.
    #[arg(long)]
    pub price: u128,
    /// Collateral in shor per byte stored (locked while a deal lasts).
    #[arg(long, default_value_t = 1)]
    pub collateral_per_byte: u128,
    /// Smallest coded file taken.
    #[arg(long, value_parser = crate::cli::parse_size, default_value = "1KiB")]
    pub min_size: u64,
    /// Largest coded file taken (default: the capacity).
    #[arg(long, value_parser = crate::cli::parse_size)]
    pub max_size: Option<u64>,
    /// Blocks each ask stays open (a new one follows).
    #[arg(long, default_value_t = 10_000)]
    pub ask_blocks: u64,
    /// Where the HTTP server (uploads, retrieval) listens.
    #[arg(long = "http", default_value = "127.0.0.1:8600")]
    pub listen: SocketAddr,
    /// The URL others reach that server at, published on chain (default: http://<--http>).
    #[arg(long)]
    pub public_url: Option<String>,
}

impl StorageConfig {
    /// The largest coded file taken.
    pub fn max_size(&self) -> u64 {
        self.max_size.unwrap_or(self.capacity)
    }

    /// The URL published on chain.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// A deal this provider holds a slot of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Held {
    slot: u64,
    root: B256,
    chunks: u64,
    /// Whether its coded file is on disk (checked against the root).
    stored: bool,
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    ask: Option<U256>,
    /// The last block whose market logs were read.
    scanned: u64,
    deals: BTreeMap<u64, Held>,
}

/// The state and the data, shared by the chain loop and the HTTP server.
struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    /// Deals' files (on disk; their trees in memory), opened on first use.
    files: Mutex<HashMap<u64, Arc<DealFile>>>,
    /// Held while `state.json` is written (the chain loop and uploads both save).
    saving: Mutex<()>,
}

impl Shared {
    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn deal_path(&self, deal: u64) -> PathBuf {
        self.dir.join("deals").join(format!("{deal}.bin"))
    }

    fn save(&self) -> anyhow::Result<()> {
        let _saving = self.saving.lock().map_err(|_| anyhow::anyhow!("save lock poisoned"))?;
        let text = {
            let state = self.state.lock().map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
            serde_json::to_vec_pretty(&*state)?
        };
        write_atomic(&self.state_path(), &text)
    }

    fn held(&self, deal: u64) -> Option<Held> {
        self.state.lock().ok()?.deals.get(&deal).cloned()
    }

    /// The deal's file, if stored.
    fn file(&self, deal: u64) -> Option<Arc<DealFile>> {
        if let Some(f) = self.files.lock().ok()?.get(&deal) {
            return Some(f.clone());
        }
        let held = self.held(deal).filter(|h| h.stored)?;
        let file = Arc::new(DealFile::open(&self.deal_path(deal), held.chunks, held.root)?);
        self.files.lock().ok()?.insert(deal, file.clone());
        Some(file)
    }

    /// Keeps what `source` yields as deal `deal`'s file if it is the deal's (its root and
    /// chunk count), written to disk as it is read.
    fn store(&self, deal: u64, source: impl std::io::Read) -> Result<(), (StatusCode, String)> {
        let Some(held) = self.held(deal) else {
            return Err((StatusCode::NOT_FOUND, format!("deal {deal} is not held here")));
        };
        let file = DealFile::write(&self.deal_path(deal), source, held.chunks, held.root).map_err(|e| {
            let status = match e {
                FileError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
                FileError::TooLong(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, format!("deal {deal}: {e}"))
        })?;
        if let Ok(mut files) = self.files.lock() {
            files.insert(deal, Arc::new(file));
        }
        if let Ok(mut state) = self.state.lock() {
            if let Some(h) = state.deals.get_mut(&deal) {
                h.stored = true;
            }
        }
        self.save().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
        info!(target: MARKET, deal, bytes = held.chunks * CHUNK_SIZE as u64, "stored");
        Ok(())
    }

    fn forget(&self, deal: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.deals.remove(&deal);
        }
        if let Ok(mut files) = self.files.lock() {
            files.remove(&deal);
        }
        let _ = std::fs::remove_file(self.deal_path(deal));
    }
}

async fn put_deal(
    AxState(shared): AxState<Arc<Shared>>,
    Path(deal): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    use futures::StreamExt as _;
    // Refused before a byte is read: no slot here, or more than the deal's size declared.
    let Some(held) = shared.held(deal) else {
        drain(body).await;
        return (StatusCode::NOT_FOUND, format!("deal {deal} is not held here\n"));
    };
    let max = held.chunks * CHUNK_SIZE as u64;
    if declared_above(&headers, max) {
        drain(body).await;
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("deal {deal} is {max} bytes\n"));
    }
    // Written to disk as it arrives (on the blocking pool), never held whole in memory.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let writer = tokio::task::spawn_blocking(move || shared.store(deal, FrameReader::new(rx)));
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| format!("the upload could not be read (cut short?): {e}"));
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            break; // the writer has refused it already, or the upload broke
        }
    }
    drop(tx);
    match writer.await {
        Ok(Ok(())) => (StatusCode::OK, "stored\n".into()),
        Ok(Err((status, why))) => (status, format!("{why}\n")),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn get_chunks(
    AxState(shared): AxState<Arc<Shared>>,
    Path((deal, from, count)): Path<(u64, u64, u64)>,
) -> Result<Vec<u8>, (StatusCode, String)> {
    if count == 0 || count > MAX_CHUNKS_PER_REQUEST {
        return Err((StatusCode::BAD_REQUEST, format!("count must be 1 to {MAX_CHUNKS_PER_REQUEST}\n")));
    }
    tokio::task::spawn_blocking(move || {
        let Some(file) = shared.file(deal) else {
            return Err((StatusCode::NOT_FOUND, format!("deal {deal} is not stored here\n")));
        };
        let end = from.checked_add(count).filter(|&e| e <= file.chunks());
        let Some(end) = end else {
            return Err((StatusCode::BAD_REQUEST, format!("deal {deal} has {} chunks\n", file.chunks())));
        };
        let mut records = Vec::with_capacity(count as usize);
        for i in from..end {
            let (Ok(chunk), Ok(path)) = (file.chunk(i), file.path(i)) else {
                return Err((StatusCode::INTERNAL_SERVER_ERROR, format!("chunk {i} unreadable\n")));
            };
            records.push(ChunkRecord { chunk, path });
        }
        Ok(encode_records(&records))
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))?
}

/// The provider's HTTP routes (uploads stream to disk, their length bounded by the deal's).
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/storage/{deal}", put(put_deal))
        .route("/storage/{deal}/chunks/{from}/{count}", get(get_chunks))
        .with_state(shared)
}

/// Runs the provider until the process is stopped.
pub async fn run(node: Node, wallet: Wallet, config: StorageConfig) -> anyhow::Result<()> {
    if config.min_size > config.max_size() || config.max_size() > config.capacity {
        anyhow::bail!("sizes: need --min-size <= --max-size <= --capacity");
    }
    std::fs::create_dir_all(config.datadir.join("deals"))
        .with_context(|| format!("creating {}", config.datadir.display()))?;
    let state: State = load_json(&config.datadir.join("state.json"))?;
    let shared = Arc::new(Shared {
        dir: config.datadir.clone(),
        state: Mutex::new(state),
        files: Mutex::default(),
        saving: Mutex::default(),
    });
    serve(config.listen, router(shared.clone())).await?;
    let me = wallet.address();
    info!(target: MARKET, provider = %me, http = %config.listen, url = %config.public_url(), "storage provider");
    publish_endpoint(&node, &wallet, STORAGE_MARKET, &config.public_url()).await?;
    follow(&mut Provider { node, wallet, config, shared, me }).await
}

struct Provider {
    node: Node,
    wallet: Wallet,
    config: StorageConfig,
    shared: Arc<Shared>,
    me: Address,
}

impl Provider {
    async fn call<C: alloy_sol_types::SolCall>(&self, call: &C) -> Result<C::Return, CallError> {
        self.node.call(self.me, STORAGE_MARKET, call).await
    }

    async fn send<C: alloy_sol_types::SolCall>(
        &self,
        call: &C,
        value: U256,
    ) -> Result<crate::node::Receipt, CallError> {
        self.node.send(&self.wallet, STORAGE_MARKET, call, value).await
    }

    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> anyhow::Result<T> {
        let mut s = self.shared.state.lock().map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
        Ok(f(&mut s))
    }
}

impl Daemon for Provider {
    fn node(&self) -> &Node {
        &self.node
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let head = self.node.block_number().await?;
        self.ensure_ask(head).await?;
        let mut scanned = self.state(|s| s.scanned)?;
        while let Some((from, to)) = log_range(scanned, head) {
            let logs = self.node.logs(STORAGE_MARKET, from, to).await?;
            for bid in decode_events::<M::BidPosted>(&logs, STORAGE_MARKET) {
                self.consider_bid(bid).await;
            }
            for reopened in decode_events::<M::SlotReopened>(&logs, STORAGE_MARKET) {
                self.consider_reopened(reopened).await;
            }
            scanned = to;
            self.state(|s| s.scanned = scanned)?;
            self.shared.save()?;
        }
        let deals: Vec<(u64, Held)> =
            self.state(|s| s.deals.iter().map(|(k, v)| (*k, v.clone())).collect())?;
        for (deal, held) in deals {
            if let Err(e) = self.work(deal, &held, head).await {
                warn!(target: MARKET, deal, "{e:#}");
            }
        }
        self.shared.save()
    }
}

impl Provider {
    /// Keeps an ask open: a new one when there is none, or the old one is closed or near
    /// its expiry (the old one is closed, its free collateral back).
    async fn ask_is_open(&self, head: u64) -> anyhow::Result<bool> {
        let Some(id) = self.state(|s| s.ask)? else { return Ok(false) };
        let ask = self.call(&M::asksCall(id)).await.map_err(anyhow::Error::from)?;
        Ok(!ask.closed && ask.expiry > head + ASK_RENEW_MARGIN)
    }

    async fn ensure_ask(&mut self, head: u64) -> anyhow::Result<()> {
        if self.ask_is_open(head).await? {
            return Ok(());
        }
        if let Some(old) = self.state(|s| s.ask)? {
            let ask = self.call(&M::asksCall(old)).await.map_err(anyhow::Error::from)?;
            if !ask.closed {
                self.send(&M::closeAskCall { askId: old }, U256::ZERO).await.map_err(anyhow::Error::from)?;
            }
        }
        let c = &self.config;
        let call = M::postAskCall {
            price: c.price,
            minSize: c.min_size,
            maxSize: c.max_size(),
            collateralPerByte: c.collateral_per_byte,
            capacity: c.capacity,
            expiry: head + c.ask_blocks,
        };
        let value = U256::from(c.collateral_per_byte) * U256::from(c.capacity);
        let r = self.send(&call, value).await.map_err(anyhow::Error::from)?;
        let id = r
            .events::<M::AskPosted>(STORAGE_MARKET)
            .first()
            .map(|e| e.askId)
            .context("postAsk logged no AskPosted")?;
        info!(target: MARKET, ask = %id, capacity = c.capacity, price = c.price, "ask posted");
        self.state(|s| s.ask = Some(id))?;
        self.shared.save()
    }

    async fn take(&self, deal: u64, slot: u64, root: B256, chunks: u64) -> bool {
        let Ok(Some(ask)) = self.state(|s| s.ask) else { return false };
        let call = M::takeCall { bidId: U256::from(deal), slot: U256::from(slot), askId: ask };
        match self.send(&call, U256::ZERO).await {
            Ok(r) => {
                let Some(taken) =
                    r.events::<M::SlotTaken>(STORAGE_MARKET).into_iter().find(|t| t.provider == self.me)
                else {
                    return false;
                };
                let slot = taken.slot.to::<u64>();
                let held = Held { slot, root, chunks, stored: false };
                let _ = self.state(|s| s.deals.insert(deal, held));
                let _ = self.shared.save();
                info!(target: MARKET, deal, slot, first_period = %taken.firstPeriod, "slot taken");
                true
            }
            // The terms do not fit, or someone else was faster: nothing to do.
            Err(CallError::Refused(why)) => {
                info!(target: MARKET, deal, "not taken: {why}");
                false
            }
            Err(CallError::Reverted(_)) => {
                info!(target: MARKET, deal, "not taken: another provider's take came first");
                false
            }
            Err(e) => {
                warn!(target: MARKET, deal, "take: {e:#}");
                false
            }
        }
    }

    async fn consider_bid(&self, bid: M::BidPosted) {
        let size = bid.size.saturating_to::<u64>();
        let c = &self.config;
        if size < c.min_size || size > c.max_size() || U256::from(c.price) > bid.maxPrice {
            return;
        }
        let deal = bid.bidId.saturating_to::<u64>();
        if self.shared.held(deal).is_some() {
            return;
        }
        self.take(deal, 0, bid.root, size / CHUNK_SIZE as u64).await;
    }

    async fn consider_reopened(&self, r: M::SlotReopened) {
        let deal = r.bidId.saturating_to::<u64>();
        // A provider whose replica failed does not take its own slot back.
        if r.formerProvider == self.me || self.shared.held(deal).is_some() {
            return;
        }
        let Ok(bid) = self.call(&M::bidsCall(r.bidId)).await else { return };
        let size = bid.chunks * CHUNK_SIZE as u64;
        if bid.finished || size < self.config.min_size || size > self.config.max_size() {
            return;
        }
        self.take(deal, r.slot.saturating_to(), bid.root, bid.chunks).await;
    }

    /// What a held deal needs now.
    async fn work(&self, deal: u64, held: &Held, head: u64) -> anyhow::Result<()> {
        let id = U256::from(deal);
        let bid = self.call(&M::bidsCall(id)).await?;
        let slot = self.call(&M::slotsCall { _0: id, _1: U256::from(held.slot) }).await?;
        if bid.finished || slot.provider != self.me {
            info!(target: MARKET, deal, finished = bid.finished, "deal over for this provider; data dropped");
            self.shared.forget(deal);
            return Ok(());
        }
        if bid.start == 0 {
            return Ok(()); // waiting for the other replicas
        }
        let period = |p: u64| async move {
            self.call(&M::periodStartCall { bidId: id, p: U256::from(p) })
                .await
                .map(|s| s.saturating_to::<u64>())
        };
        let window = self.call(&M::windowCall { bidId: id }).await?.saturating_to::<u64>();
        let last_end = period(bid.periods - 1).await? + window;
        if head > last_end {
            match self.send(&M::finishCall { bidId: id }, U256::ZERO).await {
                Ok(r) => {
                    let refunded = r.events::<M::DealFinished>(STORAGE_MARKET).first().map(|e| e.refunded);
                    info!(target: MARKET, deal, ?refunded, "deal finished");
                }
                Err(CallError::Refused(why)) => info!(target: MARKET, deal, "finish: {why}"),
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        // Count the other replicas' missed periods (the contract counts them only when asked):
        // a failed replica's slot reopens, and a provider with room takes it and repairs it.
        for i in 0..u64::from(bid.replicas) {
            if i == held.slot {
                continue;
            }
            let other = self.call(&M::slotsCall { _0: id, _1: U256::from(i) }).await?;
            if other.provider != Address::ZERO
                && other.next < bid.periods
                && head > period(other.next).await? + window
            {
                let r = self.send(&M::settleAllCall { bidId: id }, U256::ZERO).await?;
                let missed = r.events::<M::Missed>(STORAGE_MARKET).len();
                let failed = r.events::<M::SlotReopened>(STORAGE_MARKET).len();
                info!(target: MARKET, deal, missed, failed, "other replicas' missed periods counted");
                break;
            }
        }
        if !held.stored {
            if slot.next > 0 || slot.proven > 0 {
                // A retaken slot: fetch the data from a surviving replica.
                self.repair(deal, held, &bid).await?;
            } else if head + 1 > period(0).await? && slot.proven == 0 {
                // The client never uploaded: give the slot up while that is free.
                self.send(&M::abandonCall { bidId: id, slot: U256::from(held.slot) }, U256::ZERO).await?;
                info!(target: MARKET, deal, "no data came before the first proof: slot given up");
                self.shared.forget(deal);
            }
            return Ok(());
        }
        let due = self.call(&M::dueCall { bidId: id, slot: U256::from(held.slot) }).await?;
        let (p, from, until) =
            (due.p.saturating_to::<u64>(), due.from.saturating_to::<u64>(), due.until.saturating_to());
        // Sent once the period's first block is the head's ancestor (so a dry run on the head
        // accepts it) and while the window is open for the block it will land in.
        if p >= bid.periods || head < from || head + 1 > until {
            return Ok(());
        }
        let file = self.shared.file(deal).context("the deal's data is missing from disk")?;
        let start = from - 1;
        let header = self.node.raw_header(start).await?;
        let randomness = randomness_of(&header).context("a header without randomness")?;
        let indices = challenges(randomness, deal, held.slot, p, held.chunks);
        let answer = file.answer(&indices)?;
        let call = M::proveCall {
            bidId: id,
            slot: U256::from(held.slot),
            p: U256::from(p),
            header,
            data: answer.data.into_iter().map(Into::into).collect(),
            paths: answer.paths,
        };
        let r = self.send(&call, U256::ZERO).await?;
        let paid = r.events::<M::Proven>(STORAGE_MARKET).first().map(|e| e.paid);
        info!(target: MARKET, deal, period = p, ?paid, gas = r.gas_used, "proven");
        Ok(())
    }

    /// Fetches a retaken slot's data from the other replicas, checking every chunk.
    async fn repair(&self, deal: u64, held: &Held, bid: &M::bidsReturn) -> anyhow::Result<()> {
        let mut sources = vec![];
        for i in 0..u64::from(bid.replicas) {
            if i == held.slot {
                continue;
            }
            let s = self.call(&M::slotsCall { _0: U256::from(deal), _1: U256::from(i) }).await?;
            if s.provider == Address::ZERO {
                continue;
            }
            let url = self.call(&M::endpointCall(s.provider)).await?;
            if !url.is_empty() {
                sources.push(url);
            }
        }
        let (chunks, root) = (held.chunks, held.root);
        let shared = self.shared.clone();
        // Written to disk range by range as the chunks arrive, each checked on the way.
        tokio::task::spawn_blocking(move || {
            shared.store(deal, ChunkReader::new(sources, deal, chunks, root))
        })
        .await?
        .map_err(|(_, why)| anyhow::anyhow!(why))?;
        info!(target: MARKET, deal, "repaired from a surviving replica");
        Ok(())
    }
}
