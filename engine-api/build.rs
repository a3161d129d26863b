//! Generates the engine API's protobuf messages and tonic service from `proto/engine.proto`.
//!
//! The `.proto` file is parsed by `protox` (a protobuf compiler written in Rust) and its
//! descriptor set handed to `tonic-prost-build`, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/engine.proto");
    let descriptors = protox::compile(["proto/engine.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
