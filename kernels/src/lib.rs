//! # qoin-kernels
//!
//! Owns the fast solvers of the MQ proof-of-work puzzle (`qoin-pow`), behind one [`Solver`]
//! trait, and [`seal`], which mines a header with one of them.
//!
//! Every solver is the fast exhaustive search of Bouillaguet et al. (CHES 2010): the
//! variables are enumerated in Gray-code order, so each step flips one variable and updates
//! the value of all equations with two XORs of bit-sliced words (the first derivative, then
//! the value), and tests it for zero. The top variables are fixed per *chunk* (chunks run on
//! all cores with rayon) and the next few per *lane* (SIMD lanes run sub-systems that share
//! their quadratic part; the SIMD backends run two independent registers of lanes, which
//! hides the latency of the value chain). The inner loop tests the first 16 equations; the
//! rare survivors are checked against the whole system.
//!
//! | backend | lanes × equations | chosen when |
//! |---|---|---|
//! | [`Portable`] | 4 × 16 in a `u64` (SWAR) | always available |
//! | `Avx2` | 32 × 16 in two 256-bit registers | the CPU has AVX2 (run-time detection) |
//! | `Avx512` | 64 × 16 in two 512-bit registers (generated assembly) | the CPU has AVX-512F and AVX-512BW |
//! | [`cuda::Cuda`] | 262,144 threads × 32 equations | a CUDA device, driver and NVRTC are present |
//!
//! [`available`] lists the backends this CPU runs and [`fastest`] picks one. A search is
//! cancellable: it polls a stop flag every 65,536 steps of each thread.

#[macro_use]
mod kernel;
pub mod cuda;
mod driver;
mod portable;
mod seal;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use driver::{SearchControl, SearchReport};
pub use portable::Portable;
pub use seal::{seal, SealError, Sealed};

use qoin_pow::MqSystem;

/// A solver of MQ systems over GF(2).
pub trait Solver: Send + Sync {
    /// Short name, e.g. `"avx2"`.
    fn name(&self) -> &'static str;

    /// Candidates tested per inner-loop step.
    fn lanes(&self) -> u32;

    /// Enumerates the solutions of `sys`. Each solution found is offered to
    /// `ctl.accept`; the search stops when that returns `true` or when `ctl.stop` is set.
    /// Without either, every solution is reported.
    fn search(&self, sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport;
}

/// The solvers this machine can run, fastest last: the CPU backends, then the GPU if a CUDA
/// device, its driver and NVRTC are present.
pub fn available() -> Vec<Box<dyn Solver>> {
    let mut v = available_cpu();
    if let Ok(gpu) = cuda::Cuda::detect() {
        v.push(Box::new(gpu));
    }
    v
}

/// The fastest solver and a line saying what was chosen and why, for the miner's log, e.g.
/// `"MQ solver: avx512 (CPU backends: portable, avx2, avx512; GPU: CUDA driver (libcuda) not found)"`.
pub fn choose() -> (Box<dyn Solver>, String) {
    let cpu = available_cpu();
    let names: Vec<&str> = cpu.iter().map(|s| s.name()).collect();
    let names = names.join(", ");
    match cuda::Cuda::detect() {
        Ok(gpu) => {
            let line = format!("MQ solver: cuda on {} (CPU backends: {names})", gpu.device());
            (Box::new(gpu), line)
        }
        Err(why) => {
            let best = fastest_cpu();
            let line = format!("MQ solver: {} (CPU backends: {names}; GPU: {why})", best.name());
            (best, line)
        }
    }
}

/// The fastest CPU backend.
pub fn fastest_cpu() -> Box<dyn Solver> {
    available_cpu().pop().unwrap_or_else(|| Box::new(Portable))
}

/// The CPU backends this machine runs, fastest last.
pub fn available_cpu() -> Vec<Box<dyn Solver>> {
    let mut v: Vec<Box<dyn Solver>> = vec![Box::new(Portable)];
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(s) = x86::Avx2::detect() {
            v.push(Box::new(s));
        }
        if let Some(s) = x86::Avx512::detect() {
            v.push(Box::new(s));
        }
    }
    v
}

/// The fastest solver this machine can run (the GPU when present).
pub fn fastest() -> Box<dyn Solver> {
    available().pop().unwrap_or_else(|| Box::new(Portable))
}

#[cfg(test)]
mod tests;
