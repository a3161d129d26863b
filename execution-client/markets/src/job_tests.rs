//! The deterministic WASM runner: what a job sees, what it may not do, and what each ending
//! hashes to.

use crate::job::{Limits, Outcome, Runner, Status, PAGE};
use alloy_primitives::keccak256;

const LIMITS: Limits = Limits { fuel: 10_000_000, memory: 16 * PAGE, output: 1 << 20 };

/// Imports, memory and a `$write(ptr, len)` helper around every module below.
fn module(body: &str) -> Vec<u8> {
    module_with("", body)
}

/// [`module`] with more imports.
fn module_with(imports: &str, body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {imports}
  (memory (export "memory") 2)
  ;; writes `len` bytes at `ptr` to standard output (iovec at 0, count at 8)
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  {body})"#
    ))
    .unwrap()
}

/// Copies standard input to standard output, 4 KiB at a time.
fn echo() -> Vec<u8> {
    module(
        r#"(func (export "_start")
    (loop $more
      (i32.store (i32.const 16) (i32.const 1024))
      (i32.store (i32.const 20) (i32.const 4096))
      (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
      (if (i32.eqz (i32.load (i32.const 24))) (then (return)))
      (call $write (i32.const 1024) (i32.load (i32.const 24)))
      (br $more)))"#,
    )
}

fn run(wasm: &[u8], input: &[u8]) -> Outcome {
    Runner::new().run(wasm, input, &LIMITS)
}

#[test]
fn a_job_reads_its_input_and_its_output_hash_is_the_output_hash() {
    let input: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let a = run(&echo(), &input);
    assert_eq!(a.status, Status::Exited(0), "{}", a.detail);
    assert_eq!(a.stdout, input);
    assert_eq!(a.output_hash(), keccak256(&input), "a client checks the output by hashing it");
    // Replicas agree to the unit of fuel; more input costs more fuel.
    let b = run(&echo(), &input);
    assert_eq!((b.stdout, b.fuel), (a.stdout.clone(), a.fuel));
    let short = run(&echo(), &input[..100]);
    assert!(a.fuel > short.fuel && short.fuel > 0, "{} vs {}", a.fuel, short.fuel);
    // Unmetered, the same program gives the same output and reports no fuel.
    let u = Runner::unmetered().run(&echo(), &input, &LIMITS);
    assert_eq!((u.status, u.stdout, u.fuel), (Status::Exited(0), input, 0));
}

#[test]
fn nans_are_canonical_whatever_the_host_makes() {
    // 0/0 and sqrt(-1): x86 makes a negative quiet NaN (0xffc00000), ARM a positive one; the
    // deterministic profile makes both the canonical 0x7fc00000 (f32) / 0x7ff8… (f64).
    let wasm = module(
        r#"(func (export "_start")
    (i32.store (i32.const 100) (i32.reinterpret_f32 (f32.div (f32.const 0) (f32.const 0))))
    (i64.store (i32.const 104) (i64.reinterpret_f64 (f64.sqrt (f64.const -1))))
    (i32.store (i32.const 112)
      (i32.reinterpret_f32 (f32.add (f32.const -nan:0x200001) (f32.const 1))))
    (call $write (i32.const 100) (i32.const 16)))"#,
    );
    let out = run(&wasm, b"");
    assert_eq!(out.status, Status::Exited(0), "{}", out.detail);
    assert_eq!(u32::from_le_bytes(out.stdout[0..4].try_into().unwrap()), 0x7fc0_0000);
    assert_eq!(u64::from_le_bytes(out.stdout[4..12].try_into().unwrap()), 0x7ff8_0000_0000_0000);
    assert_eq!(
        u32::from_le_bytes(out.stdout[12..16].try_into().unwrap()),
        0x7fc0_0000,
        "a NaN operand's payload and sign do not leak either"
    );
}

#[test]
fn a_job_ends_at_its_fuel_its_memory_and_its_output_limits() {
    // An endless loop stops at the fuel limit, which is what it used.
    let spin = module(r#"(func (export "_start") (loop $l (br $l)))"#);
    let out = run(&spin, b"");
    assert_eq!((out.status.clone(), out.fuel), (Status::OutOfFuel, LIMITS.fuel));
    // Growing memory past the limit fails as memory.grow fails (-1), which the job sees.
    let grow = module(
        r#"(func (export "_start")
    (i32.store (i32.const 100) (memory.grow (i32.const 14)))
    (i32.store (i32.const 104) (memory.grow (i32.const 1)))
    (call $write (i32.const 100) (i32.const 8)))"#,
    );
    let out = run(&grow, b"");
    assert_eq!(out.status, Status::Exited(0), "{}", out.detail);
    assert_eq!(out.stdout, [2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], "16 pages fit, a 17th does not");
    // More initial memory than the limit: the module cannot run, and used no fuel.
    let big = wat::parse_str(r#"(module (memory 17) (func (export "_start")))"#).unwrap();
    let out = run(&big, b"");
    assert_eq!((out.status.clone(), out.fuel), (Status::Invalid, 0), "{}", out.detail);
    // Standard output past its limit ends the run; what came before is kept.
    let chatty = module(
        r#"(func (export "_start") (loop $l (call $write (i32.const 1024) (i32.const 1000)) (br $l)))"#,
    );
    let out = Runner::new().run(&chatty, b"", &Limits { output: 4_500, ..LIMITS });
    assert_eq!((out.status.clone(), out.stdout.len()), (Status::OutputLimit, 4_000));
}

#[test]
fn deep_recursion_is_a_trap_not_a_crash() {
    // Deep recursion is a stack overflow trap, not a crash of the provider.
    let deep = module(r#"(func $f (export "_start") (call $f))"#);
    assert_eq!(run(&deep, b"").status, Status::Trapped(8));
}

#[test]
fn every_ending_hashes_apart() {
    let with_exit = |code: i32| {
        module_with(
            r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
            &format!(
                r#"(func (export "_start")
    (call $write (i32.const 0) (i32.const 4)) (call $exit (i32.const {code})))"#
            ),
        )
    };
    let zero = run(&with_exit(0), b"");
    let three = run(&with_exit(3), b"");
    assert_eq!(zero.status, Status::Exited(0), "{}", zero.detail);
    assert_eq!(three.status, Status::Exited(3));
    assert_eq!(zero.stdout, three.stdout, "output before the exit is kept");
    let trap = run(&module(r#"(func (export "_start") (unreachable))"#), b"");
    assert_eq!(trap.status, Status::Trapped(1));
    let hashes = [zero.output_hash(), three.output_hash(), trap.output_hash()];
    assert_eq!(hashes[0], keccak256(&zero.stdout));
    assert!(hashes[0] != hashes[1] && hashes[1] != hashes[2] && hashes[0] != hashes[2]);
}

#[test]
fn a_job_sees_a_virtual_world() {
    // Clock, randomness, environment and files: same answers for every replica; files and
    // sockets do not exist.
    let wasm = wat::parse_str(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 100)))
    (drop (call $random (i32.const 108) (i32.const 40)))
    (drop (call $env (i32.const 148) (i32.const 152)))
    (i32.store (i32.const 156) (call $open (i32.const 3) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 160)))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 60))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    let a = run(&wasm, b"input a");
    assert_eq!(a.status, Status::Exited(0), "{}", a.detail);
    let clock = u64::from_le_bytes(a.stdout[0..8].try_into().unwrap());
    assert!(clock > 0 && clock < a.fuel, "the clock is the fuel used so far: {clock}");
    assert_eq!(&a.stdout[48..56], &[0; 8], "no environment");
    assert_eq!(u32::from_le_bytes(a.stdout[56..60].try_into().unwrap()), 52, "path_open: ENOSYS");
    assert_eq!(run(&wasm, b"input a"), a, "the same run for every replica");
    let b = run(&wasm, b"input b");
    assert_ne!(a.stdout[8..48], b.stdout[8..48], "randomness follows the input");
}

#[test]
fn modules_that_cannot_be_jobs_are_refused_with_a_reason() {
    let huge = vec![0u8; crate::job::MAX_MODULE_BYTES + 1];
    let cases: [(&[u8], &str); 5] = [
        (b"\0asm junk", "decode"),
        (&huge, "above"),
        (&wat::parse_str(r#"(module (func (export "main")))"#).unwrap(), "_start"),
        (
            &wat::parse_str(r#"(module (import "env" "now" (func)) (func (export "_start")))"#).unwrap(),
            "env.now",
        ),
        (
            &wat::parse_str(
                r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i64)))
                   (func (export "_start")))"#,
            )
            .unwrap(),
            "start",
        ),
    ];
    for (wasm, why) in cases {
        let out = run(wasm, b"");
        assert_eq!((out.status.clone(), out.fuel), (Status::Invalid, 0));
        assert!(out.detail.contains(why), "{why}: {}", out.detail);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn check_says_why_a_module_cannot_be_a_job_and_tags_round_trip() {
    let runner = Runner::new();
    assert_eq!(runner.check(&echo()), Ok(()));
    assert!(runner.check(b"\0asm garbage").unwrap_err().contains("decode"));
    let no_start = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    assert!(runner.check(&no_start).unwrap_err().contains("_start"));
    let env = wat::parse_str(r#"(module (import "env" "now" (func)) (func (export "_start")))"#).unwrap();
    assert!(runner.check(&env).is_err());
    for s in [Status::Exited(0), Status::Exited(9), Status::Trapped(8), Status::OutOfFuel, Status::Invalid] {
        let (tag, code) = s.tag();
        assert_eq!(Status::from_tag(tag, code), Some(s));
    }
    assert_eq!(Status::from_tag(0, 0), None);
}
