//! prost's own generated types of the proto (`reference`), for tests that
//! hold the hand-written wire code to what prost would decode or encode
//! (src/api/codec.rs, src/api/bulk_wire.rs).

use prost::Message;

use super::pb;

#[allow(missing_docs, clippy::all, clippy::pedantic, dead_code)]
pub mod reference {
    include!(concat!(env!("OUT_DIR"), "/reference/warden.v1.rs"));
}

/// `a` encoded and decoded again as `B`.
pub fn transcode<A: Message, B: Message + Default>(a: &A) -> Option<B> {
    B::decode(a.encode_to_vec().as_slice()).ok()
}

/// prost's check as the hand-written wire type.
pub fn wire_check(r: &reference::CheckRequest) -> Option<pb::CheckRequest> {
    Some(pb::CheckRequest {
        org_id: r.org_id.as_str().into(),
        subject: r.subject.as_str().into(),
        module: r.module.as_str().into(),
        action: r.action.as_str().into(),
        record_id: r.record_id.as_str().into(),
        field: r.field.as_str().into(),
        at: r.at,
        consistency: r.consistency.as_ref().map(transcode).unwrap_or(None),
        explain: r.explain,
        assign_to: match &r.assign_to {
            Some(o) => Some(transcode(o)?),
            None => None,
        },
        record: match &r.record {
            Some(d) => Some(transcode(d)?),
            None => None,
        },
    })
}
