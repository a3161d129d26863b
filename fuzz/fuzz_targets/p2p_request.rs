//! Peer-to-peer `Request` decoding: any bytes give a value or an error, never a panic; what
//! decodes re-encodes and decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qoin_cl_network::wire::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Request::decode(data) {
        let again = Request::decode(&v.encode()).expect("re-decodes");
        assert_eq!(again, v);
    }
});
