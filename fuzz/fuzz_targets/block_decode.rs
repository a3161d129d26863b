//! Blocks from peers: decode must never panic; canonical bytes round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_primitives::Block;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Block::decode(data) {
        assert_eq!(b.encode().unwrap(), data);
        let _ = b.check_transactions_root();
    }
});
