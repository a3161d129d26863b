//! The search driver shared by all backends: splits the variables into chunk, lane and
//! inner (Gray-code) parts, runs chunks on rayon, checks survivors against the full system.

use qoin_pow::MqSystem;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How a search is steered.
pub struct SearchControl<'a> {
    /// Set to stop the search (e.g. a new head arrived); polled every 65,536 steps.
    pub stop: &'a AtomicBool,
    /// Called with each solution; returning `true` ends the search.
    pub accept: &'a (dyn Fn(u128) -> bool + Sync),
}

/// What a search did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReport {
    /// The solution `accept` took, if any.
    pub accepted: Option<u128>,
    /// Every solution found (in no particular order).
    pub solutions: Vec<u128>,
    /// Candidates tested.
    pub candidates: u128,
    /// Whether the search ended early (accepted solution or stop flag).
    pub stopped: bool,
}

/// One backend's inner loop: Gray-code enumeration of `2^n_inner` points for `2^LANE_BITS`
/// lanes at once.
pub(crate) trait Kernel: Send + Sync {
    /// The backend's name, e.g. `"avx2"`.
    const NAME: &'static str;
    /// log2 of the lane count.
    const LANE_BITS: u32;

    /// Enumerates `k = 0 .. 2^n_inner` (point `gray(k)`), starting from the lanes' values
    /// `f0[lane]` at point 0 and first derivatives `d0[a * lanes + lane]`, with shared
    /// second derivatives `quad[j(j-1)/2 + i]` (first 16 equations). Pushes `(k, lane mask)`
    /// for every step at which some lane's 16 equations are all zero. Returns the steps run
    /// (fewer than `2^n_inner` if `stop` was seen).
    fn run(
        n_inner: u32,
        f0: &[u16],
        d0: &[u16],
        quad: &[u16],
        stop: &AtomicBool,
        hits: &mut Vec<(u64, u64)>,
    ) -> u64;
}

/// Smallest inner part the blocked kernels handle.
pub(crate) const MIN_INNER: u32 = 8;
/// Largest inner part: a chunk is then 2^24 steps (≈ 16 ms on AVX-512), so a solution is
/// offered to `accept` soon after it is found.
const MAX_INNER: u32 = 24;
/// Target number of chunks, for balance across threads.
const CHUNK_BITS: u32 = 6;

pub(crate) const fn gray(k: u64) -> u64 {
    k ^ (k >> 1)
}

/// Index of `x_i x_j` (`i < j`) in a triangular quadratic table.
pub(crate) const fn tri(i: u32, j: u32) -> usize {
    (j as usize * (j as usize - 1)) / 2 + i as usize
}

/// Runs kernel `K` over the whole space of `sys`.
pub(crate) fn drive<K: Kernel>(sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
    let n = sys.n();
    if n < K::LANE_BITS + MIN_INNER {
        return exhaustive(sys, ctl);
    }
    let free = n - K::LANE_BITS;
    let n_inner = free.saturating_sub(CHUNK_BITS).clamp(MIN_INNER, MAX_INNER);
    let n_outer = free - n_inner;
    let lanes = 1usize << K::LANE_BITS;
    let quad_full = &sys.quad()[..tri(0, n_inner)];
    let quad: Vec<u16> = quad_full.iter().map(|&w| w as u16).collect();

    let done = AtomicBool::new(false);
    let candidates = AtomicU64::new(0);
    let solutions = Mutex::new(Vec::new());
    let accepted = Mutex::new(None);
    let halt = || done.load(Ordering::Relaxed) || ctl.stop.load(Ordering::Relaxed);

    (0..1u64 << n_outer).into_par_iter().for_each(|chunk| {
        if halt() {
            return;
        }
        let mut f0 = vec![0u16; lanes];
        let mut d0 = vec![0u16; n_inner as usize * lanes];
        let high_of =
            |lane: usize| ((lane as u128) << n_inner) | (u128::from(chunk) << (n_inner + K::LANE_BITS));
        // Each lane's sub-system in the inner variables, all equations: a hit is checked
        // against it (the same values as `sys.eval` at the full point, a fraction of the work).
        let mut subs = Vec::with_capacity(lanes);
        for (lane, f) in f0.iter_mut().enumerate() {
            let (c, lin) = sys.fix_high(n_inner, high_of(lane));
            *f = c as u16;
            for a in 0..n_inner {
                let second = if a == 0 { 0 } else { sys.quad_at(a - 1, a) };
                d0[a as usize * lanes + lane] = (lin[a as usize] ^ second) as u16;
            }
            subs.push((c, lin));
        }
        let mut hits = Vec::new();
        let steps = K::run(n_inner, &f0, &d0, &quad, ctl.stop, &mut hits);
        candidates.fetch_add(steps * lanes as u64, Ordering::Relaxed);
        for (k, mask) in hits {
            let mut m = mask;
            while m != 0 {
                let lane = m.trailing_zeros() as usize;
                m &= m - 1;
                let (c, lin) = &subs[lane];
                if eval_inner(*c, lin, quad_full, gray(k)) == 0 {
                    let x = u128::from(gray(k)) | high_of(lane);
                    if let Ok(mut s) = solutions.lock() {
                        s.push(x);
                    }
                    if !done.load(Ordering::Relaxed) && (ctl.accept)(x) {
                        done.store(true, Ordering::Relaxed);
                        if let Ok(mut a) = accepted.lock() {
                            a.get_or_insert(x);
                        }
                    }
                }
            }
        }
    });
    let stopped = halt();
    SearchReport {
        accepted: accepted.into_inner().unwrap_or(None),
        solutions: solutions.into_inner().unwrap_or_default(),
        candidates: u128::from(candidates.into_inner()),
        stopped,
    }
}

/// Evaluates a lane's sub-system in the inner variables (constant `c`, linear words `lin`,
/// the shared quadratic words `quad` in the triangular order of [`tri`]) at `x`: the value
/// `MqSystem::eval` gives at the full point. A hit of the 16-equation inner loop comes about
/// 2^-16 per candidate, over a million times a second on an AVX-512 core, and each is checked
/// against every equation: evaluating the whole 48-variable system took a tenth of the
/// search's time, this a third of that (`qoin-bench mq-search`, Zen 5). Tables of the
/// quadratic part by bytes of the point were tried and gained 1%, within the noise.
pub(crate) fn eval_inner(c: u64, lin: &[u64], quad: &[u64], x: u64) -> u64 {
    let mut acc = c;
    let mut bits = x;
    while bits != 0 {
        let j = bits.trailing_zeros();
        bits &= bits - 1;
        acc ^= lin[j as usize];
        let mut lower = x & ((1u64 << j) - 1);
        while lower != 0 {
            let i = lower.trailing_zeros();
            lower &= lower - 1;
            acc ^= quad[tri(i, j)];
        }
    }
    acc
}

/// Plain evaluation of every point: for systems too small to split into lanes.
pub(crate) fn exhaustive(sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
    let mut report = SearchReport::default();
    for x in 0..1u128 << sys.n() {
        if ctl.stop.load(Ordering::Relaxed) {
            report.stopped = true;
            break;
        }
        report.candidates += 1;
        if sys.eval(x) == 0 {
            report.solutions.push(x);
            if (ctl.accept)(x) {
                report.accepted = Some(x);
                report.stopped = true;
                break;
            }
        }
    }
    report
}

impl<K: Kernel> crate::Solver for K {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn lanes(&self) -> u32 {
        1 << K::LANE_BITS
    }
    fn search(&self, sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
        drive::<K>(sys, ctl)
    }
}
