//! Execution blocks: the header the execution client commits to, bodies and receipts.

use alloy_primitives::{keccak256, Address, Bloom, Bytes, Log, B256, U256};
use alloy_rlp::{Encodable, RlpDecodable, RlpEncodable};

/// A credit of shor to an account at the end of a block (block reward, sibling rewards),
/// passed by the consensus client in the payload attributes, as Ethereum passes withdrawals.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Credit {
    /// Account credited.
    pub address: Address,
    /// Amount in shor.
    pub amount: U256,
}

/// The execution header. Its hash (keccak256 of its RLP) is the payload hash the consensus
/// header commits to.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct ElHeader {
    /// Hash of the parent execution header.
    pub parent_hash: B256,
    /// Block number.
    pub number: u64,
    /// Unix time in seconds (what `TIMESTAMP` returns).
    pub timestamp: u64,
    /// Account paid the priority fees (the block's coinbase).
    pub beneficiary: Address,
    /// Merkle-Patricia state root after the block.
    pub state_root: B256,
    /// Ordered trie root of the transactions.
    pub transactions_root: B256,
    /// Ordered trie root of the receipts.
    pub receipts_root: B256,
    /// Ordered trie root of the credits.
    pub credits_root: B256,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Gas limit.
    pub gas_limit: u64,
    /// Gas used.
    pub gas_used: u64,
    /// EIP-1559 base fee per gas.
    pub base_fee_per_gas: u64,
    /// Randomness from the consensus client (`PREVRANDAO`).
    pub prev_randao: B256,
}

impl ElHeader {
    /// keccak256 of the RLP encoding.
    pub fn hash(&self) -> B256 {
        keccak256(alloy_rlp::encode(self))
    }
}

/// A block's transactions (EIP-2718 encodings) and credits.
#[derive(Debug, Clone, PartialEq, Eq, Default, RlpEncodable, RlpDecodable)]
pub struct Body {
    /// Transactions.
    pub transactions: Vec<Bytes>,
    /// Credits applied after the transactions.
    pub credits: Vec<Credit>,
}

/// A transaction's receipt.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Receipt {
    /// Whether it succeeded (`false`: reverted or halted; its gas is still spent).
    pub success: bool,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Bloom of this receipt's logs.
    pub logs_bloom: Bloom,
    /// Logs emitted.
    pub logs: Vec<Log>,
}

impl Receipt {
    /// The Ethereum-style typed receipt encoding: `0x51 ‖ rlp(receipt)`.
    pub fn encoded(&self) -> Vec<u8> {
        let mut out = vec![qoin_primitives::QOIN_TX_TYPE];
        self.encode(&mut out);
        out
    }
}

/// The EIP-1559 base fee of a child block, from its parent (target = half the gas limit,
/// at most ±12.5% a block), with a floor of `min` so fees never vanish (the rule is
/// `qoin_primitives::fee`'s, which the consensus client checks too).
pub fn next_base_fee(parent: &ElHeader, min: u64) -> u64 {
    qoin_primitives::fee::next_base_fee_with_min(
        parent.gas_limit,
        parent.gas_used,
        parent.base_fee_per_gas,
        min,
    )
}

/// Root of the ordered trie of `items` (keys `rlp(index)`), as Ethereum computes
/// transaction and receipt roots.
pub fn ordered_root<T: AsRef<[u8]>>(items: &[T]) -> B256 {
    alloy_trie::root::ordered_trie_root_with_encoder(items, |item, out| out.extend_from_slice(item.as_ref()))
}

/// The credits root of a body.
pub fn credits_root(credits: &[Credit]) -> B256 {
    ordered_root(&credits.iter().map(alloy_rlp::encode).collect::<Vec<_>>())
}

/// A header whose transactions and credits roots were computed from the body beside it: made
/// only by [`SealedBlock::seal`], so an import of it needs no second pass over the
/// transactions' bytes (the transactions root of a full block hashes megabytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    header: ElHeader,
    body: Body,
}

impl SealedBlock {
    /// `header` with its transactions and credits roots computed from `body` (the root over
    /// the transactions' encodings as given).
    pub fn seal(header: &ElHeader, body: Body) -> Self {
        let header = ElHeader {
            transactions_root: ordered_root(&body.transactions),
            credits_root: credits_root(&body.credits),
            ..header.clone()
        };
        Self { header, body }
    }
    /// The header.
    pub fn header(&self) -> &ElHeader {
        &self.header
    }
    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }
    /// The header and the body.
    pub fn into_parts(self) -> (ElHeader, Body) {
        (self.header, self.body)
    }
}
