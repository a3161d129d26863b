//! Market benchmarks: what fuel metering costs a compute job; the gas of the market
//! contracts' operations.

use crate::{emit, round};
use alloy_primitives::{Log, B256, U256};
use alloy_sol_types::SolCall;
use qoin_markets::compute::{commitment, ComputeMarket as C};
use qoin_markets::harness::{events, Net};
use qoin_markets::job::{Limits, Runner, Status, PAGE};
use qoin_markets::storage::{ChunkedFile, StorageMarket as M};
use qoin_primitives::system::{COMPUTE_MARKET, STORAGE_MARKET};
use serde_json::json;
use std::time::Instant;

/// Two kernels as a job would be written: FNV-1a over the input (integer loads, xor,
/// multiply, branches) and the logistic map in f64 (float multiply-adds, each result
/// canonicalised by the deterministic profile). Both read the rounds from the input's first
/// byte and write their 8-byte result.
const KERNELS: &[(&str, &str)] = &[
    (
        "fnv1a",
        r#"(local $i i32) (local $r i32) (local $x i64)
    (local.set $x (i64.const 0xcbf29ce484222325))
    (local.set $r (i32.load8_u (i32.const 1024)))
    (loop $round
      (local.set $i (i32.const 0))
      (loop $byte
        (local.set $x (i64.mul
          (i64.xor (local.get $x) (i64.load8_u offset=1024 (local.get $i)))
          (i64.const 0x100000001b3)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $i) (global.get $len))))
      (local.set $r (i32.sub (local.get $r) (i32.const 1)))
      (br_if $round (i32.gt_s (local.get $r) (i32.const 0))))
    (i64.store (i32.const 100) (local.get $x))"#,
    ),
    (
        "logistic-f64",
        r#"(local $i i32) (local $x f64)
    (local.set $x (f64.const 0.123456789))
    (local.set $i (i32.mul (i32.load8_u (i32.const 1024)) (global.get $len)))
    (loop $step
      (local.set $x (f64.mul (f64.mul (f64.const 3.99) (local.get $x))
                             (f64.sub (f64.const 1) (local.get $x))))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $step (i32.gt_s (local.get $i) (i32.const 0))))
    (f64.store (i32.const 100) (local.get $x))"#,
    ),
];

fn module(body: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 40)
  (global $len (mut i32) (i32.const 0))
  (func (export "_start")
    ;; read the whole input to 1024
    (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (global.get $len)))
      (i32.store (i32.const 4) (i32.const 65536))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (global.set $len (i32.add (global.get $len) (i32.load (i32.const 8))))
      (br_if $more (i32.load (i32.const 8))))
    (call $kernel)
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $kernel {body}))"#
    );
    match wat::parse_str(text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("a benchmark kernel does not assemble: {e}");
            std::process::exit(1);
        }
    }
}

/// `wasm-job`: each kernel on 1 MiB of input (16 rounds), metered and unmetered, best of 3.
pub(crate) fn wasm_job() {
    let mut input: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    input[0] = 16;
    let limits = Limits { fuel: u64::MAX / 2, memory: 64 * PAGE * 10, output: 1 << 10 };
    let (metered, unmetered) = (Runner::new(), Runner::unmetered());
    for (name, body) in KERNELS {
        let wasm = module(body);
        let time = |runner: &Runner| {
            let mut best = f64::INFINITY;
            let mut last = None;
            for _ in 0..3 {
                let start = Instant::now();
                let out = runner.run(&wasm, &input, &limits);
                best = best.min(start.elapsed().as_secs_f64());
                last = Some(out);
            }
            (best, last)
        };
        let (m, Some(mo)) = time(&metered) else { return };
        let (u, Some(uo)) = time(&unmetered) else { return };
        if mo.status != Status::Exited(0) || mo.stdout != uo.stdout {
            eprintln!(
                "{name}: metered and unmetered runs differ: {:?} / {:?} ({})",
                mo.status, uo.status, mo.detail
            );
            std::process::exit(1);
        }
        emit(&json!({
            "bench": "wasm-job", "kernel": name, "unit": "x unmetered time", "value": round(m / u * 100.0) / 100.0,
            "metered_ms": round(m * 1000.0), "unmetered_ms": round(u * 1000.0),
            "fuel": mo.fuel, "fuel_per_s": round(mo.fuel as f64 / m), "threads": 1,
        }));
    }
}

/// Sends `call` from key `from` in a block of its own; the gas it used and its logs.
fn gas_of<Call: SolCall>(net: &mut Net, from: usize, call: &Call, value: U256) -> (u64, Vec<Log>) {
    let receipt = net.send_receipt(from, call, value);
    (receipt.cumulative_gas_used, receipt.logs)
}

fn gas_line(market: &str, op: &str, gas: u64, extra: &serde_json::Value) {
    let mut v = json!({"bench": "market-gas", "market": market, "op": op, "unit": "gas", "value": gas});
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    emit(&v);
}

/// `market-gas`: the gas of each market operation on the chain (a storage deal of 2 replicas
/// for files of 64 KiB, 1 MiB and 64 MiB; a compute job of 2 replicas), and how many storage
/// proofs fit in a block at the dev chain's gas limit.
pub(crate) fn market_gas() {
    let block_gas = qoin_primitives::dev::dev_genesis(&[]).gas_limit;
    for size in [64usize << 10, 1 << 20, 64 << 20] {
        let data: Vec<u8> =
            (0..size).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0]).collect();
        let Ok(file) = ChunkedFile::new(data) else { return };
        let mut net = Net::new(4);
        net.at = STORAGE_MARKET;
        let (client, p1, p2, anyone) = (0, 1, 2, 3);
        let capacity = 128u64 << 20;
        let mut asks = vec![];
        let mut ask_gas = 0;
        for p in [p1, p2] {
            let call = M::postAskCall {
                price: 1,
                minSize: 1024,
                maxSize: capacity,
                collateralPerByte: 1,
                capacity,
                expiry: net.number() + 10_000,
            };
            let (gas, logs) = gas_of(&mut net, p, &call, U256::from(capacity));
            ask_gas = gas;
            asks.push(events::<M::AskPosted>(&logs)[0].askId);
        }
        let (period, periods) = (16u64, 4u64);
        let bid = M::postBidCall {
            root: file.root(),
            chunks: file.chunks(),
            replicas: 2,
            period,
            periods,
            maxPrice: 1,
            expiry: net.number() + 100,
        };
        let escrow = U256::from(2 * file.size() * periods);
        let (bid_gas, logs) = gas_of(&mut net, client, &bid, escrow);
        let id = events::<M::BidPosted>(&logs)[0].bidId;
        let d = id.to::<u64>();
        let (take1, _) =
            gas_of(&mut net, p1, &M::takeCall { bidId: id, slot: U256::ZERO, askId: asks[0] }, U256::ZERO);
        let (take2, _) =
            gas_of(&mut net, p2, &M::takeCall { bidId: id, slot: U256::ZERO, askId: asks[1] }, U256::ZERO);
        let mut prove = 0;
        for p in 0..periods {
            net.advance_to(net.period_start(d, p));
            let proof = net.proof(&file, d, 0, p);
            (prove, _) = gas_of(&mut net, p1, &proof, U256::ZERO);
            // The second replica proves period 0 only: its later periods are missed.
            if p == 0 {
                let proof = net.proof(&file, d, 1, 0);
                gas_of(&mut net, p2, &proof, U256::ZERO);
            }
        }
        net.advance_to(net.period_start(d, 1) + period);
        let (settle_miss, _) = gas_of(&mut net, anyone, &M::settleAllCall { bidId: id }, U256::ZERO);
        net.advance_to(net.period_start(d, periods - 1) + period);
        let (finish, _) = gas_of(&mut net, anyone, &M::finishCall { bidId: id }, U256::ZERO);
        let f = json!({"file_bytes": file.size(), "chunks": file.chunks()});
        gas_line("storage", "postAsk", ask_gas, &f);
        gas_line("storage", "postBid", bid_gas, &f);
        gas_line("storage", "take", take1, &f);
        gas_line("storage", "take (activates)", take2, &f);
        gas_line(
            "storage",
            "prove",
            prove,
            &json!({"file_bytes": file.size(), "chunks": file.chunks(), "challenges": 20,
                   "proofs_per_block": block_gas / prove.max(1), "block_gas_limit": block_gas}),
        );
        gas_line("storage", "settleAll (one miss)", settle_miss, &f);
        gas_line("storage", "finish", finish, &f);
        gas_line("storage", "deal (bid, takes, finish)", bid_gas + take1 + take2 + finish, &f);
    }

    let mut net = Net::new(4);
    net.at = COMPUTE_MARKET;
    let (client, p1, p2, mediator) = (0, 1, 2, 3);
    let (register, _) =
        gas_of(&mut net, mediator, &C::registerMediatorCall { fee: U256::from(1000) }, U256::ZERO);
    let mut asks = vec![];
    let mut ask_gas = 0;
    for p in [p1, p2] {
        let call = C::postAskCall {
            price: 1,
            maxFuel: 1 << 30,
            maxMemory: 1 << 30,
            fuelPerSecond: 1_000_000_000,
            collateralPerJob: 1000,
            expiry: net.number() + 1000,
        };
        let (gas, logs) = gas_of(&mut net, p, &call, U256::from(10_000));
        ask_gas = gas;
        asks.push(events::<C::AskPosted>(&logs)[0].askId);
    }
    let job = C::postJobCall {
        module: B256::repeat_byte(1),
        input: B256::repeat_byte(2),
        fuelLimit: 1_000_000,
        memoryLimit: 1 << 24,
        replicas: 2,
        maxPrice: 1,
        phaseLength: 4,
        expiry: net.number() + 100,
        mediator: net.addr(mediator),
    };
    let (post, logs) = gas_of(&mut net, client, &job, U256::from(2_000_000));
    let id = events::<C::JobPosted>(&logs)[0].jobId;
    let (take1, _) = gas_of(&mut net, p1, &C::takeCall { jobId: id, askId: asks[0] }, U256::ZERO);
    let (take2, _) = gas_of(&mut net, p2, &C::takeCall { jobId: id, askId: asks[1] }, U256::ZERO);
    let (output, fuel) = (B256::repeat_byte(3), 500_000u64);
    let mut commit = 0;
    let mut reveal = 0;
    for (slot, p) in [(0u64, p1), (1, p2)] {
        let c = commitment(output, fuel, B256::repeat_byte(p as u8), net.addr(p));
        (commit, _) =
            gas_of(&mut net, p, &C::commitCall { jobId: id, slot: U256::from(slot), c }, U256::ZERO);
    }
    for (slot, p) in [(0u64, p1), (1, p2)] {
        let call = C::revealCall {
            jobId: id,
            slot: U256::from(slot),
            output,
            fuel,
            salt: B256::repeat_byte(p as u8),
        };
        (reveal, _) = gas_of(&mut net, p, &call, U256::ZERO);
    }
    net.advance_to(net.number() + 4);
    let (settle, _) = gas_of(&mut net, client, &C::settleCall { jobId: id }, U256::ZERO);
    let none = json!({});
    gas_line("compute", "registerMediator", register, &none);
    gas_line("compute", "postAsk", ask_gas, &none);
    gas_line("compute", "postJob", post, &none);
    gas_line("compute", "take", take1, &none);
    gas_line("compute", "take (starts the job)", take2, &none);
    gas_line("compute", "commit", commit, &none);
    gas_line("compute", "reveal (last, agreeing)", reveal, &none);
    gas_line("compute", "settle (2 agreeing replicas)", settle, &none);
    gas_line(
        "compute",
        "job (post, takes, commits, reveals, settle)",
        post + take1 + take2 + 2 * commit + 2 * reveal + settle,
        &json!({"replicas": 2}),
    );
}
