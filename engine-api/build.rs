//! Generates the engine API's protobuf messages and tonic service from `proto/engine.proto`.
//!
//! The `.proto` file is parsed by `protox` (a protobuf compiler written in Rust) and its
//! descriptor set handed to `tonic-prost-build`, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/engine.proto");
    let descriptors = protox::compile(["proto/engine.proto"], ["proto"])?;
    // The large repeated byte strings (a payload's transactions, a proof's nodes) as
    // `bytes::Bytes`: decoded as slices of the received message rather than copied, and
    // encoded from the typed values' own buffers without copying them first.
    tonic_prost_build::configure()
        .bytes(".qoin.engine.v1.ExecutionPayload.transactions")
        .bytes(".qoin.engine.v1.AccountProof.proof")
        .compile_fds(descriptors)?;
    Ok(())
}
