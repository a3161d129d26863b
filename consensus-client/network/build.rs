//! Generates the peer-to-peer messages from `proto/p2p.proto` with `protox` (no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/p2p.proto");
    let descriptors = protox::compile(["proto/p2p.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
