//! The consensus client on the network: it answers peers' sync requests from the chain store
//! and their pool requests from the execution client's pool (in a task of their own, so
//! syncing and importing never keep peers waiting), judges gossiped blocks with the cheap
//! checks before they are forwarded and then imports them, gossips the blocks it mines, and
//! keeps its status (head, cumulative work) current for peers; gossiped transactions, and the
//! pool of each new peer, go to the relay (`relay`); a peer with a heavier chain starts a
//! headers-first sync (`sync`).

use crate::config::now_ms;
use crate::node::{ImportError, Node};
use crate::relay::{self, Incoming, Relay};
use alloy_primitives::B256;
use qoin_cl_network::wire::{
    MAX_HASHES_PER_REQUEST, MAX_HEADERS_PER_REQUEST, MAX_POOL_HASHES, MAX_RESPONSE_BYTES,
};
use qoin_cl_network::{
    GossipBlock, GossipVerdict, NetworkConfig, NetworkEvent, NetworkHandle, Penalty, Request, Response,
    Status,
};
use qoin_cl_store::ChainReader;
use qoin_consensus::validate::{validate_header, BlockMeta};
use qoin_tracing::targets;
use tokio::sync::{mpsc, watch};

pub use qoin_cl_network::Multiaddr;

/// The running network and what the node keeps of it.
pub struct P2p {
    /// Commands to the network.
    pub handle: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    status: watch::Sender<Status>,
    relay: Relay,
    /// What peers last told us of their chains: the candidates for sync (a peer whose sync
    /// failed is taken out until its next status, which comes every few seconds).
    pub(crate) peers: std::collections::HashMap<qoin_cl_network::PeerId, Status>,
    /// Peers of this chain connected now (that sent their status): counted in metrics, and
    /// each one's pool is pulled once per connection.
    connected: std::collections::HashSet<qoin_cl_network::PeerId>,
}

impl P2p {
    /// Starts the network for `node` and logs its identity.
    pub async fn start(config: &NetworkConfig, node: &Node) -> anyhow::Result<Self> {
        let (status, status_rx) = watch::channel(node.status());
        let (handle, raw) = qoin_cl_network::start(config, status_rx.clone(), Some(&node.metrics.registry))?;
        let events =
            spawn_responder(raw, handle.clone(), node.store.reader(), node.engine.clone(), status_rx);
        tracing::info!(target: targets::NETWORK, peer_id = %handle.peer_id(), "network started");
        let relay = relay::spawn(node.engine.clone(), handle.clone(), node.metrics.clone());
        Ok(Self { handle, events, status, relay, peers: Default::default(), connected: Default::default() })
    }

    /// The next event, or never when there is no network.
    pub async fn next(p2p: &mut Option<Self>) -> Option<NetworkEvent> {
        match p2p {
            Some(p) => p.events.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Tells peers our new head.
    pub fn update_status(&self, node: &Node) {
        self.status.send_replace(node.status());
    }

    /// Gossips a block this node mined.
    pub async fn publish(&self, block: GossipBlock) {
        if let Err(e) = self.handle.publish_block(&block).await {
            tracing::warn!(target: targets::NETWORK, "cannot gossip block #{}: {e}", block.header.height);
        }
    }

    /// Acts on one network event; returns whether the head may have moved.
    pub async fn handle(&mut self, node: &mut Node, event: NetworkEvent) -> bool {
        match event {
            NetworkEvent::Block { id, source, block } => {
                let verdict = node.check_gossip(&block.header);
                let report = |v| self.handle.report(id.clone(), source, v);
                match verdict {
                    Gossip::Known => {
                        let _ = report(GossipVerdict::Ignore).await;
                        false
                    }
                    Gossip::UnknownAncestor => {
                        // Not judged, so not forwarded; but the peer has the blocks we missed:
                        // fetched by hash when few, else by a sync from its status.
                        let _ = report(GossipVerdict::Ignore).await;
                        if self.backfill(node, source, *block).await {
                            return true;
                        }
                        if let Ok(Response::Status(theirs)) =
                            self.handle.request(source, Request::Status(node.status())).await
                        {
                            self.peers.insert(source, theirs);
                        }
                        self.sync(node).await
                    }
                    Gossip::Invalid(why) => {
                        tracing::info!(target: targets::NETWORK, peer = %source, "invalid gossiped block: {why}");
                        let _ = report(GossipVerdict::Reject(Penalty::InvalidBlock)).await;
                        false
                    }
                    Gossip::Valid(meta) => {
                        let _ = report(GossipVerdict::Accept).await;
                        let (height, hash) = (block.header.height, meta.hash);
                        match node.import_checked(&block.header, &block.payload, *meta).await {
                            Ok(()) => {
                                tracing::info!(target: targets::CHAIN, number = height, %hash, peer = %source, "imported gossiped block");
                                self.update_status(node);
                                true
                            }
                            Err(ImportError::Rejected(why)) => {
                                tracing::info!(target: targets::NETWORK, peer = %source, "gossiped block #{height} refused: {why}");
                                let _ = self.handle.penalize(source, Penalty::InvalidBlock).await;
                                false
                            }
                            Err(e) => {
                                tracing::warn!(target: targets::CHAIN, "gossiped block #{height} not imported: {e}");
                                false
                            }
                        }
                    }
                }
            }
            NetworkEvent::Transaction { id, source, raw } => {
                self.relay.offer(&self.handle, Incoming { id, source, raw }).await;
                false
            }
            NetworkEvent::PeerStatus { peer, status } => {
                let ours = node.status();
                let previous = self.peers.insert(peer, status);
                let new_peer = self.connected.insert(peer);
                if new_peer {
                    // A peer new to us: each side takes what the other's pool has and its own
                    // lacks (transactions sent while either had no peers, or before it joined).
                    self.relay.pull_pool(peer);
                }
                node.metrics.peers.set(self.connected.len() as f64);
                let held = |h: &B256| node.store.meta(h).is_some();
                if status_starts_sync(&ours, &status, previous.as_ref(), new_peer, held) {
                    tracing::info!(
                        target: targets::SYNC,
                        %peer,
                        height = status.head_height,
                        our_height = ours.head_height,
                        "peer has a heavier chain"
                    );
                    self.sync(node).await
                } else {
                    tracing::debug!(target: targets::NETWORK, %peer, height = status.head_height, "peer status");
                    false
                }
            }
            // Answered by the responder (`spawn_responder`); never reaches here.
            NetworkEvent::Request { .. } => false,
            NetworkEvent::PeerDisconnected { peer } => {
                self.peers.remove(&peer);
                self.connected.remove(&peer);
                node.metrics.peers.set(self.connected.len() as f64);
                false
            }
        }
    }
}

/// Whether a peer's `status` starts a sync. It must claim more work than `ours` and name a head
/// not `held` (a head we hold is in our fork tree, where fork choice has weighed it). Statuses
/// come again every few seconds, so one naming a head a block past ours is most likely racing
/// that block's gossip: it starts a sync only from a `new_peer`, when the peer is further
/// ahead, or when the peer's `previous` status also claimed more work with a head not held
/// (gossip did not bring it; a heavier fork need not be taller).
pub fn status_starts_sync(
    ours: &Status,
    status: &Status,
    previous: Option<&Status>,
    new_peer: bool,
    held: impl Fn(&B256) -> bool,
) -> bool {
    let ahead = |s: &Status| s.cumulative_work > ours.cumulative_work && !held(&s.head_hash);
    ahead(status)
        && (new_peer
            || status.head_height > ours.head_height.saturating_add(1)
            || previous.is_some_and(ahead))
}

/// How far back a gossiped block's missing ancestors are fetched from the peer that sent it.
/// Two requests per block stay well inside a peer's request budget (a burst of 64, §16.5);
/// a longer gap goes to the headers-first sync, which asks for up to 1,024 headers at once.
pub const MAX_BACKFILL: usize = 16;

impl P2p {
    /// Fetches the missing ancestors of `block` from `peer` (one header and one payload per
    /// request, each checked to be the block asked for), then imports them oldest first and
    /// `block` last. Returns whether anything was imported.
    async fn backfill(&self, node: &mut Node, peer: qoin_cl_network::PeerId, block: GossipBlock) -> bool {
        let ours = node.status().head_height;
        if block.header.height > ours.saturating_add(MAX_BACKFILL as u64 + 1) {
            tracing::info!(target: targets::SYNC, %peer, height = block.header.height, our_height = ours, "gossiped block too far ahead to back-fill");
            return false;
        }
        let mut chain = vec![(block.header, block.payload)];
        loop {
            let Some((last, _)) = chain.last() else { return false };
            let missing: Vec<B256> = std::iter::once(last.parent_hash)
                .chain(last.siblings.iter().copied())
                .filter(|h| node.store.meta(h).is_none())
                .collect();
            let Some(&want) = missing.first() else { break };
            if want != last.parent_hash || chain.len() > MAX_BACKFILL {
                tracing::info!(target: targets::SYNC, %peer, "missing ancestors beyond what gossip back-fill fetches");
                return false;
            }
            // The sender accepted the block before gossiping it, so it holds the parent: an
            // empty answer for that one costs it (junk headers with made-up parents are not
            // free); deeper ancestors may be side blocks it has dropped since.
            match self.fetch(peer, want, chain.len() == 1).await {
                Some(b) => chain.push(b),
                None => return false,
            }
        }
        let mut imported = false;
        for (header, payload) in chain.into_iter().rev() {
            let meta = match node.check_gossip(&header) {
                Gossip::Known => continue,
                Gossip::Valid(meta) => *meta,
                Gossip::UnknownAncestor => return imported,
                Gossip::Invalid(why) => {
                    tracing::info!(target: targets::SYNC, %peer, "back-filled block #{} invalid: {why}", header.height);
                    let _ = self.handle.penalize(peer, Penalty::InvalidBlock).await;
                    return imported;
                }
            };
            let hash = meta.hash;
            match node.import_checked(&header, &payload, meta).await {
                Ok(()) => {
                    tracing::info!(target: targets::SYNC, number = header.height, %hash, %peer, "imported back-filled block");
                    imported = true;
                }
                Err(ImportError::Rejected(why)) => {
                    let _ = self.handle.penalize(peer, Penalty::InvalidBlock).await;
                    tracing::info!(target: targets::SYNC, %peer, "back-filled block #{} refused: {why}", header.height);
                    return imported;
                }
                Err(e) => {
                    tracing::warn!(target: targets::SYNC, "back-filled block #{} not imported: {e}", header.height);
                    return imported;
                }
            }
        }
        if imported {
            self.update_status(node);
        }
        imported
    }

    /// One block by hash from `peer`: its header, then the payload the header commits to.
    /// An answer holding something other than what was asked costs the peer; one that holds
    /// nothing, or a refusal (rate limited, busy), does not: a peer may have dropped a side
    /// block since, and back-fill must not make an honest peer look hostile (four such answers
    /// would ban it). Only when the block is `owed` (the parent of a block the peer gossiped)
    /// is an empty answer wrong.
    async fn fetch(
        &self,
        peer: qoin_cl_network::PeerId,
        hash: B256,
        owed: bool,
    ) -> Option<(qoin_primitives::Header, qoin_engine_api::Payload)> {
        let header = self
            .ask(peer, Request::HeadersByHash(vec![hash]), owed, |r| match r {
                Response::Headers(mut hs) if hs.len() == 1 && hs[0].hash().ok() == Some(hash) => {
                    Answer::Found(hs.remove(0))
                }
                Response::Headers(hs) if hs.is_empty() => Answer::Empty,
                Response::Refused(_) => Answer::Refused,
                _ => Answer::Wrong,
            })
            .await?;
        let payload = self
            .ask(peer, Request::PayloadsByHash(vec![hash]), owed, |r| match r {
                Response::Payloads(mut ps) if ps.len() == 1 && ps[0].block_hash == header.payload_hash => {
                    Answer::Found(ps.remove(0))
                }
                Response::Payloads(ps) if ps.is_empty() => Answer::Empty,
                Response::Refused(_) => Answer::Refused,
                _ => Answer::Wrong,
            })
            .await?;
        Some((header, payload))
    }

    /// Sends `request` to `peer` and takes what `answer` finds in the response; a wrong
    /// answer (or an empty one for an `owed` item) costs the peer, a failed request, a refusal
    /// or an empty answer otherwise is only logged.
    async fn ask<T>(
        &self,
        peer: qoin_cl_network::PeerId,
        request: Request,
        owed: bool,
        answer: impl FnOnce(Response) -> Answer<T>,
    ) -> Option<T> {
        match self.handle.request(peer, request).await {
            Ok(response) => match answer(response) {
                Answer::Found(t) => Some(t),
                Answer::Refused => {
                    tracing::debug!(target: targets::SYNC, %peer, "back-fill: refused");
                    None
                }
                Answer::Empty if !owed => {
                    tracing::debug!(target: targets::SYNC, %peer, "back-fill: not served");
                    None
                }
                Answer::Empty | Answer::Wrong => {
                    let _ = self.handle.penalize(peer, Penalty::BadResponse).await;
                    None
                }
            },
            Err(e) => {
                tracing::debug!(target: targets::SYNC, "{e}");
                None
            }
        }
    }
}

/// What a response to a back-fill request held.
enum Answer<T> {
    /// The item asked for.
    Found(T),
    /// Nothing: the peer lacks it (its fault only if it must hold it).
    Empty,
    /// A refusal (rate limited, busy): no one's fault.
    Refused,
    /// Something that was not asked for: the peer's fault.
    Wrong,
}

/// The cheap checks' verdict on a gossiped header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// Already stored (or known invalid): nothing to do.
    Known,
    /// Its parent or a referenced sibling is unknown here: cannot judge it yet.
    UnknownAncestor,
    /// Breaks a rule: the relaying peer is at fault.
    Invalid(String),
    /// Structure, height, time, difficulty, siblings, proof of work and ticket pass; the meta
    /// derived from it.
    Valid(Box<BlockMeta>),
}

impl Node {
    /// This node's status for peers: chain, head, cumulative work of the head's chain.
    pub fn status(&self) -> Status {
        let head = self.store.head();
        let work = self.store.chain_work(&head);
        Status {
            chain_id: self.params.chain_id,
            genesis_hash: self.params.genesis_hash,
            head_hash: head,
            head_height: self.store.meta(&head).map_or(0, |m| m.height),
            cumulative_work: u128::try_from(work).unwrap_or(u128::MAX),
        }
    }

    /// The cheap checks of a gossiped header against what this node knows.
    pub fn check_gossip(&self, header: &qoin_primitives::Header) -> Gossip {
        let Ok(hash) = header.hash() else { return Gossip::Invalid("header does not hash".into()) };
        if self.store.meta(&hash).is_some() || self.store.tree().is_invalid(&hash) {
            return Gossip::Known;
        }
        if self.store.meta(&header.parent_hash).is_none() && self.store.knows(&hash).unwrap_or(false) {
            // A canonical block below the fork window.
            return Gossip::Known;
        }
        let Some(parent) = self.store.meta(&header.parent_hash).cloned() else {
            return Gossip::UnknownAncestor;
        };
        let mut siblings: Vec<BlockMeta> = Vec::with_capacity(header.siblings.len());
        for s in &header.siblings {
            match self.store.meta(s) {
                Some(m) => siblings.push(m.clone()),
                None => return Gossip::UnknownAncestor,
            }
        }
        match validate_header(header, &parent, &siblings, &self.params, now_ms()) {
            Ok(meta) => Gossip::Valid(Box::new(meta)),
            Err(e) => Gossip::Invalid(e.to_string()),
        }
    }
}

/// The answer to a peer's sync request, from the stored blocks; `status` is ours.
fn answer(reader: &ChainReader, status: Status, request: &Request) -> Response {
    let headers = |hashes: &[B256]| -> Vec<qoin_primitives::Header> {
        // Unknown ones (and genesis, which has no header) left out; the payloads are not read.
        hashes.iter().filter_map(|h| reader.header(h).ok().flatten()).collect()
    };
    match request {
        Request::Status(_) => Response::Status(status),
        Request::HeadersByRange { start, count } => {
            let count = (*count).min(MAX_HEADERS_PER_REQUEST);
            let hashes = reader.canonical_range(*start, count).unwrap_or_else(|e| {
                tracing::warn!(target: targets::STORE, "canonical index: {e}");
                Vec::new()
            });
            Response::Headers(headers(&hashes))
        }
        Request::HeadersByHash(hashes) => {
            let hashes = &hashes[..hashes.len().min(MAX_HASHES_PER_REQUEST)];
            Response::Headers(headers(hashes))
        }
        Request::PayloadsByHash(hashes) => {
            // As many as fit in a response frame (the asker asks again for the rest).
            // Sent as stored, not decoded and encoded again; none is read past the first that
            // does not fit.
            let hashes = &hashes[..hashes.len().min(MAX_HASHES_PER_REQUEST)];
            let mut room = MAX_RESPONSE_BYTES - 64 * 1024;
            let mut out = Vec::new();
            for h in hashes {
                let Some(p) = reader.payload_bytes(h).unwrap_or_else(|e| {
                    tracing::warn!(target: targets::STORE, "payload {h}: {e}");
                    None
                }) else {
                    continue;
                };
                let size = p.len() + 16;
                if size > room {
                    break;
                }
                room -= size;
                out.push(p.into());
            }
            Response::StoredPayloads(out)
        }
        // Answered from the execution client's pool (`answer_from_pool`), never from here.
        Request::PoolHashes | Request::TransactionsByHash(_) => {
            Response::Refused("not a chain-store request".into())
        }
    }
}

/// The answer to a peer's request for our pool: its ids (executable ones first), or the
/// transactions asked for (as many as fit in a response frame; unknown ones left out). `None`
/// for any other request.
async fn answer_from_pool(engine: &qoin_engine_api::EngineClient, request: &Request) -> Option<Response> {
    let answer = match request {
        Request::PoolHashes => {
            engine.pooled_transaction_hashes(MAX_POOL_HASHES).await.map(Response::TransactionHashes)
        }
        Request::TransactionsByHash(ids) => engine.pooled_transactions(ids).await.map(|txs| {
            let mut room = MAX_RESPONSE_BYTES - 64 * 1024;
            let mut out = Vec::with_capacity(txs.len());
            for t in txs {
                let size = t.raw.len() + 8;
                if size > room {
                    break;
                }
                room -= size;
                out.push(t.raw);
            }
            Response::Transactions(out)
        }),
        _ => return None,
    };
    Some(answer.unwrap_or_else(|e| {
        tracing::debug!(target: targets::ENGINE, "pool request not answered: {e}");
        Response::Refused("pool unavailable".into())
    }))
}

/// Requests answered at once (each reads the store on a blocking thread); the network's
/// per-peer rate limits (§16.5) bound what waits.
const ANSWERING: usize = 4;
/// Events waiting for the node.
const EVENTS: usize = 4096;

/// Answers peers' sync requests apart from the node's own loop, from the stored blocks and the
/// status last published, so a node that is syncing or importing still serves its peers; every
/// other event goes on to the node. When the node has fallen [`EVENTS`] behind, a gossiped
/// message is ignored (no blame: gossipsub must not wait for a verdict) and other events are
/// dropped, as the network itself does.
fn spawn_responder(
    mut raw: mpsc::Receiver<NetworkEvent>,
    handle: NetworkHandle,
    reader: ChainReader,
    engine: qoin_engine_api::EngineClient,
    status: watch::Receiver<Status>,
) -> mpsc::Receiver<NetworkEvent> {
    let (tx, rx) = mpsc::channel(EVENTS);
    let answering = std::sync::Arc::new(tokio::sync::Semaphore::new(ANSWERING));
    tokio::spawn(async move {
        while let Some(event) = raw.recv().await {
            match event {
                NetworkEvent::Request { peer, request, channel } => {
                    let Ok(permit) = answering.clone().acquire_owned().await else { break };
                    let (reader, handle, ours) = (reader.clone(), handle.clone(), *status.borrow());
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let response = match answer_from_pool(&engine, &request).await {
                            Some(r) => Ok((r, request)),
                            None => {
                                tokio::task::spawn_blocking(move || {
                                    (answer(&reader, ours, &request), request)
                                })
                                .await
                            }
                        };
                        drop(permit);
                        match response {
                            Ok((response, request)) => {
                                tracing::debug!(target: targets::NETWORK, %peer, ?request, "answered");
                                let _ = handle.respond(channel, response).await;
                            }
                            Err(e) => {
                                tracing::warn!(target: targets::NETWORK, %peer, "request not answered: {e}")
                            }
                        }
                    });
                }
                other => match tx.try_send(other) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(
                        NetworkEvent::Block { id, source, .. } | NetworkEvent::Transaction { id, source, .. },
                    )) => {
                        tracing::debug!(target: targets::NETWORK, "node busy: gossiped message ignored");
                        let _ = handle.report(id, source, GossipVerdict::Ignore).await;
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::debug!(target: targets::NETWORK, "node busy: network event dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break, // the node stopped
                },
            }
        }
    });
    rx
}
