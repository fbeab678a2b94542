//! `warden.v1.CheckRequest` and `CheckResponse`, written by hand so their
//! ids are [`CompactString`]s: an id of up to 24 bytes is held inline, so
//! decoding a Check allocates nothing for its five ids, and a revision is
//! written without an allocation (prost decodes every `string` into a
//! `String` of its own: five allocations a Check, 500 a CheckBulk of 100;
//! docs/benchmarks.md, "Part E (fourth round)"). build.rs maps the two
//! messages here with prost-build's `extern_path`, so the generated
//! service, client and CheckBulk messages use these types.
//!
//! The wire behaviour is exactly prost's (tests/wire.rs compares both on
//! random messages and random bytes): fields encoded in field-number order,
//! defaults not written, unknown fields skipped, the last of a repeated
//! scalar field kept, invalid UTF-8 refused with prost's own error.

use bytes::{Buf, BufMut};
use compact_str::CompactString;
use prost::encoding::{
    self, check_wire_type, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len,
    DecodeContext, WireType,
};
use prost::{DecodeError, Message};

use super::pb;

/// One check (SPEC section 2): `warden.v1.CheckRequest`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct CheckRequest {
    /// Organization id (field 1).
    pub org_id: CompactString,
    /// The user asking (2).
    pub subject: CompactString,
    /// Module id (3).
    pub module: CompactString,
    /// Action (4).
    pub action: CompactString,
    /// Record id; empty = no record (5).
    pub record_id: CompactString,
    /// Field name; empty = no field (6).
    pub field: CompactString,
    /// Time of the check for shifts (7); unset = now.
    pub at: Option<prost_types::Timestamp>,
    /// Freshness of the state the answer is taken from (8).
    pub consistency: Option<pb::Consistency>,
    /// Return the explain trace (9).
    pub explain: bool,
    /// Target owner of an `assign` (10).
    pub assign_to: Option<pb::Owner>,
    /// The record described instead of stored (11).
    pub record: Option<pb::RecordDescription>,
}

/// The decision of one check: `warden.v1.CheckResponse`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct CheckResponse {
    /// ALLOW (true) or DENY (false) (field 1).
    pub allowed: bool,
    /// `Reason` (2), its number.
    pub reason: i32,
    /// `AccessLevel` (3), its number.
    pub level: i32,
    /// The organization revision the answer was taken at (4).
    pub revision: CompactString,
    /// With explain: every step evaluated (5).
    pub trace: Vec<pb::TraceStep>,
}

impl CheckResponse {
    /// The reason, the default for an unknown number (as prost's getter).
    pub fn reason(&self) -> pb::Reason {
        pb::Reason::try_from(self.reason).unwrap_or_default()
    }

    /// The level, the default for an unknown number (as prost's getter).
    pub fn level(&self) -> pb::AccessLevel {
        pb::AccessLevel::try_from(self.level).unwrap_or_default()
    }
}

// prost's string helpers take `&String`/`&mut String`; these are the same
// bytes for a `CompactString`.

fn str_encode(tag: u32, value: &str, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.put_slice(value.as_bytes());
}

fn str_encoded_len(tag: u32, value: &str) -> usize {
    key_len(tag) + encoded_len_varint(value.len() as u64) + value.len()
}

/// prost's error for a length past the end of the buffer, made by prost
/// itself (its constructor is private) on this cold path.
#[cold]
fn underflow(ctx: DecodeContext) -> DecodeError {
    let mut nothing: &[u8] = &[1];
    match encoding::bytes::merge(
        WireType::LengthDelimited,
        &mut Vec::<u8>::new(),
        &mut nothing,
        ctx,
    ) {
        Err(e) => e,
        // Unreachable (a length of 1 with nothing after it); still an
        // error, never a value.
        Ok(()) => invalid_utf8(DecodeContext::default()),
    }
}

/// prost's error for a string that is not UTF-8, made by prost itself.
#[cold]
fn invalid_utf8(ctx: DecodeContext) -> DecodeError {
    let mut bad: &[u8] = &[1, 0xff];
    match encoding::string::merge(WireType::LengthDelimited, &mut String::new(), &mut bad, ctx) {
        Err(e) => e,
        Ok(()) => underflow(DecodeContext::default()),
    }
}

/// The length of a length-delimited value at the head of `buf`, its key
/// already read: prost's wire-type check, then a length no longer than
/// what is left (a longer one is a short buffer).
fn delimited_len(
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: &DecodeContext,
) -> Result<usize, DecodeError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(underflow(ctx.clone()));
    }
    // At most `remaining`, itself a usize.
    Ok(len as usize)
}

/// As `prost::encoding::string::merge`: the last value wins, and a value
/// that is not UTF-8 is refused (and the field cleared).
fn str_merge(
    wire_type: WireType,
    value: &mut CompactString,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let len = delimited_len(wire_type, buf, &ctx)?;
    let chunk = buf.chunk();
    if chunk.len() >= len {
        // The usual case: the string lies in one slice, copied once
        // (inline when it is short).
        let Ok(text) = std::str::from_utf8(&chunk[..len]) else {
            value.clear();
            return Err(invalid_utf8(ctx));
        };
        *value = CompactString::new(text);
        buf.advance(len);
        return Ok(());
    }
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    match String::from_utf8(bytes) {
        Ok(text) => {
            *value = CompactString::from(text);
            Ok(())
        }
        Err(_) => {
            value.clear();
            Err(invalid_utf8(ctx))
        }
    }
}

/// A field's error located as prost's generated code locates it.
pub(crate) fn at(
    message: &'static str,
    field: &'static str,
) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut e| {
        e.push(message, field);
        e
    }
}

/// An optional message field, as prost's generated code encodes it: not
/// written when absent.
fn opt_encode<M: Message>(tag: u32, value: &Option<M>, buf: &mut impl BufMut) {
    if let Some(m) = value {
        encoding::message::encode(tag, m, buf);
    }
}

/// The encoded length of an optional message field ([`opt_encode`]).
fn opt_encoded_len<M: Message>(tag: u32, value: &Option<M>) -> usize {
    value
        .as_ref()
        .map_or(0, |m| encoding::message::encoded_len(tag, m))
}

/// An optional message field merged as prost merges it: into the value
/// already there, or into a default one.
fn opt_merge<M: Message + Default>(
    wire_type: WireType,
    value: &mut Option<M>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    encoding::message::merge(wire_type, value.get_or_insert_with(M::default), buf, ctx)
}

/// As [`str_merge`], for a message already known to be UTF-8 as a whole
/// (`text`, of which `rest` is the unread end): the value is sliced from
/// `text` without validating it again. A slice that does not start and end
/// on character boundaries of `text` is not UTF-8 on its own; it is
/// validated as [`str_merge`] does, and so refused.
fn str_merge_in(
    text: &str,
    wire_type: WireType,
    value: &mut CompactString,
    rest: &mut &[u8],
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let len = delimited_len(wire_type, rest, &ctx)?;
    let (bytes, after) = rest.split_at(len);
    let start = text.len() - rest.len();
    let sliced = match text.get(start..start + len) {
        Some(s) => Ok(s),
        None => std::str::from_utf8(bytes),
    };
    *rest = after;
    match sliced {
        Ok(s) => {
            *value = CompactString::new(s);
            Ok(())
        }
        Err(_) => {
            value.clear();
            Err(invalid_utf8(ctx))
        }
    }
}

/// The checks of a `CheckBulkRequest` held in `text`, valid UTF-8 as a
/// whole, merged into `checks` as prost merges them (`repeated
/// CheckRequest checks = 1`, unknown fields skipped), each check's
/// strings sliced from `text` ([`CheckRequest::merge_text`]): the codec
/// validates a CheckBulk once rather than five ids per check. The one
/// difference from prost: a check whose last field runs past the check's
/// own length fails as a short buffer ("buffer underflow") where prost
/// reads on and fails with "delimited length exceeded" (an error either
/// way, and either way one of `CheckBulkRequest.checks`).
pub(crate) fn merge_checks_text(
    checks: &mut Vec<CheckRequest>,
    text: &str,
) -> Result<(), DecodeError> {
    each_check_text(text, |check| checks.push(std::mem::take(check)))
}

/// Each check of a `CheckBulkRequest` held in `text`, valid UTF-8 as a
/// whole, decoded as [`merge_checks_text`] decodes it and handed to `each`
/// in request order (which may take its fields): the hand-routed CheckBulk
/// converts each check as it is decoded (src/api/bulk_wire.rs).
pub(crate) fn each_check_text(
    text: &str,
    each: impl FnMut(&mut CheckRequest),
) -> Result<(), DecodeError> {
    let nested = nested_context(&DecodeContext::default());
    each_check_by(
        text.as_bytes(),
        #[inline(always)]
        |wire_type, check, rest| check_in(text, wire_type, check, rest, &nested),
        each,
    )
}

/// Each check of a `CheckBulkRequest` in `bytes` (not UTF-8 as a whole),
/// decoded as prost's generated `merge` decodes the request (`repeated
/// CheckRequest checks = 1`, unknown fields skipped) and handed to `each`.
pub(crate) fn each_check(
    bytes: &[u8],
    each: impl FnMut(&mut CheckRequest),
) -> Result<(), DecodeError> {
    let ctx = DecodeContext::default();
    each_check_by(
        bytes,
        #[inline(always)]
        |wire_type, check, rest| encoding::message::merge(wire_type, check, rest, ctx.clone()),
        each,
    )
}

/// The one loop over a `CheckBulkRequest`'s fields behind
/// [`each_check_text`] and [`each_check`]: field 1 (`checks`) is read by
/// `decode` (the key already taken, `rest` at its length) into a fresh
/// check handed to `each`; any other field is skipped, as prost skips an
/// unknown field.
#[inline(always)]
fn each_check_by(
    mut rest: &[u8],
    mut decode: impl FnMut(WireType, &mut CheckRequest, &mut &[u8]) -> Result<(), DecodeError>,
    mut each: impl FnMut(&mut CheckRequest),
) -> Result<(), DecodeError> {
    let ctx = DecodeContext::default();
    while !rest.is_empty() {
        let (tag, wire_type) = encoding::decode_key(&mut rest)?;
        if tag != 1 {
            encoding::skip_field(wire_type, tag, &mut rest, ctx.clone())?;
            continue;
        }
        let mut check = CheckRequest::default();
        decode(wire_type, &mut check, &mut rest).map_err(at("CheckBulkRequest", "checks"))?;
        each(&mut check);
    }
    Ok(())
}

/// One length-delimited check of `text` at `rest`, as prost's
/// `encoding::message::merge` reads it.
fn check_in(
    text: &str,
    wire_type: WireType,
    check: &mut CheckRequest,
    rest: &mut &[u8],
    nested: &DecodeContext,
) -> Result<(), DecodeError> {
    let len = delimited_len(wire_type, rest, nested)?;
    let start = text.len() - rest.len();
    let (bytes, after) = rest.split_at(len);
    *rest = after;
    match text.get(start..start + len) {
        Some(sub) => check.merge_text(sub, nested.clone()),
        None => {
            // Not on character boundaries: its strings are validated one
            // by one, as prost validates them.
            let mut bytes = bytes;
            while !bytes.is_empty() {
                let (tag, wire_type) = encoding::decode_key(&mut bytes)?;
                check.merge_field(tag, wire_type, &mut bytes, nested.clone())?;
            }
            Ok(())
        }
    }
}

/// The context prost gives the fields of a message nested in one at
/// `ctx` (one recursion level used), captured from prost's own nested
/// merge: its constructor is private, and decoding must refuse nesting at
/// the depth prost refuses it.
fn nested_context(ctx: &DecodeContext) -> DecodeContext {
    #[derive(Debug, Default)]
    struct Probe(Option<DecodeContext>);
    impl Message for Probe {
        fn encode_raw(&self, _: &mut impl BufMut) {}
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), DecodeError> {
            self.0 = Some(ctx.clone());
            encoding::skip_field(wire_type, tag, buf, ctx)
        }
        fn encoded_len(&self) -> usize {
            0
        }
        fn clear(&mut self) {
            self.0 = None;
        }
    }
    let mut probe = Probe::default();
    // A message of 2 bytes holding field 1 = 0.
    let mut bytes: &[u8] = &[2, 0x08, 0x00];
    let _ = encoding::message::merge(
        WireType::LengthDelimited,
        &mut probe,
        &mut bytes,
        ctx.clone(),
    );
    // Always captured (prost calls `merge_field` for the one field); were
    // it not, the outer context would allow one level more than prost.
    probe.0.unwrap_or_else(|| ctx.clone())
}

impl CheckRequest {
    /// String field `tag` (1–6) and its name.
    fn string_field(&mut self, tag: u32) -> Option<(&mut CompactString, &'static str)> {
        Some(match tag {
            1 => (&mut self.org_id, "org_id"),
            2 => (&mut self.subject, "subject"),
            3 => (&mut self.module, "module"),
            4 => (&mut self.action, "action"),
            5 => (&mut self.record_id, "record_id"),
            6 => (&mut self.field, "field"),
            _ => return None,
        })
    }

    /// [`Message::merge`] of a message held in `text`, valid UTF-8 as a
    /// whole: its strings are sliced from it rather than each validated
    /// (five validations of a short id cost more than one of the message,
    /// docs/benchmarks.md, "Part I (fifth round)"). Every other field is
    /// merged by [`Message::merge_field`], as prost's `merge` does.
    fn merge_text(&mut self, text: &str, ctx: DecodeContext) -> Result<(), DecodeError> {
        const NAME: &str = "CheckRequest";
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let (tag, wire_type) = encoding::decode_key(&mut rest)?;
            match self.string_field(tag) {
                Some((value, field)) => {
                    str_merge_in(text, wire_type, value, &mut rest, ctx.clone())
                        .map_err(at(NAME, field))?;
                }
                None => self.merge_field(tag, wire_type, &mut rest, ctx.clone())?,
            }
        }
        Ok(())
    }

    /// The string fields (1–6) with their numbers, in field-number order.
    fn strings(&self) -> [(u32, &CompactString); 6] {
        [
            (1, &self.org_id),
            (2, &self.subject),
            (3, &self.module),
            (4, &self.action),
            (5, &self.record_id),
            (6, &self.field),
        ]
    }
}

impl Message for CheckRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for (tag, value) in self.strings() {
            if !value.is_empty() {
                str_encode(tag, value, buf);
            }
        }
        opt_encode(7, &self.at, buf);
        opt_encode(8, &self.consistency, buf);
        if self.explain {
            encoding::bool::encode(9, &self.explain, buf);
        }
        opt_encode(10, &self.assign_to, buf);
        opt_encode(11, &self.record, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "CheckRequest";
        if let Some((value, field)) = self.string_field(tag) {
            return str_merge(wire_type, value, buf, ctx).map_err(at(NAME, field));
        }
        match tag {
            7 => opt_merge(wire_type, &mut self.at, buf, ctx).map_err(at(NAME, "at")),
            8 => opt_merge(wire_type, &mut self.consistency, buf, ctx)
                .map_err(at(NAME, "consistency")),
            9 => encoding::bool::merge(wire_type, &mut self.explain, buf, ctx)
                .map_err(at(NAME, "explain")),
            10 => {
                opt_merge(wire_type, &mut self.assign_to, buf, ctx).map_err(at(NAME, "assign_to"))
            }
            11 => opt_merge(wire_type, &mut self.record, buf, ctx).map_err(at(NAME, "record")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        for (tag, value) in self.strings() {
            if !value.is_empty() {
                len += str_encoded_len(tag, value);
            }
        }
        if self.explain {
            len += encoding::bool::encoded_len(9, &self.explain);
        }
        len + opt_encoded_len(7, &self.at)
            + opt_encoded_len(8, &self.consistency)
            + opt_encoded_len(10, &self.assign_to)
            + opt_encoded_len(11, &self.record)
    }

    // prost's `merge`, except that a message held in one slice and valid
    // UTF-8 as a whole (ids are ASCII, and so are the keys and lengths of
    // a usual Check) is decoded by `merge_text`.
    fn merge(&mut self, mut buf: impl Buf) -> Result<(), DecodeError> {
        let chunk = buf.chunk();
        let len = chunk.len();
        if len == buf.remaining() {
            if let Ok(text) = std::str::from_utf8(chunk) {
                let merged = self.merge_text(text, DecodeContext::default());
                buf.advance(len);
                return merged;
            }
        }
        let ctx = DecodeContext::default();
        while buf.has_remaining() {
            let (tag, wire_type) = encoding::decode_key(&mut buf)?;
            self.merge_field(tag, wire_type, &mut buf, ctx.clone())?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        *self = CheckRequest::default();
    }
}

impl Message for CheckResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.allowed {
            encoding::bool::encode(1, &self.allowed, buf);
        }
        if self.reason != 0 {
            encoding::int32::encode(2, &self.reason, buf);
        }
        if self.level != 0 {
            encoding::int32::encode(3, &self.level, buf);
        }
        if !self.revision.is_empty() {
            str_encode(4, &self.revision, buf);
        }
        encoding::message::encode_repeated(5, &self.trace, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "CheckResponse";
        match tag {
            1 => encoding::bool::merge(wire_type, &mut self.allowed, buf, ctx)
                .map_err(at(NAME, "allowed")),
            2 => encoding::int32::merge(wire_type, &mut self.reason, buf, ctx)
                .map_err(at(NAME, "reason")),
            3 => encoding::int32::merge(wire_type, &mut self.level, buf, ctx)
                .map_err(at(NAME, "level")),
            4 => str_merge(wire_type, &mut self.revision, buf, ctx).map_err(at(NAME, "revision")),
            5 => encoding::message::merge_repeated(wire_type, &mut self.trace, buf, ctx)
                .map_err(at(NAME, "trace")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.allowed {
            len += encoding::bool::encoded_len(1, &self.allowed);
        }
        if self.reason != 0 {
            len += encoding::int32::encoded_len(2, &self.reason);
        }
        if self.level != 0 {
            len += encoding::int32::encoded_len(3, &self.level);
        }
        if !self.revision.is_empty() {
            len += str_encoded_len(4, &self.revision);
        }
        len + encoding::message::encoded_len_repeated(5, &self.trace)
    }

    fn clear(&mut self) {
        *self = CheckResponse::default();
    }
}
