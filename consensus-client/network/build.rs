//! Generates the peer-to-peer messages from `proto/p2p.proto` with `protox` (no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/p2p.proto");
    let descriptors = protox::compile(["proto/p2p.proto"], ["proto"])?;
    // A payloads response's payloads as `bytes::Bytes`: a server answers with the encodings
    // its store holds, without decoding and re-encoding them.
    prost_build::Config::new().bytes([".qoin.p2p.v1.Payloads.payloads"]).compile_fds(descriptors)?;
    Ok(())
}
