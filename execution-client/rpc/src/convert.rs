//! Parameters in, JSON out: quantities, block tags, and the transaction, receipt, log and
//! block objects in the shapes Ethereum tools read.

use crate::error::RpcError;
use alloy_primitives::{Log, B256, U256};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use qoin_el_storage::block::{Body, ElHeader, Receipt};
use qoin_primitives::{SignedTx, TxKind};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Positional parameters.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<Value>);

impl Args {
    /// Wraps positional parameters.
    pub fn new(params: Vec<Value>) -> Self {
        Self(params)
    }

    /// Reads jsonrpsee's parameters (absent = none; must be an array otherwise).
    pub fn from_params(params: &Params<'_>) -> Result<Self, ErrorObjectOwned> {
        if params.as_str().is_none() {
            return Ok(Self(Vec::new()));
        }
        let v: Vec<Value> = params.parse()?;
        Ok(Self(v))
    }

    /// Parameter `i`, or `None` when absent or null.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    /// Parameter `i` deserialized, required.
    pub fn req<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<T, RpcError> {
        let v = self.get(i).ok_or_else(|| RpcError::invalid_params(format!("missing value for {what}")))?;
        serde_json::from_value(v.clone())
            .map_err(|e| RpcError::invalid_params(format!("invalid {what}: {e}")))
    }

    /// Parameter `i` deserialized, if present.
    pub fn opt<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<Option<T>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(_) => self.req(i, what).map(Some),
        }
    }

    /// Parameter `i` as a quantity (hex string or number), required.
    pub fn quantity(&self, i: usize, what: &str) -> Result<u64, RpcError> {
        let v = self.get(i).ok_or_else(|| RpcError::invalid_params(format!("missing value for {what}")))?;
        quantity_u64(v, what)
    }

    /// Parameter `i` as a block tag (`latest` when absent).
    pub fn block(&self, i: usize) -> Result<BlockTag, RpcError> {
        self.get(i).map_or(Ok(BlockTag::Latest), BlockTag::parse)
    }
}

/// A block named by tag, number or hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTag {
    /// The head (`latest`, `safe`, `finalized`).
    Latest,
    /// The block being built: the head's state with the pool's nonces.
    Pending,
    /// A number (`earliest` is 0).
    Number(u64),
    /// A hash; `require_canonical` is ignored: only canonical blocks are stored.
    Hash(B256),
}

impl BlockTag {
    /// Parses a tag, a hex number, or an EIP-1898 object.
    pub fn parse(v: &Value) -> Result<Self, RpcError> {
        match v {
            Value::String(s) => match s.as_str() {
                "latest" | "safe" | "finalized" => Ok(Self::Latest),
                "pending" => Ok(Self::Pending),
                "earliest" => Ok(Self::Number(0)),
                s if s.len() == 66 => s
                    .parse::<B256>()
                    .map(Self::Hash)
                    .map_err(|e| RpcError::invalid_params(format!("invalid block hash: {e}"))),
                _ => quantity_u64(v, "block number").map(Self::Number),
            },
            Value::Number(_) => quantity_u64(v, "block number").map(Self::Number),
            Value::Object(o) => {
                if let Some(h) = o.get("blockHash") {
                    let h: B256 = parse(h, "blockHash")?;
                    Ok(Self::Hash(h))
                } else if let Some(n) = o.get("blockNumber") {
                    Self::parse(n)
                } else {
                    Err(RpcError::invalid_params("block object needs blockHash or blockNumber"))
                }
            }
            _ => Err(RpcError::invalid_params(format!("invalid block tag {v}"))),
        }
    }
}

/// A quantity: `0x`-prefixed hex without leading zeros (leniently: with them), or a number.
pub(super) fn quantity_u64(v: &Value, what: &str) -> Result<u64, RpcError> {
    let bad = || RpcError::invalid_params(format!("invalid {what}: {v}"));
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => {
            let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(bad)?;
            if hex.is_empty() || hex.len() > 16 {
                return Err(bad());
            }
            u64::from_str_radix(hex, 16).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// A 256-bit quantity (hex string or number).
pub(super) fn quantity_u256(v: &Value, what: &str) -> Result<U256, RpcError> {
    let bad = || RpcError::invalid_params(format!("invalid {what}: {v}"));
    match v {
        Value::Number(n) => n.as_u64().map(U256::from).ok_or_else(bad),
        Value::String(s) => {
            let hex = s.strip_prefix("0x").ok_or_else(bad)?;
            if hex.is_empty() || hex.len() > 64 {
                return Err(bad());
            }
            U256::from_str_radix(hex, 16).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// `0x`-hex of a quantity.
pub(super) fn q(v: impl std::fmt::LowerHex) -> Value {
    Value::String(format!("{v:#x}"))
}

/// `0x`-hex of bytes.
pub(super) fn data(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(b)))
}

/// Where a stored transaction is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Location {
    /// Block hash.
    pub(super) block_hash: B256,
    /// Block number.
    pub(super) number: u64,
    /// Index in the block.
    pub(super) index: usize,
    /// The block's base fee.
    pub(super) base_fee: u64,
}

/// The fee per gas a transaction pays in a block with `base_fee`.
pub(super) fn effective_gas_price(tx: &SignedTx, base_fee: u64) -> u128 {
    let r = tx.request();
    r.max_fee_per_gas.min(u128::from(base_fee).saturating_add(r.max_priority_fee_per_gas))
}

/// The `type` JSON-RPC shows for a Qoin transaction: its fee model's, EIP-1559 (`0x2`), since
/// tools know only Ethereum's types (Foundry refuses `0x51`). The envelope type (`0x51`) and
/// the signature suite are in `envelopeType` and `signatureSuite`; raw encodings
/// (`eth_getRawTransactionByHash`) and every root keep the real type-`0x51` bytes.
const RPC_TX_TYPE: u8 = 2;

/// A transaction object (`eth_getTransactionByHash`); `at` is `None` while pending.
pub(super) fn tx_json(tx: &SignedTx, at: Option<Location>) -> Value {
    let r = tx.request();
    let to = match r.to {
        TxKind::Call(a) => json!(a),
        TxKind::Create => Value::Null,
    };
    let access: Vec<Value> =
        r.access_list.iter().map(|i| json!({"address": i.address, "storageKeys": i.storage_keys})).collect();
    json!({
        "type": q(RPC_TX_TYPE),
        "envelopeType": q(qoin_primitives::QOIN_TX_TYPE),
        "hash": tx.id(),
        "chainId": q(r.chain_id),
        "nonce": q(r.nonce),
        "from": tx.sender(),
        "to": to,
        "value": q(r.value),
        "gas": q(r.gas_limit),
        "gasPrice": q(at.map_or(r.max_fee_per_gas, |l| effective_gas_price(tx, l.base_fee))),
        "maxFeePerGas": q(r.max_fee_per_gas),
        "maxPriorityFeePerGas": q(r.max_priority_fee_per_gas),
        "input": data(&r.input),
        "accessList": access,
        "signatureSuite": q(tx.suite_byte()),
        // The signature is the dual post-quantum one; these ECDSA fields are zero and present
        // only because ethers and others refuse transaction objects without them.
        "v": "0x0",
        "yParity": "0x0",
        "r": B256::ZERO,
        "s": B256::ZERO,
        "blockHash": at.map(|l| json!(l.block_hash)),
        "blockNumber": at.map(|l| q(l.number)),
        "transactionIndex": at.map(|l| q(l.index as u64)),
    })
}

/// A log object.
pub(super) fn log_json(log: &Log, at: Location, tx_hash: B256, log_index: usize) -> Value {
    json!({
        "address": log.address,
        "topics": log.topics(),
        "data": data(&log.data.data),
        "blockHash": at.block_hash,
        "blockNumber": q(at.number),
        "transactionHash": tx_hash,
        "transactionIndex": q(at.index as u64),
        "logIndex": q(log_index as u64),
        "removed": false,
    })
}

/// The receipts of a block as JSON, in order.
pub(super) fn receipts_json(header: &ElHeader, txs: &[SignedTx], receipts: &[Receipt]) -> Vec<Value> {
    let block_hash = header.hash();
    let mut prev = 0u64;
    let mut log_index = 0usize;
    txs.iter()
        .zip(receipts)
        .enumerate()
        .map(|(index, (tx, r))| {
            let at = Location { block_hash, number: header.number, index, base_fee: header.base_fee_per_gas };
            let gas_used = r.cumulative_gas_used - prev;
            prev = r.cumulative_gas_used;
            let logs: Vec<Value> = r
                .logs
                .iter()
                .map(|l| {
                    log_index += 1;
                    log_json(l, at, tx.id(), log_index - 1)
                })
                .collect();
            let req = tx.request();
            let (to, created) = match req.to {
                TxKind::Call(a) => (json!(a), Value::Null),
                TxKind::Create => (Value::Null, json!(tx.sender().create(req.nonce))),
            };
            json!({
                "type": q(RPC_TX_TYPE),
                "envelopeType": q(qoin_primitives::QOIN_TX_TYPE),
                "transactionHash": tx.id(),
                "transactionIndex": q(index as u64),
                "blockHash": block_hash,
                "blockNumber": q(header.number),
                "from": tx.sender(),
                "to": to,
                "contractAddress": created,
                "cumulativeGasUsed": q(r.cumulative_gas_used),
                "gasUsed": q(gas_used),
                "effectiveGasPrice": q(effective_gas_price(tx, header.base_fee_per_gas)),
                "logs": logs,
                "logsBloom": r.logs_bloom,
                "status": q(u64::from(r.success)),
            })
        })
        .collect()
}

/// keccak256 of the RLP of an empty list: the `sha3Uncles` of a block without ommers.
const EMPTY_OMMERS: B256 =
    alloy_primitives::b256!("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347");

/// A block object; transactions as hashes or, with `full`, as objects.
pub(super) fn block_json(header: &ElHeader, body: &Body, txs: &[SignedTx], full: bool) -> Value {
    let hash = header.hash();
    let transactions: Vec<Value> = if full {
        txs.iter()
            .enumerate()
            .map(|(index, t)| {
                let at = Location {
                    block_hash: hash,
                    number: header.number,
                    index,
                    base_fee: header.base_fee_per_gas,
                };
                tx_json(t, Some(at))
            })
            .collect()
    } else {
        txs.iter().map(|t| json!(t.id())).collect()
    };
    let size = alloy_rlp::encode(header).len() + alloy_rlp::encode(body).len();
    let credits: Vec<Value> =
        body.credits.iter().map(|c| json!({"address": c.address, "amount": q(c.amount)})).collect();
    json!({
        "number": q(header.number),
        "hash": hash,
        "parentHash": header.parent_hash,
        "nonce": "0x0000000000000000",
        "sha3Uncles": EMPTY_OMMERS,
        "logsBloom": header.logs_bloom,
        "transactionsRoot": header.transactions_root,
        "stateRoot": header.state_root,
        "receiptsRoot": header.receipts_root,
        "creditsRoot": header.credits_root,
        "miner": header.beneficiary,
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": q(size as u64),
        "gasLimit": q(header.gas_limit),
        "gasUsed": q(header.gas_used),
        "timestamp": q(header.timestamp),
        "baseFeePerGas": q(header.base_fee_per_gas),
        "mixHash": header.prev_randao,
        "transactions": transactions,
        "uncles": [],
        "credits": credits,
    })
}

/// Deserializes a parameter (an address, hash, byte string, …); a mismatch is -32602.
pub(super) fn parse<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T, RpcError> {
    serde_json::from_value(v.clone()).map_err(|e| RpcError::invalid_params(format!("invalid {what}: {e}")))
}
