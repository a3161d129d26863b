//! Every backend against brute force and against the portable solver; sealing; cancellation.

use crate::*;
use alloy_primitives::{Address, B256};
use qoin_pow::{verify_seal, Difficulty, MqSystem};
use qoin_primitives::Header;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn run_all(solver: &dyn Solver, sys: &MqSystem) -> Vec<u128> {
    let stop = AtomicBool::new(false);
    let report = solver.search(sys, &SearchControl { stop: &stop, accept: &|_| false });
    assert!(!report.stopped);
    assert_eq!(report.candidates, 1u128 << sys.n(), "{} must test every point", solver.name());
    let mut s = report.solutions;
    s.sort_unstable();
    s
}

fn brute(sys: &MqSystem) -> Vec<u128> {
    (0..1u128 << sys.n()).filter(|&x| sys.eval(x) == 0).collect()
}

#[test]
fn every_backend_finds_exactly_the_brute_force_solutions() {
    let solvers = available();
    println!("backends: {:?}", solvers.iter().map(|s| s.name()).collect::<Vec<_>>());
    for (seed, m, n) in [(1u8, 4, 10), (2, 8, 16), (3, 12, 20), (4, 14, 22), (5, 20, 22), (6, 2, 14)] {
        let sys = MqSystem::from_seed(&B256::repeat_byte(seed), m, n);
        let want = brute(&sys);
        assert!(!want.is_empty() || m > 10);
        for s in &solvers {
            assert_eq!(run_all(s.as_ref(), &sys), want, "{} on m={m} n={n}", s.name());
        }
    }
}

#[test]
fn backends_agree_with_the_portable_solver_on_larger_systems() {
    let solvers = available();
    for (seed, m, n) in [(7u8, 20, 28), (8, 24, 30)] {
        let sys = MqSystem::from_seed(&B256::repeat_byte(seed), m, n);
        let want = run_all(&Portable, &sys);
        assert!(want.len() > 50, "about 2^(n-m) solutions, got {}", want.len());
        for s in &solvers {
            assert_eq!(run_all(s.as_ref(), &sys), want, "{} on m={m} n={n}", s.name());
        }
    }
}

#[test]
fn a_hit_is_checked_against_the_whole_system() {
    // The driver checks a hit in the inner variables (the high ones fixed per lane and chunk):
    // the same value as the whole system's at the point.
    let sys = MqSystem::from_seed(&B256::repeat_byte(10), 40, 48);
    let mut x = 0x1234_5678_9abc_u64;
    for n_inner in [8, 9, 15, 16, 17, 23, 24] {
        for _ in 0..200 {
            // xorshift: points spread over the whole space
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let point = u128::from(x) & ((1u128 << 48) - 1);
            let (c, lin) = sys.fix_high(n_inner, point);
            let low = (point & ((1u128 << n_inner) - 1)) as u64;
            assert_eq!(
                crate::driver::eval_inner(c, &lin, sys.quad(), low),
                sys.eval(point),
                "n_inner {n_inner}"
            );
        }
    }
}

#[test]
fn accept_ends_the_search_early() {
    let sys = MqSystem::from_seed(&B256::repeat_byte(9), 16, 28);
    for s in available() {
        let stop = AtomicBool::new(false);
        let report = s.search(&sys, &SearchControl { stop: &stop, accept: &|_| true });
        let x = report.accepted.expect("a solution");
        assert_eq!(sys.eval(x), 0);
        assert!(report.stopped);
        assert!(report.candidates < 1 << 28, "{} kept searching after accepting", s.name());
    }
}

#[test]
fn seal_produces_headers_that_verify() {
    let kp = qoin_crypto::Keypair::from_seed(&[5; 32]);
    for s in available() {
        let mut h = Header {
            parent_hash: B256::repeat_byte(1),
            siblings: vec![],
            height: 9,
            timestamp_ms: 1_767_225_609_000,
            difficulty: Difficulty::new(18, 0x4000_0000).unwrap().to_compact(),
            payload_hash: B256::ZERO,
            state_root: B256::ZERO,
            transactions_root: B256::ZERO,
            coinbase: Address::repeat_byte(2),
            miner_keys: kp.public().clone(),
            extra_nonce: 0,
            ticket: kp.sign(qoin_crypto::Domain::MiningTicket, b""),
            solution: [0; 16],
        };
        h.sign_ticket(&kp).unwrap();
        let stop = AtomicBool::new(false);
        let sealed = seal(&mut h, s.as_ref(), &stop).unwrap();
        verify_seal(&h).unwrap();
        h.verify_ticket().unwrap();
        assert_eq!(h.extra_nonce, sealed.extra_nonce);
        assert!(sealed.candidates > 0);
    }
}

#[test]
fn stop_flag_cancels_a_long_search() {
    // n = 48: about 2.8·10^14 candidates, hours of work; the search must give up promptly.
    let sys = MqSystem::from_seed(&B256::repeat_byte(10), 40, 48);
    for s in available() {
        let stop = AtomicBool::new(false);
        let (report, latency) = std::thread::scope(|scope| {
            let handle = scope.spawn(|| s.search(&sys, &SearchControl { stop: &stop, accept: &|_| false }));
            std::thread::sleep(Duration::from_millis(30));
            let asked = Instant::now();
            stop.store(true, Ordering::Relaxed);
            let report = handle.join().unwrap();
            (report, asked.elapsed())
        });
        assert!(report.stopped, "{}", s.name());
        assert!(report.candidates < 1 << 44);
        // Loose bound so a loaded CI machine does not fail it; `qoin-bench mq-cancel` measures it.
        assert!(latency < Duration::from_secs(2), "{} took {latency:?} to stop", s.name());
    }
}

#[test]
fn cuda_kernel_compiles_with_nvrtc() {
    // CI installs NVRTC (no GPU needed to compile) and sets QOIN_REQUIRE_NVRTC so this test
    // cannot pass by skipping there.
    if !cuda::nvrtc_present() {
        assert!(std::env::var_os("QOIN_REQUIRE_NVRTC").is_none(), "NVRTC required but not found");
        eprintln!("skipped: NVRTC not found on this machine");
        return;
    }
    let ptx = cuda::compile_kernel().unwrap();
    assert!(ptx.to_src().contains(".entry mq_search"), "PTX lacks the kernel entry");
}

#[test]
fn cuda_is_offered_only_when_usable() {
    match cuda::Cuda::detect() {
        Ok(gpu) => {
            println!("CUDA device: {}", gpu.device());
            assert!(available().iter().any(|s| s.name() == "cuda"));
            assert_eq!(fastest().name(), "cuda");
        }
        Err(why) => {
            println!("no GPU backend: {why}");
            let (chosen, line) = choose();
            assert!(line.contains(chosen.name()) && line.contains(&why), "{line}");
            assert!(!why.is_empty());
            assert!(available().iter().all(|s| s.name() != "cuda"));
            assert_ne!(fastest().name(), "cuda");
        }
    }
}
