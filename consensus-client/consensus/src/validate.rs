//! Block validation as pure, I/O-free functions: the header against its parent, siblings and
//! the chain parameters, then the payload against the header. Cheap checks first (structure,
//! height, time, difficulty, siblings), then the proof of work, then the ticket signature.
//! Nothing here panics on any input; the fuzz-style property test feeds it random bytes.

use crate::params::{prev_randao, ChainParams};
use alloy_primitives::{Address, B256, U256};
use qoin_engine_api::Payload;
use qoin_pow::{check_timestamp, Difficulty, PowError, TimeError};
use qoin_primitives::{Header, HeaderError, SignedTx};

/// What fork choice and validation need of a known block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    /// Its hash (the genesis block's is the execution genesis hash).
    pub hash: B256,
    /// Its parent's hash (zero for genesis).
    pub parent_hash: B256,
    /// Height.
    pub height: u64,
    /// Timestamp in milliseconds.
    pub timestamp_ms: u64,
    /// The execution payload's block hash.
    pub payload_hash: B256,
    /// State root after the payload.
    pub state_root: B256,
    /// Receives reward and fees.
    pub coinbase: Address,
    /// Work of its proof of work.
    pub work: U256,
    /// Siblings of its parent it references.
    pub siblings: Vec<B256>,
}

impl BlockMeta {
    /// The genesis block of `params`.
    pub fn genesis(params: &ChainParams) -> Self {
        Self {
            hash: params.genesis_hash,
            parent_hash: B256::ZERO,
            height: 0,
            timestamp_ms: params.genesis_time_ms,
            payload_hash: params.genesis_hash,
            state_root: params.genesis_state_root,
            coinbase: Address::ZERO,
            work: U256::ZERO,
            siblings: Vec::new(),
        }
    }

    /// The meta of a header whose hash is `hash` (its difficulty must decode).
    pub fn of(header: &Header, hash: B256) -> Result<Self, InvalidBlock> {
        let d = Difficulty::from_compact(header.difficulty).map_err(|e| InvalidBlock::Pow(e.into()))?;
        Ok(Self {
            hash,
            parent_hash: header.parent_hash,
            height: header.height,
            timestamp_ms: header.timestamp_ms,
            payload_hash: header.payload_hash,
            state_root: header.state_root,
            coinbase: header.coinbase,
            work: d.work(),
            siblings: header.siblings.clone(),
        })
    }
}

/// Why a block is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBlock {
    /// The header cannot be encoded or decoded.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The parent is not the one given.
    #[error("parent hash {got} is not the parent {want}")]
    WrongParent {
        /// In the header.
        got: B256,
        /// The parent given.
        want: B256,
    },
    /// Height is not the parent's plus one.
    #[error("height {got}, expected {want}")]
    Height {
        /// In the header.
        got: u64,
        /// Parent's + 1.
        want: u64,
    },
    /// A timestamp rule is broken.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// The difficulty does not follow the adjustment rule.
    #[error("difficulty {got:#x}, the adjustment rule requires {want:#x}")]
    Difficulty {
        /// In the header.
        got: u64,
        /// Required.
        want: u64,
    },
    /// A sibling reference breaks a rule.
    #[error("sibling {hash}: {why}")]
    Sibling {
        /// The sibling.
        hash: B256,
        /// What is wrong.
        why: &'static str,
    },
    /// The proof of work is wrong.
    #[error(transparent)]
    Pow(#[from] PowError),
    /// The payload does not match the header.
    #[error("payload: {0}")]
    Payload(String),
}

/// Validates `header` (whose hash is `hash`) as a child of `parent` referencing `siblings`
/// (the metas of `header.siblings`, in order), at local time `now_ms`. Returns the block's
/// meta (with its work).
pub fn validate_header(
    header: &Header,
    parent: &BlockMeta,
    siblings: &[BlockMeta],
    params: &ChainParams,
    now_ms: u64,
) -> Result<BlockMeta, InvalidBlock> {
    let hash = header.hash()?;
    if header.parent_hash != parent.hash {
        return Err(InvalidBlock::WrongParent { got: header.parent_hash, want: parent.hash });
    }
    let want = parent.height.saturating_add(1);
    if header.height != want {
        return Err(InvalidBlock::Height { got: header.height, want });
    }
    check_timestamp(parent.timestamp_ms, header.timestamp_ms, now_ms)?;
    let required = params.child_difficulty(parent.height, parent.timestamp_ms).to_compact();
    if header.difficulty != required {
        return Err(InvalidBlock::Difficulty { got: header.difficulty, want: required });
    }
    if siblings.len() != header.siblings.len() {
        return Err(InvalidBlock::Sibling { hash: B256::ZERO, why: "unknown sibling" });
    }
    for (i, (h, s)) in header.siblings.iter().zip(siblings).enumerate() {
        let bad = |why| Err(InvalidBlock::Sibling { hash: *h, why });
        if s.hash != *h {
            return bad("unknown sibling");
        }
        if header.siblings[..i].contains(h) {
            return bad("referenced twice");
        }
        if *h == parent.hash {
            return bad("is the parent itself");
        }
        if parent.height == 0 || s.parent_hash != parent.parent_hash || s.height != parent.height {
            return bad("not a sibling of the parent (same parent, same height)");
        }
    }
    qoin_pow::verify_seal(header)?;
    header.verify_ticket()?;
    BlockMeta::of(header, hash)
}

/// The fields of a block's payload that its child's fee fields follow from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecFields {
    /// Gas limit.
    pub gas_limit: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Base fee per gas.
    pub base_fee: u64,
}

impl ExecFields {
    /// A payload's.
    pub fn of(payload: &Payload) -> Self {
        Self { gas_limit: payload.gas_limit, gas_used: payload.gas_used, base_fee: payload.base_fee_per_gas }
    }

    /// 24 bytes, big-endian.
    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.gas_limit.to_be_bytes());
        b[8..16].copy_from_slice(&self.gas_used.to_be_bytes());
        b[16..].copy_from_slice(&self.base_fee.to_be_bytes());
        b
    }

    /// From [`Self::to_bytes`]; `None` for any other length.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<u64> { Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?)) };
        (b.len() == 24).then_some(())?;
        Some(Self { gas_limit: word(0)?, gas_used: word(8)?, base_fee: word(16)? })
    }
}

/// Gas every transaction costs at least.
const MIN_TX_GAS: u64 = 21_000;

/// Checks what needs no state in a payload's transactions: each decodes, is signed for this
/// chain, and carries valid Falcon-512 and ML-DSA-44 signatures (verified in parallel).
/// Returns them decoded, in order.
pub fn validate_transactions(payload: &Payload, chain_id: u64) -> Result<Vec<SignedTx>, InvalidBlock> {
    use rayon::prelude::*;
    payload
        .transactions
        .par_iter()
        .enumerate()
        .map(|(i, raw)| {
            let tx = qoin_primitives::SignedTx::decode(raw)
                .map_err(|e| InvalidBlock::Payload(format!("transaction {i} does not decode: {e}")))?;
            if tx.request().chain_id != chain_id {
                return Err(InvalidBlock::Payload(format!(
                    "transaction {i} is for chain {}, not {chain_id}",
                    tx.request().chain_id
                )));
            }
            tx.verify_signature().map_err(|e| InvalidBlock::Payload(format!("transaction {i}: {e}")))?;
            Ok(tx)
        })
        .collect()
}

/// The costly, stateless part of a block's checks, to run off the async threads: the payload's
/// transactions hash to the header's `transactions_root` (SSZ, §6), and pass
/// [`validate_transactions`]. Returns them decoded, in order. The root, the cheaper check, comes
/// first: the transactions' own roots are computed in parallel, then combined.
pub fn validate_body(
    header: &Header,
    payload: &Payload,
    chain_id: u64,
) -> Result<Vec<SignedTx>, InvalidBlock> {
    use rayon::prelude::*;
    let roots: Vec<B256> = payload
        .transactions
        .par_iter()
        .map(|raw| qoin_primitives::transaction_root(raw))
        .collect::<Result<_, _>>()?;
    let root = qoin_primitives::transactions_root_of(&roots)?;
    if root != header.transactions_root {
        return Err(InvalidBlock::Payload(format!(
            "transactions root {root} is not the header's {}",
            header.transactions_root
        )));
    }
    validate_transactions(payload, chain_id)
}

/// Checks that `payload` is the execution part `header` commits to: its hash, state root,
/// fee recipient, time, randomness, parent, the credits the rules give, and the fee fields
/// that follow from the parent's (`parent_exec`): the same gas limit, gas used within it and
/// at least 21,000 per transaction, the base fee of the EIP-1559 rule. Cheap: the
/// transactions themselves (their root, signatures) are [`validate_body`]'s.
pub fn validate_payload(
    header: &Header,
    payload: &Payload,
    parent: &BlockMeta,
    parent_exec: &ExecFields,
    sibling_coinbases: &[Address],
    params: &ChainParams,
) -> Result<(), InvalidBlock> {
    let bad = |m: String| Err(InvalidBlock::Payload(m));
    if payload.gas_limit != parent_exec.gas_limit {
        return bad(format!("gas limit {} is not the parent's {}", payload.gas_limit, parent_exec.gas_limit));
    }
    if payload.gas_used > payload.gas_limit {
        return bad(format!("gas used {} exceeds the gas limit {}", payload.gas_used, payload.gas_limit));
    }
    let floor = (payload.transactions.len() as u64).saturating_mul(MIN_TX_GAS);
    if payload.gas_used < floor {
        return bad(format!(
            "gas used {} is less than 21,000 for each of its {} transactions",
            payload.gas_used,
            payload.transactions.len()
        ));
    }
    let base_fee = qoin_primitives::fee::next_base_fee(
        parent_exec.gas_limit,
        parent_exec.gas_used,
        parent_exec.base_fee,
    );
    if payload.base_fee_per_gas != base_fee {
        return bad(format!("base fee {} is not the rule's {base_fee}", payload.base_fee_per_gas));
    }
    if payload.block_hash != header.payload_hash {
        return bad(format!("block hash {} is not the header's {}", payload.block_hash, header.payload_hash));
    }
    if payload.parent_hash != parent.payload_hash {
        return bad(format!(
            "parent {} is not the parent block's payload {}",
            payload.parent_hash, parent.payload_hash
        ));
    }
    if payload.number != header.height {
        return bad(format!("number {} is not the height {}", payload.number, header.height));
    }
    if payload.state_root != header.state_root {
        return bad(format!("state root {} is not the header's {}", payload.state_root, header.state_root));
    }
    if payload.timestamp != header.timestamp_ms / 1000 {
        return bad(format!(
            "timestamp {} s does not match the header's {} ms",
            payload.timestamp, header.timestamp_ms
        ));
    }
    if payload.fee_recipient != header.coinbase {
        return bad(format!(
            "fee recipient {} is not the coinbase {}",
            payload.fee_recipient, header.coinbase
        ));
    }
    if payload.prev_randao != prev_randao(&header.parent_hash) {
        return bad("prev_randao is not the parent's hash".into());
    }
    let want = params.credits(header.height, header.coinbase, sibling_coinbases);
    if payload.credits != want {
        return bad(format!("credits {:?} are not the reward rule's {want:?}", payload.credits));
    }
    Ok(())
}
