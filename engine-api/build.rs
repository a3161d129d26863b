//! Generates the engine API's protobuf messages and tonic service from `proto/engine.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/engine.proto");
    tonic_prost_build::configure().compile_protos(&["proto/engine.proto"], &["proto"])?;
    Ok(())
}
