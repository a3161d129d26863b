//! A compute job's result from a provider or a mediator (`GET /compute/{job}/result`):
//! decode must never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_markets::compute::JobResult;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = JobResult::decode(data) {
        assert_eq!(result.encode(), data);
    }
});
