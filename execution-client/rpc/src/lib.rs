//! # qoin-rpc
//!
//! Owns the JSON-RPC server dapp tools talk to (ethers, viem, Hardhat, Foundry): jsonrpsee over
//! HTTP and WebSocket on one port, batches, geth's error shapes, polled filters (`filters`)
//! and `eth_subscribe` subscriptions (`subscriptions`), geth's `debug_trace*` tracers over
//! revm-inspectors (`trace`), message signing with the node's keys (`sign`), and the development-node methods under anvil's and Hardhat's
//! names (`dev`).
//!
//! - Reverts answer code 3, message `execution reverted: <reason>`, `data` = the raw revert
//!   bytes, so tools decode `Error(string)` and custom errors.
//! - Pool refusals answer -32000 with geth's wording, which the tools match on.
//! - Methods not served answer -32601.
//! - Block tags: `latest`, `safe` and `finalized` (the head), `pending` (the head's state,
//!   the pool's nonces, the next block's environment for calls), `earliest`, a number, or
//!   an EIP-1898 object. State at blocks before the head is read through the trie, which
//!   keeps every version, so every block's state is served.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod call;
mod convert;
mod dev;
mod error;
mod eth;
mod filters;
mod sign;
mod subscriptions;
mod trace;

use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use qoin_el_node::Node;
use qoin_tracing::targets;
use serde_json::value::{to_raw_value, RawValue};
use std::net::SocketAddr;
use std::sync::Arc;

pub use convert::{Args, BlockTag};
pub use error::{RpcError, RpcResult};
pub use filters::{Filters, FILTER_TTL, MAX_FILTERS};

/// A method: the node and the positional parameters in, a result out.
pub type Method = fn(&Node, &Args) -> RpcResult;

/// The methods served.
pub const METHODS: &[(&str, Method)] = &[
    ("web3_clientVersion", eth::client_version),
    ("net_version", eth::net_version),
    ("net_listening", eth::net_listening),
    ("eth_chainId", eth::chain_id),
    ("eth_syncing", eth::syncing),
    ("eth_blockNumber", eth::block_number),
    ("eth_accounts", eth::accounts),
    ("eth_getBalance", eth::get_balance),
    ("eth_getTransactionCount", eth::get_transaction_count),
    ("eth_getCode", eth::get_code),
    ("eth_getStorageAt", eth::get_storage_at),
    ("eth_gasPrice", eth::gas_price),
    ("eth_maxPriorityFeePerGas", eth::max_priority_fee),
    ("eth_feeHistory", eth::fee_history),
    ("eth_call", call::call),
    ("eth_estimateGas", call::estimate_gas),
    ("eth_createAccessList", call::create_access_list),
    ("eth_sendRawTransaction", eth::send_raw_transaction),
    ("eth_sendTransaction", eth::send_transaction),
    ("eth_getTransactionByHash", eth::transaction_by_hash),
    ("eth_getTransactionReceipt", eth::transaction_receipt),
    ("eth_getRawTransactionByHash", eth::raw_transaction_by_hash),
    ("eth_getTransactionByBlockHashAndIndex", eth::tx_by_block_hash_and_index),
    ("eth_getTransactionByBlockNumberAndIndex", eth::tx_by_block_number_and_index),
    ("eth_getRawTransactionByBlockHashAndIndex", eth::raw_tx_by_block_hash_and_index),
    ("eth_getRawTransactionByBlockNumberAndIndex", eth::raw_tx_by_block_number_and_index),
    ("eth_getUncleCountByBlockHash", eth::uncle_count_by_hash),
    ("eth_getUncleCountByBlockNumber", eth::uncle_count_by_number),
    ("eth_getUncleByBlockHashAndIndex", eth::uncle_by_index),
    ("eth_getUncleByBlockNumberAndIndex", eth::uncle_by_index),
    ("web3_sha3", eth::web3_sha3),
    ("txpool_status", eth::txpool_status),
    ("txpool_content", eth::txpool_content),
    ("txpool_contentFrom", eth::txpool_content_from),
    ("txpool_inspect", eth::txpool_inspect),
    ("eth_getBlockByNumber", eth::block_by_number),
    ("eth_getBlockByHash", eth::block_by_hash),
    ("eth_getBlockReceipts", eth::block_receipts),
    ("eth_getBlockTransactionCountByNumber", eth::block_tx_count_by_number),
    ("eth_getBlockTransactionCountByHash", eth::block_tx_count_by_hash),
    ("eth_getLogs", eth::get_logs),
    ("eth_getProof", eth::get_proof),
    ("debug_getRawHeader", eth::raw_header),
    ("personal_sign", sign::personal_sign),
    ("eth_sign", sign::eth_sign),
    ("eth_signTypedData_v4", sign::sign_typed_data_v4),
    // Development-node methods (anvil's and Hardhat's names); -32601 under a consensus client.
    ("hardhat_metadata", dev::metadata),
    ("anvil_metadata", dev::metadata),
    ("anvil_nodeInfo", dev::node_info),
    ("hardhat_getAutomine", dev::get_automine),
    ("anvil_getAutomine", dev::get_automine),
    ("evm_mine", dev::evm_mine),
    ("hardhat_mine", dev::mine::<true>),
    ("anvil_mine", dev::mine::<false>),
    ("evm_increaseTime", dev::increase_time),
    ("anvil_increaseTime", dev::increase_time),
    ("evm_setNextBlockTimestamp", dev::set_next_timestamp),
    ("anvil_setNextBlockTimestamp", dev::set_next_timestamp),
    ("evm_snapshot", dev::snapshot),
    ("anvil_snapshot", dev::snapshot),
    ("evm_revert", dev::revert),
    ("anvil_revert", dev::revert),
    ("anvil_setBalance", dev::set_balance::<false>),
    ("hardhat_setBalance", dev::set_balance::<true>),
    ("anvil_setNonce", dev::set_nonce::<false>),
    ("hardhat_setNonce", dev::set_nonce::<true>),
    ("anvil_setCode", dev::set_code::<false>),
    ("hardhat_setCode", dev::set_code::<true>),
    ("anvil_setStorageAt", dev::set_storage_at::<false>),
    ("hardhat_setStorageAt", dev::set_storage_at::<true>),
    ("anvil_impersonateAccount", dev::impersonate::<false>),
    ("hardhat_impersonateAccount", dev::impersonate::<true>),
    ("anvil_stopImpersonatingAccount", dev::stop_impersonating::<false>),
    ("hardhat_stopImpersonatingAccount", dev::stop_impersonating::<true>),
];

/// A method whose answer is serialized as it is made (traces: a `serde_json::Value` tree of
/// a long trace would take several times the trace's own memory).
pub type RawMethod = fn(&Node, &Args) -> Result<Box<RawValue>, RpcError>;

/// The methods answering pre-serialized JSON.
pub const RAW_METHODS: &[(&str, RawMethod)] = &[
    ("debug_traceTransaction", trace::trace_transaction),
    ("debug_traceBlockByNumber", trace::trace_block_by_number),
    ("debug_traceBlockByHash", trace::trace_block_by_hash),
    ("debug_traceCall", trace::trace_call),
];

/// A filter method: the node, the node's filters and the parameters in, a result out.
pub type FilterMethod = fn(&Filters, &Node, &Args) -> RpcResult;

/// The filter methods served.
pub const FILTER_METHODS: &[(&str, FilterMethod)] = &[
    ("eth_newFilter", Filters::new_filter),
    ("eth_newBlockFilter", Filters::new_block_filter),
    ("eth_newPendingTransactionFilter", Filters::new_pending_filter),
    ("eth_getFilterChanges", Filters::changes),
    ("eth_getFilterLogs", Filters::logs),
    ("eth_uninstallFilter", Filters::uninstall),
];

/// Methods that read many blocks or run the EVM: at most `CallLimits::heavy_requests` of them
/// run at once; the rest wait their turn (without holding a thread), and beyond
/// [`MAX_HEAVY_WAITING`] waiting a request is refused at once.
pub const HEAVY_METHODS: &[&str] = &[
    "eth_call",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_getLogs",
    "eth_getFilterLogs",
    "eth_getProof",
    "eth_feeHistory",
    "eth_sendTransaction",
    "debug_traceTransaction",
    "debug_traceBlockByNumber",
    "debug_traceBlockByHash",
    "debug_traceCall",
];

/// Heavy requests that may wait for a turn; beyond, `-32005` at once.
pub const MAX_HEAVY_WAITING: usize = 1_024;

/// Turns for heavy methods.
struct Gate {
    turns: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Gate {
    async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ErrorObjectOwned> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_HEAVY_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ErrorObjectOwned::owned(
                -32005,
                format!("too many requests: {MAX_HEAVY_WAITING} calls, estimates and log queries are already waiting"),
                None::<()>,
            ));
        }
        let permit = self.turns.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|e| RpcError::internal(e).into())
    }
}

/// The jsonrpsee module with every method in [`METHODS`], [`FILTER_METHODS`] and
/// [`RAW_METHODS`]; each runs on
/// a blocking thread (they read MDBX and run the EVM), heavy ones ([`HEAVY_METHODS`]) after
/// waiting for a turn.
pub fn module(node: Arc<Node>) -> RpcModule<Node> {
    let gate = Arc::new(Gate {
        turns: tokio::sync::Semaphore::new(node.call_limits().heavy_requests.max(1)),
        waiting: Default::default(),
    });
    let mut module = RpcModule::from_arc(node);
    let filters = Arc::new(Filters::default());
    let served = METHODS.iter().map(|&(name, f)| (name, Served::Plain(f)));
    let served = served.chain(FILTER_METHODS.iter().map(|&(name, f)| (name, Served::Filter(f))));
    let served = served.chain(RAW_METHODS.iter().map(|&(name, f)| (name, Served::Raw(f))));
    for (name, f) in served {
        let (filters, gate) = (filters.clone(), gate.clone());
        let heavy = HEAVY_METHODS.contains(&name);
        let registered = module.register_async_method(name, move |params, node, _| {
            let (filters, gate) = (filters.clone(), gate.clone());
            async move {
                let _turn = if heavy { Some(gate.enter().await?) } else { None };
                let args = Args::from_params(&params)?;
                let run = move || {
                    let started = std::time::Instant::now();
                    let to_raw = |v: serde_json::Value| to_raw_value(&v).map_err(RpcError::internal);
                    let result = match f {
                        Served::Plain(f) => f(&node, &args).and_then(to_raw),
                        Served::Filter(f) => f(&filters, &node, &args).and_then(to_raw),
                        Served::Raw(f) => f(&node, &args),
                    };
                    match &result {
                        Ok(_) => tracing::debug!(target: targets::RPC, method = name, elapsed = ?started.elapsed(), "served"),
                        Err(e) => tracing::debug!(
                            target: targets::RPC,
                            method = name,
                            elapsed = ?started.elapsed(),
                            code = e.code,
                            error = %e.message,
                            "refused"
                        ),
                    }
                    result
                };
                let result = tokio::task::spawn_blocking(run).await.map_err(RpcError::internal)?;
                result.map_err(ErrorObjectOwned::from)
            }
        });
        // Names in METHODS are distinct, so registering cannot fail; a duplicate would be a
        // programming error caught by the tests.
        debug_assert!(registered.is_ok(), "{name} registered twice");
    }
    module
}

#[derive(Clone, Copy)]
enum Served {
    Plain(Method),
    Filter(FilterMethod),
    Raw(RawMethod),
}

/// Subscriptions one WebSocket connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 128;
/// Notifications queued per connection before a subscriber counts as too slow and its
/// subscription is dropped.
pub const SUBSCRIBER_BUFFER: u32 = 1_024;

/// Starts the JSON-RPC server on `addr`: HTTP and WebSocket on the same port (batches up to
/// 1,000 requests, bodies up to 16 MiB; `eth_subscribe` over WebSocket). Returns the bound
/// address (useful with port 0) and the handle that stops it.
pub async fn serve(node: Arc<Node>, addr: SocketAddr) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let config = ServerConfig::builder()
        .max_request_body_size(16 << 20)
        .max_response_body_size(64 << 20)
        .set_batch_request_config(BatchRequestConfig::Limit(1_000))
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_message_buffer_capacity(SUBSCRIBER_BUFFER)
        .set_id_provider(subscriptions::HexIds::default())
        .build();
    let server = Server::builder().set_config(config).build(addr).await?;
    let bound = server.local_addr()?;
    let mut module = module(node);
    subscriptions::register(&mut module).map_err(std::io::Error::other)?;
    Ok((bound, server.start(module)))
}

#[cfg(test)]
mod tests;
