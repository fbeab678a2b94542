//! prost's generated messages (build.rs compiles the protos a second time,
//! without the `extern_path`s, into `$OUT_DIR/reference`) and what the
//! wire tests (tests/wire.rs, wire_text.rs, lookup_wire.rs) do with them:
//! a message carried across to the hand-written type, and bytes near a
//! valid encoding.

use proptest::prelude::*;
use prost::Message;
use warden::api::pb;

include!(concat!(env!("OUT_DIR"), "/reference/warden.v1.rs"));

/// `a` as the message `B` of the same proto type (through its bytes, so
/// that a map's order does not matter).
pub fn transcode<A: Message, B: Message + Default>(a: &A) -> B {
    B::decode(a.encode_to_vec().as_slice()).expect("prost's own encoding decodes")
}

/// prost's `CheckRequest` as the hand-written type.
pub fn wire_request(r: &CheckRequest) -> pb::CheckRequest {
    pb::CheckRequest {
        org_id: r.org_id.as_str().into(),
        subject: r.subject.as_str().into(),
        module: r.module.as_str().into(),
        action: r.action.as_str().into(),
        record_id: r.record_id.as_str().into(),
        field: r.field.as_str().into(),
        at: r.at,
        consistency: r.consistency.as_ref().map(transcode),
        explain: r.explain,
        assign_to: r.assign_to.as_ref().map(transcode),
        record: r.record.as_ref().map(transcode),
    }
}

/// Bytes near a valid encoding: a byte changed, cut short, or an unknown
/// or repeated field appended; or any bytes at all.
pub fn mangled(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    prop_oneof![
        Just(valid.clone()),
        (0..len.max(1), any::<u8>()).prop_map({
            let valid = valid.clone();
            move |(at, byte)| {
                let mut v = valid.clone();
                if let Some(b) = v.get_mut(at) {
                    *b = byte;
                }
                v
            }
        }),
        (0..=len).prop_map({
            let valid = valid.clone();
            move |cut| valid[..cut].to_vec()
        }),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map({
            let valid = valid.clone();
            move |tail| [valid.clone(), tail].concat()
        }),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}
