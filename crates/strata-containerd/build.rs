//! Compiles the vendored containerd protos with protox (pure Rust: no `protoc` needed) into
//! tonic/prost code in OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/containerd/types/mount.proto",
        "proto/containerd/services/snapshots/v1/snapshots.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
