//! Headers from peers: decode must never panic; canonical bytes round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_primitives::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.encode().unwrap(), data);
        let _ = h.verify_ticket();
    }
});
