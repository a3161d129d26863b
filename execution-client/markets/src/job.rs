//! Deterministic WASM jobs for the compute market (spec §17.3): a WASI preview-1 module
//! exporting `_start` reads the job's input on standard input and writes its output to
//! standard output; every honest replica of a job must get the same output and the same fuel.
//!
//! The runtime is `wasmi` (an interpreter, pure Rust) built with its `deterministic` feature,
//! the WebAssembly 3.0 deterministic profile: every NaN a float instruction makes is the
//! canonical NaN, so `f32.reinterpret` of `0/0` is the same bits on x86 and ARM. On top of it:
//! - **fuel**: wasmi's stable fuel metering (a cost per WebAssembly operator of the module as
//!   written, as Wasmtime counts it), compiled eagerly so no lazy translation is charged; host
//!   calls cost [`HOST_CALL_FUEL`] plus one unit per [`HOST_BYTES_PER_FUEL`] bytes they move;
//! - **limits**: linear memory at most the job's memory limit (a `memory.grow` beyond it
//!   returns -1, as the spec lets an engine do; an initial memory above it is refused), one
//!   memory, one table of at most [`MAX_TABLE_ELEMENTS`] elements, a recursion depth of
//!   [`MAX_RECURSION_DEPTH`] and a value stack of [`MAX_STACK_BYTES`]; standard output at most
//!   [`Limits::output`] bytes, standard error kept to [`STDERR_KEPT`] bytes;
//! - **no threads, no SIMD** (the engine is built without them), no start of anything outside
//!   the instance;
//! - **a virtual WASI**: standard input is the input, standard output and error are buffers,
//!   no arguments but the program's name, no environment, no files (no pre-opened
//!   directories), both clocks read the fuel used so far (in "nanoseconds"), `random_get`
//!   draws from keccak256 of the input's hash and a counter; every other preview-1 function
//!   answers `ENOSYS`. Imports from any module but `wasi_snapshot_preview1` are refused.
//!
//! The virtual WASI is written here rather than taken from `wasmi_wasi`: that crate wraps
//! `wasi-common`, whose clocks, randomness and file system are the host's, which is what a
//! deterministic job must not see; the handful of functions a stdin-to-stdout program needs is
//! smaller than the configuration it would take to fence `wasi-common` in.
//!
//! A run's [`Outcome`] hashes to the `output` a provider commits: keccak256 of standard output
//! when the program exits with status 0 (so a client checks a downloaded output by hashing
//! it), otherwise keccak256 of a tag, the status and the output written before the end.

use alloy_primitives::{keccak256, B256};
use wasmi::{
    Caller, CompilationMode, Config, Engine, Error, Extern, ExternType, Linker, Module, Store, StoreLimits,
    StoreLimitsBuilder, TrapCode, Val,
};

/// The WASI preview-1 import module.
pub const WASI: &str = "wasi_snapshot_preview1";
/// Fuel every host call costs before the bytes it moves.
pub const HOST_CALL_FUEL: u64 = 16;
/// Bytes a host call moves per unit of fuel.
pub const HOST_BYTES_PER_FUEL: u64 = 16;
/// Deepest call stack a job may reach.
pub const MAX_RECURSION_DEPTH: usize = 1_000;
/// Largest value stack a job may use, in bytes.
pub const MAX_STACK_BYTES: usize = 1 << 20;
/// Most elements a job's table may hold.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 16;
/// Bytes of standard error kept for the provider's log (the rest is dropped, not counted).
pub const STDERR_KEPT: usize = 64 * 1024;
/// One WebAssembly page, the unit memory grows by.
pub const PAGE: u64 = 64 * 1024;
/// Largest module a job may be, in bytes (compiling is bounded by the module's size).
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Most a job may write to standard output, in bytes: part of the protocol, since a job that
/// writes more ends `OutputLimit` for every replica alike.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

// WASI errno values (preview 1).
const ESUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;
const ESPIPE: i32 = 70;

/// What a job may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (the contract's `fuelLimit`).
    pub fuel: u64,
    /// Linear memory in bytes (the contract's `memoryLimit`).
    pub memory: u64,
    /// Standard output in bytes.
    pub output: usize,
}

impl Limits {
    /// A market job's limits: its fuel and memory limits, and the protocol's output limit.
    pub fn job(fuel: u64, memory: u64) -> Self {
        Self { fuel, memory, output: MAX_OUTPUT_BYTES }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// `_start` returned (status 0) or the program called `proc_exit(status)`.
    Exited(i32),
    /// A WebAssembly trap (its code in the spec's numbering, as wasmi's `TrapCode`): an
    /// `unreachable`, an access out of bounds, a division by zero, a stack overflow, …
    Trapped(u8),
    /// The fuel limit was reached.
    OutOfFuel,
    /// Standard output passed its limit.
    OutputLimit,
    /// The module cannot run: it does not decode or validate, imports something other than
    /// WASI preview-1 functions, has no `_start () -> ()`, or asks for more initial memory than
    /// the limit. No fuel is used.
    Invalid,
}

impl Status {
    /// The tag and code hashed into a failed run's output (and sent with a result, §17.5):
    /// 1 exit status, 2 trap, 3 out of fuel, 4 output limit, 5 invalid.
    pub fn tag(&self) -> (u8, i32) {
        match self {
            Status::Exited(code) => (1, *code),
            Status::Trapped(code) => (2, i32::from(*code)),
            Status::OutOfFuel => (3, 0),
            Status::OutputLimit => (4, 0),
            Status::Invalid => (5, 0),
        }
    }

    /// The status a tag and code stand for (`None` for an unknown tag, a trap code that does
    /// not fit a byte, or a nonzero code where the tag takes none).
    pub fn from_tag(tag: u8, code: i32) -> Option<Self> {
        match (tag, code) {
            (1, code) => Some(Status::Exited(code)),
            (2, code) => u8::try_from(code).ok().map(Status::Trapped),
            (3, 0) => Some(Status::OutOfFuel),
            (4, 0) => Some(Status::OutputLimit),
            (5, 0) => Some(Status::Invalid),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(code) => write!(f, "exited with status {code}"),
            Status::Trapped(code) => write!(f, "trapped (code {code})"),
            Status::OutOfFuel => write!(f, "ran out of fuel"),
            Status::OutputLimit => write!(f, "passed the output limit"),
            Status::Invalid => write!(f, "invalid module"),
        }
    }
}

/// The `output` a run that ended with `status` after writing `stdout` commits to (see
/// [`Outcome::output_hash`]).
pub fn output_hash(status: &Status, stdout: &[u8]) -> B256 {
    if *status == Status::Exited(0) {
        return keccak256(stdout);
    }
    let (tag, code) = status.tag();
    let mut bytes = b"qoin-job-failed".to_vec();
    bytes.push(tag);
    bytes.extend_from_slice(&code.to_be_bytes());
    bytes.extend_from_slice(stdout);
    keccak256(bytes)
}

/// A finished run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// What it wrote to standard output (up to the limit).
    pub stdout: Vec<u8>,
    /// The start of what it wrote to standard error (not part of the result).
    pub stderr: Vec<u8>,
    /// Fuel used (the limit when it ran out; 0 for an invalid module).
    pub fuel: u64,
    /// Why the module is invalid, or the trap's message (not part of the result).
    pub detail: String,
}

impl Outcome {
    /// Whether the program finished with status 0.
    pub fn succeeded(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// The `output` a provider commits and reveals: keccak256 of standard output when the
    /// program exited with status 0, otherwise keccak256 of `"qoin-job-failed"`, a tag byte
    /// (1 exit status, 2 trap, 3 out of fuel, 4 output limit, 5 invalid), the status or trap
    /// code as 4 big-endian bytes, and standard output as far as it got.
    pub fn output_hash(&self) -> B256 {
        output_hash(&self.status, &self.stdout)
    }
}

/// The host side of one run: the virtual WASI's state.
struct Host {
    input: Vec<u8>,
    read: usize,
    stdout: Vec<u8>,
    output_limit: usize,
    output_full: bool,
    stderr: Vec<u8>,
    seed: B256,
    drawn: u64,
    limits: StoreLimits,
    fuel_limit: u64,
}

/// Runs jobs; build one and reuse it (it holds the compiled engine configuration).
#[derive(Clone, Debug)]
pub struct Runner {
    engine: Engine,
    metered: bool,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner {
    /// The runner providers and mediators use: fuel metered.
    pub fn new() -> Self {
        Self::with_metering(true)
    }

    /// A runner without fuel metering, to measure what metering costs (benchmarks only: its
    /// runs stop only at the end of the program, and report no fuel).
    pub fn unmetered() -> Self {
        Self::with_metering(false)
    }

    fn with_metering(metered: bool) -> Self {
        let mut config = Config::default();
        config
            .consume_fuel(metered)
            .compilation_mode(CompilationMode::Eager)
            .set_max_recursion_depth(MAX_RECURSION_DEPTH)
            .set_max_stack_height(MAX_STACK_BYTES);
        Self { engine: Engine::new(&config), metered }
    }

    /// Whether `module` can be a job: why not if it cannot (what a run would answer
    /// [`Status::Invalid`] for, short of the limits it starts within).
    pub fn check(&self, module: &[u8]) -> Result<(), String> {
        let module = self.compile(module)?;
        linker(&self.engine, &module).map(|_| ())
    }

    fn compile(&self, module: &[u8]) -> Result<Module, String> {
        if module.len() > MAX_MODULE_BYTES {
            return Err(format!("the module is {} bytes, above {MAX_MODULE_BYTES}", module.len()));
        }
        let module = Module::new(&self.engine, module)
            .map_err(|e| format!("the module does not decode or validate: {e}"))?;
        match module.get_export("_start") {
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => Ok(module),
            _ => Err("the module exports no `_start` function of type () -> ()".into()),
        }
    }

    /// Runs `module` on `input` within `limits`. Never fails: whatever happens is an
    /// [`Outcome`], the same for every honest replica.
    pub fn run(&self, module: &[u8], input: &[u8], limits: &Limits) -> Outcome {
        let invalid = |detail: String| Outcome {
            status: Status::Invalid,
            stdout: vec![],
            stderr: vec![],
            fuel: 0,
            detail,
        };
        let module = match self.compile(module) {
            Ok(m) => m,
            Err(why) => return invalid(why),
        };
        let memory = usize::try_from(limits.memory).unwrap_or(usize::MAX);
        let host = Host {
            input: input.to_vec(),
            read: 0,
            stdout: Vec::new(),
            output_limit: limits.output,
            output_full: false,
            stderr: Vec::new(),
            seed: keccak256(input),
            drawn: 0,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .memories(1)
                .tables(1)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(1)
                .build(),
            fuel_limit: limits.fuel,
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        if self.metered {
            if let Err(e) = store.set_fuel(limits.fuel) {
                return invalid(format!("fuel: {e}"));
            }
        }
        let linker = match linker(&self.engine, &module) {
            Ok(l) => l,
            Err(why) => return invalid(why),
        };
        let ended =
            linker.instantiate_and_start(&mut store, &module).map_err(|e| (e, true)).and_then(|instance| {
                let start = instance.get_typed_func::<(), ()>(&store, "_start").map_err(|e| (e, true))?;
                start.call(&mut store, ()).map_err(|e| (e, false))
            });
        let fuel = if self.metered { limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)) } else { 0 };
        let (status, detail) = match ended {
            Ok(()) => (Status::Exited(0), String::new()),
            Err((e, starting)) => {
                if let Some(code) = e.i32_exit_status() {
                    (Status::Exited(code), String::new())
                } else if store.data().output_full {
                    (Status::OutputLimit, format!("standard output passed {} bytes", limits.output))
                } else {
                    match e.as_trap_code() {
                        Some(TrapCode::OutOfFuel) => (Status::OutOfFuel, e.to_string()),
                        Some(code) => (Status::Trapped(u8::from(code)), e.to_string()),
                        // Instantiation refused (initial memory above the limit, a data
                        // segment out of bounds): the module cannot run within the job.
                        None if starting => {
                            return invalid(format!("the module cannot start within the limits: {e}"))
                        }
                        None => (Status::Trapped(0), e.to_string()),
                    }
                }
            }
        };
        let fuel = if status == Status::OutOfFuel { limits.fuel } else { fuel };
        let host = store.into_data();
        Outcome { status, stdout: host.stdout, stderr: host.stderr, fuel, detail }
    }
}

/// Charges a host call's fuel: [`HOST_CALL_FUEL`] plus a unit per [`HOST_BYTES_PER_FUEL`]
/// bytes moved. Out of fuel traps as an operator would.
fn charge(caller: &mut Caller<'_, Host>, bytes: u64) -> Result<(), Error> {
    let Ok(left) = caller.get_fuel() else {
        return Ok(()); // unmetered
    };
    let cost = HOST_CALL_FUEL.saturating_add(bytes / HOST_BYTES_PER_FUEL);
    match left.checked_sub(cost) {
        Some(rest) => caller.set_fuel(rest),
        None => {
            caller.set_fuel(0)?;
            Err(Error::from(TrapCode::OutOfFuel))
        }
    }
}

/// The instance's exported memory and the host state.
fn memory<'a>(caller: &'a mut Caller<'_, Host>) -> Option<(&'a mut [u8], &'a mut Host)> {
    let memory = caller.get_export("memory").and_then(Extern::into_memory)?;
    Some(memory.data_and_store_mut(caller))
}

/// `len` bytes at `at` of `mem`, if in bounds.
fn span(mem: &[u8], at: i32, len: u64) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(at as u32).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= mem.len()).then_some(start..end)
}

fn put_u32(mem: &mut [u8], at: i32, v: u32) -> bool {
    match span(mem, at, 4) {
        Some(r) => {
            mem[r].copy_from_slice(&v.to_le_bytes());
            true
        }
        None => false,
    }
}

fn put_u64(mem: &mut [u8], at: i32, v: u64) -> bool {
    match span(mem, at, 8) {
        Some(r) => {
            mem[r].copy_from_slice(&v.to_le_bytes());
            true
        }
        None => false,
    }
}

fn get_u32(mem: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    let bytes = mem.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The `(buf, len)` pairs of an iovec array of `count` entries at `at`.
fn iovecs(mem: &[u8], at: i32, count: i32) -> Option<Vec<(u32, u32)>> {
    let (at, count) = (u64::from(at as u32), u64::from(count as u32));
    if count > 1024 {
        return None;
    }
    (0..count)
        .map(|i| {
            let entry = at.checked_add(i * 8)?;
            Some((get_u32(mem, entry)?, get_u32(mem, entry + 4)?))
        })
        .collect()
}

/// The program's single argument, its name.
const ARGV0: &[u8] = b"job\0";

/// The linker for `module`: the virtual WASI, `ENOSYS` for the rest of preview 1, and a clear
/// refusal of anything else the module imports.
fn linker(engine: &Engine, module: &Module) -> Result<Linker<Host>, String> {
    let mut l = Linker::<Host>::new(engine);
    let wrap_err = |e: wasmi::errors::LinkerError| e.to_string();
    l.func_wrap(WASI, "fd_write", |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, out: i32| {
        let Some((mem, host)) = memory(&mut c) else { return Ok(EFAULT) };
        let Some(vecs) = iovecs(mem, iovs, n) else { return Ok(EFAULT) };
        let mut written: u64 = 0;
        for (buf, len) in vecs {
            let Some(r) = span(mem, buf as i32, u64::from(len)) else { return Ok(EFAULT) };
            match fd {
                1 => {
                    if host.stdout.len() + r.len() > host.output_limit {
                        host.output_full = true;
                        return Err(Error::new("standard output limit"));
                    }
                    host.stdout.extend_from_slice(&mem[r]);
                }
                2 => {
                    let room = STDERR_KEPT.saturating_sub(host.stderr.len()).min(r.len());
                    host.stderr.extend_from_slice(&mem[r.start..r.start + room]);
                }
                _ => return Ok(EBADF),
            }
            written += u64::from(len);
        }
        if !put_u32(mem, out, u32::try_from(written).unwrap_or(u32::MAX)) {
            return Ok(EFAULT);
        }
        charge(&mut c, written)?;
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "fd_read", |mut c: Caller<'_, Host>, fd: i32, iovs: i32, n: i32, out: i32| {
        if fd != 0 {
            return Ok(EBADF);
        }
        let Some((mem, host)) = memory(&mut c) else { return Ok(EFAULT) };
        let Some(vecs) = iovecs(mem, iovs, n) else { return Ok(EFAULT) };
        let mut read: u64 = 0;
        for (buf, len) in vecs {
            let Some(r) = span(mem, buf as i32, u64::from(len)) else { return Ok(EFAULT) };
            let rest = &host.input[host.read..];
            let k = rest.len().min(r.len());
            mem[r.start..r.start + k].copy_from_slice(&rest[..k]);
            host.read += k;
            read += k as u64;
            if k < r.len() {
                break;
            }
        }
        if !put_u32(mem, out, u32::try_from(read).unwrap_or(u32::MAX)) {
            return Ok(EFAULT);
        }
        charge(&mut c, read)?;
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "fd_fdstat_get", |mut c: Caller<'_, Host>, fd: i32, at: i32| {
        charge(&mut c, 0)?;
        // fdstat: filetype u8, flags u16 at 2, rights_base u64 at 8, rights_inheriting at 16.
        let rights: u64 = match fd {
            0 => 1 << 1,     // fd_read
            1 | 2 => 1 << 6, // fd_write
            _ => return Ok(EBADF),
        };
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        let Some(r) = span(mem, at, 24) else { return Ok(EFAULT) };
        let stat = &mut mem[r];
        stat.fill(0);
        stat[0] = 2; // character device
        stat[8..16].copy_from_slice(&rights.to_le_bytes());
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    for name in ["fd_close", "fd_sync", "fd_datasync"] {
        l.func_wrap(WASI, name, |mut c: Caller<'_, Host>, fd: i32| {
            charge(&mut c, 0)?;
            Ok(if (0..3).contains(&fd) { ESUCCESS } else { EBADF })
        })
        .map_err(wrap_err)?;
    }
    l.func_wrap(WASI, "fd_seek", |mut c: Caller<'_, Host>, fd: i32, _off: i64, _wh: i32, _at: i32| {
        charge(&mut c, 0)?;
        Ok(if (0..3).contains(&fd) { ESPIPE } else { EBADF })
    })
    .map_err(wrap_err)?;
    // No pre-opened directories: the first fd a libc probes is not one.
    l.func_wrap(WASI, "fd_prestat_get", |mut c: Caller<'_, Host>, _fd: i32, _at: i32| {
        charge(&mut c, 0)?;
        Ok(EBADF)
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "args_sizes_get", |mut c: Caller<'_, Host>, argc: i32, size: i32| {
        charge(&mut c, 0)?;
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        let ok = put_u32(mem, argc, 1) && put_u32(mem, size, ARGV0.len() as u32);
        Ok(if ok { ESUCCESS } else { EFAULT })
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "args_get", |mut c: Caller<'_, Host>, argv: i32, buf: i32| {
        charge(&mut c, 0)?;
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        let Some(r) = span(mem, buf, ARGV0.len() as u64) else { return Ok(EFAULT) };
        mem[r].copy_from_slice(ARGV0);
        Ok(if put_u32(mem, argv, buf as u32) { ESUCCESS } else { EFAULT })
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "environ_sizes_get", |mut c: Caller<'_, Host>, count: i32, size: i32| {
        charge(&mut c, 0)?;
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        Ok(if put_u32(mem, count, 0) && put_u32(mem, size, 0) { ESUCCESS } else { EFAULT })
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "environ_get", |mut c: Caller<'_, Host>, _env: i32, _buf: i32| {
        charge(&mut c, 0)?;
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    // Both clocks read the fuel used so far: time moves, and moves the same for every replica.
    l.func_wrap(WASI, "clock_time_get", |mut c: Caller<'_, Host>, id: i32, _prec: i64, at: i32| {
        charge(&mut c, 0)?;
        if !(0..4).contains(&id) {
            return Ok(EINVAL);
        }
        let used = match c.get_fuel() {
            Ok(left) => c.data().fuel_limit.saturating_sub(left),
            Err(_) => 0,
        };
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        Ok(if put_u64(mem, at, used) { ESUCCESS } else { EFAULT })
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "clock_res_get", |mut c: Caller<'_, Host>, id: i32, at: i32| {
        charge(&mut c, 0)?;
        if !(0..4).contains(&id) {
            return Ok(EINVAL);
        }
        let Some((mem, _)) = memory(&mut c) else { return Ok(EFAULT) };
        Ok(if put_u64(mem, at, 1) { ESUCCESS } else { EFAULT })
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "random_get", |mut c: Caller<'_, Host>, buf: i32, len: i32| {
        charge(&mut c, u64::from(len as u32))?;
        let Some((mem, host)) = memory(&mut c) else { return Ok(EFAULT) };
        let Some(r) = span(mem, buf, u64::from(len as u32)) else { return Ok(EFAULT) };
        for block in mem[r].chunks_mut(32) {
            let mut seed = host.seed.to_vec();
            seed.extend_from_slice(&host.drawn.to_be_bytes());
            host.drawn += 1;
            let words = keccak256(seed);
            block.copy_from_slice(&words[..block.len()]);
        }
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "sched_yield", |mut c: Caller<'_, Host>| {
        charge(&mut c, 0)?;
        Ok(ESUCCESS)
    })
    .map_err(wrap_err)?;
    l.func_wrap(WASI, "proc_exit", |_c: Caller<'_, Host>, code: i32| -> Result<(), Error> {
        Err(Error::i32_exit(code))
    })
    .map_err(wrap_err)?;

    // The rest of preview 1 (files, sockets, polling): ENOSYS, for any import the module makes
    // with an i32 result; anything else is refused.
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if m != WASI {
            return Err(format!("the module imports `{m}.{name}`: jobs may import only WASI preview 1"));
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(format!("the module imports `{m}.{name}`, which is not a function"));
        };
        if is_defined(name) {
            continue;
        }
        if ty.results() != [wasmi::ValType::I32] {
            return Err(format!("the module imports `{m}.{name}` with a signature WASI does not have"));
        }
        l.func_new(WASI, name, ty.clone(), |mut c: Caller<'_, Host>, _args: &[Val], out: &mut [Val]| {
            charge(&mut c, 0)?;
            out[0] = Val::I32(ENOSYS);
            Ok(())
        })
        .map_err(wrap_err)?;
    }
    Ok(l)
}

/// The preview-1 functions the virtual WASI defines.
fn is_defined(name: &str) -> bool {
    matches!(
        name,
        "fd_write"
            | "fd_read"
            | "fd_fdstat_get"
            | "fd_close"
            | "fd_sync"
            | "fd_datasync"
            | "fd_seek"
            | "fd_prestat_get"
            | "args_sizes_get"
            | "args_get"
            | "environ_sizes_get"
            | "environ_get"
            | "clock_time_get"
            | "clock_res_get"
            | "random_get"
            | "sched_yield"
            | "proc_exit"
    )
}
