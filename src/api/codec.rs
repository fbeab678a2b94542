//! The gRPC codec of Warden's services (build.rs names it to tonic): prost's
//! own, except that a message held in one slice is decoded from that slice
//! (not through tonic's `DecodeBuf`), and a CheckBulk request's checks are
//! counted before they are decoded, so that their vector is allocated once
//! at its size. prost
//! pushes each repeated message onto a vector that grows by doubling, and
//! each growth copies every check decoded so far (a check is some 400
//! bytes): 342 instructions per check of a 100-check call, 5 % of its
//! server cost (docs/benchmarks.md, "Part B (third round)").

use std::any::{Any, TypeId};
use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use super::pb;

/// Most checks a request's vector is allocated for ahead: the default
/// `--bulk-checks` limit. A larger request (refused by the handler unless
/// the limit was raised) grows the vector as prost would; a small message
/// cannot make the server reserve memory for more than this.
pub(crate) const MOST_RESERVED: usize = 1000;

/// prost's codec, with CheckBulk's checks counted before decoding.
#[derive(Debug, Clone, Copy)]
pub struct WardenCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for WardenCodec<T, U> {
    fn default() -> Self {
        WardenCodec(PhantomData)
    }
}

impl<T, U> Codec for WardenCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = WardenDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        WardenDecoder(PhantomData)
    }
}

/// The decoder of [`WardenCodec`].
#[derive(Debug, Clone, Copy)]
pub struct WardenDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for WardenDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // tonic buffers a whole message before decoding it, so it is
        // normally one slice: prost decodes a `&[u8]` with its reads
        // inlined, while through `DecodeBuf` every varint and string goes
        // through its `chunk`/`advance` calls (docs/benchmarks.md, "Part B
        // (third round)").
        let len = buf.remaining();
        let whole = buf.chunk().len() == len;
        let item = if whole {
            let mut slice: &[u8] = buf.chunk();
            decode_message::<U>(&mut slice)?
        } else {
            decode_message::<U>(buf)?
        };
        if whole {
            buf.advance(len);
        }
        Ok(Some(item))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// `U` decoded from `buf`, a CheckBulk request with its checks counted
/// first.
fn decode_message<U: Message + Default + 'static>(buf: &mut impl Buf) -> Result<U, Status> {
    if TypeId::of::<U>() != TypeId::of::<pb::CheckBulkRequest>() {
        return U::decode(buf).map_err(decode_error);
    }
    let mut request = pb::CheckBulkRequest {
        checks: Vec::with_capacity(count_field(buf.chunk(), 1).min(MOST_RESERVED)),
    };
    // A request in one slice that is UTF-8 as a whole (ids are ASCII, and
    // so are the keys and short lengths) is validated once, not five ids
    // per check (src/api/wire.rs `merge_checks_text`).
    let len = buf.remaining();
    let text = if buf.chunk().len() == len {
        std::str::from_utf8(buf.chunk()).ok()
    } else {
        None
    };
    match text {
        Some(text) => {
            super::wire::merge_checks_text(&mut request.checks, text).map_err(decode_error)?;
            buf.advance(len);
        }
        None => request.merge(buf).map_err(decode_error)?,
    }
    // `U` is `CheckBulkRequest` here: the value moves into the slot of its
    // own type, never converted.
    let mut out: Option<U> = None;
    if let Some(slot) = (&mut out as &mut dyn Any).downcast_mut::<Option<pb::CheckBulkRequest>>() {
        *slot = Some(request);
    }
    out.ok_or_else(|| Status::internal("checks: the request could not be decoded"))
}

/// As prost's codec maps a malformed message (gRPC's status codes guide).
fn decode_error(error: prost::DecodeError) -> Status {
    Status::internal(error.to_string())
}

/// How many length-delimited values of field `field` the top level of the
/// encoded message `bytes` holds. Only a hint: counting stops, short, at
/// anything malformed, which decoding then refuses.
pub(crate) fn count_field(bytes: &[u8], field: u64) -> usize {
    let mut rest = bytes;
    let mut count = 0;
    while !rest.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut rest) else {
            break;
        };
        let skip = match key & 7 {
            0 => match prost::encoding::decode_varint(&mut rest) {
                Ok(_) => 0,
                Err(_) => break,
            },
            1 => 8,
            2 => {
                let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
                    break;
                };
                if key >> 3 == field {
                    count += 1;
                }
                match usize::try_from(len) {
                    Ok(len) => len,
                    Err(_) => break,
                }
            }
            5 => 4,
            _ => break,
        };
        match rest.get(skip..) {
            Some(after) => rest = after,
            None => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::api::test_reference::{reference, wire_check};

    /// The codec and prost's generated code on `bytes` as a CheckBulk
    /// request: the same checks, or both an error.
    fn same_bulk(bytes: &[u8]) -> Result<(), String> {
        let mut slice = bytes;
        let ours = decode_message::<pb::CheckBulkRequest>(&mut slice);
        match (ours, reference::CheckBulkRequest::decode(bytes)) {
            (Ok(o), Ok(r)) => {
                let theirs: Option<Vec<_>> = r.checks.iter().map(wire_check).collect();
                if Some(&o.checks) == theirs.as_ref() {
                    Ok(())
                } else {
                    Err(format!("codec {o:?}, prost {r:?}"))
                }
            }
            (Err(_), Err(_)) => Ok(()),
            (o, r) => Err(format!("codec {o:?}, prost {r:?}")),
        }
    }

    /// A CheckBulk of `n` checks with ASCII or non-ASCII ids, as prost
    /// encodes it.
    fn bulk_bytes(ids: &[String]) -> Vec<u8> {
        reference::CheckBulkRequest {
            checks: ids
                .iter()
                .enumerate()
                .map(|(i, id)| reference::CheckRequest {
                    org_id: "acme".into(),
                    subject: id.clone(),
                    module: "leads".into(),
                    action: if i % 2 == 0 { "read" } else { "edit" }.into(),
                    record_id: id.chars().rev().collect(),
                    explain: i % 3 == 0,
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_bulk_that_is_text_decodes_as_prost_decodes_it() {
        let ids: Vec<String> = ["u1", "ü2", "🦀", "", "r.000:1@x-y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bytes = bulk_bytes(&ids);
        assert!(
            std::str::from_utf8(&bytes).is_ok(),
            "the sliced path is taken"
        );
        let mut slice = bytes.as_slice();
        let decoded = decode_message::<pb::CheckBulkRequest>(&mut slice).unwrap();
        assert_eq!(decoded.checks.len(), 5);
        assert_eq!(decoded.checks[1].subject, "ü2");
        assert_eq!(decoded.checks[2].record_id, "🦀");
        assert_eq!(same_bulk(&bytes), Ok(()));
        // A check's subject of one byte 0xC3 whose next byte (0xA2, the
        // key of unknown field 20, continued by 0x01) completes "â": the
        // request is text, the field is not, and both refuse it.
        let split = [0x0a, 0x06, 0x12, 0x01, 0xc3, 0xa2, 0x01, 0x00];
        assert!(std::str::from_utf8(&split).is_ok());
        let mut slice = &split[..];
        assert!(decode_message::<pb::CheckBulkRequest>(&mut slice).is_err());
        assert_eq!(same_bulk(&split), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Valid bulks cut or with a byte changed to another ASCII one:
        /// the codec's sliced path agrees with prost.
        #[test]
        fn ascii_bulks_decode_as_prost_decodes_them(
            ids in proptest::collection::vec("[a-z0-9é_-]{0,8}", 0..6),
            at in any::<usize>(),
            byte in 0u8..0x80,
            cut in any::<bool>(),
        ) {
            let mut bytes = bulk_bytes(&ids);
            if !bytes.is_empty() {
                let at = at % bytes.len();
                if cut { bytes.truncate(at) } else { bytes[at] = byte }
            }
            prop_assert_eq!(same_bulk(&bytes), Ok(()));
        }

        /// Any text at all, read as a CheckBulk request.
        #[test]
        fn any_text_decodes_as_a_bulk_as_prost_decodes_it(text in any::<String>()) {
            prop_assert_eq!(same_bulk(text.as_bytes()), Ok(()));
        }
    }

    #[test]
    fn checks_are_counted_exactly_and_malformed_input_stops_the_count() {
        for n in [0usize, 1, 7, 100] {
            let request = pb::CheckBulkRequest {
                checks: (0..n)
                    .map(|i| pb::CheckRequest {
                        org_id: "acme".into(),
                        subject: format!("user-{i}").into(),
                        explain: i % 2 == 0,
                        ..Default::default()
                    })
                    .collect(),
            };
            let bytes = request.encode_to_vec();
            assert_eq!(count_field(&bytes, 1), n);
            // Cut inside the last check: that one is not counted as whole
            // bytes, the count never exceeds what is there.
            if n > 0 {
                assert!(count_field(&bytes[..bytes.len() - 1], 1) <= n);
            }
        }
        // Only field 1 is counted (a check's org_id here); its other
        // fields, varints included, are skipped.
        let check = pb::CheckRequest {
            org_id: "acme".into(),
            explain: true,
            ..Default::default()
        };
        assert_eq!(count_field(&check.encode_to_vec(), 1), 1);
        assert_eq!(count_field(&[0xff; 16], 1), 0);
    }
}
