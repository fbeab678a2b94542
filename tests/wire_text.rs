//! The hand-written `CheckRequest`'s decoding of a message that is valid
//! UTF-8 as a whole (src/api/wire.rs `merge_text`: its strings are sliced
//! from the message rather than each validated) against prost's generated
//! code (build.rs's `$OUT_DIR/reference`): the same message, or the same
//! error, for any such bytes.

use proptest::prelude::*;
use prost::Message;
use warden::api::pb;

#[allow(missing_docs, clippy::all, clippy::pedantic, dead_code)]
mod reference;

use reference::wire_request;

/// Both decoders on `bytes`: the same message or the same error text.
fn same(bytes: &[u8]) -> Result<(), String> {
    match (
        pb::CheckRequest::decode(bytes),
        reference::CheckRequest::decode(bytes),
    ) {
        (Ok(w), Ok(r)) if w == wire_request(&r) => Ok(()),
        (Err(w), Err(r)) if w.to_string() == r.to_string() => Ok(()),
        (w, r) => Err(format!("hand-written {w:?}, prost {r:?}")),
    }
}

#[test]
fn a_field_that_splits_a_character_of_a_valid_message_is_refused_as_prost_refuses_it() {
    // org_id (field 1) is the single byte 0xC3; it and the next key's
    // first byte (0xA2: field 20, length-delimited, key continued by 0x01)
    // make "â", so the message as a whole is UTF-8, the field is not.
    let bytes = [0x0a, 0x01, 0xc3, 0xa2, 0x01, 0x00];
    assert!(std::str::from_utf8(&bytes).is_ok());
    let error = pb::CheckRequest::decode(&bytes[..])
        .unwrap_err()
        .to_string();
    assert!(error.contains("CheckRequest.org_id"), "{error}");
    assert_eq!(same(&bytes), Ok(()));
}

#[test]
fn non_ascii_ids_of_a_valid_message_decode_as_prost_decodes_them() {
    let r = reference::CheckRequest {
        org_id: "acmé".into(),
        subject: "ü1".into(),
        module: "🦀".into(),
        action: "read".into(),
        record_id: "r-1".into(),
        field: "naïve".into(),
        explain: true,
        ..Default::default()
    };
    let bytes = r.encode_to_vec();
    assert!(std::str::from_utf8(&bytes).is_ok());
    assert_eq!(
        pb::CheckRequest::decode(bytes.as_slice()).unwrap(),
        wire_request(&r)
    );
    // A field given twice keeps its last value, as prost keeps it.
    let twice = [bytes.clone(), vec![0x0a, 0x02, b'z', b'z']].concat();
    assert_eq!(same(&twice), Ok(()));
    assert_eq!(
        pb::CheckRequest::decode(twice.as_slice()).unwrap().org_id,
        "zz"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any text, read as a message: every such input takes the sliced
    /// path (it is UTF-8 as a whole), and decodes as prost decodes it.
    #[test]
    fn any_text_decodes_to_the_same_request_or_the_same_error(text in any::<String>()) {
        prop_assert_eq!(same(text.as_bytes()), Ok(()));
    }

    /// Short ASCII messages: keys, lengths and strings all below 0x80,
    /// which is how a usual Check looks on the wire.
    #[test]
    fn any_ascii_bytes_decode_to_the_same_request_or_the_same_error(
        bytes in proptest::collection::vec(0u8..0x80, 0..48)
    ) {
        prop_assert_eq!(same(&bytes), Ok(()));
    }
}
