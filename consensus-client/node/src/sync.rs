//! Headers-first sync: catching up with peers whose chains carry more work.
//!
//! 1. **Peer.** The peer claiming the most cumulative work above ours (statuses come when
//!    peers connect; gossiped blocks raise a peer's known height).
//! 2. **Fork point.** Its canonical headers are asked from a little below our head, doubling the
//!    distance until the first one's parent is a block we have, at most [`MAX_REORG_DEPTH`]
//!    blocks back (a deeper fork is refused).
//! 3. **Headers.** Up to 1,024 per request, each linked to the one before and put through the
//!    cheap checks (difficulty, proof of work, ticket; §15.3) on the metas derived from its
//!    ancestors; referenced siblings we lack are fetched by hash and checked the same way.
//!    A window holds at most [`WINDOW`] headers. Before any payload is fetched, the window's
//!    chain must carry more work than ours; a peer whose headers do not is dropped and
//!    penalised (its status claimed work it does not have).
//! 4. **Payloads.** By hash, up to 64 per request, spread over every peer that claims at
//!    least as much work, a few requests in flight, paced below each peer's rate limit; an
//!    answer with a payload that is not the one the header commits to costs its peer, and
//!    what a peer left out (an answer holds what fits in a frame) is asked again, of another
//!    peer when there is one, in requests sized to what answers held. The window's payloads
//!    come in slices, the next fetched while one is imported: a first slice of a few blocks,
//!    so that imports begin at once, then each twice as long, up to about 128 MiB.
//! 5. **Import.** Oldest first (siblings before the block naming them) through the same checks
//!    as gossiped blocks: payload checks, the execution client, sampling, fork choice. A
//!    slice's signatures are verified on the blocking threads as soon as its payloads come
//!    (while the slice before is imported), block by block in import order; the execution
//!    client is told they were (it skips its own check, §15.2). The imports are pipelined:
//!    a block's sampling (proofs of both states, their check) runs while the execution client
//!    executes the next block, and the stored head follows one block behind, always on a
//!    sampled block. A block refused there costs the peer that served the headers, and the
//!    sync goes on with another.
//!
//! Progress (height, target, blocks/s, ETA) is logged every few seconds.

use crate::node::{ImportError, Node};
use crate::p2p::P2p;
use alloy_primitives::B256;
use qoin_cl_network::wire::{MAX_HASHES_PER_REQUEST, MAX_HEADERS_PER_REQUEST};
use qoin_cl_network::{NetworkHandle, PeerId, Penalty, Request, Response, Status};
use qoin_consensus::validate::{validate_body, validate_header, BlockMeta, InvalidBlock};
use qoin_engine_api::{Payload, SyncProgress};
use qoin_primitives::{Header, SignedTx};
use qoin_tracing::targets;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deepest fork sync follows (blocks below our head): the fork tree's bound.
pub use qoin_consensus::forkchoice::MAX_REORG_DEPTH;
/// Most headers held before their payloads are fetched and imported.
pub const WINDOW: usize = 2048;
/// Payload requests in flight at once.
const IN_FLIGHT: usize = 4;
/// Blocks in a window's first slice of payloads: few, so that imports begin as soon as they
/// come (a window's headers are all checked first; its payloads come and are imported slice by
/// slice, the next slice fetched while one is imported). Each next slice is twice as long, up
/// to [`SLICE_BYTES`] of payloads.
const FIRST_SLICE: usize = 4;
/// Bytes of payloads a slice holds at most: later slices hold as many blocks as fit at the
/// average payload size seen, so a window of full blocks (about 5 MB each) is not held whole
/// (two slices are: the one imported and the one fetched meanwhile).
const SLICE_BYTES: usize = 128 << 20;
/// A peer this many blocks ahead means we are syncing: the miner waits.
pub const FAR_BEHIND: u64 = 32;

/// Why a sync round stopped.
#[derive(Debug)]
pub(crate) enum SyncError {
    /// The peer served something wrong or failed to answer: drop it, try another.
    Peer(PeerId, Penalty, String),
    /// The peer did not answer (timeout, disconnect): try another, no penalty.
    Unanswered(PeerId, String),
    /// A local failure (the execution client, the store): stop syncing for now.
    Local(String),
}

/// A checked header waiting for its payload.
struct Pending {
    header: Header,
    meta: BlockMeta,
}

impl P2p {
    /// The peer claiming the most work above ours, if any.
    fn best_peer(&self, ours: &Status) -> Option<(PeerId, Status)> {
        self.peers
            .iter()
            .filter(|(_, s)| s.cumulative_work > ours.cumulative_work)
            .max_by_key(|(_, s)| s.cumulative_work)
            .map(|(p, s)| (*p, *s))
    }

    /// Whether a peer is far enough ahead that mining on our head would be wasted.
    pub fn far_behind(&self, node: &Node) -> bool {
        let ours = node.status();
        self.best_peer(&ours)
            .is_some_and(|(_, s)| s.head_height >= ours.head_height.saturating_add(FAR_BEHIND))
    }

    /// Syncs from the best peers until none claims more work than we have, or a local failure
    /// stops it. Returns whether the head moved.
    pub(crate) async fn sync(&mut self, node: &mut Node) -> bool {
        let start_height = node.status().head_height;
        let mut moved = false;
        node.metrics.syncing.set(1.0);
        loop {
            let ours = node.status();
            let Some((peer, target)) = self.best_peer(&ours) else { break };
            tracing::info!(target: targets::SYNC, %peer, height = ours.head_height, target = target.head_height, "syncing");
            report_progress(
                node,
                Some(SyncProgress { starting_block: start_height, highest_block: target.head_height }),
            )
            .await;
            match self.sync_round(node, peer, start_height, &target).await {
                Ok(imported) => {
                    moved |= imported > 0;
                    self.update_status(node);
                    if imported == 0 {
                        // The peer's chain is no heavier than ours after all (or it moved on).
                        self.peers.remove(&peer);
                    }
                }
                Err(SyncError::Peer(p, penalty, why)) => {
                    tracing::info!(target: targets::SYNC, peer = %p, "dropping sync peer: {why}");
                    let _ = self.handle.penalize(p, penalty).await;
                    self.peers.remove(&p);
                }
                Err(SyncError::Unanswered(p, why)) => {
                    tracing::info!(target: targets::SYNC, peer = %p, "sync peer did not answer: {why}");
                    self.peers.remove(&p);
                }
                Err(SyncError::Local(why)) => {
                    tracing::warn!(target: targets::SYNC, "sync stopped: {why}");
                    break;
                }
            }
        }
        node.metrics.syncing.set(0.0);
        report_progress(node, None).await;
        if moved {
            self.update_status(node);
            let h = node.status().head_height;
            tracing::info!(target: targets::SYNC, height = h, blocks = h.saturating_sub(start_height), "synced");
        }
        moved
    }

    /// One round against `peer`: fork point, then windows of headers, payloads and imports up
    /// to its head. Returns how many blocks were imported.
    async fn sync_round(
        &self,
        node: &mut Node,
        peer: PeerId,
        start_height: u64,
        target: &Status,
    ) -> Result<u64, SyncError> {
        let mut from = self.fork_point(node, peer).await?;
        let mut progress = Progress { imported: 0, started: Instant::now(), logged: Instant::now() };
        while from <= target.head_height {
            let window = self.header_window(node, peer, from, target.head_height).await?;
            let Some(last) = window.last() else { break };
            let next_from = last.meta.height.saturating_add(1);
            // Headers first: the window's chain must outweigh ours before any payload comes.
            let new: Vec<&Pending> =
                window.iter().filter(|p| node.store.meta(&p.meta.hash).is_none()).collect();
            if let Some(first) = new.first() {
                let theirs = new.iter().fold(node.store.chain_work(&first.meta.parent_hash), |w, p| {
                    w.saturating_add(p.meta.work)
                });
                let ours = node.store.chain_work(&node.store.head());
                if theirs <= ours {
                    return Err(if next_from > target.head_height {
                        SyncError::Peer(
                            peer,
                            Penalty::BadResponse,
                            format!("its chain carries {theirs} work, ours {ours}, though its status claimed more"),
                        )
                    } else {
                        SyncError::Unanswered(
                            peer,
                            format!("its fork is not heavier than ours within {WINDOW} headers"),
                        )
                    });
                }
            }
            // Payloads in slices: while one slice is imported, the next is fetched (memory holds
            // two slices, each at most about SLICE_BYTES from the payloads seen so far).
            let mut slice_len = FIRST_SLICE;
            let chain_id = node.params.chain_id;
            let (first, mut rest) = window.split_at(slice_len.min(window.len()));
            let payloads = self.payloads(peer, target, &lacking(node, first)).await?;
            let mut current = (first, Fetched::check(first, payloads, chain_id));
            loop {
                let (slice, fetched) = current;
                let payloads = &fetched.payloads;
                let mut fit = WINDOW;
                if !payloads.is_empty() {
                    let bytes: usize = payloads
                        .values()
                        .map(|p| p.transactions.iter().map(|t| t.len()).sum::<usize>() + 1024)
                        .sum();
                    let average = (bytes / payloads.len()).max(1);
                    fit = SLICE_BYTES / average;
                }
                slice_len = slice_len.saturating_mul(2).min(fit).clamp(FIRST_SLICE, WINDOW);
                let (next, tail) = rest.split_at(slice_len.min(rest.len()));
                rest = tail;
                let next_wanted = lacking(node, next);
                // The next slice's bodies are checked as soon as it comes, beside this import.
                let fetch = async {
                    let payloads = self.payloads(peer, target, &next_wanted).await?;
                    Ok::<_, SyncError>(Fetched::check(next, payloads, chain_id))
                };
                let import = import_slice(node, peer, target, slice, fetched, &mut progress);
                let (fetched, done) = tokio::join!(fetch, import);
                done?;
                if next.is_empty() {
                    break;
                }
                current = (next, fetched?);
            }
            self.update_status(node);
            report_progress(
                node,
                Some(SyncProgress { starting_block: start_height, highest_block: target.head_height }),
            )
            .await;
            from = next_from;
        }
        Ok(progress.imported)
    }

    /// The height of the first of `peer`'s canonical blocks that we lack: its headers are asked
    /// from below our head, twice as far each time, until the first one's parent is ours.
    async fn fork_point(&self, node: &Node, peer: PeerId) -> Result<u64, SyncError> {
        let our_height = node.status().head_height;
        let mut back = 8u64;
        loop {
            let start = our_height.saturating_sub(back).max(1);
            let headers = headers_by_range(&self.handle, peer, start, 1).await?;
            let Some(first) = headers.first() else {
                // It has no block at that height: it is behind there; start from its genesis.
                return Ok(start.min(our_height.saturating_add(1)));
            };
            if first.height != start {
                return Err(SyncError::Peer(peer, Penalty::BadResponse, "header of the wrong height".into()));
            }
            if node.store.meta(&first.parent_hash).is_some() {
                return Ok(start);
            }
            if start == 1 {
                return Err(SyncError::Peer(peer, Penalty::WrongChain, "block 1 on another genesis".into()));
            }
            if back >= MAX_REORG_DEPTH {
                return Err(SyncError::Peer(
                    peer,
                    Penalty::BadResponse,
                    format!("its chain forks from ours more than {MAX_REORG_DEPTH} blocks back"),
                ));
            }
            back = (back * 2).min(MAX_REORG_DEPTH);
        }
    }

    /// Up to [`WINDOW`] checked headers of `peer`'s chain from height `from` (at most `to`),
    /// with the siblings they reference that we lack placed before them.
    async fn header_window(
        &self,
        node: &Node,
        peer: PeerId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Pending>, SyncError> {
        let mut out: Vec<Pending> = Vec::new();
        let mut metas: HashMap<B256, BlockMeta> = HashMap::new();
        let mut height = from;
        let now = crate::config::now_ms();
        while height <= to && out.len() < WINDOW {
            let count = (to - height + 1).min(MAX_HEADERS_PER_REQUEST).min((WINDOW - out.len()) as u64);
            let headers = headers_by_range(&self.handle, peer, height, count).await?;
            if headers.is_empty() {
                break;
            }
            for h in headers {
                if h.height != height {
                    return Err(SyncError::Peer(peer, Penalty::BadResponse, "headers out of order".into()));
                }
                let meta_of = |metas: &HashMap<B256, BlockMeta>, hash: &B256| {
                    metas.get(hash).cloned().or_else(|| node.store.meta(hash).cloned())
                };
                let Some(parent) = meta_of(&metas, &h.parent_hash) else {
                    return Err(SyncError::Peer(peer, Penalty::BadResponse, "headers do not link".into()));
                };
                let mut siblings = Vec::with_capacity(h.siblings.len());
                for s in &h.siblings {
                    match meta_of(&metas, s) {
                        Some(m) => siblings.push(m),
                        None => {
                            let sib = self.sibling(peer, s, &metas, node, now).await?;
                            metas.insert(sib.meta.hash, sib.meta.clone());
                            siblings.push(sib.meta.clone());
                            out.push(sib);
                        }
                    }
                }
                let meta = validate_header(&h, &parent, &siblings, &node.params, now).map_err(|e| {
                    SyncError::Peer(peer, Penalty::InvalidBlock, format!("header #{}: {e}", h.height))
                })?;
                metas.insert(meta.hash, meta.clone());
                out.push(Pending { header: h, meta });
                height += 1;
            }
        }
        Ok(out)
    }

    /// A referenced sibling we lack, by hash from `peer`, checked against its parent.
    async fn sibling(
        &self,
        peer: PeerId,
        hash: &B256,
        metas: &HashMap<B256, BlockMeta>,
        node: &Node,
        now: u64,
    ) -> Result<Pending, SyncError> {
        let header = match request(&self.handle, peer, Request::HeadersByHash(vec![*hash])).await? {
            Response::Headers(mut hs) if hs.len() == 1 && hs[0].hash().ok() == Some(*hash) => hs.remove(0),
            _ => {
                return Err(SyncError::Peer(peer, Penalty::BadResponse, format!("sibling {hash} not served")))
            }
        };
        let parent = metas
            .get(&header.parent_hash)
            .cloned()
            .or_else(|| node.store.meta(&header.parent_hash).cloned())
            .ok_or_else(|| {
                SyncError::Peer(peer, Penalty::InvalidBlock, "sibling of an unknown parent".into())
            })?;
        // A sibling's own siblings are not followed: it must name only blocks we know.
        let mut siblings = Vec::new();
        for s in &header.siblings {
            let m = metas.get(s).cloned().or_else(|| node.store.meta(s).cloned()).ok_or_else(|| {
                SyncError::Peer(peer, Penalty::BadResponse, "sibling names unknown siblings".into())
            })?;
            siblings.push(m);
        }
        let meta = validate_header(&header, &parent, &siblings, &node.params, now)
            .map_err(|e| SyncError::Peer(peer, Penalty::InvalidBlock, format!("sibling {hash}: {e}")))?;
        Ok(Pending { header, meta })
    }

    /// The payloads of `wanted` (payload hash, block hash; in import order; none asked when it
    /// is empty), from every peer claiming at least `target`'s work, `IN_FLIGHT` requests at a
    /// time.
    ///
    /// A server answers as many payloads as fit in one response frame (16 MiB): a block of a
    /// thousand PQ transactions is about 5 MB, so an answer may hold only a few of the 64
    /// asked. Each round asks again for what is missing, in requests sized to what the last
    /// answers held; requests to each server are paced below its rate limit (§16.5), and a
    /// refusal (rate limited, busy) is asked again later without blame. The sync gives up on
    /// the window when a server set serves nothing for [`IDLE_ROUNDS`] rounds in a row.
    async fn payloads(
        &self,
        peer: PeerId,
        target: &Status,
        wanted: &[(B256, B256)],
    ) -> Result<HashMap<B256, Payload>, SyncError> {
        // payload hash → block hash.
        let mut order: Vec<B256> = wanted.iter().map(|(_, block)| *block).collect();
        let mut wanted: HashMap<B256, B256> = wanted.iter().copied().collect();
        let mut servers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(p, s)| **p != peer && s.cumulative_work >= target.cumulative_work)
            .map(|(p, _)| *p)
            .collect();
        servers.insert(0, peer);
        let mut got: HashMap<B256, Payload> = HashMap::new();
        let mut pace = Pace::default();
        let mut per_request = MAX_HASHES_PER_REQUEST;
        let mut idle = 0;
        while !order.is_empty() {
            if idle >= IDLE_ROUNDS || servers.is_empty() {
                return Err(SyncError::Unanswered(peer, format!("{} payloads not served", order.len())));
            }
            let before = got.len();
            let mut largest = 0;
            let mut set = tokio::task::JoinSet::new();
            for (i, chunk) in order.chunks(per_request).enumerate() {
                let server = servers[i % servers.len()];
                pace.wait(server).await;
                let handle = self.handle.clone();
                let chunk = chunk.to_vec();
                set.spawn(async move {
                    let r = handle.request(server, Request::PayloadsByHash(chunk)).await;
                    (server, r)
                });
                while set.len() >= IN_FLIGHT {
                    if let Some(done) = set.join_next().await {
                        largest =
                            largest.max(take(done, &mut wanted, &mut got, &mut servers, &self.handle).await);
                    }
                }
                if servers.is_empty() {
                    break;
                }
            }
            while let Some(done) = set.join_next().await {
                largest = largest.max(take(done, &mut wanted, &mut got, &mut servers, &self.handle).await);
            }
            order.retain(|h| !got.contains_key(h));
            if got.len() > before {
                idle = 0;
                // Ask next for about as many as the fullest answer held.
                per_request = largest.clamp(1, MAX_HASHES_PER_REQUEST);
            } else {
                idle += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(got)
    }
}

/// The (payload hash, block hash) of the blocks of `slice` we lack, in order.
fn lacking(node: &Node, slice: &[Pending]) -> Vec<(B256, B256)> {
    slice
        .iter()
        .filter(|p| node.store.meta(&p.meta.hash).is_none())
        .map(|p| (p.meta.payload_hash, p.meta.hash))
        .collect()
}

/// A sync round's count of imported blocks, and when it last logged.
struct Progress {
    imported: u64,
    started: Instant,
    logged: Instant,
}

/// A slice's payloads, and the check of their bodies (transactions root, signatures) running
/// on the blocking threads, block by block in import order: it starts as the payloads come,
/// while the slice before is imported, and each import takes its block's verdict as it is
/// ready.
struct Fetched {
    payloads: Arc<HashMap<B256, Payload>>,
    checked: tokio::sync::mpsc::UnboundedReceiver<(B256, Result<Vec<SignedTx>, InvalidBlock>)>,
    checker: tokio::task::JoinHandle<()>,
}

impl Fetched {
    /// Starts checking the bodies of `slice`'s blocks found in `payloads`.
    fn check(slice: &[Pending], payloads: HashMap<B256, Payload>, chain_id: u64) -> Self {
        let payloads = Arc::new(payloads);
        let order: Vec<(B256, Header)> = slice
            .iter()
            .filter(|p| payloads.contains_key(&p.meta.hash))
            .map(|p| (p.meta.hash, p.header.clone()))
            .collect();
        let (tx, checked) = tokio::sync::mpsc::unbounded_channel();
        let ahead = payloads.clone();
        let checker = tokio::task::spawn_blocking(move || {
            for (hash, header) in order {
                let Some(payload) = ahead.get(&hash) else { continue };
                // A send fails once the import stopped (its receiver dropped): so does the check.
                if tx.send((hash, validate_body(&header, payload, chain_id))).is_err() {
                    break;
                }
            }
        });
        Self { payloads, checked, checker }
    }
}

/// Most blocks imported in one run (one `NewPayloads` call, whose execution client may import
/// them in one database transaction: `qoin-bench import-transfers --txs-per-block 1000`
/// imports 1.3x as fast in runs of 4 and 1.55x in runs of 8, docs/benchmarks.md).
const MAX_RUN: usize = crate::node::SAMPLES_AHEAD;
/// Most transaction bytes in one run: well inside the engine API's 64 MiB message limit.
const MAX_RUN_BYTES: usize = 48 << 20;

/// A payload's transaction bytes.
fn payload_bytes(p: &Payload) -> usize {
    p.transactions.iter().map(|t| t.len()).sum()
}

fn payload_of<'a>(payloads: &'a HashMap<B256, Payload>, p: &Pending) -> Result<&'a Payload, SyncError> {
    payloads
        .get(&p.meta.hash)
        .ok_or_else(|| SyncError::Local(format!("payload of #{} {} missing", p.meta.height, p.meta.hash)))
}

/// Waits for the body check of `p` (keeping the verdicts of other blocks that come first).
async fn checked_body(
    checked: &mut tokio::sync::mpsc::UnboundedReceiver<(B256, Result<Vec<SignedTx>, InvalidBlock>)>,
    results: &mut HashMap<B256, Result<Vec<SignedTx>, InvalidBlock>>,
    p: &Pending,
) -> Result<Result<Vec<SignedTx>, InvalidBlock>, SyncError> {
    loop {
        if let Some(r) = results.remove(&p.meta.hash) {
            return Ok(r);
        }
        match checked.recv().await {
            Some((h, r)) => {
                results.insert(h, r);
            }
            None => return Err(SyncError::Local("the block body check stopped".into())),
        }
    }
}

/// Imports a slice's blocks oldest first, each once its body check is in (see [`Fetched`]),
/// in runs of the blocks whose checks are in.
async fn import_slice(
    node: &mut Node,
    peer: PeerId,
    target: &Status,
    slice: &[Pending],
    fetched: Fetched,
    progress: &mut Progress,
) -> Result<(), SyncError> {
    let Fetched { payloads, mut checked, checker } = fetched;
    let mut results: HashMap<B256, Result<Vec<SignedTx>, InvalidBlock>> = HashMap::new();
    let outcome = async {
        let mut next = 0;
        while next < slice.len() {
            let p = &slice[next];
            next += 1;
            if node.store.meta(&p.meta.hash).is_some() {
                continue;
            }
            // A run: this block once its check is in, then the blocks after it whose checks
            // are in already (the checks run ahead while the run before is imported).
            let mut run = vec![(p, checked_body(&mut checked, &mut results, p).await?)];
            while let Ok((h, r)) = checked.try_recv() {
                results.insert(h, r);
            }
            let mut bytes = payload_bytes(payload_of(&payloads, p)?);
            while let Some(q) = slice.get(next) {
                let size = payload_bytes(payload_of(&payloads, q)?);
                if run.len() == MAX_RUN
                    || bytes + size > MAX_RUN_BYTES
                    || run.last().is_some_and(|(_, r)| r.is_err())
                    || node.store.meta(&q.meta.hash).is_some()
                {
                    break;
                }
                let Some(r) = results.remove(&q.meta.hash) else { break };
                run.push((q, r));
                bytes += size;
                next += 1;
            }
            // A body that failed its check ends the run: the blocks before it are imported.
            let mut blocks = Vec::with_capacity(run.len());
            let mut check_error = None;
            for (q, r) in run {
                match r {
                    Ok(txs) => blocks.push((q, txs)),
                    Err(e) => {
                        check_error = Some((q, e));
                        break;
                    }
                }
            }
            let heights: Vec<u64> = blocks.iter().map(|(q, _)| q.meta.height).collect();
            let (imported, result) = if blocks.len() == 1 {
                let (q, txs) = blocks.remove(0);
                let r =
                    node.import_pipelined(&q.header, payload_of(&payloads, q)?, q.meta.clone(), txs).await;
                (usize::from(r.is_ok()), r)
            } else if blocks.is_empty() {
                (0, Ok(()))
            } else {
                let mut run = Vec::with_capacity(blocks.len());
                for (q, txs) in blocks {
                    run.push((&q.header, payload_of(&payloads, q)?, q.meta.clone(), txs));
                }
                node.import_pipelined_run(run).await
            };
            progress.imported += imported as u64;
            let at =
                heights.get(imported).copied().unwrap_or_else(|| heights.last().copied().unwrap_or_default());
            match result {
                Ok(()) => {}
                Err(ImportError::Rejected(why)) => {
                    return Err(SyncError::Peer(
                        peer,
                        Penalty::InvalidBlock,
                        format!("block #{at} refused: {why}"),
                    ))
                }
                Err(e) => return Err(SyncError::Local(format!("block #{at}: {e}"))),
            }
            if let Some((q, e)) = check_error {
                return Err(SyncError::Peer(
                    peer,
                    Penalty::InvalidBlock,
                    format!("block #{} refused: {e}", q.meta.height),
                ));
            }
            if progress.logged.elapsed() >= Duration::from_secs(5) {
                progress.logged = Instant::now();
                let height = heights.last().copied().unwrap_or_default();
                let rate = progress.imported as f64 / progress.started.elapsed().as_secs_f64().max(1e-3);
                let left = target.head_height.saturating_sub(height);
                tracing::info!(
                    target: targets::SYNC,
                    height,
                    target = target.head_height,
                    blocks_per_s = %format_args!("{rate:.1}"),
                    eta_s = (left as f64 / rate.max(1e-3)).round(),
                    "sync progress"
                );
            }
        }
        Ok(())
    }
    .await;
    drop(checked);
    // Finished or stopped at its next send; a panic in it is the import's fault to report.
    let _ = checker.await;
    // The slice's last block is still being sampled: settled before the slice is done.
    let settled = node.update_head(false).await.map_err(|e| match e {
        ImportError::Rejected(why) => SyncError::Peer(peer, Penalty::InvalidBlock, why),
        e => SyncError::Local(format!("settling the head: {e}")),
    });
    outcome.and(settled)
}

/// Rounds in a row in which no server served a payload before the sync gives up on a window.
const IDLE_ROUNDS: u32 = 5;
/// Requests per second asked of one server by a sync, and at most this many at once: below
/// the rate limit every server applies (64 at once, 16 per second, §16.5), so that a long
/// sync of full blocks is not refused, nor penalised as over the limit.
const REQUESTS_PER_SEC: f64 = 12.0;
const REQUEST_BURST: f64 = 32.0;

/// A token bucket per server, mirroring the server's own limit from below.
#[derive(Default)]
struct Pace {
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl Pace {
    /// Waits until a request to `server` is within the pace, and takes its token.
    async fn wait(&mut self, server: PeerId) {
        let (tokens, at) = self.buckets.entry(server).or_insert((REQUEST_BURST, Instant::now()));
        let now = Instant::now();
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * REQUESTS_PER_SEC)
            .min(REQUEST_BURST);
        *at = now;
        if *tokens < 1.0 {
            tokio::time::sleep(Duration::from_secs_f64((1.0 - *tokens) / REQUESTS_PER_SEC)).await;
            *tokens = 1.0;
            *at = Instant::now();
        }
        *tokens -= 1.0;
    }
}

/// Files one payload answer; returns how many payloads it held. Payloads that were asked for
/// go in; a payload nobody asked for, or an answer of another kind, costs its peer and
/// removes it from the servers; a refusal (rate limited, busy) is no one's fault and is asked
/// again; a failed request removes the server.
async fn take(
    done: Result<(PeerId, Result<Response, qoin_cl_network::RequestError>), tokio::task::JoinError>,
    wanted: &mut HashMap<B256, B256>,
    got: &mut HashMap<B256, Payload>,
    servers: &mut Vec<PeerId>,
    handle: &NetworkHandle,
) -> usize {
    let Ok((server, result)) = done else { return 0 };
    match result {
        Ok(Response::Payloads(ps)) => {
            let n = ps.len();
            for p in ps {
                match wanted.get(&p.block_hash) {
                    Some(block) => {
                        got.insert(*block, p);
                    }
                    None => {
                        let _ = handle.penalize(server, Penalty::BadResponse).await;
                        servers.retain(|s| *s != server);
                        return 0;
                    }
                }
            }
            wanted.retain(|_, b| !got.contains_key(b));
            n
        }
        Ok(Response::Refused(why)) => {
            tracing::debug!(target: targets::SYNC, peer = %server, "payloads refused: {why}");
            0
        }
        Ok(_) => {
            let _ = handle.penalize(server, Penalty::BadResponse).await;
            servers.retain(|s| *s != server);
            0
        }
        Err(e) => {
            tracing::debug!(target: targets::SYNC, "{e}");
            servers.retain(|s| *s != server);
            0
        }
    }
}

async fn request(handle: &NetworkHandle, peer: PeerId, r: Request) -> Result<Response, SyncError> {
    handle.request(peer, r).await.map_err(|e| SyncError::Unanswered(peer, e.to_string()))
}

async fn headers_by_range(
    handle: &NetworkHandle,
    peer: PeerId,
    start: u64,
    count: u64,
) -> Result<Vec<Header>, SyncError> {
    match request(handle, peer, Request::HeadersByRange { start, count }).await? {
        Response::Headers(hs) if hs.len() as u64 <= count => Ok(hs),
        Response::Refused(why) => Err(SyncError::Unanswered(peer, format!("refused: {why}"))),
        _ => Err(SyncError::Peer(peer, Penalty::BadResponse, "not an answer to HeadersByRange".into())),
    }
}

/// Tells the execution client how the sync goes (its `eth_syncing`); a failure only costs the
/// report.
async fn report_progress(node: &Node, progress: Option<SyncProgress>) {
    if let Err(e) = node.engine.set_sync_status(progress).await {
        tracing::debug!(target: targets::SYNC, "sync status not reported to the execution client: {e}");
    }
}
