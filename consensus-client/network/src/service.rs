//! The libp2p swarm and the task that drives it. The node talks to it through a
//! [`NetworkHandle`] (commands) and receives [`NetworkEvent`]s; the swarm itself never leaves
//! its task.

use crate::codec::{SyncCodec, SYNC_PROTOCOL};
use crate::peers::{PeerBook, Penalty, Verdict};
use crate::wire::{GossipBlock, Request, Response, Status, MAX_GOSSIP_BLOCK_BYTES, MAX_GOSSIP_TX_BYTES};
use alloy_primitives::{keccak256, B256};
use futures::StreamExt as _;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, kad, ping, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use qoin_tracing::targets;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How the network is set up.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Where the node key is kept (created if absent).
    pub key_path: PathBuf,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/30333` and
    /// `/ip4/0.0.0.0/udp/30333/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial first (with their `/p2p/<peer id>`).
    pub bootnodes: Vec<Multiaddr>,
    /// Most inbound connections.
    pub max_inbound: u32,
    /// Most outbound connections.
    pub max_outbound: u32,
    /// The chain: gossip topics carry its id, and peers of another chain are refused.
    pub chain_id: u64,
    /// The genesis block's hash.
    pub genesis_hash: B256,
    /// A file of peers never to connect with (see [`read_deny_list`]): read at start and
    /// again whenever it changes.
    pub deny_file: Option<PathBuf>,
    /// For test networks only: hold every message that arrives from a peer (gossip, requests,
    /// answers, statuses) this long before the node sees it, which is a one-way delay on every
    /// link made in user space (see the spec, section 16.6). Zero in production.
    pub inbound_delay: Duration,
}

/// Why a deny list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DenyListError {
    /// The file cannot be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A line is neither a peer id nor a multiaddr ending in `/p2p/<peer id>`.
    #[error("{path} line {line}: {text:?} is neither a peer id nor a multiaddr ending in /p2p/<peer id>")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Most entries of a deny list.
pub const MAX_DENY_ENTRIES: usize = 4096;

/// Reads a deny list: one peer id (or a multiaddr ending in `/p2p/<peer id>`) per line; blank
/// lines and lines starting with `#` are skipped; a missing file is an empty list. Any bad line
/// refuses the whole file (the list in force stays as it was).
pub fn read_deny_list(path: &Path) -> Result<HashSet<PeerId>, DenyListError> {
    let read = |reason: String| DenyListError::Read { path: path.to_path_buf(), reason };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(read(e.to_string())),
    };
    let mut out = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let peer = line.parse::<PeerId>().ok().or_else(|| {
            line.parse::<Multiaddr>().ok().and_then(|a| match a.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(p)) => Some(p),
                _ => None,
            })
        });
        match peer {
            Some(p) => {
                out.insert(p);
            }
            None => {
                return Err(DenyListError::Line { path: path.to_path_buf(), line: i + 1, text: line.into() })
            }
        }
        if out.len() > MAX_DENY_ENTRIES {
            return Err(read(format!("more than {MAX_DENY_ENTRIES} entries")));
        }
    }
    Ok(out)
}

/// Something the network saw that the node must act on.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossiped block that decoded; answer with [`NetworkHandle::report`].
    Block {
        /// The gossip message.
        id: MessageId,
        /// The peer it came from.
        source: PeerId,
        /// The block.
        block: Box<GossipBlock>,
    },
    /// A gossiped transaction (its raw EIP-2718 bytes); answer with [`NetworkHandle::report`].
    Transaction {
        /// The gossip message.
        id: MessageId,
        /// The peer it came from.
        source: PeerId,
        /// The encoded transaction.
        raw: Vec<u8>,
    },
    /// A peer of our chain told us its status (when we met, and whenever it asks ours).
    PeerStatus {
        /// The peer.
        peer: PeerId,
        /// Its status.
        status: Status,
    },
    /// A peer asks for headers or payloads; answer with [`NetworkHandle::respond`].
    Request {
        /// The peer.
        peer: PeerId,
        /// What it asks.
        request: Request,
        /// Where the answer goes.
        channel: ResponseChannel<Response>,
    },
    /// A peer is gone.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// What the node decided about a gossiped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid: forward it to other peers.
    Accept,
    /// Not for us (duplicate, unknown parent, stale): drop it, no blame.
    Ignore,
    /// Invalid: drop it and penalise the peer that sent it.
    Reject(Penalty),
}

/// Why a request to a peer got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The network task is gone.
    #[error("the network has stopped")]
    Stopped,
    /// The request failed (timeout, disconnection, a bad answer).
    #[error("request to {peer} failed: {reason}")]
    Failed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The node key.
    #[error(transparent)]
    Key(#[from] crate::key::KeyError),
    /// Building the transports or behaviours.
    #[error("cannot build the network: {0}")]
    Build(String),
    /// Listening on an address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
}

enum Command {
    Publish { topic: TopicHash, data: Vec<u8> },
    Verdict { id: MessageId, source: PeerId, verdict: GossipVerdict },
    Request { peer: PeerId, request: Request, reply: oneshot::Sender<Result<Response, RequestError>> },
    Respond { channel: ResponseChannel<Response>, response: Response },
    Penalize { peer: PeerId, penalty: Penalty },
    Peers { reply: oneshot::Sender<Vec<PeerId>> },
    Banned { reply: oneshot::Sender<Vec<PeerId>> },
    Listening { reply: oneshot::Sender<Vec<Multiaddr>> },
    Deny { peers: HashSet<PeerId> },
}

/// The gossip topic of blocks on chain `chain_id`.
pub fn blocks_topic(chain_id: u64) -> IdentTopic {
    IdentTopic::new(format!("/qoin/{chain_id}/blocks/1"))
}

/// The gossip topic of transactions on chain `chain_id`.
pub fn transactions_topic(chain_id: u64) -> IdentTopic {
    IdentTopic::new(format!("/qoin/{chain_id}/transactions/1"))
}

/// The identify protocol version this node announces.
pub const IDENTIFY_PROTOCOL: &str = "/qoin/1.0.0";
/// The Kademlia protocol id (a private DHT, not IPFS's).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/qoin/kad/1.0.0");
/// How often each connection is pinged (libp2p's `/ipfs/ping/1.0.0`).
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A ping not answered within this closes the connection (libp2p reports the second failure
/// in a row, so a silent peer is dropped after about 20 s).
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Data sent on a TCP connection and not acknowledged for this long aborts it.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

/// The handle the node drives the network with. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    blocks: TopicHash,
    transactions: TopicHash,
}

impl NetworkHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn send(&self, c: Command) -> Result<(), RequestError> {
        self.commands.send(c).await.map_err(|_| RequestError::Stopped)
    }

    /// Gossips a block this node mined or accepted.
    pub async fn publish_block(&self, block: &GossipBlock) -> Result<(), RequestError> {
        let data =
            block.encode().map_err(|e| RequestError::Failed { peer: self.peer_id, reason: e.to_string() })?;
        self.send(Command::Publish { topic: self.blocks.clone(), data }).await
    }

    /// Gossips a transaction (raw EIP-2718 bytes).
    pub async fn publish_transaction(&self, raw: Vec<u8>) -> Result<(), RequestError> {
        self.send(Command::Publish { topic: self.transactions.clone(), data: raw }).await
    }

    /// Says what the node made of a gossiped message.
    pub async fn report(
        &self,
        id: MessageId,
        source: PeerId,
        verdict: GossipVerdict,
    ) -> Result<(), RequestError> {
        self.send(Command::Verdict { id, source, verdict }).await
    }

    /// Asks `peer` and waits for its answer.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Request { peer, request, reply }).await?;
        answer.await.map_err(|_| RequestError::Stopped)?
    }

    /// Answers a peer's request.
    pub async fn respond(
        &self,
        channel: ResponseChannel<Response>,
        response: Response,
    ) -> Result<(), RequestError> {
        self.send(Command::Respond { channel, response }).await
    }

    /// Penalises a peer (a bad sync answer, say); it is banned below the threshold.
    pub async fn penalize(&self, peer: PeerId, penalty: Penalty) -> Result<(), RequestError> {
        self.send(Command::Penalize { peer, penalty }).await
    }

    /// The peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Peers { reply }).await?;
        answer.await.map_err(|_| RequestError::Stopped)
    }

    /// The peers banned now.
    pub async fn banned(&self) -> Result<Vec<PeerId>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Banned { reply }).await?;
        answer.await.map_err(|_| RequestError::Stopped)
    }

    /// Replaces the deny list: connections with these peers are closed and refused until a
    /// later list leaves them out.
    pub async fn deny(&self, peers: HashSet<PeerId>) -> Result<(), RequestError> {
        self.send(Command::Deny { peers }).await
    }

    /// The addresses this node listens on (with its `/p2p/` suffix), once bound.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Listening { reply }).await?;
        answer.await.map_err(|_| RequestError::Stopped)
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
}

/// Message ids from the content: the same block or transaction from two peers is one message.
fn message_id(m: &gossipsub::Message) -> MessageId {
    let mut input = Vec::with_capacity(m.topic.as_str().len() + m.data.len());
    input.extend_from_slice(m.topic.as_str().as_bytes());
    input.extend_from_slice(&m.data);
    MessageId::from(keccak256(&input)[..20].to_vec())
}

fn build(
    config: &NetworkConfig,
    key: libp2p::identity::Keypair,
    registry: &mut qoin_metrics::prometheus_client::registry::Registry,
) -> Result<(Swarm<Behaviour>, libp2p::metrics::Metrics), NetworkError> {
    let err = |e: &dyn std::fmt::Display| NetworkError::Build(e.to_string());
    let gossip_config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(MAX_GOSSIP_BLOCK_BYTES + 4096)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(message_id)
        .heartbeat_interval(Duration::from_millis(700))
        .build()
        .map_err(|e| err(&e))?;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established_incoming(Some(config.max_inbound))
        .with_max_established_outgoing(Some(config.max_outbound))
        .with_max_established_per_peer(Some(2));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            // libp2p's own TCP stack, as `with_tcp` builds it, but every socket gets a user
            // timeout: data left unacknowledged for TCP_USER_TIMEOUT aborts the connection.
            // Without it a connection whose peer went silent (a partition, a cut link) with
            // data queued for it never finishes closing, and its peer never counts as gone.
            use libp2p::Transport as _;
            Ok(libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
                .map(|stream, _| {
                    if let Err(e) =
                        socket2::SockRef::from(&stream.0).set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))
                    {
                        tracing::debug!(target: targets::NETWORK, "TCP_USER_TIMEOUT not set: {e}");
                    }
                    stream
                })
                .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                .authenticate(libp2p::noise::Config::new(key)?)
                .multiplex(libp2p::yamux::Config::default()))
        })
        .map_err(|e| err(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            // The node bootstraps on its own tick while it has few peers; kad's own periodic
            // bootstrap would only warn while no peer is known.
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad =
                kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                blocked: allow_block_list::Behaviour::default(),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT),
                ),
                kad,
                gossipsub,
                sync: request_response::Behaviour::with_codec(
                    SyncCodec,
                    [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(15)),
                ),
            })
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok((swarm, libp2p::metrics::Metrics::new(registry)))
}

/// An error and its sources, joined: libp2p's transport errors print nothing of their own
/// ("cannot listen on ...: " with the reason, such as "Address in use", only in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "unknown transport error".to_string()
    } else {
        parts.join(": ")
    }
}

/// Starts the network: loads (or creates) the node key, listens, dials the bootnodes, and
/// spawns the task that runs the swarm. `status` is this node's current status, answered to
/// every peer that asks. With a registry, rust-libp2p's metrics join it (`libp2p_bandwidth_bytes`
/// by transport and direction, connections, gossipsub, identify and kademlia events).
pub fn start(
    config: &NetworkConfig,
    status: watch::Receiver<Status>,
    registry: Option<&qoin_metrics::Registry>,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    let key = crate::key::load_or_create(&config.key_path)?;
    let peer_id = key.public().to_peer_id();
    let (mut swarm, metrics) = match registry {
        Some(r) => r.register_with(|reg| build(config, key, reg))?,
        None => build(config, key, &mut Default::default())?,
    };
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen { addr: addr.clone(), reason: error_chain(&e) })?;
    }
    let (blocks, transactions) = (blocks_topic(config.chain_id), transactions_topic(config.chain_id));
    for topic in [&blocks, &transactions] {
        swarm.behaviour_mut().gossipsub.subscribe(topic).map_err(|e| NetworkError::Build(e.to_string()))?;
    }
    for addr in &config.bootnodes {
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(target: targets::NETWORK, %addr, "cannot dial bootnode: {e}");
        }
    }
    let (commands, command_rx) = mpsc::channel(1024);
    let (events, event_rx) = mpsc::channel(4096);
    let handle =
        NetworkHandle { commands, peer_id, blocks: blocks.hash(), transactions: transactions.hash() };
    let mut denied = HashSet::new();
    if let Some(path) = &config.deny_file {
        denied = read_deny_list(path).map_err(|e| NetworkError::Build(e.to_string()))?;
        for peer in &denied {
            swarm.behaviour_mut().blocked.block_peer(*peer);
        }
        tracing::info!(target: targets::NETWORK, peers = denied.len(), file = %path.display(), "deny list (reread when it changes)");
        watch_deny_file(path.clone(), handle.clone());
    }
    let task = Task {
        swarm,
        commands: command_rx,
        events,
        status,
        book: PeerBook::new(),
        pending: HashMap::new(),
        connected: HashSet::new(),
        chain_id: config.chain_id,
        genesis_hash: config.genesis_hash,
        blocks: blocks.hash(),
        transactions: transactions.hash(),
        listening: Vec::new(),
        bootnodes: config.bootnodes.clone(),
        denied,
        delay: config.inbound_delay,
        held: VecDeque::new(),
        metrics,
        ticks: 0,
        gone: HashSet::new(),
    };
    tokio::spawn(task.run());
    Ok((handle, event_rx))
}

struct Task {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    status: watch::Receiver<Status>,
    book: PeerBook,
    pending: HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<Response, RequestError>>)>,
    connected: HashSet<PeerId>,
    chain_id: u64,
    genesis_hash: B256,
    blocks: TopicHash,
    transactions: TopicHash,
    listening: Vec<Multiaddr>,
    bootnodes: Vec<Multiaddr>,
    /// Peers of the deny list in force.
    denied: HashSet<PeerId>,
    /// The test delay on inbound messages (zero: none).
    delay: Duration,
    /// Inbound messages held for `delay`, in arrival order (one delay for all: the front is
    /// always the next due).
    held: VecDeque<(tokio::time::Instant, Held)>,
    /// rust-libp2p's metrics (in the node's registry, or a private one).
    metrics: libp2p::metrics::Metrics,
    /// Housekeeping ticks so far.
    ticks: u64,
    /// Disconnections the node has not been told of (its event queue was full): told again
    /// each tick, unless the peer is back, so its count of peers does not keep the gone.
    gone: HashSet<PeerId>,
}

/// An inbound message held by the test delay.
enum Held {
    Event(NetworkEvent),
    Reply(oneshot::Sender<Result<Response, RequestError>>, Result<Response, RequestError>),
}

/// Most messages held by the test delay; beyond it they are treated as when the node is busy.
const MAX_HELD: usize = 4096;
/// The swarm task's housekeeping period (ban expiry, redials while alone).
const TICK: Duration = Duration::from_secs(2);
/// Ticks between redials and discovery while the node has some peers but few.
const REDIAL_TICKS: u64 = 5;
/// Ticks between status exchanges with every connected peer (about 10 s). Gossip is best
/// effort: a node that missed blocks (a mesh not yet rebuilt after a partition, messages
/// dropped while it was busy) learns from its peers' statuses that their chains are heavier
/// and syncs, instead of waiting for a block it cannot place.
const STATUS_TICKS: u64 = 5;

/// Resolves when the front of `held` is due (never while nothing is held).
async fn sleep_until_front(held: &VecDeque<(tokio::time::Instant, Held)>) {
    match held.front() {
        Some((due, _)) => tokio::time::sleep_until(*due).await,
        None => std::future::pending().await,
    }
}

/// Rereads `path` whenever its modification time or length changes (checked every second)
/// and hands the list to the network task; a file that does not read leaves the list in force
/// and says why. (Polling rather than a signal: a signal sent before a handler is installed
/// would stop the process.)
fn watch_deny_file(path: PathBuf, handle: NetworkHandle) {
    let stamp = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    tokio::spawn(async move {
        let mut last = stamp(&path);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            match read_deny_list(&path) {
                Ok(peers) => {
                    tracing::info!(target: targets::NETWORK, peers = peers.len(), "deny list reread");
                    if handle.deny(peers).await.is_err() {
                        break; // the network stopped
                    }
                }
                Err(e) => tracing::warn!(target: targets::NETWORK, "deny list not changed: {e}"),
            }
        }
    });
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event).await,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break, // every handle dropped: the node is stopping
                },
                _ = tick.tick() => self.on_tick(),
                _ = sleep_until_front(&self.held) => self.release_held(),
            }
        }
    }

    /// Hands on the held messages that are due.
    fn release_held(&mut self) {
        let now = tokio::time::Instant::now();
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            match self.held.pop_front() {
                Some((_, item)) => self.hand_on(item),
                None => break,
            }
        }
    }

    /// Hands an answer to the request's caller (after the test delay, if any).
    fn reply(
        &mut self,
        reply: oneshot::Sender<Result<Response, RequestError>>,
        answer: Result<Response, RequestError>,
    ) {
        self.deliver(Held::Reply(reply, answer));
    }

    /// Hands an inbound message on now, or holds it for the test delay. Beyond [`MAX_HELD`], an
    /// event is dropped as when the node is busy, and an answer is dropped (its caller sees the
    /// request fail as if the network had stopped).
    fn deliver(&mut self, item: Held) {
        if self.delay.is_zero() {
            self.hand_on(item);
        } else if self.held.len() < MAX_HELD {
            self.held.push_back((tokio::time::Instant::now() + self.delay, item));
        } else if let Held::Event(e) = item {
            self.drop_event(e);
        }
    }

    fn hand_on(&mut self, item: Held) {
        match item {
            Held::Event(e) => self.emit_now(e),
            Held::Reply(reply, answer) => {
                let _ = reply.send(answer);
            }
        }
    }

    fn penalize(&mut self, peer: PeerId, penalty: Penalty) {
        let now = Instant::now();
        let verdict = self.book.penalize(peer, penalty, now);
        tracing::debug!(target: targets::NETWORK, %peer, penalty = penalty.name(), "peer penalised");
        if verdict == Verdict::Ban {
            tracing::warn!(target: targets::NETWORK, %peer, reason = penalty.name(), "peer banned for 10 minutes");
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(peer);
            b.gossipsub.blacklist_peer(&peer);
            b.kad.remove_peer(&peer);
        }
    }

    fn on_tick(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
        for peer in std::mem::take(&mut self.gone) {
            if !self.connected.contains(&peer) {
                self.emit_now(NetworkEvent::PeerDisconnected { peer });
            }
        }
        if self.ticks.is_multiple_of(STATUS_TICKS) {
            let status = self.our_status();
            for peer in self.connected.clone() {
                self.send_status(peer, status);
            }
        }
        for peer in self.book.expired_bans(Instant::now()) {
            if self.denied.contains(&peer) {
                continue;
            }
            let b = self.swarm.behaviour_mut();
            b.blocked.unblock_peer(peer);
            b.gossipsub.remove_blacklisted_peer(&peer);
        }
        // Every 10 s while short of peers, every tick while alone (a bootnode that was not yet
        // listening when this node started is found within a tick).
        let due = self.ticks.is_multiple_of(REDIAL_TICKS) || self.connected.is_empty();
        if due && self.connected.len() < 8 {
            // Look for more peers (no known peers yet is not an error), and dial the bootnodes
            // we are not connected to: after a partition heals, or the bootnode restarted.
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
            for addr in self.bootnodes.clone() {
                let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
                    // Given without its peer id: we cannot tell whether we are connected to it,
                    // so it is dialled again only while we have no peer at all.
                    if self.connected.is_empty() {
                        let _ = self.swarm.dial(addr);
                    }
                    continue;
                };
                if self.connected.contains(&peer)
                    || self.denied.contains(&peer)
                    || self.book.is_banned(&peer, Instant::now())
                {
                    continue;
                }
                let _ = self.swarm.dial(addr);
            }
        }
    }

    /// Puts a new deny list in force: closes and refuses the newly denied, lets the others
    /// back (unless banned).
    fn set_denied(&mut self, peers: HashSet<PeerId>) {
        let now = Instant::now();
        let lifted: Vec<PeerId> = self.denied.difference(&peers).copied().collect();
        for peer in lifted {
            if !self.book.is_banned(&peer, now) {
                let b = self.swarm.behaviour_mut();
                b.blocked.unblock_peer(peer);
                b.gossipsub.remove_blacklisted_peer(&peer);
            }
        }
        for peer in peers.difference(&self.denied) {
            let b = self.swarm.behaviour_mut();
            b.blocked.block_peer(*peer);
            b.gossipsub.blacklist_peer(peer);
            tracing::info!(target: targets::NETWORK, %peer, "peer denied");
        }
        self.denied = peers;
    }

    /// Sends our status to `peer`; its answer comes to the node as a [`NetworkEvent::PeerStatus`].
    fn send_status(&mut self, peer: PeerId, status: Status) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::Status(status));
        let (reply, _) = oneshot::channel();
        self.pending.insert(id, (peer, reply));
    }

    fn our_status(&self) -> Status {
        *self.status.borrow()
    }

    /// Hands an event to the node without waiting: the swarm must keep running while the node
    /// is busy (its own requests are answered through the swarm). When the node has fallen
    /// 4,096 events behind, a gossiped message is dropped without blame, a peer's request goes
    /// unanswered (it times out) and a status is skipped (the next one will do).
    fn emit(&mut self, event: NetworkEvent) {
        self.deliver(Held::Event(event));
    }

    /// A gossiped message the node will not see is ignored (no blame): gossipsub must not wait
    /// for its verdict.
    fn drop_event(&mut self, event: NetworkEvent) {
        tracing::debug!(target: targets::NETWORK, "node busy: network event dropped");
        if let NetworkEvent::Block { id, source, .. } | NetworkEvent::Transaction { id, source, .. } = event {
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &id,
                &source,
                MessageAcceptance::Ignore,
            );
        }
    }

    fn emit_now(&mut self, event: NetworkEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(NetworkEvent::PeerDisconnected { peer })) => {
                self.gone.insert(peer);
            }
            Err(mpsc::error::TrySendError::Full(e)) => self.drop_event(e),
            // The node stopping closes the channel; nothing to do then.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => {
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    // No peers yet, or a duplicate: gossip is best effort.
                    tracing::debug!(target: targets::NETWORK, "not published: {e}");
                }
            }
            Command::Verdict { id, source, verdict } => {
                let acceptance = match verdict {
                    GossipVerdict::Accept => MessageAcceptance::Accept,
                    GossipVerdict::Ignore => MessageAcceptance::Ignore,
                    GossipVerdict::Reject(_) => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
                if let GossipVerdict::Reject(penalty) = verdict {
                    self.penalize(source, penalty);
                }
            }
            Command::Request { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending.insert(id, (peer, reply));
            }
            Command::Respond { channel, response } => {
                // The peer may have gone; then the answer has nowhere to go.
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
            }
            Command::Penalize { peer, penalty } => self.penalize(peer, penalty),
            Command::Peers { reply } => {
                let _ = reply.send(self.connected.iter().copied().collect());
            }
            Command::Banned { reply } => {
                let _ = reply.send(self.book.banned(Instant::now()));
            }
            Command::Listening { reply } => {
                let _ = reply.send(self.listening.clone());
            }
            Command::Deny { peers } => self.set_denied(peers),
        }
    }

    async fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder as _;
        self.metrics.record(&event);
        match &event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.record(e),
            _ => {}
        }
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with_p2p(*self.swarm.local_peer_id()).unwrap_or_else(|a| a);
                tracing::info!(target: targets::NETWORK, address = %full, "listening");
                self.listening.push(full);
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                if self.book.is_banned(&peer_id, Instant::now()) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.connected.insert(peer_id);
                self.gone.remove(&peer_id);
                if num_established.get() == 1 {
                    tracing::debug!(target: targets::NETWORK, peer = %peer_id, "connected");
                    let status = self.our_status();
                    self.send_status(peer_id, status);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                self.book.forget(&peer_id, Instant::now());
                tracing::debug!(target: targets::NETWORK, peer = %peer_id, "disconnected");
                self.emit(NetworkEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != IDENTIFY_PROTOCOL {
                    return;
                }
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
                // A node short of peers asks its new peer for more at once, rather than at its
                // next discovery tick.
                if self.connected.len() < 8 {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message).await,
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event).await,
            // A link that went silent (a cut cable, a partition, a frozen peer) is closed, so
            // gossip stops queueing for it and the peer is dialled afresh once it answers
            // again. A peer without the ping protocol is left alone.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(failure),
            })) if !matches!(failure, ping::Failure::Unsupported) => {
                tracing::debug!(target: targets::NETWORK, %peer, "ping failed ({failure}): connection closed");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    async fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let reject = |task: &mut Self, penalty: Penalty| {
            task.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &id,
                &source,
                MessageAcceptance::Reject,
            );
            task.penalize(source, penalty);
        };
        if message.topic == self.blocks {
            match GossipBlock::decode(&message.data) {
                Ok(block) => self.emit(NetworkEvent::Block { id, source, block: Box::new(block) }),
                Err(crate::wire::WireError::TooLarge { .. }) => reject(self, Penalty::Oversized),
                Err(e) => {
                    tracing::debug!(target: targets::NETWORK, peer = %source, "undecodable block: {e}");
                    reject(self, Penalty::Undecodable);
                }
            }
        } else if message.topic == self.transactions {
            if message.data.len() > MAX_GOSSIP_TX_BYTES {
                reject(self, Penalty::Oversized);
            } else {
                self.emit(NetworkEvent::Transaction { id, source, raw: message.data });
            }
        } else {
            // A topic we never subscribed to.
            reject(self, Penalty::Undecodable);
        }
    }

    fn check_status(&mut self, peer: PeerId, status: &Status) -> bool {
        let ours = self.our_status();
        if status.chain_id != self.chain_id
            || status.genesis_hash != self.genesis_hash
            || !ours.same_chain(status)
        {
            tracing::info!(target: targets::NETWORK, %peer, chain_id = status.chain_id, "peer of another chain");
            self.penalize(peer, Penalty::WrongChain);
            false
        } else {
            true
        }
    }

    async fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        use request_response::{Event, InboundFailure, Message};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                if !self.book.allow_request(peer, Instant::now()) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, Response::Refused("rate limited".into()));
                    self.penalize(peer, Penalty::RateLimited);
                    return;
                }
                match request {
                    Request::Status(theirs) => {
                        let ours = self.our_status();
                        let _ =
                            self.swarm.behaviour_mut().sync.send_response(channel, Response::Status(ours));
                        if self.check_status(peer, &theirs) {
                            self.emit(NetworkEvent::PeerStatus { peer, status: theirs });
                        }
                    }
                    request => self.emit(NetworkEvent::Request { peer, request, channel }),
                }
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                let Some((_, reply)) = self.pending.remove(&request_id) else { return };
                if let Response::Status(theirs) = &response {
                    if self.check_status(peer, theirs) {
                        self.emit(NetworkEvent::PeerStatus { peer, status: *theirs });
                    }
                }
                self.reply(reply, Ok(response));
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    self.reply(reply, Err(RequestError::Failed { peer, reason: error.to_string() }));
                }
                if let request_response::OutboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.penalize(peer, Penalty::BadResponse);
                    }
                }
            }
            Event::InboundFailure { peer, error: InboundFailure::Io(e), .. }
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                tracing::debug!(target: targets::NETWORK, %peer, "bad request: {e}");
                self.penalize(peer, Penalty::Undecodable);
            }
            _ => {}
        }
    }
}
