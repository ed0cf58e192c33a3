//! The one codegen point: every `.proto` under `proto/` becomes Rust (messages via
//! prost, services via tonic) in `OUT_DIR`, plus a file descriptor set that the server
//! feeds to gRPC reflection so `grpcurl` works without proto files.

use std::{env, error::Error, path::PathBuf};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = proto_files(PROTO_ROOT.as_ref())?;

    // A vendored protoc keeps the build independent of what the machine has installed.
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Stored formats encode maps in key order, so the same value always has the same bytes.
    config.btree_map([".secureconnect.storage"]);

    tonic_prost_build::configure()
        // Undecodable requests are the caller's error: see src/codec.rs.
        .codec_path("crate::codec::StrictProstCodec")
        .file_descriptor_set_path(out_dir.join("secureconnect_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from(PROTO_ROOT)])?;

    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    Ok(())
}

/// All `.proto` files below `dir`, sorted so the generated code is stable.
fn proto_files(dir: &std::path::Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(proto_files(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
