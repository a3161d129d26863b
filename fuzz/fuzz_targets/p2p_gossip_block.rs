//! Peer-to-peer `GossipBlock` decoding: any bytes give a value or an error, never a panic; what
//! decodes re-encodes and decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_cl_network::wire::GossipBlock;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = GossipBlock::decode(data) {
        let again = GossipBlock::decode(&v.encode().expect("a decoded value encodes")).expect("re-decodes");
        assert_eq!(again, v);
    }
});
