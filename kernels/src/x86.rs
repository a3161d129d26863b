//! AVX2 (16 lanes × 16 equations) and AVX-512BW (32 lanes × 16 equations) backends, chosen
//! at run time with `is_x86_feature_detected!`.

use crate::driver::{drive, Kernel, SearchControl, SearchReport};
use crate::Solver;
use qoin_pow::MqSystem;
use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

/// AVX2 solver: 16 sub-systems per 256-bit register.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Self(()))
    }
}

mod avx2 {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn load(v: &[u16]) -> __m256i {
        assert!(v.len() >= 16);
        _mm256_loadu_si256(v.as_ptr().cast())
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn splat(v: u16) -> __m256i {
        _mm256_set1_epi16(v as i16)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn xor(a: __m256i, b: __m256i) -> __m256i {
        _mm256_xor_si256(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn acc_init() -> __m256i {
        _mm256_set1_epi16(-1)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn acc(acc: __m256i, f: __m256i) -> __m256i {
        _mm256_min_epu16(acc, f)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hit(acc: __m256i) -> bool {
        _mm256_movemask_epi8(_mm256_cmpeq_epi16(acc, _mm256_setzero_si256())) != 0
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn zeros(f: __m256i) -> u64 {
        let m = _mm256_movemask_epi8(_mm256_cmpeq_epi16(f, _mm256_setzero_si256())) as u32;
        (0..16).filter(|lane| m >> (2 * lane) & 1 == 1).fold(0, |acc, lane| acc | 1 << lane)
    }

    gray_kernel!(#[target_feature(enable = "avx2")] pub(super) unsafe fn run: __m256i, lanes = 16,
        load = load, splat = splat, xor = xor, acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);
}

impl Kernel for Avx2 {
    const LANE_BITS: u32 = 4;
    fn run(
        n_inner: u32,
        f0: &[u16],
        d0: &[u16],
        quad: &[u16],
        stop: &AtomicBool,
        hits: &mut Vec<(u64, u64)>,
    ) -> u64 {
        // SAFETY: an `Avx2` value exists only after `detect` saw AVX2 on this CPU.
        unsafe { avx2::run(n_inner, f0, d0, quad, stop, hits) }
    }
}

impl Solver for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }
    fn lanes(&self) -> u32 {
        16
    }
    fn search(&self, sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
        drive::<Self>(sys, ctl)
    }
}

/// AVX-512 solver: 32 sub-systems per 512-bit register (needs AVX-512F and AVX-512BW).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")).then_some(Self(()))
    }
}

mod avx512 {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn load(v: &[u16]) -> __m512i {
        assert!(v.len() >= 32);
        _mm512_loadu_si512(v.as_ptr().cast())
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn splat(v: u16) -> __m512i {
        _mm512_set1_epi16(v as i16)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn xor(a: __m512i, b: __m512i) -> __m512i {
        _mm512_xor_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn acc_init() -> __m512i {
        _mm512_set1_epi16(-1)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn acc(acc: __m512i, f: __m512i) -> __m512i {
        _mm512_min_epu16(acc, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn hit(acc: __m512i) -> bool {
        _mm512_cmpeq_epi16_mask(acc, _mm512_setzero_si512()) != 0
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn zeros(f: __m512i) -> u64 {
        u64::from(_mm512_cmpeq_epi16_mask(f, _mm512_setzero_si512()))
    }

    gray_kernel!(#[target_feature(enable = "avx512f,avx512bw")] pub(super) unsafe fn run: __m512i, lanes = 32,
        load = load, splat = splat, xor = xor, acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);
}

impl Kernel for Avx512 {
    const LANE_BITS: u32 = 5;
    fn run(
        n_inner: u32,
        f0: &[u16],
        d0: &[u16],
        quad: &[u16],
        stop: &AtomicBool,
        hits: &mut Vec<(u64, u64)>,
    ) -> u64 {
        // SAFETY: an `Avx512` value exists only after `detect` saw AVX-512F/BW on this CPU.
        unsafe { avx512::run(n_inner, f0, d0, quad, stop, hits) }
    }
}

impl Solver for Avx512 {
    fn name(&self) -> &'static str {
        "avx512"
    }
    fn lanes(&self) -> u32 {
        32
    }
    fn search(&self, sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
        drive::<Self>(sys, ctl)
    }
}
