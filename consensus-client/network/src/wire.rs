//! The typed messages of the peer-to-peer protocol and their limits (spec §16). Every
//! decoder checks the size first, then decodes into typed values or a [`WireError`]; none
//! panics on any input (fuzzed by `fuzz/fuzz_targets/p2p_*`).

use alloy_primitives::B256;
use prost::Message as _;
use qoin_engine_api::Payload;
use qoin_primitives::{Header, HeaderError};

/// The generated protobuf messages (package `qoin.p2p.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rust_2018_idioms)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/qoin.p2p.v1.rs"));
}

/// Largest sync request read from a peer.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest sync response read from a peer.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest gossiped block (header and payload).
pub const MAX_GOSSIP_BLOCK_BYTES: usize = 10 * 1024 * 1024;
/// Largest gossiped transaction (the pool's limit).
pub const MAX_GOSSIP_TX_BYTES: usize = qoin_primitives::MAX_TX_SIZE;
/// Most headers one request may ask for.
pub const MAX_HEADERS_PER_REQUEST: u64 = 1024;
/// Most payloads (or headers by hash) one request may ask for.
pub const MAX_HASHES_PER_REQUEST: usize = 64;
/// Most transaction ids a pool-hashes answer may carry.
pub const MAX_POOL_HASHES: usize = 4096;
/// Most transactions one transactions-by-hash request may ask for.
pub const MAX_TXS_PER_REQUEST: usize = 256;

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Longer than the message may be.
    #[error("{what} of {got} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Not protobuf of the expected message.
    #[error("undecodable {what}: {reason}")]
    Undecodable {
        /// Which message.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// A field is missing or has the wrong shape.
    #[error("bad field {0}")]
    Field(&'static str),
    /// Asks for more items than a request may.
    #[error("{what}: {got} items, at most {max}")]
    TooMany {
        /// Which request.
        what: &'static str,
        /// Items asked for.
        got: u64,
        /// The limit.
        max: u64,
    },
    /// A header inside does not decode.
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    /// A payload inside does not decode.
    #[error("payload: {0}")]
    Payload(String),
}

fn check_len(what: &'static str, bytes: &[u8], max: usize) -> Result<(), WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge { what, got: bytes.len(), max });
    }
    Ok(())
}

fn decode_proto<M: prost::Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, WireError> {
    M::decode(bytes).map_err(|e| WireError::Undecodable { what, reason: e.to_string() })
}

fn hash(bytes: &[u8], field: &'static str) -> Result<B256, WireError> {
    <[u8; 32]>::try_from(bytes).map(B256::from).map_err(|_| WireError::Field(field))
}

/// What a node says about itself when it meets a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Chain id of the genesis.
    pub chain_id: u64,
    /// Hash of the genesis block (consensus header).
    pub genesis_hash: B256,
    /// The node's head.
    pub head_hash: B256,
    /// Its height.
    pub head_height: u64,
    /// Expected candidates tested to build the head's chain (the fork-choice weight).
    pub cumulative_work: u128,
}

impl Status {
    fn to_proto(self) -> proto::Status {
        proto::Status {
            chain_id: self.chain_id,
            genesis_hash: self.genesis_hash.to_vec(),
            head_hash: self.head_hash.to_vec(),
            head_height: self.head_height,
            cumulative_work: self.cumulative_work.to_be_bytes().to_vec(),
        }
    }

    fn from_proto(p: &proto::Status) -> Result<Self, WireError> {
        let work: [u8; 16] = p
            .cumulative_work
            .as_slice()
            .try_into()
            .map_err(|_| WireError::Field("status.cumulative_work"))?;
        Ok(Self {
            chain_id: p.chain_id,
            genesis_hash: hash(&p.genesis_hash, "status.genesis_hash")?,
            head_hash: hash(&p.head_hash, "status.head_hash")?,
            head_height: p.head_height,
            cumulative_work: u128::from_be_bytes(work),
        })
    }

    /// Whether a peer with this status is on our chain.
    pub fn same_chain(&self, other: &Status) -> bool {
        self.chain_id == other.chain_id && self.genesis_hash == other.genesis_hash
    }
}

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Our status; the answer is theirs.
    Status(Status),
    /// Canonical headers from height `start`, at most `count` (≤ [`MAX_HEADERS_PER_REQUEST`]).
    HeadersByRange {
        /// First height.
        start: u64,
        /// How many.
        count: u64,
    },
    /// Headers by hash (≤ [`MAX_HASHES_PER_REQUEST`]).
    HeadersByHash(Vec<B256>),
    /// Payloads by block hash (≤ [`MAX_HASHES_PER_REQUEST`]).
    PayloadsByHash(Vec<B256>),
    /// The ids of the peer's pooled transactions (≤ [`MAX_POOL_HASHES`] in the answer).
    PoolHashes,
    /// Pooled transactions by id (≤ [`MAX_TXS_PER_REQUEST`]).
    TransactionsByHash(Vec<B256>),
}

/// Refuses a list of more than `max` items.
fn at_most<T>(what: &'static str, list: &[T], max: usize) -> Result<(), WireError> {
    if list.len() > max {
        return Err(WireError::TooMany { what, got: list.len() as u64, max: max as u64 });
    }
    Ok(())
}

fn hashes(what: &'static str, list: &[Vec<u8>], max: usize) -> Result<Vec<B256>, WireError> {
    at_most(what, list, max)?;
    list.iter().map(|h| hash(h, what)).collect()
}

impl Request {
    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        use proto::request::Kind;
        let by_hash = |h: &[B256]| proto::ByHash { hashes: h.iter().map(|h| h.to_vec()).collect() };
        let kind = match self {
            Self::Status(s) => Kind::Status(s.to_proto()),
            Self::HeadersByRange { start, count } => {
                Kind::HeadersByRange(proto::HeadersByRange { start: *start, count: *count })
            }
            Self::HeadersByHash(h) => Kind::HeadersByHash(by_hash(h)),
            Self::PayloadsByHash(h) => Kind::PayloadsByHash(by_hash(h)),
            Self::PoolHashes => Kind::PoolHashes(proto::PoolHashes {}),
            Self::TransactionsByHash(h) => Kind::TransactionsByHash(by_hash(h)),
        };
        proto::Request { kind: Some(kind) }.encode_to_vec()
    }

    /// Decodes and checks a request (size, shape, item counts).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        use proto::request::Kind;
        check_len("request", bytes, MAX_REQUEST_BYTES)?;
        let p: proto::Request = decode_proto("request", bytes)?;
        match p.kind.ok_or(WireError::Field("request.kind"))? {
            Kind::Status(s) => Ok(Self::Status(Status::from_proto(&s)?)),
            Kind::HeadersByRange(r) => {
                if r.count > MAX_HEADERS_PER_REQUEST {
                    return Err(WireError::TooMany {
                        what: "headers by range",
                        got: r.count,
                        max: MAX_HEADERS_PER_REQUEST,
                    });
                }
                Ok(Self::HeadersByRange { start: r.start, count: r.count })
            }
            Kind::HeadersByHash(h) => {
                Ok(Self::HeadersByHash(hashes("headers by hash", &h.hashes, MAX_HASHES_PER_REQUEST)?))
            }
            Kind::PayloadsByHash(h) => {
                Ok(Self::PayloadsByHash(hashes("payloads by hash", &h.hashes, MAX_HASHES_PER_REQUEST)?))
            }
            Kind::PoolHashes(_) => Ok(Self::PoolHashes),
            Kind::TransactionsByHash(h) => {
                Ok(Self::TransactionsByHash(hashes("transactions by hash", &h.hashes, MAX_TXS_PER_REQUEST)?))
            }
        }
    }
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The peer's status.
    Status(Status),
    /// Headers, in the order asked; unknown ones left out.
    Headers(Vec<Header>),
    /// Payloads, in the order asked; unknown ones left out.
    Payloads(Vec<Payload>),
    /// Payloads as their encodings ([`Payload::to_bytes`]) read from a store, sent without
    /// decoding them first: encoded as [`Self::Payloads`] is, and decoded as it (never as this).
    StoredPayloads(Vec<prost::bytes::Bytes>),
    /// The request was refused; the reason, for logs.
    Refused(String),
    /// Ids of pooled transactions, executable ones first (≤ [`MAX_POOL_HASHES`]).
    TransactionHashes(Vec<B256>),
    /// EIP-2718 transactions, in the order asked; unknown ones left out. Not decoded here: the
    /// execution client's pool judges each (≤ [`MAX_TXS_PER_REQUEST`], each at most
    /// [`MAX_GOSSIP_TX_BYTES`]).
    Transactions(Vec<alloy_primitives::Bytes>),
}

impl Response {
    /// Protobuf encoding.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        use proto::response::Kind;
        let kind = match self {
            Self::Status(s) => Kind::Status(s.to_proto()),
            Self::Headers(hs) => Kind::Headers(proto::Headers {
                headers: hs.iter().map(Header::encode).collect::<Result<_, _>>()?,
            }),
            Self::Payloads(ps) => {
                Kind::Payloads(proto::Payloads { payloads: ps.iter().map(|p| p.to_bytes().into()).collect() })
            }
            Self::StoredPayloads(raw) => Kind::Payloads(proto::Payloads { payloads: raw.clone() }),
            Self::Refused(why) => Kind::Refused(why.clone()),
            Self::TransactionHashes(h) => Kind::TransactionHashes(proto::TransactionHashes {
                hashes: h.iter().map(|h| h.to_vec()).collect(),
            }),
            Self::Transactions(txs) => Kind::Transactions(proto::Transactions {
                transactions: txs.iter().map(|t| t.to_vec()).collect(),
            }),
        };
        Ok(proto::Response { kind: Some(kind) }.encode_to_vec())
    }

    /// Decodes and checks a response; every header and payload inside is decoded too.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        use proto::response::Kind;
        check_len("response", bytes, MAX_RESPONSE_BYTES)?;
        let p: proto::Response = decode_proto("response", bytes)?;
        match p.kind.ok_or(WireError::Field("response.kind"))? {
            Kind::Status(s) => Ok(Self::Status(Status::from_proto(&s)?)),
            Kind::Headers(h) => {
                at_most("headers", &h.headers, MAX_HEADERS_PER_REQUEST as usize)?;
                Ok(Self::Headers(h.headers.iter().map(|b| Header::decode(b)).collect::<Result<_, _>>()?))
            }
            Kind::Payloads(ps) => {
                at_most("payloads", &ps.payloads, MAX_HASHES_PER_REQUEST)?;
                let payloads = ps
                    .payloads
                    .iter()
                    .map(|b| Payload::from_bytes(b).map_err(|e| WireError::Payload(e.to_string())))
                    .collect::<Result<_, _>>()?;
                Ok(Self::Payloads(payloads))
            }
            Kind::Refused(why) => Ok(Self::Refused(why.chars().take(256).collect())),
            Kind::TransactionHashes(h) => {
                Ok(Self::TransactionHashes(hashes("transaction hashes", &h.hashes, MAX_POOL_HASHES)?))
            }
            Kind::Transactions(t) => {
                at_most("transactions", &t.transactions, MAX_TXS_PER_REQUEST)?;
                if let Some(big) = t.transactions.iter().find(|t| t.len() > MAX_GOSSIP_TX_BYTES) {
                    return Err(WireError::TooLarge {
                        what: "transaction",
                        got: big.len(),
                        max: MAX_GOSSIP_TX_BYTES,
                    });
                }
                Ok(Self::Transactions(t.transactions.into_iter().map(Into::into).collect()))
            }
        }
    }
}

/// A block as gossiped: the header and the payload it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipBlock {
    /// The consensus header.
    pub header: Header,
    /// The execution payload.
    pub payload: Payload,
}

impl GossipBlock {
    /// Protobuf encoding of the envelope.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        Ok(proto::GossipBlock { header: self.header.encode()?, payload: self.payload.to_bytes() }
            .encode_to_vec())
    }

    /// Decodes a gossiped block: size, envelope, header, payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        check_len("gossip block", bytes, MAX_GOSSIP_BLOCK_BYTES)?;
        let p: proto::GossipBlock = decode_proto("gossip block", bytes)?;
        let header = Header::decode(&p.header)?;
        let payload = Payload::from_bytes(&p.payload).map_err(|e| WireError::Payload(e.to_string()))?;
        Ok(Self { header, payload })
    }
}
