//! `warden.v1.LookupRecordsResponse`, written by hand so that a page's ids
//! go from the lookup's snapshot straight into the message's bytes: prost's
//! generated message holds a `String` per id (10,000 allocations and
//! copies a page, 9.6 M instructions of a 97,712-id lookup;
//! docs/benchmarks.md, "Part J (fifth round)"). build.rs maps the message
//! here with prost-build's `extern_path`, so the generated service and
//! client use this type.
//!
//! A client decodes into `record_ids` as prost would. The server builds a
//! page with [`PageIds`] (field 1 already encoded, one buffer a page) and
//! [`LookupRecordsResponse::page`]. The wire behaviour is prost's
//! (tests/lookup_wire.rs compares both): fields in field-number order,
//! empty strings not written, unknown fields skipped, invalid UTF-8 refused
//! with prost's own error (decoding is prost's own functions).

use bytes::{Buf, BufMut};
use prost::encoding::{self, encode_key, encode_varint, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// Field number of `record_ids`.
const RECORD_IDS: u32 = 1;
/// The key byte of a `record_ids` entry: field 1, length-delimited.
const ONE_ID_KEY: u8 = ((RECORD_IDS as u8) << 3) | 2;

/// One page of a LookupRecords stream: `warden.v1.LookupRecordsResponse`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct LookupRecordsResponse {
    /// Record ids of this page (field 1), as a client decodes them.
    pub record_ids: Vec<String>,
    /// Cursor to resume after this page (2).
    pub cursor: String,
    /// The organization revision the whole lookup is taken at (3).
    pub revision: String,
    /// A server's page: field 1's entries already encoded, written after
    /// `record_ids` (empty on a client, which decodes into `record_ids`).
    encoded_ids: Vec<u8>,
}

/// The ids of one page, encoded as field 1 entries as they are read from
/// the snapshot: one buffer a page instead of a `String` an id.
#[derive(Debug, Default)]
pub struct PageIds {
    bytes: Vec<u8>,
    count: usize,
}

impl PageIds {
    /// Room for about `bytes` bytes of encoded ids (a guess; it grows).
    pub fn with_capacity(bytes: usize) -> PageIds {
        PageIds {
            bytes: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Appends one id, as prost encodes an element of a repeated string.
    pub fn push(&mut self, id: &str) {
        match u8::try_from(id.len()) {
            // The usual id: its key and a one-byte length written at once
            // (prost's varint loop was 2 M instructions a lookup).
            Ok(len) if len < 0x80 => self.bytes.put_slice(&[ONE_ID_KEY, len]),
            _ => {
                encode_key(RECORD_IDS, WireType::LengthDelimited, &mut self.bytes);
                encode_varint(id.len() as u64, &mut self.bytes);
            }
        }
        self.bytes.put_slice(id.as_bytes());
        self.count += 1;
    }

    /// How many ids were pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl LookupRecordsResponse {
    /// A server's page: `ids` as encoded, then the cursor and revision.
    pub fn page(ids: PageIds, cursor: String, revision: String) -> LookupRecordsResponse {
        LookupRecordsResponse {
            record_ids: Vec::new(),
            cursor,
            revision,
            encoded_ids: ids.bytes,
        }
    }
}

impl Message for LookupRecordsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::string::encode_repeated(RECORD_IDS, &self.record_ids, buf);
        buf.put_slice(&self.encoded_ids);
        if !self.cursor.is_empty() {
            encoding::string::encode(2, &self.cursor, buf);
        }
        if !self.revision.is_empty() {
            encoding::string::encode(3, &self.revision, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "LookupRecordsResponse";
        let at = |field| super::wire::at(NAME, field);
        match tag {
            RECORD_IDS => {
                encoding::string::merge_repeated(wire_type, &mut self.record_ids, buf, ctx)
                    .map_err(at("record_ids"))
            }
            2 => {
                encoding::string::merge(wire_type, &mut self.cursor, buf, ctx).map_err(at("cursor"))
            }
            3 => encoding::string::merge(wire_type, &mut self.revision, buf, ctx)
                .map_err(at("revision")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = encoding::string::encoded_len_repeated(RECORD_IDS, &self.record_ids)
            + self.encoded_ids.len();
        if !self.cursor.is_empty() {
            len += encoding::string::encoded_len(2, &self.cursor);
        }
        if !self.revision.is_empty() {
            len += encoding::string::encoded_len(3, &self.revision);
        }
        len
    }

    fn clear(&mut self) {
        *self = LookupRecordsResponse::default();
    }
}
