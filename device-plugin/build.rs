//! Compiles the vendored kubelet device-plugin API (`proto/api.proto`) into `OUT_DIR`.
//!
//! `protox` parses the proto in pure Rust, so no `protoc` is needed (the build works with
//! `PROTOC=/nonexistent`); `tonic-prost-build` generates messages, clients and servers from the
//! resulting descriptor set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["api.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
