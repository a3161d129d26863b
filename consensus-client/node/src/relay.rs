//! Transaction relay between the execution client's pool and the network.
//!
//! Out: every transaction the execution client announces on `SubscribeTransactions` (sent to
//! its JSON-RPC, or back in its pool after a reorg) is gossiped, unless it came from the
//! network. In: a gossiped transaction is decoded, looked up by id (a duplicate costs that
//! lookup and nothing else), and offered to the execution client in batches through
//! `SubmitTransactions`; the pool's verdict decides what gossipsub does with the message:
//! added → forwarded, known or refused (funds, price, limits) → dropped without blame,
//! invalid (undecodable, bad signature, wrong chain, …) → dropped and the sender penalised.
//!
//! On meeting a peer: each side asks the other for the ids of its pool (`PoolHashes`), then for
//! the transactions its own pool lacks (`TransactionsByHash`, 256 at a time), and offers them
//! to its pool like gossiped ones, without gossiping them on (the peer that had them did). A
//! transaction sent while a node had no peers, or before another joined, so still reaches
//! every pool. A peer that answers with transactions it was not asked for, or invalid ones,
//! is penalised.
//!
//! The relay runs as its own task so that a burst of transactions never delays block import.

use crate::metrics::ClMetrics;
use alloy_primitives::{Bytes, B256};
use qoin_cl_network::wire::MAX_TXS_PER_REQUEST;
use qoin_cl_network::{GossipVerdict, MessageId, NetworkHandle, PeerId, Penalty, Request, Response};
use qoin_engine_api::{EngineClient, EngineError, Verdict, MAX_POOLED_HASHES, MAX_SUBMIT_TRANSACTIONS};
use qoin_primitives::SignedTx;
use qoin_tracing::targets;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

/// Gossiped transactions waiting for the relay; more are dropped (without blame).
const QUEUE: usize = 4096;
/// Transaction ids remembered as seen (gossiped by us or offered to the pool).
const SEEN: usize = 1 << 16;
/// How long the first transaction of a batch waits for others.
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// A gossiped transaction waiting for the pool's verdict.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub id: MessageId,
    pub source: PeerId,
    pub raw: Vec<u8>,
}

/// The handle the main loop offers gossiped transactions to.
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    queue: mpsc::Sender<Incoming>,
    pulls: mpsc::Sender<PeerId>,
}

/// Peers waiting for their pool to be pulled; a peer beyond them is skipped (its transactions
/// still arrive by gossip as they are sent).
const PULLS_WAITING: usize = 64;

/// Transactions pulled from a peer's pool (each with its id), for the relay loop to offer to
/// ours.
struct Pulled {
    peer: PeerId,
    txs: Vec<(Bytes, B256)>,
}

impl Relay {
    /// Pulls what `peer`'s pool has and ours lacks, in the background.
    pub(crate) fn pull_pool(&self, peer: PeerId) {
        if self.pulls.try_send(peer).is_err() {
            tracing::debug!(target: targets::NETWORK, %peer, "pool pull skipped: too many waiting");
        }
    }

    /// Queues a gossiped transaction; when the queue is full it is dropped without blame.
    pub(crate) async fn offer(&self, network: &NetworkHandle, tx: Incoming) {
        if let Err(mpsc::error::TrySendError::Full(tx)) = self.queue.try_send(tx) {
            let _ = network.report(tx.id, tx.source, GossipVerdict::Ignore).await;
        }
    }
}

/// A bounded set of transaction ids: the oldest are forgotten first.
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<B256>,
    order: VecDeque<B256>,
}

impl Seen {
    /// Adds `id`; false if it was already there.
    fn insert(&mut self, id: B256) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    fn remove(&mut self, id: &B256) {
        self.set.remove(id);
    }
}

/// Starts the relay task.
pub(crate) fn spawn(engine: EngineClient, network: NetworkHandle, metrics: Arc<ClMetrics>) -> Relay {
    let (queue, rx) = mpsc::channel(QUEUE);
    let (pulls, pull_rx) = mpsc::channel(PULLS_WAITING);
    // Pulled transactions wait here for the relay loop (a few batches: the puller waits when
    // they are full).
    let (pulled_tx, pulled) = mpsc::channel(4);
    tokio::spawn(puller(engine.clone(), network.clone(), pull_rx, pulled_tx));
    tokio::spawn(run(engine, network, metrics, rx, pulled));
    Relay { queue, pulls }
}

/// Pulls peers' pools, one peer at a time: their ids, less those our pool has, then the
/// transactions by id; each batch goes to the relay loop.
async fn puller(
    engine: EngineClient,
    network: NetworkHandle,
    mut peers: mpsc::Receiver<PeerId>,
    pulled: mpsc::Sender<Pulled>,
) {
    while let Some(peer) = peers.recv().await {
        match pull_one(&engine, &network, peer, &pulled).await {
            Ok(0) => tracing::debug!(target: targets::NETWORK, %peer, "pool pull: nothing new"),
            Ok(n) => tracing::debug!(target: targets::NETWORK, %peer, transactions = n, "pool pulled"),
            Err(e) => tracing::debug!(target: targets::NETWORK, %peer, "pool pull ended: {e}"),
        }
    }
}

async fn pull_one(
    engine: &EngineClient,
    network: &NetworkHandle,
    peer: PeerId,
    pulled: &mpsc::Sender<Pulled>,
) -> Result<usize, String> {
    let theirs = match network.request(peer, Request::PoolHashes).await.map_err(|e| e.to_string())? {
        Response::TransactionHashes(ids) => ids,
        Response::Refused(why) => return Err(format!("refused: {why}")),
        _ => {
            let _ = network.penalize(peer, Penalty::BadResponse).await;
            return Err("answered pool hashes with something else".into());
        }
    };
    if theirs.is_empty() {
        return Ok(0);
    }
    let ours: HashSet<B256> = engine
        .pooled_transaction_hashes(MAX_POOLED_HASHES)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mut asked = HashSet::new();
    let want: Vec<B256> = theirs.into_iter().filter(|id| !ours.contains(id) && asked.insert(*id)).collect();
    let mut total = 0;
    for chunk in want.chunks(MAX_TXS_PER_REQUEST) {
        let raws = match network.request(peer, Request::TransactionsByHash(chunk.to_vec())).await {
            Ok(Response::Transactions(raws)) => raws,
            Ok(Response::Refused(why)) => return Err(format!("refused: {why}")),
            Ok(_) => {
                let _ = network.penalize(peer, Penalty::BadResponse).await;
                return Err("answered transactions by hash with something else".into());
            }
            Err(e) => return Err(e.to_string()),
        };
        // Only what was asked for, each once: anything else is the peer's fault.
        let mut wanted: HashSet<B256> = chunk.iter().copied().collect();
        let mut txs = Vec::with_capacity(raws.len());
        for raw in raws {
            match SignedTx::decode(&raw).map(|t| t.id()) {
                Ok(id) if wanted.remove(&id) => txs.push((raw, id)),
                _ => {
                    let _ = network.penalize(peer, Penalty::BadResponse).await;
                    return Err("sent a transaction it was not asked for".into());
                }
            }
        }
        total += txs.len();
        if pulled.send(Pulled { peer, txs }).await.is_err() {
            break; // the relay stopped
        }
    }
    Ok(total)
}

async fn run(
    engine: EngineClient,
    network: NetworkHandle,
    metrics: Arc<ClMetrics>,
    mut incoming: mpsc::Receiver<Incoming>,
    mut pulled: mpsc::Receiver<Pulled>,
) {
    let mut seen = Seen::default();
    let mut announced = None;
    loop {
        if announced.is_none() {
            match engine.subscribe_transactions().await {
                Ok(s) => announced = Some(Box::pin(s) as Announced),
                Err(e) => tracing::debug!(target: targets::NETWORK, "no transaction stream yet: {e}"),
            }
        }
        tokio::select! {
            first = incoming.recv() => {
                let Some(first) = first else { return };
                let mut batch = vec![first];
                let deadline = tokio::time::sleep(BATCH_WAIT);
                tokio::pin!(deadline);
                while batch.len() < MAX_SUBMIT_TRANSACTIONS {
                    tokio::select! {
                        Some(more) = incoming.recv() => batch.push(more),
                        _ = &mut deadline => break,
                    }
                }
                submit(&engine, &network, &metrics, &mut seen, batch).await;
            }
            Some(p) = pulled.recv() => submit_pulled(&engine, &network, &metrics, &mut seen, p).await,
            item = next(&mut announced) => match item {
                Some(Ok(tx)) => {
                    if seen.insert(tx.hash) {
                        match network.publish_transaction(tx.raw.to_vec()).await {
                            Ok(()) => {
                                metrics.txs_gossiped.inc();
                            }
                            Err(e) => tracing::debug!(target: targets::NETWORK, "cannot gossip tx {}: {e}", tx.hash),
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(target: targets::NETWORK, "transaction stream ended: {e}");
                    announced = None;
                }
                // The stream ended (or there was none: `next` waited already); subscribe again.
                None => announced = None,
            },
        }
    }
}

type Announced = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<qoin_engine_api::PooledTx, EngineError>> + Send>,
>;

async fn next(s: &mut Option<Announced>) -> Option<Result<qoin_engine_api::PooledTx, EngineError>> {
    match s {
        Some(s) => s.next().await,
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}

/// Offers transactions pulled from a peer's pool to ours. They are marked seen first, so that
/// ours does not gossip them on when it announces them; an invalid one is the peer's fault.
async fn submit_pulled(
    engine: &EngineClient,
    network: &NetworkHandle,
    metrics: &ClMetrics,
    seen: &mut Seen,
    p: Pulled,
) {
    let fresh: Vec<(Bytes, B256)> = p.txs.into_iter().filter(|(_, id)| seen.insert(*id)).collect();
    if fresh.is_empty() {
        return;
    }
    let raws: Vec<Bytes> = fresh.iter().map(|(r, _)| r.clone()).collect();
    match engine.submit_transactions(&raws).await {
        Ok(verdicts) => {
            let mut invalid = 0;
            for v in &verdicts {
                match v.verdict {
                    Verdict::Added => {
                        metrics.txs_received.inc();
                    }
                    Verdict::Invalid => {
                        invalid += 1;
                        metrics.txs_rejected.inc();
                    }
                    Verdict::Known | Verdict::Refused => {}
                }
            }
            if invalid > 0 {
                tracing::debug!(target: targets::NETWORK, peer = %p.peer, invalid, "invalid transactions in a pulled pool");
                let _ = network.penalize(p.peer, Penalty::InvalidTransaction).await;
            }
        }
        Err(e) => {
            tracing::warn!(target: targets::ENGINE, "cannot hand {} pulled transactions to the execution client: {e}", fresh.len());
            for (_, id) in &fresh {
                seen.remove(id);
            }
        }
    }
}

/// Offers a batch to the pool and reports each message's fate to gossipsub.
async fn submit(
    engine: &EngineClient,
    network: &NetworkHandle,
    metrics: &ClMetrics,
    seen: &mut Seen,
    batch: Vec<Incoming>,
) {
    let mut offered: Vec<(Incoming, B256)> = Vec::with_capacity(batch.len());
    for tx in batch {
        let verdict = match SignedTx::decode(&tx.raw) {
            Err(_) => GossipVerdict::Reject(Penalty::Undecodable),
            Ok(t) if !seen.insert(t.id()) => GossipVerdict::Ignore,
            Ok(t) => {
                offered.push((tx, t.id()));
                continue;
            }
        };
        if verdict != GossipVerdict::Ignore {
            metrics.txs_rejected.inc();
        }
        let _ = network.report(tx.id, tx.source, verdict).await;
    }
    if offered.is_empty() {
        return;
    }
    let raws: Vec<Bytes> = offered.iter().map(|(t, _)| Bytes::from(t.raw.clone())).collect();
    match engine.submit_transactions(&raws).await {
        Ok(verdicts) => {
            for ((tx, _), v) in offered.into_iter().zip(verdicts) {
                let verdict = match v.verdict {
                    Verdict::Added => {
                        metrics.txs_received.inc();
                        GossipVerdict::Accept
                    }
                    Verdict::Known | Verdict::Refused => GossipVerdict::Ignore,
                    Verdict::Invalid => {
                        metrics.txs_rejected.inc();
                        tracing::debug!(target: targets::NETWORK, peer = %tx.source, "invalid gossiped transaction: {}", v.error);
                        GossipVerdict::Reject(Penalty::InvalidTransaction)
                    }
                };
                let _ = network.report(tx.id, tx.source, verdict).await;
            }
        }
        Err(e) => {
            // Our execution client failed, not the peers: forget the ids so a later copy is
            // offered again, and drop the messages without blame.
            tracing::warn!(target: targets::ENGINE, "cannot hand {} gossiped transactions to the execution client: {e}", offered.len());
            for (tx, id) in offered {
                seen.remove(&id);
                let _ = network.report(tx.id, tx.source, GossipVerdict::Ignore).await;
            }
        }
    }
}
