//! The hand-written `CheckRequest` and `CheckResponse` (src/api/wire.rs)
//! against the same messages as prost generates them (build.rs compiles
//! check.proto a second time, without the `extern_path`, into
//! `$OUT_DIR/reference`): random messages encode to the same bytes, and any
//! bytes decode to the same message or fail with the same error.

use proptest::prelude::*;
use prost::Message;
use warden::api::pb;

#[allow(missing_docs, clippy::all, clippy::pedantic, dead_code)]
mod reference;

use reference::{mangled, transcode, wire_request};

fn wire_response(r: &reference::CheckResponse) -> pb::CheckResponse {
    pb::CheckResponse {
        allowed: r.allowed,
        reason: r.reason,
        level: r.level,
        revision: r.revision.as_str().into(),
        trace: r.trace.iter().map(transcode).collect(),
    }
}

/// Short ids (inline in a `CompactString`) and long ones (on the heap),
/// any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_-]{0,12}",
        1 => any::<String>(),
        1 => "[a-zé🦀]{20,40}",
    ]
}

fn owner() -> impl Strategy<Value = reference::Owner> {
    use reference::owner::Owner;
    prop_oneof![
        Just(None),
        text().prop_map(|u| Some(Owner::UserId(u))),
        text().prop_map(|g| Some(Owner::GroupId(g))),
    ]
    .prop_map(|owner| reference::Owner { owner })
}

fn request() -> impl Strategy<Value = reference::CheckRequest> {
    use reference::consistency::Requirement;
    let ids = (text(), text(), text(), text(), text(), text());
    let consistency = proptest::option::of(
        prop_oneof![
            Just(None),
            any::<bool>().prop_map(|b| Some(Requirement::MinimizeLatency(b))),
            text().prop_map(|r| Some(Requirement::AtLeastAsFresh(r))),
            any::<bool>().prop_map(|b| Some(Requirement::FullyConsistent(b))),
        ]
        .prop_map(|requirement| reference::Consistency { requirement }),
    );
    // At most one attribute: two in a HashMap encode in either order.
    let record = proptest::option::of(
        (
            proptest::option::of(owner()),
            any::<bool>(),
            proptest::option::of((text(), text())),
        )
            .prop_map(|(owner, private, attribute)| reference::RecordDescription {
                owner,
                private,
                attributes: attribute.into_iter().collect(),
            }),
    );
    let at = proptest::option::of(
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    );
    (
        ids,
        at,
        consistency,
        any::<bool>(),
        proptest::option::of(owner()),
        record,
    )
        .prop_map(
            |(
                (org_id, subject, module, action, record_id, field),
                at,
                consistency,
                explain,
                assign_to,
                record,
            )| {
                reference::CheckRequest {
                    org_id,
                    subject,
                    module,
                    action,
                    record_id,
                    field,
                    at,
                    consistency,
                    explain,
                    assign_to,
                    record,
                }
            },
        )
}

fn trace_ref() -> impl Strategy<Value = reference::TraceRef> {
    (text(), text(), text()).prop_map(|(kind, id, relation)| reference::TraceRef {
        kind,
        id,
        relation,
    })
}

fn response() -> impl Strategy<Value = reference::CheckResponse> {
    let step = (
        any::<i32>(),
        any::<i32>(),
        text(),
        any::<u32>(),
        any::<i32>(),
        proptest::collection::vec(trace_ref(), 0..3),
        proptest::option::of(
            (
                text(),
                any::<i32>(),
                proptest::collection::vec(trace_ref(), 0..2),
            )
                .prop_map(|(detail, level, refs)| reference::TraceMissing {
                    detail,
                    level,
                    refs,
                }),
        ),
    )
        .prop_map(|(reason, level, detail, step, outcome, refs, missing)| {
            reference::TraceStep {
                reason,
                level,
                detail,
                step,
                outcome,
                refs,
                missing,
            }
        });
    (
        any::<bool>(),
        any::<i32>(),
        any::<i32>(),
        prop_oneof![
            3 => any::<u64>().prop_map(|r| r.to_string()),
            1 => text(),
        ],
        proptest::collection::vec(step, 0..3),
    )
        .prop_map(
            |(allowed, reason, level, revision, trace)| reference::CheckResponse {
                allowed,
                reason,
                level,
                revision,
                trace,
            },
        )
}

/// Decoding `bytes` both ways gives the same message, or the same error.
fn same_decoding<W, R>(bytes: &[u8], convert: impl Fn(&R) -> W) -> Result<(), TestCaseError>
where
    W: Message + Default + PartialEq + std::fmt::Debug,
    R: Message + Default,
{
    match (W::decode(bytes), R::decode(bytes)) {
        (Ok(w), Ok(r)) => prop_assert_eq!(w, convert(&r)),
        (Err(w), Err(r)) => prop_assert_eq!(w.to_string(), r.to_string()),
        (w, r) => prop_assert!(
            false,
            "hand-written {:?}, prost {:?}",
            w.map(|_| "a message"),
            r.map(|_| "a message")
        ),
    }
    Ok(())
}

proptest! {
    #[test]
    fn a_request_encodes_as_prost_encodes_it(r in request()) {
        let w = wire_request(&r);
        let bytes = r.encode_to_vec();
        prop_assert_eq!(w.encoded_len(), r.encoded_len());
        prop_assert_eq!(w.encode_to_vec(), bytes.clone());
        prop_assert_eq!(pb::CheckRequest::decode(bytes.as_slice()).unwrap(), w);
    }

    #[test]
    fn a_response_encodes_as_prost_encodes_it(r in response()) {
        let w = wire_response(&r);
        let bytes = r.encode_to_vec();
        prop_assert_eq!(w.encoded_len(), r.encoded_len());
        prop_assert_eq!(w.encode_to_vec(), bytes.clone());
        prop_assert_eq!(pb::CheckResponse::decode(bytes.as_slice()).unwrap(), w);
    }

    #[test]
    fn any_bytes_decode_to_the_same_request_or_the_same_error(
        bytes in request().prop_flat_map(|r| mangled(r.encode_to_vec()))
    ) {
        same_decoding::<pb::CheckRequest, reference::CheckRequest>(&bytes, wire_request)?;
        // The bulk message holds the same checks.
        let mut bulk = vec![0x0a];
        prost::encoding::encode_varint(bytes.len() as u64, &mut bulk);
        bulk.extend_from_slice(&bytes);
        same_decoding::<pb::CheckBulkRequest, reference::CheckBulkRequest>(&bulk, |r| {
            pb::CheckBulkRequest { checks: r.checks.iter().map(wire_request).collect() }
        })?;
    }

    #[test]
    fn any_bytes_decode_to_the_same_response_or_the_same_error(
        bytes in response().prop_flat_map(|r| mangled(r.encode_to_vec()))
    ) {
        same_decoding::<pb::CheckResponse, reference::CheckResponse>(&bytes, wire_response)?;
    }
}

#[test]
fn unknown_fields_are_skipped_and_invalid_utf8_is_refused_naming_the_field() {
    let known = reference::CheckRequest {
        org_id: "acme".into(),
        subject: "u1".into(),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99 (varint) and field 12 (length-delimited), unknown to both.
    let unknown = [
        known.clone(),
        vec![0x98, 0x06, 0x01, 0x62, 0x02, b'h', b'i'],
    ]
    .concat();
    let decoded = pb::CheckRequest::decode(unknown.as_slice()).unwrap();
    assert_eq!(decoded.org_id, "acme");
    assert_eq!(decoded.subject, "u1");
    assert_eq!(decoded.encode_to_vec(), known);

    // subject (field 2) = [0xff]: not UTF-8.
    let bad = [0x12, 0x01, 0xff];
    let error = pb::CheckRequest::decode(&bad[..]).unwrap_err().to_string();
    assert!(error.contains("CheckRequest.subject"), "{error}");
    assert_eq!(
        error,
        reference::CheckRequest::decode(&bad[..])
            .unwrap_err()
            .to_string()
    );
}
