//! AVX2 (32 lanes × 16 equations) and AVX-512BW (64 lanes × 16 equations) backends, chosen
//! at run time with `is_x86_feature_detected!`. AVX2 runs the generated intrinsics kernel of
//! `kernel.rs`; AVX-512 runs a generated assembly kernel (`avx512x2_chunk` in `build.rs` says
//! why) and the intrinsics one only for inner parts too small for it.

use crate::driver::{tri, Kernel};
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

    gray_kernel_32!(#[target_feature(enable = "avx512f,avx512bw")] pub(super) unsafe fn run_blocks: V, lanes = 64,
        load = load, splat = splat, xor = xor, acc_init = acc_init, acc = acc, hit = hit, zeros = zeros);

    /// Steps per call of the assembly kernel (`AVX512_L` in `build.rs`).
    const L: u32 = 8;

    /// A step with a zero lane, as the assembly kernel writes it: the step within the call,
    /// and the lanes (bit `i` for lane `i`; the low half's mask, then the high half's).
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Hit {
        step: u64,
        mask: u64,
    }

    std::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/avx512x2_chunk.s")), options(att_syntax));

    unsafe extern "sysv64" {
        /// 2^L steps; see `avx512x2_chunk` in `build.rs` for the arguments.
        fn qoin_mq_avx512x2_chunk(
            fq: *const u8,
            fl: *mut u8,
            alpha: u64,
            beta: u64,
            gamma: u64,
            out: *mut Hit,
        ) -> *mut Hit;
    }

    /// The kernel: the assembly one over calls of 2^L steps when the inner part has at least
    /// L variables, else the intrinsics one over blocks of 32 steps.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn run(
        n_inner: u32,
        f0: &[u16],
        d0: &[u16],
        quad: &[u16],
        stop: &AtomicBool,
        hits: &mut Vec<(u64, u64)>,
    ) -> u64 {
        if n_inner < L {
            return run_blocks(n_inner, f0, d0, quad, stop, hits);
        }
        let n = n_inner as usize;
        // F, D[0..n], and a pair the last call's last step may write (D[n_inner]).
        let mut fl: Vec<__m512i> = Vec::with_capacity(2 * (n + 2));
        fl.push(_mm512_loadu_si512(f0.as_ptr().cast()));
        fl.push(_mm512_loadu_si512(f0[32..64].as_ptr().cast()));
        for a in 0..n {
            let d = &d0[a * 64..(a + 1) * 64];
            fl.push(_mm512_loadu_si512(d.as_ptr().cast()));
            fl.push(_mm512_loadu_si512(d[32..].as_ptr().cast()));
        }
        fl.extend([_mm512_setzero_si512(); 2]);
        // Second derivatives x_i x_j for j < n_inner, splat; then the row j = n_inner, zeros:
        // the second derivative of a step without a second set bit (no update).
        let zero_row = tri(0, n_inner) as u64;
        let mut fq: Vec<__m512i> =
            quad[..zero_row as usize].iter().map(|&c| _mm512_set1_epi16(c as i16)).collect();
        fq.resize(tri(0, n_inner + 1), _mm512_setzero_si512());
        let calls = 1u64 << (n_inner - L);
        let mut buf = [Hit::default(); 1 << L];
        let mut j = 0u64;
        while j < calls {
            // The call's steps with no set bit below L have their second bit at L + ctz(j).
            let alpha = if j == 0 { zero_row } else { tri(0, L + j.trailing_zeros()) as u64 };
            // Its last step, k = (j + 1) 2^L, flips D[L + ctz(j + 1)] (the spare pair after
            // the last call) after adding x_a x_b for b its next set bit, if any.
            let next = j + 1;
            let a = L + next.trailing_zeros();
            let rest = next & j;
            let gamma =
                if rest == 0 || a >= n_inner { zero_row } else { tri(a, L + rest.trailing_zeros()) as u64 };
            let beta = u64::from(a.min(n_inner)) + 1;
            let end = qoin_mq_avx512x2_chunk(
                fq.as_ptr().cast(),
                fl.as_mut_ptr().cast(),
                alpha,
                beta,
                gamma,
                buf.as_mut_ptr(),
            );
            let found = end.offset_from(buf.as_ptr()) as usize;
            for h in &buf[..found] {
                hits.push(((j << L) + h.step, h.mask));
            }
            j += 1;
            if j & 1023 == 0 && stop.load(::std::sync::atomic::Ordering::Relaxed) {
                return j << L;
            }
        }
        calls << L
    }
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
