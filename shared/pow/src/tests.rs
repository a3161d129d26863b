//! Tests of the puzzle, its verification and the difficulty rule.

use crate::*;
use alloy_primitives::{Address, B256};
use qoin_crypto::{Domain, Keypair};
use qoin_primitives::{Header, SOLUTION_LEN};

use crate::sim::{simulate, SimRng as Rng};

#[test]
fn compact_difficulty_round_trips_and_rejects_junk() {
    let d = Difficulty::new(33, 0x8000_0000).unwrap();
    assert_eq!(d.to_compact(), 0x21_8000_0000);
    assert_eq!(Difficulty::from_compact(d.to_compact()).unwrap(), d);
    assert!((d.log2_work() - (33.0 + 1.5f64.log2())).abs() < 1e-9);
    assert_eq!(d.work(), alloy_primitives::U256::from(3u64 << 31) << 33);
    assert_eq!(Difficulty::from_compact(1 << 40), Err(DifficultyError::Reserved(1 << 40)));
    assert_eq!(Difficulty::from_compact(7 << 32), Err(DifficultyError::EquationsOutOfRange(7)));
    assert_eq!(Difficulty::from_compact(65 << 32), Err(DifficultyError::EquationsOutOfRange(65)));
    assert!(Difficulty::MIN < d && d < Difficulty::MAX);
}

#[test]
fn target_accepts_one_in_f() {
    let mut rng = Rng(1);
    for (mantissa, f) in [(0u32, 1.0f64), (0x8000_0000, 1.5), (u32::MAX, 2.0)] {
        let d = Difficulty::new(20, mantissa).unwrap();
        let n = 40_000;
        let hits = (0..n)
            .filter(|_| {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
                d.accepts(&B256::from(h))
            })
            .count();
        let rate = hits as f64 / n as f64;
        assert!((rate - 1.0 / f).abs() < 0.01, "mantissa {mantissa:#x}: rate {rate}, want {}", 1.0 / f);
    }
}

/// The textbook definition, for comparison with the bit-sliced evaluator.
fn naive_eval(sys: &MqSystem, x: u128) -> u64 {
    let bit = |i: u32| (x >> i) & 1 == 1;
    let mut acc = sys.constant();
    for i in 0..sys.n() {
        if bit(i) {
            acc ^= sys.linear()[i as usize];
        }
        for j in i + 1..sys.n() {
            if bit(i) && bit(j) {
                acc ^= sys.quad_at(i, j);
            }
        }
    }
    acc
}

#[test]
fn expansion_is_deterministic_and_evaluation_matches_definition() {
    let seed = B256::repeat_byte(0x11);
    let a = MqSystem::from_seed(&seed, 20, 28);
    assert_eq!(a, MqSystem::from_seed(&seed, 20, 28));
    assert_ne!(a, MqSystem::from_seed(&B256::repeat_byte(0x12), 20, 28));
    assert!(a.linear().iter().chain(a.quad()).all(|w| w >> 20 == 0), "bits above m are zero");
    let mut rng = Rng(7);
    for _ in 0..200 {
        let x = u128::from(rng.next_u64()) & ((1 << 28) - 1);
        assert_eq!(a.eval(x), naive_eval(&a, x));
    }
    // Fixing the high variables gives a sub-system that agrees with the full one.
    let high = 0b1011_0101u128 << 20;
    let (c, lin) = a.fix_high(20, high);
    let quad = a.quad()[..20 * 19 / 2].to_vec();
    let sub = MqSystem::from_parts(20, 20, c, lin, quad);
    for _ in 0..200 {
        let lo = u128::from(rng.next_u64()) & ((1 << 20) - 1);
        assert_eq!(sub.eval(lo), a.eval(lo | high));
    }
}

/// Spec test vector (docs/spec.md §9): seed 0x11…11, m = 8, n = 16.
#[test]
fn spec_mq_vector() {
    let sys = MqSystem::from_seed(&B256::repeat_byte(0x11), 8, 16);
    let solutions: Vec<u128> = (0..1u128 << 16).filter(|&x| sys.eval(x) == 0).collect();
    let words = format!(
        "constant {:#04x}, x0 {:#04x}, x1 {:#04x}, x0x1 {:#04x}",
        sys.constant(),
        sys.linear()[0],
        sys.linear()[1],
        sys.quad()[0]
    );
    let first: Vec<String> = solutions.iter().take(4).map(|x| format!("{x:#06x}")).collect();
    let vector = format!("{words}; {} solutions, first {}", solutions.len(), first.join(" "));
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md")).unwrap();
    assert!(spec.contains(&vector), "docs/spec.md lacks the MQ vector: {vector}");
}

fn sealed_header(kp: &Keypair, d: Difficulty, extra_nonce: u64) -> Header {
    let mut h = Header {
        parent_hash: B256::repeat_byte(1),
        siblings: vec![],
        height: 1,
        timestamp_ms: 1_767_225_601_000,
        difficulty: d.to_compact(),
        payload_hash: B256::repeat_byte(4),
        state_root: B256::repeat_byte(5),
        transactions_root: B256::repeat_byte(6),
        coinbase: Address::repeat_byte(7),
        miner_keys: kp.public().clone(),
        extra_nonce,
        ticket: kp.sign(Domain::MiningTicket, b"x"),
        solution: [0; SOLUTION_LEN],
    };
    h.sign_ticket(kp).unwrap();
    h
}

/// Brute-force miner for tiny puzzles: every solution of the system, and whether it meets
/// the target.
fn all_solutions(h: &Header) -> Vec<(u128, bool)> {
    let d = Difficulty::from_compact(h.difficulty).unwrap();
    let seed = pow_seed(&h.seal_preimage().unwrap());
    let sys = MqSystem::from_seed(&seed, d.m(), d.n());
    (0..1u128 << d.n())
        .filter(|&x| sys.eval(x) == 0)
        .map(|x| (x, d.accepts(&solution_hash(&seed, &solution_to_bytes(x)))))
        .collect()
}

#[test]
fn seal_verification_accepts_only_real_solutions() {
    let kp = Keypair::from_seed(&[3; 32]);
    let d = Difficulty::new(8, u32::MAX).unwrap(); // f ≈ 2: about half the solutions pass
    let mut h = sealed_header(&kp, d, 0);
    let sols = all_solutions(&h);
    assert!(sols.len() > 100, "n = m + 8 gives about 256 solutions, got {}", sols.len());
    let good = sols.iter().find(|s| s.1).unwrap().0;
    let above = sols.iter().find(|s| !s.1).unwrap().0;

    h.solution = solution_to_bytes(good);
    verify_seal(&h).unwrap();
    h.verify_ticket().unwrap();

    h.solution = solution_to_bytes(above);
    assert_eq!(verify_seal(&h), Err(PowError::AboveTarget));

    let not = (0..1u128 << 16).find(|x| !sols.iter().any(|s| s.0 == *x)).unwrap();
    h.solution = solution_to_bytes(not);
    assert!(matches!(verify_seal(&h), Err(PowError::NotASolution { .. })));

    h.solution = solution_to_bytes(good | 1 << 16);
    assert_eq!(verify_seal(&h), Err(PowError::SolutionOutOfRange { n: 16 }));
    h.solution = solution_to_bytes(good | 1 << 127);
    assert_eq!(verify_seal(&h), Err(PowError::SolutionOutOfRange { n: 16 }));

    // A new extra nonce is a new puzzle: the old solution (almost surely) fails.
    let mut moved = h.clone();
    moved.solution = solution_to_bytes(good);
    moved.extra_nonce = 1;
    moved.verify_ticket().unwrap();
    assert!(verify_seal(&moved).is_err());

    h.difficulty = 1 << 40;
    assert!(matches!(verify_seal(&h), Err(PowError::Difficulty(_))));
}

#[test]
fn stolen_solution_fails_under_another_miner() {
    let miner = Keypair::from_seed(&[3; 32]);
    let thief = Keypair::from_seed(&[4; 32]);
    let d = Difficulty::new(8, 0).unwrap();
    let mut h = sealed_header(&miner, d, 0);
    h.solution = solution_to_bytes(all_solutions(&h).iter().find(|s| s.1).unwrap().0);
    verify_seal(&h).unwrap();
    // The thief re-signs the ticket with their own keys and coinbase: a different puzzle.
    let mut stolen = h;
    stolen.coinbase = Address::repeat_byte(0xee);
    stolen.sign_ticket(&thief).unwrap();
    stolen.verify_ticket().unwrap();
    assert!(verify_seal(&stolen).is_err());
}

// ---- difficulty adjustment ----

fn anchor(m: u32, target_ms: u64, half_life_ms: u64) -> AsertAnchor {
    AsertAnchor {
        height: 0,
        timestamp_ms: 1_000_000,
        difficulty: Difficulty::new(m, 0).unwrap(),
        target_block_time_ms: target_ms,
        half_life_ms,
    }
}

#[test]
fn asert_follows_the_schedule() {
    let a = anchor(30, 1_000, 60_000);
    // On schedule: unchanged.
    assert_eq!(next_difficulty(&a, 100, 1_000_000 + 100_000), a.difficulty);
    // One half-life ahead of schedule: doubles; one behind: halves.
    assert_eq!(next_difficulty(&a, 100, 1_000_000 + 100_000 - 60_000), Difficulty::new(31, 0).unwrap());
    assert_eq!(next_difficulty(&a, 100, 1_000_000 + 100_000 + 60_000), Difficulty::new(29, 0).unwrap());
    // Half a half-life ahead: ×√2 (mantissa ≈ 0.41421 · 2^32).
    let d = next_difficulty(&a, 100, 1_000_000 + 100_000 - 30_000);
    assert_eq!(d.m(), 30);
    assert!((d.log2_work() - 30.5).abs() < 1e-3, "{d}");
    // Far off: clamped.
    assert_eq!(next_difficulty(&a, 0, u64::MAX), Difficulty::MIN);
    assert_eq!(next_difficulty(&a, u64::MAX, 0), Difficulty::MAX);
}

#[test]
fn constant_hashrate_holds_the_target_block_time() {
    // 1 s target, 10-minute half-life, starting at the equilibrium difficulty.
    let a = anchor(30, 1_000, 600_000);
    let rate = 2f64.powi(30) / 1_000.0;
    let times = simulate(&a, 10_000, 42, |_| rate);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    assert!((mean - 1_000.0).abs() < 50.0, "mean block time {mean} ms");
}

#[test]
fn tenfold_hashrate_jump_returns_to_target() {
    let a = anchor(30, 1_000, 120_000);
    let rate = 2f64.powi(30) / 1_000.0;
    let jump = 3_000;
    let times = simulate(&a, 12_000, 7, |h| if h < jump { rate } else { 10.0 * rate });
    let mean = |r: std::ops::Range<usize>| times[r.clone()].iter().sum::<f64>() / r.len() as f64;
    // Right after the jump blocks come much faster...
    assert!(mean(jump..jump + 50) < 400.0, "{}", mean(jump..jump + 50));
    // ...and after four half-lives of schedule (480 blocks) the target is back.
    let after = mean(jump + 480..12_000);
    assert!((after - 1_000.0).abs() < 60.0, "mean after recovery {after} ms");
}

#[test]
fn timestamp_rules() {
    assert!(check_timestamp(1_000, 1_001, 1_000).is_ok());
    assert_eq!(
        check_timestamp(1_000, 1_000, 5_000),
        Err(TimeError::NotAfterParent { time_ms: 1_000, parent_ms: 1_000 })
    );
    assert!(matches!(check_timestamp(1_000, 900, 5_000), Err(TimeError::NotAfterParent { .. })));
    assert!(check_timestamp(1_000, 5_000 + MAX_FUTURE_DRIFT_MS, 5_000).is_ok());
    assert!(matches!(
        check_timestamp(1_000, 5_001 + MAX_FUTURE_DRIFT_MS, 5_000),
        Err(TimeError::InFuture { .. })
    ));
    assert!(check_timestamp(u64::MAX - 1, u64::MAX, u64::MAX).is_ok());
}
