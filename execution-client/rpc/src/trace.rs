//! `debug_traceTransaction`, `debug_traceBlockByNumber` / `debug_traceBlockByHash` and
//! `debug_traceCall`: geth's tracers as revm-inspectors implements them (the struct logger by
//! default; `callTracer`, `prestateTracer` with `diffMode`, `4byteTracer`, `flatCallTracer`,
//! `muxTracer`, `erc7562Tracer`, `noopTracer`; no JavaScript tracers), over a replay of the
//! block from its parent's state.
//!
//! A trace runs under the caller's `timeout` (geth's option, a Go duration; default
//! `--rpc.evmtimeout`, at most [`MAX_TRACE_TIMEOUT`]) for the whole request, replay included,
//! and may keep at most `MAX_TRACE_BYTES` (256 MiB) in memory (estimated as it runs): past either it
//! is stopped and answers an error, never a partial trace.

use crate::call::{call_block, parse_request, run_with, Budget, Extra, RecordCost, Trial, Watch};
use crate::convert::{Args, BlockTag};
use crate::error::RpcError;
use crate::eth::{block_parts, header_at, read, resolve_required, StateAt};
use alloy_primitives::B256;
use alloy_rpc_types_trace::geth::{GethDebugTracingCallOptions, GethDebugTracingOptions, GethTrace};
use qoin_el_node::Node;
use qoin_el_storage::block::ElHeader;
use qoin_el_storage::tables::TxLookup;
use qoin_primitives::SignedTx;
use qoin_store::{Tx, RO};
use revm::database::CacheDB;
use revm::database_interface::DatabaseCommit;
use revm_inspectors::tracing::{DebugInspector, DebugInspectorError, TransactionContext};
use serde_json::value::{to_raw_value, RawValue};
use std::time::Duration;

/// The longest `timeout` a caller may ask for.
pub(super) const MAX_TRACE_TIMEOUT: Duration = Duration::from_secs(60);

/// A validated trace request: the tracer, how long it may run, what it keeps.
struct Tracing {
    inspector: DebugInspector,
    timeout: Duration,
    cost: RecordCost,
}

impl Tracing {
    fn new(node: &Node, opts: GethDebugTracingOptions) -> Result<Self, RpcError> {
        let timeout = match &opts.timeout {
            None => node.call_limits().evm_timeout,
            Some(t) => {
                let d = go_duration(t).ok_or_else(|| {
                    RpcError::invalid_params(format!(
                        "invalid timeout {t:?}: a Go duration such as \"5s\" or \"500ms\""
                    ))
                })?;
                if d > MAX_TRACE_TIMEOUT {
                    return Err(RpcError::invalid_params(format!(
                        "timeout {t} is longer than this node allows ({}s)",
                        MAX_TRACE_TIMEOUT.as_secs()
                    )));
                }
                d
            }
        };
        let struct_logger = opts.tracer.as_ref().is_none_or(|t| t.as_str().is_empty());
        let cost = RecordCost {
            steps: struct_logger,
            stack: !opts.config.disable_stack.unwrap_or(false),
            memory: opts.config.enable_memory.unwrap_or(false),
            used: 0,
        };
        let name = opts.tracer.as_ref().map(|t| t.as_str().to_string());
        let inspector = DebugInspector::new(opts).map_err(|e| match e {
            DebugInspectorError::InvalidTracerConfig => RpcError::invalid_params("invalid tracerConfig for this tracer"),
            DebugInspectorError::JsTracerNotEnabled | DebugInspectorError::UnsupportedTracer => {
                RpcError::server(format!(
                    "tracer not found: {}; this node offers the struct logger (no tracer), callTracer, prestateTracer, 4byteTracer, flatCallTracer, muxTracer, erc7562Tracer and noopTracer, and no JavaScript tracers",
                    name.as_deref().unwrap_or_default()
                ))
            }
            e => RpcError::invalid_params(e.to_string()),
        })?;
        Ok(Self { inspector, timeout, cost })
    }
}

/// A Go duration (`300ms`, `1.5s`, `2m30s`): decimal numbers, each with a unit of `ns`, `us`
/// (or `µs`), `ms`, `s`, `m` or `h`.
pub(super) fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The options in parameter `i` (geth's defaults when absent).
fn options(args: &Args, i: usize) -> Result<GethDebugTracingOptions, RpcError> {
    Ok(args.opt(i, "tracing options")?.unwrap_or_default())
}

/// Replays `txs` of the block `header` on its parent's state, tracing transaction `only` (or
/// every one): `(transaction hash, trace)` per traced transaction.
fn replay(
    node: &Node,
    tx: &Tx<'_, RO>,
    header: &ElHeader,
    txs: &[SignedTx],
    only: Option<usize>,
    tracing: &Tracing,
) -> Result<Vec<(B256, GethTrace)>, RpcError> {
    let parent_number =
        header.number.checked_sub(1).ok_or_else(|| RpcError::server("genesis is not traceable"))?;
    let parent = header_at(tx, parent_number)?.ok_or_else(|| RpcError::internal("parent block missing"))?;
    let state = StateAt::new(tx, &parent)?;
    let mut db = CacheDB::new(&state);
    let cfg = qoin_evm::execute::cfg_env(node.chain().genesis().chain_id);
    let block = call_block(header, false);
    let block_hash = header.hash();
    let budget = Budget::lasting(tracing.timeout);
    let last = only.unwrap_or(txs.len().saturating_sub(1));
    let mut traces = Vec::new();
    let mut cost = tracing.cost;
    for (index, t) in txs.iter().enumerate().take(last.saturating_add(1)) {
        let traced = only.is_none_or(|o| o == index);
        let env = qoin_evm::execute::tx_env(t);
        let extra = if traced {
            // A fresh copy: the tracer of the request stays the template for every transaction.
            Extra::Trace(Box::new(tracing.inspector.try_clone().map_err(RpcError::internal)?))
        } else {
            Extra::Nothing
        };
        let watch = Watch::new(&budget, traced.then_some(cost), extra);
        let (result, watch) =
            run_with(&mut db, qoin_evm::execute::tx_cfg(cfg.clone(), t), block.clone(), env.clone(), watch);
        watch.stopped(&budget)?;
        if let Some(c) = watch.cost() {
            cost.used = c.used;
        }
        let result = result.map_err(|e| RpcError::internal(format!("replaying transaction {index}: {e}")))?;
        if let Extra::Trace(mut inspector) = watch.extra {
            let context = TransactionContext {
                block_hash: Some(block_hash),
                tx_index: Some(index),
                tx_hash: Some(t.id()),
            };
            let trace = inspector
                .get_result(Some(context), &env, &block, &result, &mut db)
                .map_err(RpcError::internal)?;
            traces.push((t.id(), trace));
        }
        db.commit(result.state);
    }
    Ok(traces)
}

/// The answer of a trace method, serialized straight from the trace.
type RawResult = Result<Box<RawValue>, RpcError>;

fn to_json<T: serde::Serialize>(trace: &T) -> RawResult {
    to_raw_value(trace).map_err(RpcError::internal)
}

/// `debug_traceTransaction(hash, options)`.
pub(super) fn trace_transaction(node: &Node, args: &Args) -> RawResult {
    let hash: B256 = args.req(0, "transaction hash")?;
    let tracing = Tracing::new(node, options(args, 1)?)?;
    let tx = read(node)?;
    let loc = tx
        .get::<TxLookup>(&hash)?
        .ok_or_else(|| RpcError::server(format!("transaction {hash} not found")))?;
    let header = header_at(&tx, loc.block)?.ok_or_else(|| RpcError::internal("indexed block missing"))?;
    let (_, txs, _) = block_parts(&tx, loc.block)?;
    let index = usize::try_from(loc.index).map_err(RpcError::internal)?;
    if index >= txs.len() {
        return Err(RpcError::internal("indexed transaction missing"));
    }
    let traces = replay(node, &tx, &header, &txs, Some(index), &tracing)?;
    let (_, trace) = traces.first().ok_or_else(|| RpcError::internal("no trace"))?;
    to_json(trace)
}

fn trace_block(node: &Node, tag: BlockTag, args: &Args) -> RawResult {
    let tracing = Tracing::new(node, options(args, 1)?)?;
    let tx = read(node)?;
    let header = resolve_required(&tx, tag)?;
    let (_, txs, _) = block_parts(&tx, header.number)?;
    let traces = replay(node, &tx, &header, &txs, None, &tracing)?;
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry<'a> {
        tx_hash: &'a B256,
        result: &'a GethTrace,
    }
    let entries: Vec<Entry<'_>> = traces.iter().map(|(tx_hash, result)| Entry { tx_hash, result }).collect();
    to_json(&entries)
}

/// `debug_traceBlockByNumber(number, options)`: `[{txHash, result}]`.
pub(super) fn trace_block_by_number(node: &Node, args: &Args) -> RawResult {
    trace_block(node, args.block(0)?, args)
}

/// `debug_traceBlockByHash(hash, options)`: `[{txHash, result}]`.
pub(super) fn trace_block_by_hash(node: &Node, args: &Args) -> RawResult {
    trace_block(node, BlockTag::Hash(args.req(0, "block hash")?), args)
}

/// `debug_traceCall(request, block, options)`: the call on the state after `block`, in that
/// block's environment (the next block's for `pending`), with `stateOverrides` on top as
/// `eth_call` takes them. Block overrides and `txIndex` are refused rather than ignored.
pub(super) fn trace_call(node: &Node, args: &Args) -> RawResult {
    let r = parse_request(args.get(0))?;
    let tag = args.block(1)?;
    let opts: GethDebugTracingCallOptions = args.opt(2, "tracing options")?.unwrap_or_default();
    if opts.block_overrides.is_some() || opts.tx_index.is_some() {
        return Err(RpcError::invalid_params("blockOverrides and txIndex are not supported by this node"));
    }
    let overrides = crate::call::Overrides::new(opts.state_overrides)?;
    let tracing = Tracing::new(node, opts.tracing_options)?;
    let tx = read(node)?;
    let mut trial = Trial::at(node, &tx, tag, tag == BlockTag::Pending)?.with_overrides(overrides);
    trial.budget = Budget::lasting(tracing.timeout);
    let gas = trial.gas(r.gas);
    let extra = Extra::Trace(Box::new(tracing.inspector));
    let (result, extra) = trial.run_watched(&r, gas, Some(tracing.cost), extra)?;
    let Extra::Trace(mut inspector) = extra else {
        return Err(RpcError::internal("the tracer went missing"));
    };
    let (_, env) = trial.env(&r, gas);
    let trace = inspector
        .get_result(None, &env, &trial.block, &result, &mut trial.state())
        .map_err(RpcError::internal)?;
    to_json(&trace)
}
