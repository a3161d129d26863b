//! The engine API's values in Rust types, and their checked conversion from and to the
//! protobuf messages (a malformed field is an [`EngineError::InvalidParams`], never a panic).

use crate::proto;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256, U256};
use prost::Message as _;

/// Engine protocol versions this build speaks.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];
/// Metadata key carrying the caller's protocol version on every call.
pub const VERSION_HEADER: &str = "qoin-engine-version";
/// Metadata key on an error status naming which engine error it is (Ethereum's codes).
pub const ERROR_HEADER: &str = "qoin-engine-error";
/// Methods of protocol version 1.
pub const METHODS_V1: &[&str] = &[
    "ExchangeCapabilities",
    "NewPayload",
    "NewPayloads",
    "ForkchoiceUpdated",
    "GetPayload",
    "GetAccountProofs",
    "SubscribeTransactions",
    "SubmitTransactions",
    "SetSyncStatus",
    "PooledTransactionHashes",
    "GetPooledTransactions",
];
/// A sync in progress, as the consensus client reports it (`SetSyncStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    /// The head's height when the sync began.
    pub starting_block: u64,
    /// The best peer's head height.
    pub highest_block: u64,
}

/// HTTP/2 flow-control windows of both sides (per stream, per connection) and the largest
/// frame they accept. h2's defaults (64 KiB windows, 16 KiB frames) move a `NewPayloads` of
/// eight 5.3 MB payloads in 64 KiB steps, each waiting for the receiving task to grant more:
/// such a call took 95 and 108 ms over loopback, 72, 81 and 83 ms with these (a temporary
/// probe against a backend that answers at once, 2 vCPUs). Both programs are local and
/// trusted, and every message is capped at 64 MiB anyway.
pub(crate) const STREAM_WINDOW: u32 = 16 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 64 << 20;
pub(crate) const MAX_FRAME: u32 = 1 << 20;
/// Most payloads one `NewPayloads` call may carry.
pub const MAX_NEW_PAYLOADS: usize = 64;
/// Most addresses one `GetAccountProofs` call may ask for.
pub const MAX_PROOF_ADDRESSES: usize = 1024;
/// Most transactions one `SubmitTransactions` call may carry.
pub const MAX_SUBMIT_TRANSACTIONS: usize = 256;
/// Most ids one `PooledTransactionHashes` call returns.
pub const MAX_POOLED_HASHES: usize = 4096;
/// Most ids one `GetPooledTransactions` call may ask for.
pub const MAX_GET_POOLED: usize = 256;

/// An engine call's failure, with Ethereum's error codes where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `GetPayload` with an id the server never issued or has dropped (-38001).
    #[error("unknown payload id")]
    UnknownPayload,
    /// The forkchoice state is inconsistent, e.g. `finalized` is not an ancestor of `head`
    /// (-38002).
    #[error("invalid forkchoice state: {0}")]
    InvalidForkchoiceState(String),
    /// The payload attributes cannot build on the head, e.g. a timestamp not after the
    /// head's (-38003).
    #[error("invalid payload attributes: {0}")]
    InvalidAttributes(String),
    /// A request field is malformed (wrong length, too many items) (-32602).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The peer speaks no protocol version this side does, or lacks a method.
    #[error("unsupported engine API version: {0}")]
    UnsupportedVersion(String),
    /// The token was missing, stale or wrongly signed.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The server could not be reached or the connection broke.
    #[error("engine transport: {0}")]
    Transport(String),
    /// The server failed (database error) (-32603).
    #[error("engine server error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The error's name in the `qoin-engine-error` metadata.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPayload => "unknown-payload",
            Self::InvalidForkchoiceState(_) => "invalid-forkchoice-state",
            Self::InvalidAttributes(_) => "invalid-payload-attributes",
            Self::InvalidParams(_) => "invalid-params",
            Self::UnsupportedVersion(_) => "unsupported-version",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Transport(_) => "transport",
            Self::Internal(_) => "internal",
        }
    }

    /// The gRPC status a server answers with: each engine error has its own code.
    pub fn to_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self {
            Self::UnknownPayload => Code::NotFound,
            Self::InvalidForkchoiceState(_) => Code::FailedPrecondition,
            Self::InvalidAttributes(_) => Code::OutOfRange,
            Self::InvalidParams(_) => Code::InvalidArgument,
            Self::UnsupportedVersion(_) => Code::Unimplemented,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::Transport(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        };
        let mut status = tonic::Status::new(code, self.to_string());
        if let Ok(v) = self.code().parse() {
            status.metadata_mut().insert(ERROR_HEADER, v);
        }
        status
    }

    /// Reads a gRPC status back into the engine error it carries.
    pub fn from_status(status: &tonic::Status) -> Self {
        let named = status.metadata().get(ERROR_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let msg = status.message().to_string();
        let strip = |prefix: &str| msg.strip_prefix(prefix).unwrap_or(&msg).to_string();
        match (named, status.code()) {
            ("unknown-payload", _) => Self::UnknownPayload,
            ("invalid-forkchoice-state", _) => {
                Self::InvalidForkchoiceState(strip("invalid forkchoice state: "))
            }
            ("invalid-payload-attributes", _) => {
                Self::InvalidAttributes(strip("invalid payload attributes: "))
            }
            ("invalid-params", _) => Self::InvalidParams(strip("invalid params: ")),
            ("unsupported-version", _) | (_, tonic::Code::Unimplemented) => {
                Self::UnsupportedVersion(strip("unsupported engine API version: "))
            }
            (_, tonic::Code::Unauthenticated) => Self::Unauthenticated(strip("unauthenticated: ")),
            (_, tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded) => {
                Self::Transport(msg)
            }
            _ => Self::Internal(strip("engine server error: ")),
        }
    }
}

fn fixed<const N: usize>(field: &str, bytes: &[u8]) -> Result<[u8; N], EngineError> {
    bytes
        .try_into()
        .map_err(|_| EngineError::InvalidParams(format!("{field}: {} bytes, expected {N}", bytes.len())))
}

pub(crate) fn parse_b256(field: &str, bytes: &[u8]) -> Result<B256, EngineError> {
    fixed::<32>(field, bytes).map(B256::from)
}

pub(crate) fn parse_address(field: &str, bytes: &[u8]) -> Result<Address, EngineError> {
    fixed::<20>(field, bytes).map(Address::from)
}

pub(crate) fn parse_u256(field: &str, bytes: &[u8]) -> Result<U256, EngineError> {
    fixed::<32>(field, bytes).map(U256::from_be_bytes)
}

/// A credit of shor after the block's transactions (block and sibling rewards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// Account credited.
    pub address: Address,
    /// Amount in shor.
    pub amount: U256,
}

impl Credit {
    fn from_proto(c: &proto::Credit) -> Result<Self, EngineError> {
        Ok(Self {
            address: parse_address("credit.address", &c.address)?,
            amount: parse_u256("credit.amount", &c.amount)?,
        })
    }

    fn to_proto(&self) -> proto::Credit {
        proto::Credit { address: self.address.to_vec(), amount: self.amount.to_be_bytes::<32>().to_vec() }
    }
}

/// The execution part of a block (spec §11, §15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The parent payload's block hash.
    pub parent_hash: B256,
    /// Execution block number.
    pub number: u64,
    /// Unix seconds.
    pub timestamp: u64,
    /// Receives the priority fees.
    pub fee_recipient: Address,
    /// State root after the payload.
    pub state_root: B256,
    /// Ordered-trie root of the receipts.
    pub receipts_root: B256,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Gas limit.
    pub gas_limit: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Base fee per gas.
    pub base_fee_per_gas: u64,
    /// The EVM's PREVRANDAO.
    pub prev_randao: B256,
    /// keccak256 of the execution header's RLP.
    pub block_hash: B256,
    /// EIP-2718 encodings.
    pub transactions: Vec<Bytes>,
    /// Credits applied after the transactions.
    pub credits: Vec<Credit>,
}

impl Payload {
    /// Checked conversion from the message.
    pub fn from_proto(p: &proto::ExecutionPayload) -> Result<Self, EngineError> {
        let bloom: [u8; 256] = fixed("logs_bloom", &p.logs_bloom)?;
        Ok(Self {
            parent_hash: parse_b256("parent_hash", &p.parent_hash)?,
            number: p.number,
            timestamp: p.timestamp,
            fee_recipient: parse_address("fee_recipient", &p.fee_recipient)?,
            state_root: parse_b256("state_root", &p.state_root)?,
            receipts_root: parse_b256("receipts_root", &p.receipts_root)?,
            logs_bloom: Bloom::from(bloom),
            gas_limit: p.gas_limit,
            gas_used: p.gas_used,
            base_fee_per_gas: p.base_fee_per_gas,
            prev_randao: parse_b256("prev_randao", &p.prev_randao)?,
            block_hash: parse_b256("block_hash", &p.block_hash)?,
            // Copied, not sliced: a receiver keeps transactions (a pool, side blocks), and a
            // slice would keep the whole received message alive with it.
            transactions: p.transactions.iter().map(|t| Bytes::copy_from_slice(t)).collect(),
            credits: p.credits.iter().map(Credit::from_proto).collect::<Result<_, _>>()?,
        })
    }

    /// The message.
    pub fn to_proto(&self) -> proto::ExecutionPayload {
        proto::ExecutionPayload {
            parent_hash: self.parent_hash.to_vec(),
            number: self.number,
            timestamp: self.timestamp,
            fee_recipient: self.fee_recipient.to_vec(),
            state_root: self.state_root.to_vec(),
            receipts_root: self.receipts_root.to_vec(),
            logs_bloom: self.logs_bloom.to_vec(),
            gas_limit: self.gas_limit,
            gas_used: self.gas_used,
            base_fee_per_gas: self.base_fee_per_gas,
            prev_randao: self.prev_randao.to_vec(),
            block_hash: self.block_hash.to_vec(),
            transactions: self.transactions.iter().map(|t| t.0.clone()).collect(),
            credits: self.credits.iter().map(Credit::to_proto).collect(),
            signatures_verified: false,
        }
    }

    /// The protobuf encoding (how the consensus client stores a block's payload).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes [`Payload::to_bytes`]; malformed bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let p = proto::ExecutionPayload::decode(bytes)
            .map_err(|e| EngineError::InvalidParams(format!("payload encoding: {e}")))?;
        Self::from_proto(&p)
    }
}

/// What the consensus client asks a payload to be built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The consensus header's timestamp in milliseconds (the payload's is this / 1000).
    pub timestamp_ms: u64,
    /// Receives the priority fees.
    pub fee_recipient: Address,
    /// Block and sibling rewards.
    pub credits: Vec<Credit>,
    /// The EVM's PREVRANDAO.
    pub prev_randao: B256,
}

/// An 8-byte payload id.
pub type PayloadId = [u8; 8];

impl Attributes {
    /// Checked conversion from the message.
    pub fn from_proto(a: &proto::PayloadAttributes) -> Result<Self, EngineError> {
        Ok(Self {
            timestamp_ms: a.timestamp_ms,
            fee_recipient: parse_address("attributes.fee_recipient", &a.fee_recipient)?,
            credits: a.credits.iter().map(Credit::from_proto).collect::<Result<_, _>>()?,
            prev_randao: parse_b256("attributes.prev_randao", &a.prev_randao)?,
        })
    }

    /// The message.
    pub fn to_proto(&self) -> proto::PayloadAttributes {
        proto::PayloadAttributes {
            timestamp_ms: self.timestamp_ms,
            fee_recipient: self.fee_recipient.to_vec(),
            credits: self.credits.iter().map(Credit::to_proto).collect(),
            prev_randao: self.prev_randao.to_vec(),
        }
    }

    /// The payload id of building on `head` with these attributes: the first 8 bytes of
    /// `keccak256(head ‖ protobuf(attributes))`, so equal requests get equal ids.
    pub fn payload_id(&self, head: &B256) -> PayloadId {
        let mut buf = head.to_vec();
        buf.extend_from_slice(&self.to_proto().encode_to_vec());
        let h = keccak256(buf);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        id
    }
}

/// A payload status kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Executed and correct.
    Valid,
    /// Executed and wrong, or descends from an invalid block.
    Invalid,
    /// The parent or head is unknown.
    Syncing,
    /// Stored but not executed (not on the head).
    Accepted,
}

/// The answer to `NewPayload` and the status part of `ForkchoiceUpdated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadStatus {
    /// The verdict.
    pub status: Status,
    /// With `Invalid`: the latest valid ancestor, if known.
    pub latest_valid_hash: Option<B256>,
    /// With `Invalid`: why.
    pub validation_error: Option<String>,
}

impl PayloadStatus {
    /// `VALID`.
    pub fn valid() -> Self {
        Self { status: Status::Valid, latest_valid_hash: None, validation_error: None }
    }

    /// `SYNCING`.
    pub fn syncing() -> Self {
        Self { status: Status::Syncing, latest_valid_hash: None, validation_error: None }
    }

    /// `ACCEPTED`.
    pub fn accepted() -> Self {
        Self { status: Status::Accepted, latest_valid_hash: None, validation_error: None }
    }

    /// `INVALID` with the latest valid ancestor and the reason.
    pub fn invalid(latest_valid_hash: Option<B256>, why: impl Into<String>) -> Self {
        Self { status: Status::Invalid, latest_valid_hash, validation_error: Some(why.into()) }
    }

    /// Checked conversion from the message.
    pub fn from_proto(p: &proto::PayloadStatus) -> Result<Self, EngineError> {
        let status = match proto::Status::try_from(p.status) {
            Ok(proto::Status::Valid) => Status::Valid,
            Ok(proto::Status::Invalid) => Status::Invalid,
            Ok(proto::Status::Syncing) => Status::Syncing,
            Ok(proto::Status::Accepted) => Status::Accepted,
            _ => return Err(EngineError::InvalidParams(format!("unknown payload status {}", p.status))),
        };
        let latest_valid_hash = if p.latest_valid_hash.is_empty() {
            None
        } else {
            Some(parse_b256("latest_valid_hash", &p.latest_valid_hash)?)
        };
        let validation_error = (!p.validation_error.is_empty()).then(|| p.validation_error.clone());
        Ok(Self { status, latest_valid_hash, validation_error })
    }

    /// The message.
    pub fn to_proto(&self) -> proto::PayloadStatus {
        let status = match self.status {
            Status::Valid => proto::Status::Valid,
            Status::Invalid => proto::Status::Invalid,
            Status::Syncing => proto::Status::Syncing,
            Status::Accepted => proto::Status::Accepted,
        };
        proto::PayloadStatus {
            status: status as i32,
            latest_valid_hash: self.latest_valid_hash.map(|h| h.to_vec()).unwrap_or_default(),
            validation_error: self.validation_error.clone().unwrap_or_default(),
        }
    }
}

/// An account and its Merkle-Patricia proof against a state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// The account.
    pub address: Address,
    /// Whether the account exists (if not, the proof shows its absence and the fields are 0).
    pub exists: bool,
    /// Nonce.
    pub nonce: u64,
    /// Balance in shor.
    pub balance: U256,
    /// Root of its storage trie.
    pub storage_root: B256,
    /// keccak256 of its code.
    pub code_hash: B256,
    /// RLP trie nodes from the root towards `keccak256(address)`.
    pub proof: Vec<Bytes>,
}

impl AccountProof {
    /// Checked conversion from the message.
    pub fn from_proto(p: &proto::AccountProof) -> Result<Self, EngineError> {
        Ok(Self {
            address: parse_address("account.address", &p.address)?,
            exists: p.exists,
            nonce: p.nonce,
            balance: parse_u256("account.balance", &p.balance)?,
            storage_root: parse_b256("account.storage_root", &p.storage_root)?,
            code_hash: parse_b256("account.code_hash", &p.code_hash)?,
            // Slices of the received message: proofs are checked and dropped.
            proof: p.proof.iter().cloned().map(Bytes::from).collect(),
        })
    }

    /// The message.
    pub fn to_proto(&self) -> proto::AccountProof {
        proto::AccountProof {
            address: self.address.to_vec(),
            exists: self.exists,
            nonce: self.nonce,
            balance: self.balance.to_be_bytes::<32>().to_vec(),
            storage_root: self.storage_root.to_vec(),
            code_hash: self.code_hash.to_vec(),
            proof: self.proof.iter().map(|n| n.0.clone()).collect(),
        }
    }
}

/// A transaction that entered the server's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PooledTx {
    /// Its id.
    pub hash: B256,
    /// Its EIP-2718 encoding.
    pub raw: Bytes,
}

pub(crate) fn parse_payload_id(bytes: &[u8]) -> Result<PayloadId, EngineError> {
    fixed::<8>("payload_id", bytes)
}

/// The pool's verdict on a submitted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Now in the pool.
    Added,
    /// Already pooled, or its nonce already used.
    Known,
    /// Can never be valid: whoever relayed it did not check it.
    Invalid,
    /// Valid, but not taken now (funds, price, limits): nobody's fault.
    Refused,
}

/// The verdict on one submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxVerdict {
    /// The transaction id (`None` when it does not decode).
    pub hash: Option<B256>,
    /// What the pool did.
    pub verdict: Verdict,
    /// The pool's message, unless added.
    pub error: String,
}

impl TxVerdict {
    pub(crate) fn to_proto(&self) -> proto::TransactionVerdict {
        let verdict = match self.verdict {
            Verdict::Added => proto::Verdict::Added,
            Verdict::Known => proto::Verdict::Known,
            Verdict::Invalid => proto::Verdict::Invalid,
            Verdict::Refused => proto::Verdict::Refused,
        };
        proto::TransactionVerdict {
            hash: self.hash.map(|h| h.to_vec()).unwrap_or_default(),
            verdict: verdict as i32,
            error: self.error.clone(),
        }
    }

    pub(crate) fn from_proto(p: &proto::TransactionVerdict) -> Result<Self, EngineError> {
        let verdict = match proto::Verdict::try_from(p.verdict) {
            Ok(proto::Verdict::Added) => Verdict::Added,
            Ok(proto::Verdict::Known) => Verdict::Known,
            Ok(proto::Verdict::Invalid) => Verdict::Invalid,
            Ok(proto::Verdict::Refused) => Verdict::Refused,
            _ => return Err(EngineError::InvalidParams(format!("verdict {}", p.verdict))),
        };
        let hash = if p.hash.is_empty() { None } else { Some(parse_b256("hash", &p.hash)?) };
        Ok(Self { hash, verdict, error: p.error.clone() })
    }
}
