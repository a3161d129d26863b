//! The CUDA backend: a kernel compiled at run time with NVRTC and launched through the CUDA
//! driver API, both loaded dynamically (cudarc's `dynamic-loading`), so the workspace builds
//! and runs where CUDA is absent; [`Cuda::detect`] then says why it is unavailable.
//!
//! Each GPU thread owns one sub-system (its `LANE_BITS` variables above the inner ones are
//! fixed by its index, the variables above those by the launch's chunk), derives its own
//! starting value and first derivatives from the full system, and enumerates the inner
//! variables in Gray-code order on 32-bit words (the first 32 equations). Hits go to a
//! buffer the host reads after each launch and checks against the whole system.

use crate::driver::{exhaustive, gray, SearchControl, SearchReport};
use crate::Solver;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use qoin_pow::MqSystem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The kernel's CUDA C source, compiled by NVRTC when the solver starts.
pub const KERNEL_SOURCE: &str = r#"
extern "C" __global__ void mq_search(
    const unsigned int* __restrict__ lin,
    const unsigned int* __restrict__ quad,
    unsigned int constant,
    unsigned int n,
    unsigned int n_inner,
    unsigned int lane_bits,
    unsigned long long chunk,
    unsigned long long* __restrict__ hits,
    unsigned int* __restrict__ hit_count,
    unsigned int max_hits)
{
    unsigned int lane = blockIdx.x * blockDim.x + threadIdx.x;
    if (lane >= (1u << lane_bits)) return;
    unsigned long long high = (unsigned long long)lane | (chunk << lane_bits);
    unsigned int d[32];
    unsigned int f = constant;
    for (unsigned int j = n_inner; j < n; j++) {
        if ((high >> (j - n_inner)) & 1ull) {
            f ^= lin[j];
            for (unsigned int i = n_inner; i < j; i++) {
                if ((high >> (i - n_inner)) & 1ull) f ^= quad[j * (j - 1) / 2 + i];
            }
        }
    }
    for (unsigned int a = 0; a < n_inner; a++) {
        unsigned int w = lin[a];
        for (unsigned int j = n_inner; j < n; j++) {
            if ((high >> (j - n_inner)) & 1ull) w ^= quad[j * (j - 1) / 2 + a];
        }
        if (a > 0) w ^= quad[a * (a - 1) / 2 + a - 1];
        d[a] = w;
    }
    if (f == 0) {
        unsigned int slot = atomicAdd(hit_count, 1u);
        if (slot < max_hits) { hits[2 * slot] = lane; hits[2 * slot + 1] = 0; }
    }
    unsigned long long steps = 1ull << n_inner;
    for (unsigned long long k = 1; k < steps; k++) {
        unsigned int a = __ffsll((long long)k) - 1;
        unsigned long long rest = k & (k - 1);
        if (rest) {
            unsigned int b = __ffsll((long long)rest) - 1;
            d[a] ^= __ldg(&quad[b * (b - 1) / 2 + a]);
        }
        f ^= d[a];
        if (f == 0) {
            unsigned int slot = atomicAdd(hit_count, 1u);
            if (slot < max_hits) { hits[2 * slot] = lane; hits[2 * slot + 1] = k; }
        }
    }
}
"#;

/// Variables fixed per GPU thread: 2^18 threads per launch, enough to fill a large GPU.
const LANE_BITS: u32 = 18;
/// Most inner variables per thread (the kernel's derivative array holds 32): a launch is then
/// 2^34 candidates, tens of milliseconds, so the stop flag and solutions are seen promptly.
const MAX_INNER: u32 = 16;
/// Hit slots per launch; survivors of 32 equations are rare (2^-32 per candidate).
const MAX_HITS: u32 = 4096;
const THREADS_PER_BLOCK: u32 = 256;

/// Whether NVRTC (the run-time CUDA compiler) can be loaded on this machine.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles [`KERNEL_SOURCE`] to PTX (needs NVRTC, not a GPU).
pub fn compile_kernel() -> Result<cudarc::nvrtc::Ptx, String> {
    if !nvrtc_present() {
        return Err("NVRTC (libnvrtc) not found".into());
    }
    cudarc::nvrtc::compile_ptx(KERNEL_SOURCE).map_err(|e| format!("NVRTC could not compile the kernel: {e}"))
}

/// The CUDA solver on device 0.
pub struct Cuda {
    device: String,
    stream: Arc<CudaStream>,
    function: CudaFunction,
    // One search at a time per device.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cuda({})", self.device)
    }
}

impl Cuda {
    /// Loads the driver and NVRTC, opens device 0 and compiles the kernel; the error says
    /// which step failed.
    pub fn detect() -> Result<Self, String> {
        // SAFETY: only tries to open the shared library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err("CUDA driver (libcuda) not found".into());
        }
        let ptx = compile_kernel()?;
        let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device: {e}"))?;
        let device = ctx.name().unwrap_or_else(|_| "CUDA device 0".into());
        let module = ctx.load_module(ptx).map_err(|e| format!("cannot load the kernel: {e}"))?;
        let function = module.load_function("mq_search").map_err(|e| format!("kernel entry missing: {e}"))?;
        Ok(Self { device, stream: ctx.default_stream(), function, busy: Mutex::new(()) })
    }

    /// The device's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn run(
        &self,
        sys: &MqSystem,
        ctl: &SearchControl<'_>,
    ) -> Result<SearchReport, cudarc::driver::DriverError> {
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let n = sys.n();
        let free = n - LANE_BITS;
        let n_inner = free.min(MAX_INNER);
        let n_outer = free - n_inner;
        let lin: Vec<u32> = sys.linear().iter().map(|&w| w as u32).collect();
        let quad: Vec<u32> = sys.quad().iter().map(|&w| w as u32).collect();
        let s = &self.stream;
        let lin_d = s.clone_htod(&lin)?;
        let quad_d = s.clone_htod(&quad)?;
        let mut hits_d = s.alloc_zeros::<u64>(2 * MAX_HITS as usize)?;
        let mut count_d = s.alloc_zeros::<u32>(1)?;
        let cfg = LaunchConfig {
            grid_dim: ((1u32 << LANE_BITS).div_ceil(THREADS_PER_BLOCK), 1, 1),
            block_dim: (THREADS_PER_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let constant = sys.constant() as u32;
        let mut report = SearchReport::default();
        for chunk in 0..1u64 << n_outer {
            if ctl.stop.load(Ordering::Relaxed) {
                report.stopped = true;
                break;
            }
            s.memset_zeros(&mut count_d)?;
            let mut launch = s.launch_builder(&self.function);
            launch
                .arg(&lin_d)
                .arg(&quad_d)
                .arg(&constant)
                .arg(&n)
                .arg(&n_inner)
                .arg(&LANE_BITS)
                .arg(&chunk)
                .arg(&mut hits_d)
                .arg(&mut count_d)
                .arg(&MAX_HITS);
            // SAFETY: the argument list matches the kernel's signature above.
            unsafe { launch.launch(cfg) }?;
            s.synchronize()?;
            let count = s.clone_dtoh(&count_d)?[0].min(MAX_HITS) as usize;
            let hits = s.clone_dtoh(&hits_d)?;
            report.candidates += 1u128 << (n_inner + LANE_BITS);
            for pair in hits[..2 * count].chunks_exact(2) {
                let x = u128::from(gray(pair[1]))
                    | (u128::from(pair[0]) << n_inner)
                    | (u128::from(chunk) << (n_inner + LANE_BITS));
                if sys.eval(x) == 0 {
                    report.solutions.push(x);
                    if report.accepted.is_none() && (ctl.accept)(x) {
                        report.accepted = Some(x);
                        report.stopped = true;
                    }
                }
            }
            if report.accepted.is_some() {
                break;
            }
        }
        Ok(report)
    }
}

impl Solver for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn lanes(&self) -> u32 {
        1 << LANE_BITS
    }
    fn search(&self, sys: &MqSystem, ctl: &SearchControl<'_>) -> SearchReport {
        if sys.n() < LANE_BITS + crate::driver::MIN_INNER {
            return exhaustive(sys, ctl);
        }
        match self.run(sys, ctl) {
            Ok(r) => r,
            // A device error mid-search: finish on the CPU rather than lose the block.
            Err(_) => crate::fastest_cpu().search(sys, ctl),
        }
    }
}
