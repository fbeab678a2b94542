//! CheckBulk routed by hand: its request decoded straight into the engine's
//! checks and its response encoded straight from the decisions.
//!
//! Through the generated service a CheckBulk of 100 decoded 100 wire
//! checks of 320 bytes into a vector, converted each into a second vector
//! (`convert::check_taken`), and built a `pb::CheckResponse` per decision
//! (its revision text and trace vector) for prost to encode
//! (docs/benchmarks.md, "Part I (fifth round)" and "Part Q (seventh
//! round)"). Here one pass over the frame's bytes converts each check as
//! it is decoded ([`BulkChecks`]), and [`BulkAnswer`] writes each decision's
//! bytes as prost would write its `CheckResponse`, the revision text once
//! per revision.
//!
//! [`CheckRoutes`] is the CheckService as served: `/warden.v1.CheckService/
//! CheckBulk` here, `.../Check` by `CheckApi::check_http` (src/api/unary.rs
//! reads and answers its call), every other method by the generated
//! `CheckServiceServer`. Behaviour and errors are the generated path's: the
//! decode errors are prost's (the same decoding functions, tests below),
//! conversion errors are kept per check and reported by the handler after
//! authentication and the size limit, as before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use compact_str::CompactString;
use prost::encoding;
use prost::DecodeError;
use tonic::body::Body;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

use super::check::CheckApi;
use super::codec::{count_field, MOST_RESERVED};
use super::convert;
use super::pb;
use super::pb::check_service_server::CheckServiceServer;
use super::wire;
use crate::engine::{CheckRequest, Decision, Error};
use crate::service::Consistency;

/// The path of Check, routed by [`CheckRoutes`].
const CHECK: &str = "/warden.v1.CheckService/Check";
/// The path of CheckBulk, routed by [`CheckRoutes`].
const CHECK_BULK: &str = "/warden.v1.CheckService/CheckBulk";

/// One converted check: its organization, the engine's request and the
/// freshness asked for.
pub type Converted = (CompactString, CheckRequest, Consistency);

/// A CheckBulk request as the handler reads it: each check converted as it
/// was decoded, up to the first that failed conversion.
#[derive(Debug, Default, PartialEq)]
pub struct BulkChecks {
    /// The checks before the first that failed conversion, in order.
    pub checks: Vec<Converted>,
    /// The first check that failed conversion (at index `checks.len()`).
    pub invalid: Option<Invalid>,
}

/// The first check of a bulk that failed conversion, and what is still
/// read of it and of the checks after it: their organizations, which the
/// handler authorizes before it reports the error.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    /// Its conversion's error (named field and rule).
    pub error: Error,
    /// The organizations of it and of every check after it, in order.
    pub orgs: Vec<CompactString>,
}

impl BulkChecks {
    fn with_capacity(n: usize) -> BulkChecks {
        BulkChecks {
            checks: Vec::with_capacity(n),
            invalid: None,
        }
    }

    /// Converts one decoded check (its fields taken) and keeps it.
    fn push(&mut self, check: &mut pb::CheckRequest) {
        // The organization first: `check_taken` may fail after taking it.
        let org = std::mem::take(&mut check.org_id);
        match &mut self.invalid {
            Some(invalid) => invalid.orgs.push(org),
            None => match convert::check_taken(check) {
                Ok((_, req, consistency)) => self.checks.push((org, req, consistency)),
                Err(error) => {
                    self.invalid = Some(Invalid {
                        error,
                        orgs: vec![org],
                    })
                }
            },
        }
    }

    /// The checks of a decoded `CheckBulkRequest` (the generated service's
    /// path, and the tests' reference).
    pub fn from_checks(checks: Vec<pb::CheckRequest>) -> BulkChecks {
        let mut out = BulkChecks::with_capacity(checks.len());
        for mut check in checks {
            out.push(&mut check);
        }
        out
    }

    /// How many checks the request held.
    pub fn len(&self) -> usize {
        self.checks.len() + self.invalid.as_ref().map_or(0, |i| i.orgs.len())
    }

    /// Whether it held none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every check's organization, in request order.
    pub fn orgs(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|(org, _, _)| org.as_str()).chain(
            self.invalid
                .iter()
                .flat_map(|i| i.orgs.iter().map(CompactString::as_str)),
        )
    }
}

/// A CheckBulk request decoded from `bytes` in one pass, each check
/// converted as it is read. A request that is UTF-8 as a whole is validated
/// once and its ids sliced from it (`wire::each_check_text`); the vector is
/// allocated once at the number of checks counted ahead.
pub fn decode_bulk(bytes: &[u8]) -> Result<BulkChecks, DecodeError> {
    let mut out = BulkChecks::with_capacity(count_field(bytes, 1).min(MOST_RESERVED));
    match std::str::from_utf8(bytes) {
        Ok(text) => wire::each_check_text(text, |check| out.push(check))?,
        Err(_) => wire::each_check(bytes, |check| out.push(check))?,
    }
    Ok(out)
}

/// The revisions of a bulk's decisions.
#[derive(Debug, Clone, PartialEq)]
pub enum Revisions {
    /// One for every decision (one organization: the usual call).
    One(u64),
    /// One per decision, in order.
    Each(Vec<u64>),
}

impl Revisions {
    /// The revision of decision `i`.
    pub fn at(&self, i: usize) -> u64 {
        match self {
            Revisions::One(r) => *r,
            Revisions::Each(revs) => revs.get(i).copied().unwrap_or_default(),
        }
    }
}

/// A CheckBulk answer: the decisions in request order and their revisions,
/// encoded as `warden.v1.CheckBulkResponse` by [`BulkAnswer::encode`].
#[derive(Debug, Clone, PartialEq)]
pub struct BulkAnswer {
    /// Decisions, in request order.
    pub decisions: Vec<Decision>,
    /// Their revisions.
    pub revisions: Revisions,
}

/// Field number of `CheckBulkResponse.results`.
const RESULTS: u32 = 1;

impl BulkAnswer {
    /// The bytes prost writes for the `CheckBulkResponse` of these
    /// decisions (fields in number order, defaults not written), written
    /// from the decisions themselves ([`Encoded`]: no `pb::CheckResponse`
    /// for a decision without a trace), and a revision's text made once
    /// per run of equal revisions.
    pub fn encode(self, buf: &mut impl BufMut) {
        let mut text: Option<(u64, CompactString)> = None;
        for (i, d) in self.decisions.into_iter().enumerate() {
            let rev = self.revisions.at(i);
            let revision = match &text {
                Some((at, t)) if *at == rev => t,
                _ => &text.insert((rev, convert::check_revision(rev))).1,
            };
            match Encoded::of(d, revision) {
                Encoded::Short(mut short) => buf.put_slice(short.as_result()),
                Encoded::Message(result) => encoding::message::encode(RESULTS, &result, buf),
            }
        }
    }

    /// The answer as the generated service's message.
    pub fn into_response(self) -> pb::CheckBulkResponse {
        let revisions = self.revisions;
        pb::CheckBulkResponse {
            results: self
                .decisions
                .into_iter()
                .enumerate()
                .map(|(i, d)| convert::decision(d, revisions.at(i)))
                .collect(),
        }
    }
}

/// The fields of a decision without a trace whose numbers and revision
/// each take one byte of length (every reason and level, any revision: at
/// most 20 digits), written as prost writes a `CheckResponse` (fields in
/// number order, defaults left out) into one array of at most 30 bytes,
/// its first two kept for a CheckBulk result's key and length: one write
/// rather than a write per field.
struct ShortFields {
    out: [u8; 32],
    /// Bytes used, the two kept included.
    n: usize,
}

impl ShortFields {
    /// The fields, or `None` when a number or the revision needs more
    /// than one byte of length (then prost's general encoding is used).
    fn new(allowed: bool, reason: i32, level: i32, revision: &str) -> Option<ShortFields> {
        let (Ok(reason), Ok(level), Ok(rev_len)) = (
            u8::try_from(reason),
            u8::try_from(level),
            u8::try_from(revision.len()),
        ) else {
            return None;
        };
        if reason >= 0x80 || level >= 0x80 || rev_len > 20 {
            return None;
        }
        let mut short = ShortFields {
            out: [0u8; 32],
            n: 2,
        };
        let mut put = |bytes: &[u8]| {
            short.out[short.n..short.n + bytes.len()].copy_from_slice(bytes);
            short.n += bytes.len();
        };
        if allowed {
            put(&[0x08, 1]);
        }
        if reason != 0 {
            put(&[0x10, reason]);
        }
        if level != 0 {
            put(&[0x18, level]);
        }
        if rev_len != 0 {
            put(&[0x22, rev_len]);
            put(revision.as_bytes());
        }
        Some(short)
    }

    /// The fields alone: a Check's response message.
    fn fields(&self) -> &[u8] {
        &self.out[2..self.n]
    }

    /// The fields as one result of a `CheckBulkResponse`, its key and
    /// length first (at most 2 + 6 + 2 + 20 = 30 bytes: the length fits
    /// one byte).
    fn as_result(&mut self) -> &[u8] {
        self.out[0] = ((RESULTS as u8) << 3) | 2;
        self.out[1] = (self.n - 2) as u8;
        &self.out[..self.n]
    }
}

/// A decision's `CheckResponse` as Check and CheckBulk encode it: written
/// from the decision in one write when it has no trace (every check
/// without explain; no message built, no length computed first), else
/// prost's message for prost to encode.
enum Encoded {
    /// No trace: [`ShortFields`].
    Short(ShortFields),
    /// With a trace (explain).
    Message(pb::CheckResponse),
}

impl Encoded {
    fn of(d: Decision, revision: &CompactString) -> Encoded {
        if d.trace.is_empty() {
            let reason = convert::reason(d.reason) as i32;
            let level = convert::access_level(d.level) as i32;
            if let Some(short) = ShortFields::new(d.allowed, reason, level, revision) {
                return Encoded::Short(short);
            }
        }
        Encoded::Message(convert::decision_at(d, revision.clone()))
    }
}

/// One Check's answer: encoded as `warden.v1.CheckResponse` by
/// [`CheckAnswer::encode`] on the hand-routed Check, converted by
/// [`CheckAnswer::into_response`] on the generated route.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckAnswer {
    /// The decision.
    pub decision: Decision,
    /// The revision it was taken at.
    pub revision: u64,
}

impl CheckAnswer {
    /// The bytes prost writes for this answer's `CheckResponse`
    /// ([`Encoded`]).
    pub fn encode(self, buf: &mut impl BufMut) {
        let revision = convert::check_revision(self.revision);
        match Encoded::of(self.decision, &revision) {
            Encoded::Short(short) => buf.put_slice(short.fields()),
            Encoded::Message(response) => prost::Message::encode_raw(&response, buf),
        }
    }

    /// The answer as the generated service's message.
    pub fn into_response(self) -> pb::CheckResponse {
        convert::decision(self.decision, self.revision)
    }
}

/// The codec of the hand-routed CheckBulk: [`decode_bulk`] and
/// [`BulkAnswer::encode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkCodec;

impl Codec for BulkCodec {
    type Encode = BulkAnswer;
    type Decode = BulkChecks;
    type Encoder = BulkCodec;
    type Decoder = BulkCodec;

    fn encoder(&mut self) -> BulkCodec {
        BulkCodec
    }

    fn decoder(&mut self) -> BulkCodec {
        BulkCodec
    }
}

impl Encoder for BulkCodec {
    type Item = BulkAnswer;
    type Error = Status;

    fn encode(&mut self, item: BulkAnswer, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Decoder for BulkCodec {
    type Item = BulkChecks;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<BulkChecks>, Status> {
        let len = buf.remaining();
        // tonic buffers a whole message first, so it is one slice; were it
        // not, it is gathered into one (a copy, never a different answer).
        let checks = if buf.chunk().len() == len {
            let checks = decode_bulk(buf.chunk());
            buf.advance(len);
            checks
        } else {
            decode_bulk(&buf.copy_to_bytes(len))
        };
        // As prost's codec maps a malformed message (src/api/codec.rs).
        checks
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The hand-routed CheckBulk method as tonic's unary path calls it.
struct BulkMethod(Arc<CheckApi>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl tonic::server::UnaryService<BulkChecks> for BulkMethod {
    type Response = BulkAnswer;
    type Future = BoxFuture<Result<Response<BulkAnswer>, Status>>;

    fn call(&mut self, request: Request<BulkChecks>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.check_bulk_direct(request).await })
    }
}

/// The CheckService as served: Check by `CheckApi::check_http` (its
/// call read and answered by `super::unary`), CheckBulk through tonic's
/// unary path with [`BulkCodec`], every other method by the generated
/// service. Authentication stays outside (`Authenticated` wraps this), so
/// the caller is in the request's extensions on every path.
#[derive(Clone)]
pub struct CheckRoutes {
    generated: CheckServiceServer<CheckApi>,
    api: Arc<CheckApi>,
}

impl CheckRoutes {
    /// The service over `api`.
    pub fn new(api: CheckApi) -> CheckRoutes {
        let api = Arc::new(api);
        CheckRoutes {
            generated: CheckServiceServer::from_arc(api.clone()),
            api,
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for CheckRoutes
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower_service::Service::<http::Request<B>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == CHECK {
            let api = self.api.clone();
            return Box::pin(async move { Ok(api.check_http(req).await) });
        }
        if req.uri().path() != CHECK_BULK {
            return self.generated.call(req);
        }
        let method = BulkMethod(self.api.clone());
        // The generated service's settings: no compression, tonic's
        // default message sizes (server.rs configures none for it).
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(BulkCodec);
            Ok(grpc.unary(method, req).await)
        })
    }
}

impl tonic::server::NamedService for CheckRoutes {
    const NAME: &'static str = <CheckServiceServer<CheckApi> as tonic::server::NamedService>::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    use crate::api::test_reference::{reference, wire_check};

    /// The direct decoder and prost's generated decoding followed by
    /// `check_taken`, on `bytes` as a CheckBulk request: the same checks
    /// and the same first conversion error, or both a decode error.
    fn same_bulk(bytes: &[u8]) -> Result<(), String> {
        let ours = decode_bulk(bytes);
        match (ours, reference::CheckBulkRequest::decode(bytes)) {
            (Ok(o), Ok(r)) => {
                let Some(theirs) = r.checks.iter().map(wire_check).collect::<Option<Vec<_>>>()
                else {
                    return Err(format!("prost's checks did not transcode: {r:?}"));
                };
                let theirs = BulkChecks::from_checks(theirs);
                if o == theirs {
                    Ok(())
                } else {
                    Err(format!("direct {o:?}, prost {theirs:?}"))
                }
            }
            (Err(_), Err(_)) => Ok(()),
            (o, r) => Err(format!("direct {o:?}, prost {r:?}")),
        }
    }

    /// A check as prost encodes it, with optional parts chosen by `shape`
    /// (some of them invalid: a timestamp out of range, an unknown
    /// consistency, an owner of no kind).
    fn check(i: usize, id: &str, shape: u8) -> reference::CheckRequest {
        let mut c = reference::CheckRequest {
            org_id: if shape & 1 == 0 { "acme" } else { "beta" }.into(),
            subject: id.into(),
            module: "leads".into(),
            action: if i % 2 == 0 { "read" } else { "assign" }.into(),
            record_id: id.chars().rev().collect(),
            explain: shape & 2 != 0,
            ..Default::default()
        };
        if shape & 4 != 0 {
            c.at = Some(prost_types::Timestamp {
                seconds: if shape & 8 != 0 {
                    i64::MAX
                } else {
                    1_700_000_000
                },
                nanos: 0,
            });
        }
        if shape & 16 != 0 {
            c.consistency = Some(reference::Consistency {
                requirement: Some(if shape & 32 != 0 {
                    reference::consistency::Requirement::AtLeastAsFresh("12".into())
                } else {
                    reference::consistency::Requirement::AtLeastAsFresh("twelve".into())
                }),
            });
        }
        if shape & 64 != 0 {
            c.assign_to = Some(reference::Owner {
                owner: (shape & 128 != 0).then(|| reference::owner::Owner::GroupId(id.into())),
            });
        }
        c
    }

    fn bulk_bytes(ids: &[(String, u8)]) -> Vec<u8> {
        reference::CheckBulkRequest {
            checks: ids
                .iter()
                .enumerate()
                .map(|(i, (id, shape))| check(i, id, *shape))
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_bulk_decodes_as_prost_and_check_taken_read_it() {
        let ids: Vec<(String, u8)> = [("u1", 0), ("ü2", 1), ("🦀", 2), ("", 3), ("r.0:1", 0)]
            .iter()
            .map(|(s, k)| (s.to_string(), *k))
            .collect();
        let bytes = bulk_bytes(&ids);
        let decoded = decode_bulk(&bytes).unwrap();
        assert_eq!(decoded.len(), 5);
        assert!(decoded.invalid.is_none());
        assert_eq!(decoded.checks[1].0, "beta");
        assert_eq!(decoded.checks[1].1.subject, "ü2");
        assert_eq!(decoded.checks[2].1.record.as_deref(), Some("🦀"));
        assert!(decoded.checks[2].1.explain);
        assert_eq!(decoded.checks[3].1.record, None);
        assert_eq!(same_bulk(&bytes), Ok(()));
        // Not UTF-8 as a whole (a varint byte ≥ 0x80 with no follower of
        // a character): the per-field path, the same answer.
        let long: Vec<(String, u8)> = vec![("x".repeat(200), 0), ("y".into(), 2)];
        let bytes = bulk_bytes(&long);
        assert!(std::str::from_utf8(&bytes).is_err());
        assert_eq!(decode_bulk(&bytes).unwrap().checks[0].1.subject.len(), 200);
        assert_eq!(same_bulk(&bytes), Ok(()));
    }

    #[test]
    fn the_first_invalid_check_is_kept_with_every_later_organization() {
        // Check 1 has a timestamp out of range, check 2 an unknown kind of
        // owner: the first is reported, and all orgs stay for the caller's
        // authorization.
        let ids: Vec<(String, u8)> =
            vec![("a".into(), 0), ("b".into(), 4 | 8 | 1), ("c".into(), 64)];
        let bytes = bulk_bytes(&ids);
        let decoded = decode_bulk(&bytes).unwrap();
        assert_eq!(decoded.checks.len(), 1);
        let invalid = decoded.invalid.as_ref().unwrap();
        assert!(
            matches!(&invalid.error, Error::InvalidArgument { field, .. } if field == "at"),
            "{:?}",
            invalid.error
        );
        assert_eq!(decoded.orgs().collect::<Vec<_>>(), ["acme", "beta", "acme"]);
        assert_eq!(decoded.len(), 3);
        assert_eq!(same_bulk(&bytes), Ok(()));
    }

    /// A decision of reason and level chosen by index among a few, with
    /// `steps` trace steps.
    fn decision(allowed: bool, reason: usize, level: usize, steps: usize) -> Decision {
        use crate::engine::model::{AccessLevel, Reason};
        use crate::engine::{Outcome, TraceRef, TraceStep};
        let reasons = [
            Reason::UnknownSubject,
            Reason::Admin,
            Reason::Owner,
            Reason::SharingRule,
            Reason::ManualShare,
            Reason::InsufficientAccess,
            Reason::AssignScope,
        ];
        let levels = [
            AccessLevel::None,
            AccessLevel::Read,
            AccessLevel::ReadWrite,
            AccessLevel::Full,
        ];
        let outcomes = [
            Outcome::Passed,
            Outcome::Decided,
            Outcome::Gave,
            Outcome::GaveNothing,
        ];
        Decision {
            allowed,
            reason: reasons[reason % reasons.len()],
            level: levels[level % levels.len()],
            trace: (0..steps)
                .map(|s| TraceStep {
                    step: s as u8 + 1,
                    reason: reasons[(reason + s) % reasons.len()],
                    level: levels[s % levels.len()],
                    detail: format!("step {s}"),
                    outcome: outcomes[s % outcomes.len()],
                    refs: vec![TraceRef {
                        kind: "user",
                        id: format!("u{s}"),
                        relation: "subject",
                    }],
                    missing: None,
                })
                .collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Valid bulks of valid and invalid checks, cut or with a byte
        /// changed: the direct decoder agrees with prost + `check_taken`.
        #[test]
        fn bulks_decode_as_prost_and_check_taken_read_them(
            ids in proptest::collection::vec(("[a-z0-9é_-]{0,8}", any::<u8>()), 0..6),
            at in any::<usize>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
            damage in any::<bool>(),
        ) {
            let mut bytes = bulk_bytes(&ids);
            if damage && !bytes.is_empty() {
                let at = at % bytes.len();
                if cut { bytes.truncate(at) } else { bytes[at] = byte }
            }
            prop_assert_eq!(same_bulk(&bytes), Ok(()));
        }

        /// Any bytes at all, read as a CheckBulk request.
        #[test]
        fn any_bytes_decode_as_a_bulk_as_prost_decodes_them(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            text in any::<String>(),
        ) {
            prop_assert_eq!(same_bulk(&bytes), Ok(()));
            prop_assert_eq!(same_bulk(text.as_bytes()), Ok(()));
        }

        /// The hand-written response is byte for byte what prost writes
        /// for the same decisions' `CheckBulkResponse`, and decodes to it.
        #[test]
        fn an_answer_encodes_as_prost_encodes_it(
            rows in proptest::collection::vec(
                (any::<bool>(), 0usize..32, 0usize..8, 0usize..4, 0u64..3), 0..8),
            base in any::<u64>(),
            one in any::<bool>(),
        ) {
            let decisions: Vec<Decision> = rows
                .iter()
                .map(|&(allowed, reason, level, steps, _)| decision(allowed, reason, level, steps))
                .collect();
            let revisions = if one {
                Revisions::One(base)
            } else {
                Revisions::Each(rows.iter().map(|r| base.wrapping_add(r.4)).collect())
            };
            let answer = BulkAnswer { decisions, revisions };
            let expected = answer.clone().into_response();
            let mut bytes = Vec::new();
            answer.encode(&mut bytes);
            prop_assert_eq!(&bytes, &expected.encode_to_vec());
            let decoded = reference::CheckBulkResponse::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(decoded.results.len(), expected.results.len());
            for (d, e) in decoded.results.iter().zip(&expected.results) {
                prop_assert_eq!(d.allowed, e.allowed);
                prop_assert_eq!(d.reason, e.reason);
                prop_assert_eq!(d.level, e.level);
                prop_assert_eq!(d.revision.as_str(), e.revision.as_str());
                prop_assert_eq!(d.trace.len(), e.trace.len());
            }
        }

        /// A Check's answer is byte for byte what prost writes for its
        /// `CheckResponse`, and prost's generated code reads it back.
        #[test]
        fn a_check_answer_encodes_as_prost_encodes_it(
            allowed in any::<bool>(),
            reason in 0usize..32,
            level in 0usize..8,
            steps in 0usize..3,
            revision in any::<u64>(),
        ) {
            let answer = CheckAnswer { decision: decision(allowed, reason, level, steps), revision };
            let expected = answer.clone().into_response();
            let mut bytes = Vec::new();
            answer.encode(&mut bytes);
            prop_assert_eq!(&bytes, &expected.encode_to_vec());
            let decoded = reference::CheckResponse::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(decoded.allowed, expected.allowed);
            prop_assert_eq!(decoded.reason, expected.reason);
            prop_assert_eq!(decoded.level, expected.level);
            prop_assert_eq!(decoded.revision.as_str(), expected.revision.as_str());
            prop_assert_eq!(decoded.trace.len(), expected.trace.len());
        }
    }
}
