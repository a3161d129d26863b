//! Genesis files: parsing and validation must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(g) = qoin_primitives::Genesis::from_json(text) {
            for h in [0, 1, u64::MAX] {
                let _ = g.rewards.block_reward(h, g.target_block_time_ms);
            }
        }
    }
});
