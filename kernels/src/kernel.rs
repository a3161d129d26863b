//! The Gray-code inner loop, generated once (by `build.rs`) and instantiated per backend.
//!
//! Points are visited in the order `gray(k) = k ^ (k >> 1)`; step `k` flips variable
//! `a = ctz(k)`. With `F` the value of the equations and `D[a]` the first derivative in
//! direction `a`, the step is `D[a] ^= C[a][b]; F ^= D[a]`, where `b` is the second-lowest set
//! bit of `k` (no update if there is none) and `C[a][b]` the quadratic coefficient of
//! `x_a x_b`. The loop is unrolled over blocks of 2^U steps: within a block the `(a, b)` pairs
//! are fixed except for `b` of the steps `k = 2^a + 2^U t` (a < U), which is `U + ctz(t)`;
//! `D[0..U]` stay in registers and zero tests are accumulated (lane minima) and examined once
//! per block. A block with a hit is undone and replayed step by step, out of line, to locate
//! it. `gray_kernel_16` has U = 4 and one accumulator (the portable backend), `gray_kernel_32`
//! U = 5 and two accumulators on alternate steps, so each chain of minima is half as long (the
//! SIMD backends); `build.rs` says why.

include!(concat!(env!("OUT_DIR"), "/gray_kernels.rs"));
