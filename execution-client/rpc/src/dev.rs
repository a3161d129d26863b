//! Development-node methods under anvil's and Hardhat's names (`qoin_el_node::dev` does the
//! work): node information that makes Hardhat treat the node as a dev node, mining on demand,
//! the clock, snapshots and state edits. A node driven by a consensus client answers -32601.

use crate::convert::{q, quantity_u256, quantity_u64, Args};
use crate::error::{RpcError, RpcResult};
use crate::eth;
use alloy_primitives::{Address, Bytes, B256};
use qoin_el_node::{DevError, Edit, LocalMining, Node};
use serde_json::{json, Value};

impl From<DevError> for RpcError {
    fn from(e: DevError) -> Self {
        match e {
            DevError::NotDev => Self { code: -32601, message: e.to_string(), data: None },
            DevError::Invalid(m) => Self::server(m),
            DevError::Exec(e) => Self::internal(e),
        }
    }
}

fn require_dev(node: &Node) -> Result<(), RpcError> {
    if node.is_dev() {
        Ok(())
    } else {
        Err(DevError::NotDev.into())
    }
}

/// `hardhat_metadata` / `anvil_metadata`: what Hardhat checks to treat the node as a
/// development network (it then polls every 50 ms instead of 500).
pub(super) fn metadata(node: &Node, args: &Args) -> RpcResult {
    require_dev(node)?;
    let head = node.chain().head()?;
    Ok(json!({
        "clientVersion": eth::client_version(node, args)?,
        "chainId": node.chain().genesis().chain_id,
        "instanceId": node.instance_id(),
        "latestBlockNumber": head.number,
        "latestBlockHash": head.hash(),
    }))
}

/// `anvil_nodeInfo`, in anvil's shape.
pub(super) fn node_info(node: &Node, _: &Args) -> RpcResult {
    require_dev(node)?;
    let head = node.chain().head()?;
    let next = qoin_el_storage::block::next_base_fee(&head, qoin_el_chain::MIN_BASE_FEE);
    Ok(json!({
        "currentBlockNumber": head.number,
        "currentBlockTimestamp": head.timestamp,
        "currentBlockHash": head.hash(),
        "hardFork": "prague",
        "transactionOrder": "fees",
        "environment": {
            "baseFee": next,
            "chainId": node.chain().genesis().chain_id,
            "gasLimit": head.gas_limit,
            "gasPrice": next,
        },
        "forkConfig": { "forkUrl": null, "forkBlockNumber": null, "forkRetryBackoff": null },
    }))
}

/// `hardhat_getAutomine` / `anvil_getAutomine`: whether a block is mined per transaction.
pub(super) fn get_automine(node: &Node, _: &Args) -> RpcResult {
    require_dev(node)?;
    Ok(json!(node.mining() == LocalMining::Instant))
}

/// `evm_mine`: one block, optionally at a timestamp (a quantity, or anvil's
/// `{timestamp, blocks}` object). Answers `"0x0"` like both.
pub(super) fn evm_mine(node: &Node, args: &Args) -> RpcResult {
    let (count, timestamp) = match args.get(0) {
        None => (1, None),
        Some(Value::Object(o)) => (
            o.get("blocks").map(|v| quantity_u64(v, "blocks")).transpose()?.unwrap_or(1),
            o.get("timestamp").map(|v| quantity_u64(v, "timestamp")).transpose()?,
        ),
        Some(v) => (1, Some(quantity_u64(v, "timestamp")?)),
    };
    node.mine_blocks(count, 1, timestamp)?;
    Ok(json!("0x0"))
}

/// `hardhat_mine(count, interval)` / `anvil_mine`: `count` blocks, `interval` seconds apart;
/// answers `true` under Hardhat's name and `null` under anvil's.
pub(super) fn mine<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    let count = args.get(0).map(|v| quantity_u64(v, "block count")).transpose()?.unwrap_or(1);
    let interval = args.get(1).map(|v| quantity_u64(v, "interval")).transpose()?.unwrap_or(1);
    node.mine_blocks(count, interval, None)?;
    Ok(answer::<HARDHAT>())
}

/// What a `hardhat_` method answers (`true`) and what its `anvil_` twin answers (`null`).
fn answer<const HARDHAT: bool>() -> Value {
    if HARDHAT {
        json!(true)
    } else {
        Value::Null
    }
}

/// `evm_increaseTime(seconds)`: moves the clock; answers the total shift in seconds as a
/// decimal string (Hardhat's answer).
pub(super) fn increase_time(node: &Node, args: &Args) -> RpcResult {
    let seconds = match args.get(0) {
        Some(Value::Number(n)) => {
            n.as_i64().ok_or_else(|| RpcError::invalid_params(format!("invalid seconds: {n}")))?
        }
        Some(v) => i64::try_from(quantity_u64(v, "seconds")?)
            .map_err(|_| RpcError::invalid_params(format!("invalid seconds: {v}")))?,
        None => return Err(RpcError::invalid_params("missing value for seconds")),
    };
    Ok(json!(node.increase_time(seconds)?.to_string()))
}

/// `evm_setNextBlockTimestamp(timestamp)`.
pub(super) fn set_next_timestamp(node: &Node, args: &Args) -> RpcResult {
    node.set_next_timestamp(args.quantity(0, "timestamp")?)?;
    Ok(Value::Null)
}

/// `evm_snapshot`: answers the snapshot's id (`"0x1"`, `"0x2"`, ...).
pub(super) fn snapshot(node: &Node, _: &Args) -> RpcResult {
    Ok(q(node.snapshot()?))
}

/// `evm_revert(id)`: `true` if the snapshot was held (it and every later one are used up).
pub(super) fn revert(node: &Node, args: &Args) -> RpcResult {
    let id = match args.get(0) {
        Some(v) => quantity_u64(v, "snapshot id")?,
        None => return Err(RpcError::invalid_params("missing value for snapshot id")),
    };
    Ok(json!(node.revert(id)?))
}

fn address(args: &Args) -> Result<Address, RpcError> {
    args.req(0, "address")
}

/// A state edit parsed from the parameters after the address.
type EditParser = fn(&Args) -> Result<Edit, RpcError>;

fn edit<const HARDHAT: bool>(node: &Node, args: &Args, parse: EditParser) -> RpcResult {
    node.edit_account(address(args)?, parse(args)?)?;
    Ok(answer::<HARDHAT>())
}

fn balance_edit(args: &Args) -> Result<Edit, RpcError> {
    let v = args.get(1).ok_or_else(|| RpcError::invalid_params("missing value for balance"))?;
    Ok(Edit::Balance(quantity_u256(v, "balance")?))
}

fn nonce_edit(args: &Args) -> Result<Edit, RpcError> {
    Ok(Edit::Nonce(args.quantity(1, "nonce")?))
}

fn code_edit(args: &Args) -> Result<Edit, RpcError> {
    Ok(Edit::Code(args.req::<Bytes>(1, "code")?))
}

fn storage_edit(args: &Args) -> Result<Edit, RpcError> {
    let slot = args.get(1).ok_or_else(|| RpcError::invalid_params("missing value for storage slot"))?;
    let slot = B256::from(quantity_u256(slot, "storage slot")?);
    let value: Bytes = args.req(2, "storage value")?;
    let value = B256::try_from(&value[..]).map_err(|_| {
        RpcError::invalid_params(format!("Storage value must be exactly 32 bytes long, got {}", value.len()))
    })?;
    Ok(Edit::Storage(slot, value.into()))
}

/// `anvil_setBalance` / `hardhat_setBalance(address, balance)`.
pub(super) fn set_balance<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    edit::<HARDHAT>(node, args, balance_edit)
}
/// `anvil_setNonce` / `hardhat_setNonce(address, nonce)`.
pub(super) fn set_nonce<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    edit::<HARDHAT>(node, args, nonce_edit)
}
/// `anvil_setCode` / `hardhat_setCode(address, code)`.
pub(super) fn set_code<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    edit::<HARDHAT>(node, args, code_edit)
}
/// `anvil_setStorageAt` / `hardhat_setStorageAt(address, slot, value)`.
pub(super) fn set_storage_at<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    edit::<HARDHAT>(node, args, storage_edit)
}

/// `anvil_impersonateAccount` / `hardhat_impersonateAccount`: from now on `eth_sendTransaction`
/// from this address sends an unsigned, impersonated transaction (the envelope of spec §4.2,
/// which only a development node admits). For an account whose keys the node holds nothing
/// changes: its transactions stay signed.
pub(super) fn impersonate<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    require_dev(node)?;
    let who = address(args)?;
    node.pool().impersonate(who);
    Ok(answer::<HARDHAT>())
}

/// `anvil_stopImpersonatingAccount` / `hardhat_stopImpersonatingAccount`.
pub(super) fn stop_impersonating<const HARDHAT: bool>(node: &Node, args: &Args) -> RpcResult {
    require_dev(node)?;
    node.pool().stop_impersonating(&address(args)?);
    Ok(answer::<HARDHAT>())
}
