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
        // Check's messages by hand, with inline ids (src/api/wire.rs); the
        // service and CheckBulk's messages use them.
        .extern_path(".warden.v1.CheckRequest", "crate::api::wire::CheckRequest")
        .extern_path(
            ".warden.v1.CheckResponse",
            "crate::api::wire::CheckResponse",
        )
        // LookupRecords' page with its ids encoded straight from the
        // lookup's snapshot (src/api/lookup_wire.rs).
        .extern_path(
            ".warden.v1.LookupRecordsResponse",
            "crate::api::lookup_wire::LookupRecordsResponse",
        )
        .compile_protos(
            &files.map(PathBuf::from),
            &[PathBuf::from("proto"), include],
        )?;
    // The same messages as prost generates them, for tests/wire.rs to
    // compare the hand-written ones with (messages only, not compiled into
    // the library).
    let reference = out.join("reference");
    std::fs::create_dir_all(&reference)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .out_dir(&reference)
        .compile_protos(
            &[
                PathBuf::from("proto/warden/v1/types.proto"),
                PathBuf::from("proto/warden/v1/check.proto"),
            ],
            &[PathBuf::from("proto"), protoc_bin_vendored::include_path()?],
        )?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    // sqlx::migrate! embeds migrations/; a new file there must rebuild.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
