//! Proof-of-work benchmarks: `mq-search`, `mq-cancel`, `mq-verify`, `difficulty-sim`.

use crate::{emit, rate, round};
use alloy_primitives::{Address, B256};
use qoin_crypto::{Domain, Keypair};
use qoin_kernels::{available, seal, SearchControl, Solver};
use qoin_pow::{sim::simulate, verify_seal, AsertAnchor, Difficulty, MqSystem};
use qoin_primitives::Header;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Candidates/s of `solver` on a system too large to finish, stopped after `secs`.
fn search_rate(solver: &dyn Solver, threads: usize, secs: f64) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let sys = MqSystem::from_seed(&B256::repeat_byte(0x5e), 40, 48);
    let stop = AtomicBool::new(false);
    let (candidates, elapsed) = std::thread::scope(|scope| {
        let start = Instant::now();
        let h = scope.spawn(|| {
            pool.install(|| solver.search(&sys, &SearchControl { stop: &stop, accept: &|_| false }))
        });
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let report = h.join().expect("search thread");
        (report.candidates, start.elapsed())
    });
    candidates as f64 / elapsed.as_secs_f64()
}

pub(crate) fn mq_search(secs: f64) {
    let all = rayon::current_num_threads();
    let mut ours = Vec::new();
    for solver in available() {
        for threads in [1, all] {
            let value = search_rate(solver.as_ref(), threads, secs);
            emit(&json!({"bench": "mq-search", "unit": "candidates/s", "value": round(value),
                "backend": solver.name(), "threads": threads, "per_core": round(value / threads as f64),
                "m": 40, "n": 48}));
            if threads == 1 {
                ours.push((solver.name(), value));
            }
        }
    }
    reference(&ours);
}

/// Each backend's libfes-lite counterpart (one thread each).
const COUNTERPARTS: [(&str, &str); 3] =
    [("portable", "generic_4x16"), ("avx2", "avx2_16x16"), ("avx512", "avx512bw_64x16")];

/// libfes-lite's sources: `QOIN_LIBFES_LITE`, else `shared/tools/libfes-lite` beside the checkout.
fn libfes_dir() -> Option<std::path::PathBuf> {
    let dir = match std::env::var_os("QOIN_LIBFES_LITE") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/libfes-lite"),
    };
    dir.join("src").join("speed.c").is_file().then_some(dir)
}

/// Builds and runs libfes-lite's speed program (`libfes-speed.sh`, right after our figures, on
/// the same machine) and prints each of our backends' ratio to its counterpart per core. Says
/// so and goes on when the sources or a compiler are missing.
fn reference(ours: &[(&str, f64)]) {
    let Some(dir) = libfes_dir() else {
        emit(&json!({"bench": "mq-search", "reference": "libfes-lite",
            "skipped": "sources not found (set QOIN_LIBFES_LITE to libfes-lite's directory)"}));
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("libfes-speed.sh");
    let out = match std::process::Command::new("bash").arg(&script).arg(&dir).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string();
            emit(
                &json!({"bench": "mq-search", "reference": "libfes-lite", "skipped": format!("build failed: {why}")}),
            );
            return;
        }
        Err(e) => {
            emit(&json!({"bench": "mq-search", "reference": "libfes-lite", "skipped": e.to_string()}));
            return;
        }
    };
    let kernels: Vec<(String, f64)> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["kernel"].as_str()?.to_string(), v["value"].as_f64()?)))
        .collect();
    for (backend, kernel) in COUNTERPARTS {
        let (Some((_, mine)), Some((_, theirs))) =
            (ours.iter().find(|(n, _)| *n == backend), kernels.iter().find(|(k, _)| k == kernel))
        else {
            continue;
        };
        emit(
            &json!({"bench": "mq-search", "backend": backend, "threads": 1, "reference": format!("libfes-lite {kernel}"),
            "reference_value": theirs, "unit": "x reference per core", "value": (mine / theirs * 1000.0).round() / 1000.0}),
        );
    }
}

pub(crate) fn mq_cancel() {
    let sys = MqSystem::from_seed(&B256::repeat_byte(0x5f), 40, 48);
    for solver in available() {
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let stop = AtomicBool::new(false);
            let latency = std::thread::scope(|scope| {
                let h =
                    scope.spawn(|| solver.search(&sys, &SearchControl { stop: &stop, accept: &|_| false }));
                std::thread::sleep(Duration::from_millis(200));
                let asked = Instant::now();
                stop.store(true, Ordering::Relaxed);
                h.join().expect("search thread");
                asked.elapsed()
            });
            worst = worst.max(latency);
        }
        emit(&json!({"bench": "mq-cancel", "unit": "ms", "value": round(worst.as_secs_f64() * 1e3),
            "backend": solver.name(), "statistic": "max of 5", "threads": rayon::current_num_threads()}));
    }
}

fn header(kp: &Keypair, d: Difficulty) -> Header {
    let mut h = Header {
        parent_hash: B256::repeat_byte(1),
        siblings: vec![B256::repeat_byte(2)],
        height: 1000,
        timestamp_ms: 1_767_226_600_000,
        difficulty: d.to_compact(),
        payload_hash: B256::repeat_byte(3),
        state_root: B256::repeat_byte(4),
        transactions_root: B256::repeat_byte(5),
        coinbase: Address::repeat_byte(6),
        miner_keys: kp.public().clone(),
        extra_nonce: 0,
        ticket: kp.sign(Domain::MiningTicket, b""),
        solution: [0; 16],
    };
    h.sign_ticket(kp).expect("ticket");
    h
}

pub(crate) fn mq_verify(secs: f64) {
    let kp = Keypair::from_seed(&[9; 32]);
    // A real seal at m = 32 (n = 40), found with the fastest backend.
    let mut h = header(&kp, Difficulty::new(32, 0).expect("difficulty"));
    let solver = qoin_kernels::fastest();
    let sealed = seal(&mut h, solver.as_ref(), &AtomicBool::new(false)).expect("seal");
    let value = rate(secs, 1, || assert!(verify_seal(&h).is_ok()));
    emit(&json!({"bench": "mq-verify", "unit": "verifications/s", "value": round(value), "threads": 1,
        "m": 32, "n": 40, "what": "seal: seed + expansion + evaluation + target", "sealed_with": solver.name(),
        "candidates_to_seal": sealed.candidates as f64}));
    // The same work at the largest size: expansion and evaluation of m = 64 (this solution
    // fails there, after the same steps a valid one takes).
    let mut big = h.clone();
    big.difficulty = Difficulty::new(64, 0).expect("difficulty").to_compact();
    let value = rate(secs, 1, || assert!(verify_seal(&big).is_err()));
    emit(&json!({"bench": "mq-verify", "unit": "verifications/s", "value": round(value), "threads": 1,
        "m": 64, "n": 72, "what": "seal at the largest size (expansion + evaluation)"}));
    let value = rate(secs, 1, || assert!(h.verify_ticket().is_ok()));
    emit(&json!({"bench": "mq-verify", "unit": "verifications/s", "value": round(value), "threads": 1,
        "what": "ticket (dual signature over the header pre-image)"}));
}

pub(crate) fn difficulty_sim() {
    let target = 1_000u64;
    for half_life_s in [120u64, 600, 3_600] {
        let anchor = AsertAnchor {
            height: 0,
            timestamp_ms: 0,
            difficulty: Difficulty::new(30, 0).expect("difficulty"),
            target_block_time_ms: target,
            half_life_ms: half_life_s * 1000,
        };
        let blocks = 100_000;
        let times = simulate(&anchor, blocks, half_life_s, |_| 2f64.powi(30) / target as f64);
        let mean = times.iter().sum::<f64>() / blocks as f64;
        let var = times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / blocks as f64;
        emit(
            &json!({"bench": "difficulty-sim", "unit": "ms", "value": round(mean), "stddev": round(var.sqrt()),
            "target_ms": target, "half_life_s": half_life_s, "blocks": blocks, "hashrate": "constant"}),
        );

        // A 10x hash-rate jump at block 20,000: blocks until a 200-block window averages
        // within 10% of the target again, in half-lives of schedule.
        let jump = 20_000;
        let times = simulate(&anchor, 60_000, half_life_s + 1, |h| {
            2f64.powi(30) / target as f64 * if h < jump { 1.0 } else { 10.0 }
        });
        let window = 200;
        let recovered = (jump..times.len() - window)
            .find(|&i| {
                let m = times[i..i + window].iter().sum::<f64>() / window as f64;
                (m - target as f64).abs() < 0.1 * target as f64
            })
            .map(|i| i - jump);
        let half_life_blocks = (half_life_s * 1000 / target) as f64;
        emit(&json!({"bench": "difficulty-sim", "unit": "half-lives", "hashrate": "10x jump",
            "value": recovered.map(|b| round(b as f64 / half_life_blocks)), "blocks": recovered,
            "half_life_s": half_life_s, "target_ms": target, "window": window}));
    }
}
