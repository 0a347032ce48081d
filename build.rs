//! Compiles `proto/kubemq.proto` with protox (pure Rust), so building needs no system `protoc`.
//! The descriptor set is kept too: the REST front end maps KubeMQ's JSON onto it.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/kubemq.proto");
    let fds = protox::compile(["proto/kubemq.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("kubemq_descriptor.bin"), fds.encode_to_vec())?;
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
