//! Compute jobs as a fuzzer that knows WebAssembly writes them: wasm-smith makes valid
//! modules that import the WASI functions a job may use and export `_start` and `memory`, so
//! the runs go deep into the runner (fuel, memory growth, traps, host calls, NaNs) rather
//! than stopping at the decoder. Every run must end with an outcome within its fuel and
//! output limits, and the same outcome twice.
#![no_main]
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use qoin_markets::job::{Limits, Runner, PAGE};
use std::sync::OnceLock;

fn shapes() -> &'static (Vec<u8>, Vec<u8>) {
    static SHAPES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let imports = wat::parse_str(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#,
        )
        .expect("the imports' shape");
        let exports = wat::parse_str(r#"(module (func (export "_start")) (memory (export "memory") 1))"#)
            .expect("the exports' shape");
        (imports, exports)
    })
}

fuzz_target!(|data: &[u8]| {
    let (imports, exports) = shapes();
    let config = wasm_smith::Config {
        available_imports: Some(imports.clone()),
        exports: Some(exports.clone()),
        max_memories: 1,
        max_tables: 1,
        max_instructions: 2_000,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        memory64_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    };
    let Ok(module) = wasm_smith::Module::new(config, &mut Unstructured::new(data)) else { return };
    let wasm = module.to_bytes();
    let limits = Limits { fuel: 200_000, memory: 4 * PAGE, output: 4096 };
    let runner = Runner::new();
    let a = runner.run(&wasm, b"input", &limits);
    assert!(a.fuel <= limits.fuel);
    assert!(a.stdout.len() <= limits.output);
    let b = runner.run(&wasm, b"input", &limits);
    assert_eq!(a, b);
});
