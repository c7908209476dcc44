//! Generates the gRPC code for the plugin protocol from `proto/`, with the
//! pure-Rust `protox` compiler so the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tfplugin6.proto",
        "proto/plugin.proto",
        "proto/health.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The protocol tests talk to the server as Terraform does.
        .build_client(true)
        // Tonic's own transport helpers (`connect`) are not used.
        .build_transport(false)
        // RPCs we do not implement answer UNIMPLEMENTED without a hand-written stub.
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
