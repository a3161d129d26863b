//! The Gray-code inner loop, written once and instantiated per backend.
//!
//! Points are visited in the order `gray(k) = k ^ (k >> 1)`; step `k` flips variable
//! `a = ctz(k)`. With `F` the value of the equations and `D[a]` the first derivative in
//! direction `a`, the step is `D[a] ^= C[a][b]; F ^= D[a]`, where `b` is the second-lowest set
//! bit of `k` (no update if there is none) and `C[a][b]` the quadratic coefficient of
//! `x_a x_b`. The loop is unrolled by 16: within a block the `(a, b)` pairs are fixed except
//! for `b` of the steps `k ∈ {1, 2, 4, 8} + 16t`, which is `4 + ctz(t)`; `D[0..4]` stay in
//! registers and zero tests are accumulated (a lane minimum) and examined once per block. A
//! block with a hit is undone and replayed step by step to locate it.

/// Generates a kernel `unsafe fn(n_inner, f0, d0, quad, stop, hits) -> steps` from the
/// vector type and its operations (functions with the same target features).
macro_rules! gray_kernel {
    ($(#[$attr:meta])* $vis:vis unsafe fn $name:ident: $V:ty, lanes = $lanes:expr,
     load = $load:path, splat = $splat:path, xor = $xor:path, acc_init = $acc_init:path,
     acc = $acc:path, hit = $hit:path, zeros = $zeros:path $(,)?) => {
        $(#[$attr])*
        #[allow(clippy::too_many_lines, unused_unsafe)]
        $vis unsafe fn $name(
            n_inner: u32,
            f0: &[u16],
            d0: &[u16],
            quad: &[u16],
            stop: &::std::sync::atomic::AtomicBool,
            hits: &mut Vec<(u64, u64)>,
        ) -> u64 {
            use crate::driver::tri;
            let lanes: usize = $lanes;
            debug_assert!(n_inner >= crate::driver::MIN_INNER);
            let mut d: Vec<$V> = Vec::with_capacity(n_inner as usize);
            for a in 0..n_inner as usize {
                d.push($load(&d0[a * lanes..(a + 1) * lanes]));
            }
            let mut f = $load(&f0[..lanes]);
            let z = $zeros(f);
            if z != 0 {
                hits.push((0, z));
            }
            let c = |i: u32, j: u32| quad[tri(i, j)];
            let zero = $splat(0);
            let (c01, c02, c12) = ($splat(c(0, 1)), $splat(c(0, 2)), $splat(c(1, 2)));
            let (c03, c13, c23) = ($splat(c(0, 3)), $splat(c(1, 3)), $splat(c(2, 3)));
            // The second derivatives met at steps k ∈ {1, 2, 4, 8} + 16t, by ctz(t).
            let mut dynamic: Vec<[$V; 4]> = Vec::with_capacity(n_inner as usize - 4);
            for b in 4..n_inner {
                dynamic.push([$splat(c(0, b)), $splat(c(1, b)), $splat(c(2, b)), $splat(c(3, b))]);
            }
            let (mut d0r, mut d1r, mut d2r, mut d3r) = (d[0], d[1], d[2], d[3]);
            let blocks = 1u64 << (n_inner - 4);
            let mut t = 0u64;
            while t < blocks {
                let base = t << 4;
                let [cd0, cd1, cd2, cd3] = if t == 0 { [zero; 4] } else { dynamic[t.trailing_zeros() as usize] };
                let mut acc = $acc_init();
                d0r = $xor(d0r, cd0);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d1r = $xor(d1r, cd1);
                f = $xor(f, d1r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c01);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d2r = $xor(d2r, cd2);
                f = $xor(f, d2r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c02);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d1r = $xor(d1r, c12);
                f = $xor(f, d1r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c01);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d3r = $xor(d3r, cd3);
                f = $xor(f, d3r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c03);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d1r = $xor(d1r, c13);
                f = $xor(f, d1r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c01);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d2r = $xor(d2r, c23);
                f = $xor(f, d2r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c02);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                d1r = $xor(d1r, c12);
                f = $xor(f, d1r);
                acc = $acc(acc, f);
                d0r = $xor(d0r, c01);
                f = $xor(f, d0r);
                acc = $acc(acc, f);
                if $hit(acc) {
                    // Undo the block (each step is an XOR, its own inverse) to get back to its
                    // start, then replay it step by step. black_box keeps the compiler from
                    // instead storing every step of the main pass for reuse here.
                    let (mut rf, mut r0, mut r1, mut r2, mut r3) = ::std::hint::black_box((f, d0r, d1r, d2r, d3r));
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r1);
                    r1 = $xor(r1, c12);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c02);
                    rf = $xor(rf, r2);
                    r2 = $xor(r2, c23);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r1);
                    r1 = $xor(r1, c13);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c03);
                    rf = $xor(rf, r3);
                    r3 = $xor(r3, cd3);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r1);
                    r1 = $xor(r1, c12);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c02);
                    rf = $xor(rf, r2);
                    r2 = $xor(r2, cd2);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r1);
                    r1 = $xor(r1, cd1);
                    rf = $xor(rf, r0);
                    r0 = $xor(r0, cd0);
                    r0 = $xor(r0, cd0);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 1, z));
                    }
                    r1 = $xor(r1, cd1);
                    rf = $xor(rf, r1);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 2, z));
                    }
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 3, z));
                    }
                    r2 = $xor(r2, cd2);
                    rf = $xor(rf, r2);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 4, z));
                    }
                    r0 = $xor(r0, c02);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 5, z));
                    }
                    r1 = $xor(r1, c12);
                    rf = $xor(rf, r1);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 6, z));
                    }
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 7, z));
                    }
                    r3 = $xor(r3, cd3);
                    rf = $xor(rf, r3);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 8, z));
                    }
                    r0 = $xor(r0, c03);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 9, z));
                    }
                    r1 = $xor(r1, c13);
                    rf = $xor(rf, r1);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 10, z));
                    }
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 11, z));
                    }
                    r2 = $xor(r2, c23);
                    rf = $xor(rf, r2);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 12, z));
                    }
                    r0 = $xor(r0, c02);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 13, z));
                    }
                    r1 = $xor(r1, c12);
                    rf = $xor(rf, r1);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 14, z));
                    }
                    r0 = $xor(r0, c01);
                    rf = $xor(rf, r0);
                    let z = $zeros(rf);
                    if z != 0 {
                        hits.push((base + 15, z));
                    }
                    let _ = (r0, r1, r2, r3);
                }
                if t + 1 < blocks {
                    let k = base + 16;
                    let a = k.trailing_zeros() as usize;
                    let rest = k & (k - 1);
                    if rest != 0 {
                        d[a] = $xor(d[a], $splat(c(a as u32, rest.trailing_zeros())));
                    }
                    f = $xor(f, d[a]);
                    let z = $zeros(f);
                    if z != 0 {
                        hits.push((k, z));
                    }
                }
                t += 1;
                if t & 4095 == 0 && stop.load(::std::sync::atomic::Ordering::Relaxed) {
                    return t << 4;
                }
            }
            blocks << 4
        }
    };
}
