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

fn mine_args(args: &Args) -> Result<(u64, u64), RpcError> {
    let count = args.get(0).map(|v| quantity_u64(v, "block count")).transpose()?.unwrap_or(1);
    let interval = args.get(1).map(|v| quantity_u64(v, "interval")).transpose()?.unwrap_or(1);
    Ok((count, interval))
}

/// `hardhat_mine(count, interval)`: `count` blocks, `interval` seconds apart; answers `true`.
pub(super) fn hardhat_mine(node: &Node, args: &Args) -> RpcResult {
    let (count, interval) = mine_args(args)?;
    node.mine_blocks(count, interval, None)?;
    Ok(json!(true))
}

/// `anvil_mine(count, interval)`: as `hardhat_mine`; answers `null` like anvil.
pub(super) fn anvil_mine(node: &Node, args: &Args) -> RpcResult {
    let (count, interval) = mine_args(args)?;
    node.mine_blocks(count, interval, None)?;
    Ok(Value::Null)
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

fn edit(node: &Node, args: &Args, edit: Edit, hardhat: bool) -> RpcResult {
    node.edit_account(address(args)?, edit)?;
    Ok(if hardhat { json!(true) } else { Value::Null })
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

/// `anvil_setBalance(address, balance)`.
pub(super) fn anvil_set_balance(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, balance_edit(args)?, false)
}
/// `hardhat_setBalance(address, balance)`.
pub(super) fn hardhat_set_balance(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, balance_edit(args)?, true)
}
/// `anvil_setNonce(address, nonce)`.
pub(super) fn anvil_set_nonce(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, nonce_edit(args)?, false)
}
/// `hardhat_setNonce(address, nonce)`.
pub(super) fn hardhat_set_nonce(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, nonce_edit(args)?, true)
}
/// `anvil_setCode(address, code)`.
pub(super) fn anvil_set_code(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, code_edit(args)?, false)
}
/// `hardhat_setCode(address, code)`.
pub(super) fn hardhat_set_code(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, code_edit(args)?, true)
}
/// `anvil_setStorageAt(address, slot, value)`.
pub(super) fn anvil_set_storage_at(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, storage_edit(args)?, false)
}
/// `hardhat_setStorageAt(address, slot, value)`.
pub(super) fn hardhat_set_storage_at(node: &Node, args: &Args) -> RpcResult {
    edit(node, args, storage_edit(args)?, true)
}

/// `anvil_impersonateAccount` / `hardhat_impersonateAccount`: a Qoin transaction carries its
/// sender's post-quantum signatures, so the node can send only from accounts whose keys it
/// holds; for those this succeeds (they are already usable), for any other it says why not.
pub(super) fn impersonate(node: &Node, args: &Args) -> RpcResult {
    require_dev(node)?;
    let who = address(args)?;
    if node.signer(&who).is_some() {
        return Ok(Value::Null);
    }
    Err(RpcError::server(format!(
        "cannot impersonate {who}: a Qoin transaction must carry its sender's Falcon-512 and ML-DSA-44 \
         signatures, and this node does not hold that account's keys"
    )))
}

/// `anvil_stopImpersonatingAccount` / `hardhat_stopImpersonatingAccount`.
pub(super) fn stop_impersonating(node: &Node, args: &Args) -> RpcResult {
    require_dev(node)?;
    address(args)?;
    Ok(Value::Null)
}
