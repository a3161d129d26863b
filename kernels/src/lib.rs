//! # qoin-kernels
//!
//! Will own the fast solvers of the MQ proof-of-work puzzle behind one `Solver` trait: a
//! portable Gray-code bitsliced exhaustive search, AVX2 / AVX-512 kernels chosen at run
//! time, and a CUDA kernel compiled at run time through NVRTC (loaded dynamically, so the
//! workspace builds and tests without CUDA).
//!
//! Nothing is implemented here yet; the puzzle itself is specified with the proof of work.
