//! The hand-written `LookupRecordsResponse` (src/api/lookup_wire.rs)
//! against the message as prost generates it (build.rs compiles
//! check.proto a second time, without the `extern_path`, into
//! `$OUT_DIR/reference`): a server's page, its ids encoded straight from a
//! lookup's snapshot, is byte for byte prost's encoding of the same ids;
//! and any bytes decode to the same message or fail with the same error.

use std::sync::Arc;

use proptest::prelude::*;
use prost::Message;
use warden::api::lookup_wire::PageIds;
use warden::api::pb;
use warden::engine::lookup::RecordSet;
use warden::service::cursor::Cursors;
use warden::service::reads::RecordsView;

#[allow(missing_docs, clippy::all, clippy::pedantic, dead_code)]
mod reference;

use reference::mangled;

/// Short ids, long ones (a length of two varint bytes) and any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_-]{0,12}",
        1 => any::<String>(),
        1 => "[a-zé🦀]{100,140}",
    ]
}

fn response() -> impl Strategy<Value = reference::LookupRecordsResponse> {
    (proptest::collection::vec(text(), 0..40), text(), text()).prop_map(
        |(record_ids, cursor, revision)| reference::LookupRecordsResponse {
            record_ids,
            cursor,
            revision,
        },
    )
}

/// The server's form of `r`: its ids pushed one by one into a page.
fn page(r: &reference::LookupRecordsResponse) -> pb::LookupRecordsResponse {
    let mut ids = PageIds::with_capacity(0);
    for id in &r.record_ids {
        ids.push(id);
    }
    assert_eq!(ids.len(), r.record_ids.len());
    pb::LookupRecordsResponse::page(ids, r.cursor.clone(), r.revision.clone())
}

/// A client's form of `r` (what decoding gives).
fn decoded(r: &reference::LookupRecordsResponse) -> pb::LookupRecordsResponse {
    let mut m = pb::LookupRecordsResponse::default();
    m.record_ids.clone_from(&r.record_ids);
    m.cursor.clone_from(&r.cursor);
    m.revision.clone_from(&r.revision);
    m
}

proptest! {
    #[test]
    fn a_page_encodes_as_prost_encodes_the_same_ids(r in response()) {
        let bytes = r.encode_to_vec();
        let server = page(&r);
        prop_assert_eq!(server.encoded_len(), r.encoded_len());
        prop_assert_eq!(server.encode_to_vec(), bytes.clone());
        // A client decodes the page into its ids, and encodes it back alike.
        let client = pb::LookupRecordsResponse::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(&client, &decoded(&r));
        prop_assert_eq!(client.encoded_len(), r.encoded_len());
        prop_assert_eq!(client.encode_to_vec(), bytes);
    }

    #[test]
    fn any_bytes_decode_to_the_same_page_or_the_same_error(
        bytes in response().prop_flat_map(|r| mangled(r.encode_to_vec()))
    ) {
        match (
            pb::LookupRecordsResponse::decode(bytes.as_slice()),
            reference::LookupRecordsResponse::decode(bytes.as_slice()),
        ) {
            (Ok(w), Ok(r)) => prop_assert_eq!(w, decoded(&r)),
            (Err(w), Err(r)) => prop_assert_eq!(w.to_string(), r.to_string()),
            (w, r) => prop_assert!(
                false,
                "hand-written {:?}, prost {:?}",
                w.map(|_| "a message"),
                r.map(|_| "a message")
            ),
        }
    }

    /// A lookup's pages, encoded from its snapshot as the server sends
    /// them, are prost's encoding of the sorted ids page by page, with the
    /// same cursors as `RecordsView::page` gives.
    #[test]
    fn pages_from_a_snapshot_are_prost_pages_of_the_sorted_ids(
        ids in proptest::collection::btree_set("[a-c]{0,3}[0-9]{0,20}|[a-zé]{20,140}", 0..400),
        size in 1usize..60,
    ) {
        let mut shuffled: Vec<&str> = ids.iter().map(String::as_str).collect();
        shuffled.reverse();
        let set = RecordSet::from_ids(shuffled).unwrap();
        let key = ("o".to_string(), "s".to_string(), "m".to_string(), "view".to_string());
        let view = RecordsView {
            snapshot: 3,
            revision: 7,
            ids: Arc::new(Cursors::single(key, 7, set)),
            start: 0,
            key_print: 11,
        };
        let sorted: Vec<String> = ids.iter().cloned().collect();
        let mut offset = 0;
        while offset < sorted.len() {
            let mut page_ids = PageIds::with_capacity(8);
            let cursor = view.page_with(offset, size, |id| page_ids.push(id));
            let (listed, same_cursor) = view.page(offset, size);
            prop_assert_eq!(&cursor, &same_cursor);
            let end = (offset + size).min(sorted.len());
            prop_assert_eq!(&listed[..], &sorted[offset..end]);
            let want = reference::LookupRecordsResponse {
                record_ids: sorted[offset..end].to_vec(),
                cursor: cursor.clone(),
                revision: "7".into(),
            };
            let sent = pb::LookupRecordsResponse::page(page_ids, cursor, "7".into());
            prop_assert_eq!(sent.encode_to_vec(), want.encode_to_vec());
            offset = end;
        }
    }
}

#[test]
fn unknown_fields_are_skipped_and_invalid_utf8_is_refused_naming_the_field() {
    let known = reference::LookupRecordsResponse {
        record_ids: vec!["L1".into(), "L2".into()],
        cursor: "1.2.3.0000000000000004".into(),
        revision: "9".into(),
    }
    .encode_to_vec();
    // Field 99 (varint) and field 12 (length-delimited), unknown to both.
    let unknown = [
        known.clone(),
        vec![0x98, 0x06, 0x01, 0x62, 0x02, b'h', b'i'],
    ]
    .concat();
    let got = pb::LookupRecordsResponse::decode(unknown.as_slice()).unwrap();
    assert_eq!(got.record_ids, ["L1", "L2"]);
    assert_eq!(got.revision, "9");
    assert_eq!(got.encode_to_vec(), known);
    // record_ids (field 1) = [0xff]: not UTF-8.
    let bad = [0x0a, 0x01, 0xff];
    let error = pb::LookupRecordsResponse::decode(&bad[..])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("LookupRecordsResponse.record_ids"),
        "{error}"
    );
    assert_eq!(
        error,
        reference::LookupRecordsResponse::decode(&bad[..])
            .unwrap_err()
            .to_string()
    );
}
