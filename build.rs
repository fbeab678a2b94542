//! Compiles proto/warden/v1/*.proto with tonic-build, using the protoc that
//! ships in the protoc-bin-vendored crate so no system protoc is needed, and
//! writes the descriptor set that gRPC reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // prost-build finds protoc through PROTOC.
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "proto/warden/v1/types.proto",
        "proto/warden/v1/check.proto",
        "proto/warden/v1/grant.proto",
        "proto/warden/v1/admin.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("warden_descriptor.bin"))
        // prost's codec with CheckBulk's checks counted before decoding
        // (src/api/codec.rs).
        .codec_path("crate::api::codec::WardenCodec")
        .compile_protos(
            &files.map(PathBuf::from),
            &[PathBuf::from("proto"), include],
        )?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    // sqlx::migrate! embeds migrations/; a new file there must rebuild.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
