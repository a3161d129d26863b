//! The portable backend: 4 lanes × 16 equations packed in a `u64` (SWAR), for any CPU.

use crate::driver::Kernel;
use std::sync::atomic::AtomicBool;

/// Portable solver: pure Rust, no SIMD instructions, all cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable;

const ONES: u64 = 0x0001_0001_0001_0001;
const HIGHS: u64 = 0x8000_8000_8000_8000;

#[inline(always)]
fn load(v: &[u16]) -> u64 {
    v.iter().enumerate().fold(0, |acc, (i, &w)| acc | (u64::from(w) << (16 * i)))
}
#[inline(always)]
fn splat(v: u16) -> u64 {
    u64::from(v) * ONES
}
#[inline(always)]
fn xor(a: u64, b: u64) -> u64 {
    a ^ b
}
#[inline(always)]
fn acc_init() -> u64 {
    0
}
/// ORs in "some 16-bit lane of `f` is zero" (exact for presence; which lane is found later).
#[inline(always)]
fn acc(acc: u64, f: u64) -> u64 {
    acc | (f.wrapping_sub(ONES) & !f & HIGHS)
}
#[inline(always)]
fn hit(acc: u64) -> bool {
    acc != 0
}
#[inline(always)]
fn zeros(f: u64) -> u64 {
    (0..4).filter(|lane| (f >> (16 * lane)) & 0xffff == 0).fold(0, |m, lane| m | 1 << lane)
}

gray_kernel_16!(unsafe fn run_portable: u64, lanes = 4, load = load, splat = splat, xor = xor,
    acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);

impl Kernel for Portable {
    const NAME: &'static str = "portable";
    const LANE_BITS: u32 = 2;
    fn run(
        n_inner: u32,
        f0: &[u16],
        d0: &[u16],
        quad: &[u16],
        stop: &AtomicBool,
        hits: &mut Vec<(u64, u64)>,
    ) -> u64 {
        // SAFETY: plain integer code; `unsafe` only because the macro serves SIMD backends too.
        unsafe { run_portable(n_inner, f0, d0, quad, stop, hits) }
    }
}
