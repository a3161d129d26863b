//! AVX2 (32 lanes × 16 equations) and AVX-512BW (64 lanes × 16 equations) backends, chosen
//! at run time with `is_x86_feature_detected!`.

use crate::driver::Kernel;
use std::arch::x86_64::*;
use std::sync::atomic::AtomicBool;

/// AVX2 solver: 32 sub-systems in two 256-bit registers; the two halves are independent,
/// which hides the latency of the value chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Self(()))
    }
}

mod avx2 {
    use super::*;

    pub(super) type V = (__m256i, __m256i);

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn load(v: &[u16]) -> V {
        assert!(v.len() >= 32);
        (_mm256_loadu_si256(v.as_ptr().cast()), _mm256_loadu_si256(v[16..].as_ptr().cast()))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn splat(v: u16) -> V {
        let s = _mm256_set1_epi16(v as i16);
        (s, s)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn xor(a: V, b: V) -> V {
        (_mm256_xor_si256(a.0, b.0), _mm256_xor_si256(a.1, b.1))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn acc_init() -> V {
        splat(u16::MAX)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn acc(acc: V, f: V) -> V {
        (_mm256_min_epu16(acc.0, f.0), _mm256_min_epu16(acc.1, f.1))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hit(acc: V) -> bool {
        let m = _mm256_min_epu16(acc.0, acc.1);
        _mm256_movemask_epi8(_mm256_cmpeq_epi16(m, _mm256_setzero_si256())) != 0
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn zeros(f: V) -> u64 {
        let z = _mm256_setzero_si256();
        let lo = _mm256_movemask_epi8(_mm256_cmpeq_epi16(f.0, z)) as u32;
        let hi = _mm256_movemask_epi8(_mm256_cmpeq_epi16(f.1, z)) as u32;
        let m = u64::from(lo) | u64::from(hi) << 32;
        (0..32).filter(|lane| m >> (2 * lane) & 1 == 1).fold(0, |acc, lane| acc | 1 << lane)
    }

    gray_kernel_32!(#[target_feature(enable = "avx2")] pub(super) unsafe fn run: V, lanes = 32,
        load = load, splat = splat, xor = xor, acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);
}

impl Kernel for Avx2 {
    const NAME: &'static str = "avx2";
    const LANE_BITS: u32 = 5;
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

/// AVX-512 solver: 64 sub-systems in two 512-bit registers (needs AVX-512F and AVX-512BW);
/// the two halves are independent, which keeps both vector pipes busy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")).then_some(Self(()))
    }
}

mod avx512 {
    use super::*;

    pub(super) type V = (__m512i, __m512i);

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn load(v: &[u16]) -> V {
        assert!(v.len() >= 64);
        (_mm512_loadu_si512(v.as_ptr().cast()), _mm512_loadu_si512(v[32..].as_ptr().cast()))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn splat(v: u16) -> V {
        let s = _mm512_set1_epi16(v as i16);
        (s, s)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn xor(a: V, b: V) -> V {
        (_mm512_xor_si512(a.0, b.0), _mm512_xor_si512(a.1, b.1))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn acc_init() -> V {
        splat(u16::MAX)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn acc(acc: V, f: V) -> V {
        (_mm512_min_epu16(acc.0, f.0), _mm512_min_epu16(acc.1, f.1))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn hit(acc: V) -> bool {
        _mm512_cmpeq_epi16_mask(_mm512_min_epu16(acc.0, acc.1), _mm512_setzero_si512()) != 0
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn zeros(f: V) -> u64 {
        let z = _mm512_setzero_si512();
        u64::from(_mm512_cmpeq_epi16_mask(f.0, z)) | u64::from(_mm512_cmpeq_epi16_mask(f.1, z)) << 32
    }

    gray_kernel_32!(#[target_feature(enable = "avx512f,avx512bw")] pub(super) unsafe fn run: V, lanes = 64,
        load = load, splat = splat, xor = xor, acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);
}

impl Kernel for Avx512 {
    const NAME: &'static str = "avx512";
    const LANE_BITS: u32 = 6;
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
