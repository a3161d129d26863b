//! The `eth_`, `net_` and `web3_` methods.

use crate::call::{estimate, parse_request, CallRequest};
use crate::convert::{
    data, effective_gas_price, log_json, parse, q, quantity_u256, quantity_u64, receipts_json, tx_json, Args,
    BlockTag, Location,
};
use crate::error::{RpcError, RpcResult};
use alloy_primitives::{keccak256, Address, BloomInput, Bytes, B256, U256};
use qoin_el_chain::MIN_BASE_FEE;
use qoin_el_node::{Node, SubmitError};
use qoin_el_storage::block::{next_base_fee, Body, ElHeader, Receipt};
use qoin_el_storage::reader::{head, TrieAccount, TrieReader};
use qoin_el_storage::tables::{Bodies, Headers, Receipts, TxLookup};
use qoin_evm::state::{StateError, StateReader, TrieState};
use qoin_primitives::{SignedTx, TxKind, TxRequest};
use qoin_store::{Tx, RO};
use qoin_trie::EMPTY_ROOT;
use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Most blocks one `eth_getLogs` may scan.
pub(super) const MAX_LOG_RANGE: u64 = 10_000;
/// Most logs one `eth_getLogs` may return.
pub(super) const MAX_LOGS: usize = 10_000;
/// Most blocks one `eth_feeHistory` may cover.
pub(super) const MAX_FEE_HISTORY: u64 = 1_024;
/// Blocks the suggested tip looks back over.
const TIP_LOOKBACK: u64 = 20;

pub(super) fn read(node: &Node) -> Result<Tx<'_, RO>, RpcError> {
    Ok(node.chain().store().read()?)
}

fn decode_header(rlp: &[u8]) -> Result<ElHeader, RpcError> {
    alloy_rlp::Decodable::decode(&mut &rlp[..]).map_err(RpcError::internal)
}

pub(super) fn header_at(tx: &Tx<'_, RO>, n: u64) -> Result<Option<ElHeader>, RpcError> {
    tx.get::<Headers>(&n)?.map(|rlp| decode_header(&rlp)).transpose()
}

/// The header a tag names, `None` if there is no such block.
fn resolve(tx: &Tx<'_, RO>, tag: BlockTag) -> Result<Option<ElHeader>, RpcError> {
    match tag {
        BlockTag::Latest | BlockTag::Pending => Ok(Some(head(tx)?)),
        BlockTag::Number(n) => header_at(tx, n),
        BlockTag::Hash(h) => match qoin_el_storage::reader::block_number(tx, &h)? {
            Some(n) => header_at(tx, n),
            None => Ok(None),
        },
    }
}

pub(super) fn resolve_required(tx: &Tx<'_, RO>, tag: BlockTag) -> Result<ElHeader, RpcError> {
    resolve(tx, tag)?.ok_or_else(|| RpcError::server("header not found"))
}

/// State as of a block: the plain tables at the head, the trie before it.
pub(super) enum StateAt<'a, 'db> {
    Head(StateReader<'a, 'db, RO>),
    Past(TrieState<'a, 'db, RO>),
}

impl<'a, 'db> StateAt<'a, 'db> {
    pub(super) fn new(tx: &'a Tx<'db, RO>, header: &ElHeader) -> Result<Self, RpcError> {
        let head = head(tx)?;
        Ok(if header.number == head.number {
            Self::Head(StateReader::new(tx))
        } else {
            Self::Past(TrieState::new(tx, header.state_root))
        })
    }
}

impl DatabaseRef for StateAt<'_, '_> {
    type Error = StateError;
    fn basic_ref(&self, a: Address) -> Result<Option<AccountInfo>, StateError> {
        match self {
            Self::Head(s) => s.basic_ref(a),
            Self::Past(s) => s.basic_ref(a),
        }
    }
    fn code_by_hash_ref(&self, h: B256) -> Result<Bytecode, StateError> {
        match self {
            Self::Head(s) => s.code_by_hash_ref(h),
            Self::Past(s) => s.code_by_hash_ref(h),
        }
    }
    fn storage_ref(&self, a: Address, i: U256) -> Result<U256, StateError> {
        match self {
            Self::Head(s) => s.storage_ref(a, i),
            Self::Past(s) => s.storage_ref(a, i),
        }
    }
    fn block_hash_ref(&self, n: u64) -> Result<B256, StateError> {
        match self {
            Self::Head(s) => s.block_hash_ref(n),
            Self::Past(s) => s.block_hash_ref(n),
        }
    }
}

/// `web3_clientVersion`: `qoin-el/v<version>/<os>-<arch>`; a development node (one producing
/// its own blocks) prefixes `anvil-compatible/`, because Hardhat's network helpers refuse to
/// run against a node whose version does not start with `anvil` or `hardhat`.
pub(super) fn client_version(node: &Node, _: &Args) -> RpcResult {
    Ok(json!(format!(
        "{}qoin-el/v{}/{}-{}",
        if node.is_dev() { "anvil-compatible/" } else { "" },
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )))
}

pub(super) fn net_version(node: &Node, _: &Args) -> RpcResult {
    Ok(json!(node.chain().genesis().chain_id.to_string()))
}

pub(super) fn net_listening(_: &Node, _: &Args) -> RpcResult {
    Ok(json!(true))
}

pub(super) fn chain_id(node: &Node, _: &Args) -> RpcResult {
    Ok(q(node.chain().genesis().chain_id))
}

/// `false`, or geth's object while the consensus client reports a sync whose target is above
/// our head.
pub(super) fn syncing(node: &Node, _: &Args) -> RpcResult {
    match node.sync_status() {
        None => Ok(json!(false)),
        Some((p, head)) => Ok(json!({
            "startingBlock": q(p.starting_block),
            "currentBlock": q(head),
            "highestBlock": q(p.highest_block),
        })),
    }
}

pub(super) fn block_number(node: &Node, _: &Args) -> RpcResult {
    Ok(q(node.chain().head()?.number))
}

pub(super) fn accounts(node: &Node, _: &Args) -> RpcResult {
    Ok(json!(node.accounts()))
}

fn address_arg(args: &Args, i: usize) -> Result<Address, RpcError> {
    let v = args.get(i).ok_or_else(|| RpcError::invalid_params("missing value for address"))?;
    parse(v, "address")
}

pub(super) fn map_state<T>(r: Result<T, StateError>) -> Result<T, RpcError> {
    r.map_err(RpcError::internal)
}

pub(super) fn get_balance(node: &Node, args: &Args) -> RpcResult {
    let address = address_arg(args, 0)?;
    let tx = read(node)?;
    let header = resolve_required(&tx, args.block(1)?)?;
    let state = StateAt::new(&tx, &header)?;
    Ok(q(map_state(state.basic_ref(address))?.map_or(U256::ZERO, |a| a.balance)))
}

pub(super) fn get_transaction_count(node: &Node, args: &Args) -> RpcResult {
    let address = address_arg(args, 0)?;
    let tag = args.block(1)?;
    if tag == BlockTag::Pending {
        return Ok(q(node.next_nonce(&address)?));
    }
    let tx = read(node)?;
    let header = resolve_required(&tx, tag)?;
    let state = StateAt::new(&tx, &header)?;
    Ok(q(map_state(state.basic_ref(address))?.map_or(0, |a| a.nonce)))
}

pub(super) fn get_code(node: &Node, args: &Args) -> RpcResult {
    let address = address_arg(args, 0)?;
    let tx = read(node)?;
    let header = resolve_required(&tx, args.block(1)?)?;
    let state = StateAt::new(&tx, &header)?;
    let code_hash = map_state(state.basic_ref(address))?.map_or(KECCAK_EMPTY, |a| a.code_hash);
    Ok(data(&map_state(state.code_by_hash_ref(code_hash))?.original_bytes()))
}

pub(super) fn get_storage_at(node: &Node, args: &Args) -> RpcResult {
    let address = address_arg(args, 0)?;
    let slot = quantity_u256(args.get(1).ok_or_else(|| RpcError::invalid_params("missing slot"))?, "slot")?;
    let tx = read(node)?;
    let header = resolve_required(&tx, args.block(2)?)?;
    let state = StateAt::new(&tx, &header)?;
    Ok(data(&map_state(state.storage_ref(address, slot))?.to_be_bytes::<32>()))
}

pub(super) fn block_parts(tx: &Tx<'_, RO>, n: u64) -> Result<(Body, Vec<SignedTx>, Vec<Receipt>), RpcError> {
    let body: Body = match tx.get::<Bodies>(&n)? {
        Some(raw) => alloy_rlp::Decodable::decode(&mut &raw[..]).map_err(RpcError::internal)?,
        None => Body::default(),
    };
    let txs = body
        .transactions
        .iter()
        .map(|t| SignedTx::decode(t).map_err(RpcError::internal))
        .collect::<Result<Vec<_>, _>>()?;
    let receipts: Vec<Receipt> = match tx.get::<Receipts>(&n)? {
        Some(raw) => alloy_rlp::Decodable::decode(&mut &raw[..]).map_err(RpcError::internal)?,
        None => Vec::new(),
    };
    Ok((body, txs, receipts))
}

fn tip_of(tx: &SignedTx, base_fee: u64) -> u128 {
    effective_gas_price(tx, base_fee).saturating_sub(u128::from(base_fee))
}

/// The last suggested tip and the head it was computed at: it changes only with the head, and
/// computing it decodes 20 blocks of transactions. Keyed by the head's hash, so it is right for
/// any chain in the process (the same head hash means the same last blocks).
static TIP_CACHE: std::sync::Mutex<Option<(B256, u128)>> = std::sync::Mutex::new(None);

/// The tip suggested to senders: the median effective tip of the last blocks'
/// transactions, at least 1 shor per gas; computed once per head.
fn suggested_tip(tx: &Tx<'_, RO>) -> Result<u128, RpcError> {
    let h = head(tx)?;
    let key = h.hash();
    if let Some((k, tip)) = TIP_CACHE.lock().ok().and_then(|c| *c) {
        if k == key {
            return Ok(tip);
        }
    }
    let tip = median_tip(tx, &h)?;
    if let Ok(mut c) = TIP_CACHE.lock() {
        *c = Some((key, tip));
    }
    Ok(tip)
}

fn median_tip(tx: &Tx<'_, RO>, h: &ElHeader) -> Result<u128, RpcError> {
    let mut tips = Vec::new();
    for n in h.number.saturating_sub(TIP_LOOKBACK - 1)..=h.number {
        let Some(header) = header_at(tx, n)? else { continue };
        let (_, txs, _) = block_parts(tx, n)?;
        tips.extend(txs.iter().map(|t| tip_of(t, header.base_fee_per_gas)));
    }
    tips.sort_unstable();
    Ok(tips.get(tips.len() / 2).copied().unwrap_or(1).max(1))
}

pub(super) fn max_priority_fee(node: &Node, _: &Args) -> RpcResult {
    Ok(q(suggested_tip(&read(node)?)?))
}

pub(super) fn gas_price(node: &Node, _: &Args) -> RpcResult {
    let tx = read(node)?;
    let base = next_base_fee(&head(&tx)?, MIN_BASE_FEE);
    Ok(q(u128::from(base) + suggested_tip(&tx)?))
}

pub(super) fn fee_history(node: &Node, args: &Args) -> RpcResult {
    let count = quantity_u64(
        args.get(0).ok_or_else(|| RpcError::invalid_params("missing blockCount"))?,
        "blockCount",
    )?;
    let percentiles: Option<Vec<f64>> = args.opt(2, "reward percentiles")?;
    if let Some(p) = &percentiles {
        if p.len() > 100 || p.iter().any(|x| !(0.0..=100.0).contains(x)) || p.windows(2).any(|w| w[0] > w[1])
        {
            return Err(RpcError::invalid_params("reward percentiles must be ascending values in 0..=100"));
        }
    }
    let tx = read(node)?;
    let newest = resolve_required(&tx, args.block(1)?)?;
    let count = count.min(MAX_FEE_HISTORY).min(newest.number + 1);
    let oldest = newest.number + 1 - count;
    let mut base_fees = Vec::new();
    let mut ratios = Vec::new();
    let mut rewards = Vec::new();
    for n in oldest..=newest.number {
        let header = header_at(&tx, n)?.ok_or_else(|| RpcError::server("header not found"))?;
        base_fees.push(q(header.base_fee_per_gas));
        ratios.push(json!(header.gas_used as f64 / header.gas_limit.max(1) as f64));
        if let Some(p) = &percentiles {
            let (_, txs, receipts) = block_parts(&tx, n)?;
            let mut prev = 0;
            let mut items: Vec<(u128, u64)> = txs
                .iter()
                .zip(&receipts)
                .map(|(t, r)| {
                    let used = r.cumulative_gas_used - prev;
                    prev = r.cumulative_gas_used;
                    (tip_of(t, header.base_fee_per_gas), used)
                })
                .collect();
            items.sort_unstable();
            let total: u64 = items.iter().map(|i| i.1).sum();
            let row: Vec<Value> = p
                .iter()
                .map(|pct| {
                    let threshold = (total as f64 * pct / 100.0) as u64;
                    let mut sum = 0u64;
                    let tip = items
                        .iter()
                        .find(|(_, used)| {
                            sum += used;
                            sum >= threshold
                        })
                        .or(items.last())
                        .map_or(0, |i| i.0);
                    q(tip)
                })
                .collect();
            rewards.push(json!(row));
        }
    }
    if count > 0 {
        base_fees.push(q(next_base_fee(&newest, MIN_BASE_FEE)));
    }
    let mut out = json!({
        "oldestBlock": q(oldest),
        "baseFeePerGas": base_fees,
        "gasUsedRatio": ratios,
    });
    if percentiles.is_some() {
        out["reward"] = json!(rewards);
    }
    Ok(out)
}

fn submit(node: &Node, tx: SignedTx) -> RpcResult {
    match node.submit(tx) {
        Ok(id) => Ok(json!(id)),
        Err(SubmitError::Pool(e)) => Err(RpcError::server(e.to_string())),
        Err(SubmitError::Exec(e)) => Err(RpcError::internal(e)),
    }
}

pub(super) fn send_raw_transaction(node: &Node, args: &Args) -> RpcResult {
    let raw: Bytes = args.req(0, "raw transaction")?;
    let tx = SignedTx::decode(&raw).map_err(|e| RpcError::server(e.to_string()))?;
    submit(node, tx)
}

pub(super) fn send_transaction(node: &Node, args: &Args) -> RpcResult {
    let mut r = parse_request(args.get(0))?;
    let from = r.from.ok_or_else(|| RpcError::invalid_params("missing \"from\""))?;
    let key = node.signer(&from);
    // Only a development node impersonates (`anvil_impersonateAccount`).
    if key.is_none() && !node.pool().is_impersonating(&from) {
        return Err(RpcError::server(format!("unknown account {from}")));
    }
    let chain_id = node.chain().genesis().chain_id;
    if let Some(c) = r.chain_id.filter(|c| *c != chain_id) {
        return Err(RpcError::server(format!("invalid chain id: have {c}, want {chain_id}")));
    }
    let tx = read(node)?;
    let (fee, tip) = match (r.gas_price, r.max_fee, r.max_priority) {
        (Some(p), None, None) => (p, p),
        (_, fee, tip) => {
            let tip = tip.map_or_else(|| suggested_tip(&tx), Ok)?;
            let base = u128::from(next_base_fee(&head(&tx)?, MIN_BASE_FEE));
            (fee.or(r.gas_price).unwrap_or(2 * base + tip), tip)
        }
    };
    let gas = match r.gas {
        Some(g) => g,
        None => {
            let probe =
                CallRequest { max_fee: Some(fee), max_priority: Some(tip), gas_price: None, ..r.clone() };
            estimate(node, &tx, &probe, BlockTag::Pending, Default::default())?
        }
    };
    drop(tx);
    let nonce = match r.nonce {
        Some(n) => n,
        None => node.next_nonce(&from)?,
    };
    let request = TxRequest {
        chain_id,
        nonce,
        max_priority_fee_per_gas: tip,
        max_fee_per_gas: fee,
        gas_limit: gas,
        to: r.to.map_or(TxKind::Create, TxKind::Call),
        value: r.value,
        input: std::mem::take(&mut r.input),
        access_list: std::mem::take(&mut r.access_list),
    };
    match key {
        Some(key) => submit(node, request.sign(key)),
        None => submit(node, request.impersonated(from)),
    }
}

fn hash_arg(args: &Args, what: &str) -> Result<B256, RpcError> {
    args.req(0, what)
}

pub(super) fn transaction_by_hash(node: &Node, args: &Args) -> RpcResult {
    let id = hash_arg(args, "transaction hash")?;
    let tx = read(node)?;
    if let Some(loc) = tx.get::<TxLookup>(&id)? {
        let header = header_at(&tx, loc.block)?.ok_or_else(|| RpcError::internal("indexed block missing"))?;
        let (_, txs, _) = block_parts(&tx, loc.block)?;
        return located_tx_json(&header, &txs, loc.index as usize)
            .ok_or_else(|| RpcError::internal("indexed transaction missing"));
    }
    Ok(node.pool().get(&id).map_or(Value::Null, |t| tx_json(t, None)))
}

/// The object of a block's transaction `index` with its location, if there is one.
fn located_tx_json(header: &ElHeader, txs: &[SignedTx], index: usize) -> Option<Value> {
    let at = Location {
        block_hash: header.hash(),
        number: header.number,
        index,
        base_fee: header.base_fee_per_gas,
    };
    txs.get(index).map(|t| tx_json(t, Some(at)))
}

/// A block's transaction by position, through `f`; `null` when the block or the index is
/// unknown.
fn tx_at(
    node: &Node,
    tag: BlockTag,
    args: &Args,
    f: impl Fn(&ElHeader, &Body, &[SignedTx], usize) -> Option<Value>,
) -> RpcResult {
    let index = args.quantity(1, "transaction index")?;
    let tx = read(node)?;
    let Some(header) = resolve(&tx, tag)? else { return Ok(Value::Null) };
    let (body, txs, _) = block_parts(&tx, header.number)?;
    let found = usize::try_from(index).ok().and_then(|i| f(&header, &body, &txs, i));
    Ok(found.unwrap_or(Value::Null))
}

fn object_at(header: &ElHeader, _: &Body, txs: &[SignedTx], index: usize) -> Option<Value> {
    located_tx_json(header, txs, index)
}

fn raw_at(_: &ElHeader, body: &Body, _: &[SignedTx], index: usize) -> Option<Value> {
    body.transactions.get(index).map(|raw| json!(raw))
}

pub(super) fn tx_by_block_hash_and_index(node: &Node, args: &Args) -> RpcResult {
    tx_at(node, BlockTag::Hash(hash_arg(args, "block hash")?), args, object_at)
}

pub(super) fn tx_by_block_number_and_index(node: &Node, args: &Args) -> RpcResult {
    tx_at(node, args.block(0)?, args, object_at)
}

pub(super) fn raw_tx_by_block_hash_and_index(node: &Node, args: &Args) -> RpcResult {
    tx_at(node, BlockTag::Hash(hash_arg(args, "block hash")?), args, raw_at)
}

pub(super) fn raw_tx_by_block_number_and_index(node: &Node, args: &Args) -> RpcResult {
    tx_at(node, args.block(0)?, args, raw_at)
}

/// Execution blocks have no uncles (sibling blocks are the consensus layer's, §15.5): `0x0`
/// for a known block, `null` otherwise.
fn uncle_count(node: &Node, tag: BlockTag) -> RpcResult {
    let tx = read(node)?;
    Ok(resolve(&tx, tag)?.map_or(Value::Null, |_| q(0u64)))
}

pub(super) fn uncle_count_by_hash(node: &Node, args: &Args) -> RpcResult {
    uncle_count(node, BlockTag::Hash(hash_arg(args, "block hash")?))
}

pub(super) fn uncle_count_by_number(node: &Node, args: &Args) -> RpcResult {
    uncle_count(node, args.block(0)?)
}

/// No uncles: always `null` (the parameters are still checked).
pub(super) fn uncle_by_index(_: &Node, args: &Args) -> RpcResult {
    args.block(0)?;
    args.quantity(1, "uncle index")?;
    Ok(Value::Null)
}

/// The transaction's exact EIP-2718 bytes (a mined one's as its block carries them, a pooled
/// one's as encoded), `null` if unknown.
pub(super) fn raw_transaction_by_hash(node: &Node, args: &Args) -> RpcResult {
    let id = hash_arg(args, "transaction hash")?;
    let tx = read(node)?;
    if let Some(loc) = tx.get::<TxLookup>(&id)? {
        let (body, _, _) = block_parts(&tx, loc.block)?;
        let raw = body
            .transactions
            .get(loc.index as usize)
            .ok_or_else(|| RpcError::internal("indexed transaction missing"))?;
        return Ok(json!(raw));
    }
    Ok(node.pool().get(&id).map_or(Value::Null, |t| json!(Bytes::from(t.encode()))))
}

/// geth's `debug_getRawHeader(block)`: the RLP of the block's execution header, whose
/// keccak256 is the block hash (what the EVM's `BLOCKHASH` returns), or null for an unknown
/// block. Storage providers prove a period against it (spec §17.1).
pub(super) fn raw_header(node: &Node, args: &Args) -> RpcResult {
    let tag = args.block(0)?;
    let tx = read(node)?;
    Ok(resolve(&tx, tag)?.map_or(Value::Null, |h| json!(Bytes::from(alloy_rlp::encode(&h)))))
}

/// keccak256 of the given bytes.
pub(super) fn web3_sha3(_: &Node, args: &Args) -> RpcResult {
    let data: Bytes = args.req(0, "data")?;
    Ok(json!(keccak256(&data)))
}

/// geth's `txpool_status`: transactions executable in nonce order (`pending`) and waiting
/// behind a nonce gap (`queued`).
pub(super) fn txpool_status(node: &Node, _: &Args) -> RpcResult {
    let tx = read(node)?;
    let pool = node.pool();
    let queued = pool.queued(&qoin_el_node::LatestState(&tx)).len();
    let pending = pool.len().saturating_sub(queued);
    Ok(json!({"pending": q(pending as u64), "queued": q(queued as u64)}))
}

type BySender = std::collections::BTreeMap<Address, std::collections::BTreeMap<u64, SignedTx>>;

/// `{sender: {nonce (decimal): f(tx)}}`, geth's shape.
fn by_sender(side: &BySender, f: impl Fn(&SignedTx) -> Value) -> Value {
    let out: Map<String, Value> =
        side.iter().map(|(sender, txs)| (sender.to_string(), by_nonce(txs, &f))).collect();
    Value::Object(out)
}

fn by_nonce(txs: &std::collections::BTreeMap<u64, SignedTx>, f: impl Fn(&SignedTx) -> Value) -> Value {
    Value::Object(txs.iter().map(|(n, t)| (n.to_string(), f(t))).collect())
}

/// geth's `txpool_content`: every pooled transaction object, `pending` and `queued`, by
/// sender and nonce.
pub(super) fn txpool_content(node: &Node, _: &Args) -> RpcResult {
    let tx = read(node)?;
    let c = node.pool().content(&qoin_el_node::LatestState(&tx), None);
    let obj = |t: &SignedTx| tx_json(t, None);
    Ok(json!({"pending": by_sender(&c.pending, obj), "queued": by_sender(&c.queued, obj)}))
}

/// geth's `txpool_contentFrom(address)`: one sender's pooled transactions by nonce.
pub(super) fn txpool_content_from(node: &Node, args: &Args) -> RpcResult {
    let sender = address_arg(args, 0)?;
    let tx = read(node)?;
    let c = node.pool().content(&qoin_el_node::LatestState(&tx), Some(&sender));
    let obj = |t: &SignedTx| tx_json(t, None);
    let side = |s: &BySender| s.get(&sender).map_or(json!({}), |txs| by_nonce(txs, obj));
    Ok(json!({"pending": side(&c.pending), "queued": side(&c.queued)}))
}

/// geth's `txpool_inspect`: one line per pooled transaction,
/// `<to>: <value> shor + <gas> gas × <max fee> shor` (`contract creation` for a deployment).
pub(super) fn txpool_inspect(node: &Node, _: &Args) -> RpcResult {
    let tx = read(node)?;
    let c = node.pool().content(&qoin_el_node::LatestState(&tx), None);
    let line = |t: &SignedTx| {
        let r = t.request();
        let to = match r.to {
            TxKind::Call(to) => to.to_string(),
            TxKind::Create => "contract creation".to_string(),
        };
        json!(format!("{to}: {} shor + {} gas × {} shor", r.value, r.gas_limit, r.max_fee_per_gas))
    };
    Ok(json!({"pending": by_sender(&c.pending, line), "queued": by_sender(&c.queued, line)}))
}

pub(super) fn transaction_receipt(node: &Node, args: &Args) -> RpcResult {
    let id = hash_arg(args, "transaction hash")?;
    let tx = read(node)?;
    let Some(loc) = tx.get::<TxLookup>(&id)? else { return Ok(Value::Null) };
    let header = header_at(&tx, loc.block)?.ok_or_else(|| RpcError::internal("indexed block missing"))?;
    let (_, txs, receipts) = block_parts(&tx, loc.block)?;
    let all = receipts_json(&header, &txs, &receipts);
    Ok(all.into_iter().nth(loc.index as usize).unwrap_or(Value::Null))
}

fn block_response(node: &Node, tag: BlockTag, full: bool) -> RpcResult {
    let tx = read(node)?;
    let Some(header) = resolve(&tx, tag)? else { return Ok(Value::Null) };
    let (body, txs, _) = block_parts(&tx, header.number)?;
    Ok(crate::convert::block_json(&header, &body, &txs, full))
}

pub(super) fn block_by_number(node: &Node, args: &Args) -> RpcResult {
    let full: Option<bool> = args.opt(1, "full transactions flag")?;
    block_response(node, args.block(0)?, full.unwrap_or(false))
}

pub(super) fn block_by_hash(node: &Node, args: &Args) -> RpcResult {
    let hash = hash_arg(args, "block hash")?;
    let full: Option<bool> = args.opt(1, "full transactions flag")?;
    block_response(node, BlockTag::Hash(hash), full.unwrap_or(false))
}

pub(super) fn block_receipts(node: &Node, args: &Args) -> RpcResult {
    let tx = read(node)?;
    let Some(header) = resolve(&tx, args.block(0)?)? else { return Ok(Value::Null) };
    let (_, txs, receipts) = block_parts(&tx, header.number)?;
    Ok(json!(receipts_json(&header, &txs, &receipts)))
}

fn tx_count(node: &Node, tag: BlockTag) -> RpcResult {
    let tx = read(node)?;
    let Some(header) = resolve(&tx, tag)? else { return Ok(Value::Null) };
    let (body, _, _) = block_parts(&tx, header.number)?;
    Ok(q(body.transactions.len() as u64))
}

pub(super) fn block_tx_count_by_number(node: &Node, args: &Args) -> RpcResult {
    tx_count(node, args.block(0)?)
}

pub(super) fn block_tx_count_by_hash(node: &Node, args: &Args) -> RpcResult {
    tx_count(node, BlockTag::Hash(hash_arg(args, "block hash")?))
}

/// A log filter: addresses (any of) and per-position topic sets (`None` = anything).
pub(super) struct LogFilter {
    addresses: Vec<Address>,
    topics: Vec<Option<Vec<B256>>>,
}

impl LogFilter {
    pub(super) fn parse(o: &Map<String, Value>) -> Result<Self, RpcError> {
        let addresses = match o.get("address").filter(|v| !v.is_null()) {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(|v| parse(v, "address")).collect::<Result<_, _>>()?,
            Some(v) => vec![parse(v, "address")?],
        };
        let mut topics = Vec::new();
        if let Some(t) = o.get("topics").filter(|v| !v.is_null()) {
            let arr = t.as_array().ok_or_else(|| RpcError::invalid_params("topics must be an array"))?;
            if arr.len() > 4 {
                return Err(RpcError::invalid_params("too many topics (at most 4 positions)"));
            }
            for v in arr {
                topics.push(match v {
                    Value::Null => None,
                    Value::Array(alts) if alts.is_empty() => None,
                    Value::Array(alts) => {
                        Some(alts.iter().map(|a| parse(a, "topic")).collect::<Result<_, _>>()?)
                    }
                    v => Some(vec![parse(v, "topic")?]),
                });
            }
        }
        Ok(Self { addresses, topics })
    }

    fn may_match(&self, bloom: &alloy_primitives::Bloom) -> bool {
        let addr_ok = self.addresses.is_empty()
            || self.addresses.iter().any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())));
        addr_ok
            && self
                .topics
                .iter()
                .flatten()
                .all(|set| set.iter().any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice()))))
    }

    fn matches(&self, log: &alloy_primitives::Log) -> bool {
        (self.addresses.is_empty() || self.addresses.contains(&log.address))
            && self.topics.iter().enumerate().all(|(i, set)| match set {
                None => true,
                Some(set) => log.topics().get(i).is_some_and(|t| set.contains(t)),
            })
    }
}

/// A filter object's `fromBlock` / `toBlock` (or `blockHash`) as block numbers, bounded by
/// the head; `None` for an open end (a missing bound or `latest`).
#[derive(Default)]
pub(super) struct LogRange {
    pub(super) from: Option<u64>,
    pub(super) to: Option<u64>,
}

impl LogRange {
    pub(super) fn parse(tx: &Tx<'_, RO>, o: &Map<String, Value>) -> Result<Self, RpcError> {
        let given = |name: &str| o.get(name).filter(|v| !v.is_null());
        if let Some(h) = given("blockHash") {
            if given("fromBlock").is_some() || given("toBlock").is_some() {
                return Err(RpcError::invalid_params("cannot specify both blockHash and fromBlock/toBlock"));
            }
            let h: B256 = parse(h, "blockHash")?;
            let header = resolve(tx, BlockTag::Hash(h))?.ok_or_else(|| RpcError::server("unknown block"))?;
            return Ok(Self { from: Some(header.number), to: Some(header.number) });
        }
        let bound = |name: &str| -> Result<Option<u64>, RpcError> {
            match given(name) {
                None => Ok(None),
                Some(v) => match BlockTag::parse(v)? {
                    BlockTag::Latest | BlockTag::Pending => Ok(None),
                    BlockTag::Number(n) => Ok(Some(n)),
                    BlockTag::Hash(h) => Ok(Some(
                        resolve(tx, BlockTag::Hash(h))?
                            .ok_or_else(|| RpcError::server("unknown block"))?
                            .number,
                    )),
                },
            }
        };
        let range = Self { from: bound("fromBlock")?, to: bound("toBlock")? };
        if let (Some(from), Some(to)) = (range.from, range.to) {
            if from > to {
                return Err(RpcError::invalid_params("invalid block range params"));
            }
        }
        Ok(range)
    }

    /// The closed range up to `head`, refused beyond [`MAX_LOG_RANGE`] blocks.
    pub(super) fn bounded(&self, head: u64) -> Result<(u64, u64), RpcError> {
        let (from, to) = (self.from.unwrap_or(head).min(head), self.to.unwrap_or(head).min(head));
        if from > to {
            return Err(RpcError::invalid_params("invalid block range params"));
        }
        if to - from >= MAX_LOG_RANGE {
            return Err(RpcError::server(format!("query exceeds max block range {MAX_LOG_RANGE}")));
        }
        Ok((from, to))
    }
}

/// How long one `eth_getLogs` (or one filter poll's log scan) may read blocks.
pub(super) const LOGS_TIME_CAP: Duration = Duration::from_secs(10);

/// The logs of canonical blocks `from..=to` that match, in order. Stops early after the block
/// at which more than `limit` logs have been collected, or at the first block boundary past
/// `deadline` (at least one block is read): `Some(block)` then names the last block read in
/// full (its logs included), so a caller can go on from the next.
pub(super) fn logs_in(
    tx: &Tx<'_, RO>,
    filter: &LogFilter,
    from: u64,
    to: u64,
    limit: usize,
    deadline: Instant,
) -> Result<(Vec<Value>, Option<u64>), RpcError> {
    let mut out = Vec::new();
    for n in from..=to {
        if n > from && Instant::now() >= deadline {
            return Ok((out, Some(n - 1)));
        }
        let Some(header) = header_at(tx, n)? else { continue };
        if !filter.may_match(&header.logs_bloom) {
            continue;
        }
        let (_, txs, receipts) = block_parts(tx, n)?;
        let block_hash = header.hash();
        let mut log_index = 0usize;
        for (index, (t, r)) in txs.iter().zip(&receipts).enumerate() {
            let at = Location { block_hash, number: n, index, base_fee: header.base_fee_per_gas };
            for l in &r.logs {
                if filter.matches(l) {
                    out.push(log_json(l, at, t.id(), log_index));
                }
                log_index += 1;
            }
        }
        if out.len() >= limit && n < to {
            return Ok((out, Some(n)));
        }
    }
    Ok((out, None))
}

pub(super) fn get_logs(node: &Node, args: &Args) -> RpcResult {
    let o = args
        .get(0)
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid_params("missing filter object"))?;
    let filter = LogFilter::parse(o)?;
    let tx = read(node)?;
    let (from, to) = LogRange::parse(&tx, o)?.bounded(head(&tx)?.number)?;
    let (out, stopped) = logs_in(&tx, &filter, from, to, MAX_LOGS + 1, Instant::now() + LOGS_TIME_CAP)?;
    if out.len() > MAX_LOGS {
        return Err(RpcError::server(format!("query returned more than {MAX_LOGS} results")));
    }
    if let Some(last) = stopped {
        return Err(RpcError::server(format!(
            "query timeout exceeded ({}s, read blocks {from} to {last} of {to}): narrow the block range, \
             addresses or topics",
            LOGS_TIME_CAP.as_secs()
        )));
    }
    Ok(json!(out))
}

pub(super) fn get_proof(node: &Node, args: &Args) -> RpcResult {
    let address = address_arg(args, 0)?;
    let slots: Vec<Value> = args.opt(1, "storage keys")?.unwrap_or_default();
    if slots.len() > 1_024 {
        return Err(RpcError::invalid_params("at most 1024 storage keys per proof"));
    }
    let keys = slots
        .iter()
        .map(|v| quantity_u256(v, "storage key").map(|k| B256::from(k.to_be_bytes::<32>())))
        .collect::<Result<Vec<_>, _>>()?;
    let tx = read(node)?;
    let header = resolve_required(&tx, args.block(2)?)?;
    let nodes = TrieReader::new(&tx);
    let (account_proof, value) =
        qoin_trie::proof(&nodes, header.state_root, &keccak256(address)).map_err(RpcError::internal)?;
    let account: TrieAccount = match value {
        Some(rlp) => alloy_rlp::Decodable::decode(&mut &rlp[..]).map_err(RpcError::internal)?,
        None => {
            TrieAccount { nonce: 0, balance: U256::ZERO, storage_root: EMPTY_ROOT, code_hash: KECCAK_EMPTY }
        }
    };
    let mut storage_proof = Vec::with_capacity(keys.len());
    for key in keys {
        let (proof, value) =
            qoin_trie::proof(&nodes, account.storage_root, &keccak256(key)).map_err(RpcError::internal)?;
        let value: U256 = match value {
            Some(rlp) => alloy_rlp::Decodable::decode(&mut &rlp[..]).map_err(RpcError::internal)?,
            None => U256::ZERO,
        };
        let proof: Vec<Value> = proof.iter().map(|n| data(n)).collect();
        storage_proof.push(json!({"key": key, "value": q(value), "proof": proof}));
    }
    let account_proof: Vec<Value> = account_proof.iter().map(|n| data(n)).collect();
    Ok(json!({
        "address": address,
        "accountProof": account_proof,
        "balance": q(account.balance),
        "codeHash": account.code_hash,
        "nonce": q(account.nonce),
        "storageHash": account.storage_root,
        "storageProof": storage_proof,
    }))
}
