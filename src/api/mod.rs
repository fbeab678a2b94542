//! The gRPC layer: maps protobuf to domain types and back, and engine errors
//! to status codes. It holds no policy logic.

/// Generated protobuf and tonic code for `warden.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("warden.v1");
    // Written by hand (build.rs maps them with `extern_path`), named here
    // as every other message is.
    pub use super::wire::{CheckRequest, CheckResponse};
    // LookupRecords' page, its ids encoded from the snapshot (build.rs).
    pub use super::lookup_wire::LookupRecordsResponse;

    /// Descriptor set served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
}

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bulk_wire;
pub mod check;
pub mod codec;
pub mod convert;
pub mod grant;
pub mod lookup_wire;
pub mod status;
#[cfg(test)]
mod test_reference;
pub mod unary;
pub mod wire;

use tonic::{Response, Status};

use crate::engine::Command;
use crate::service::{Warden, WriteMeta};

/// Carries out a write for a handler: the writer's actor (if any) is
/// checked by Warden's own rules, and recorded in the change audit (the
/// credential's name when there is none); the answer is the new revision with what
/// the write removed and moved.
pub(crate) async fn write(
    warden: &Warden,
    org_id: &str,
    writer: auth::WriteAs,
    command: Command,
) -> Result<Response<pb::WriteResponse>, Status> {
    let meta = WriteMeta {
        operator: Some(writer.operator),
        ..WriteMeta::default()
    };
    let outcome = warden
        .write_with(org_id, &writer.writer, command, meta)
        .await?;
    tracing::Span::current().record("revision", outcome.revision);
    Ok(Response::new(convert::write_response(&outcome)))
}
