//! Compute jobs are modules a client sends: whatever the bytes, the runner must end with an
//! outcome (never a panic or a crash of the provider), within its fuel, and the same outcome
//! twice.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_markets::job::{Limits, Runner, PAGE};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { fuel: 100_000, memory: 4 * PAGE, output: 4096 };
    let runner = Runner::new();
    let a = runner.run(data, b"input", &limits);
    assert!(a.fuel <= limits.fuel);
    assert!(a.stdout.len() <= limits.output);
    let b = runner.run(data, b"input", &limits);
    assert_eq!(a, b);
});
