//! A unary gRPC call read and answered without tonic's streaming
//! machinery, for Check, the method on every request path of a CRM.
//!
//! tonic serves a unary method as a stream of one: the request body goes
//! through `Streaming` (each frame copied into an 8 KiB buffer, then the
//! body drained again for trailers) and the answer through `EncodeBody`
//! (an 8 KiB buffer, a one-item stream, a `Status` turned into trailers).
//! For a Check of some 70 bytes that machinery cost more instructions than
//! the decision (docs/benchmarks.md, "Part AB (fourteenth round)"). Here
//! the request's bytes are decoded from the frame they arrived in, and the
//! answer is one data frame and a fixed trailer.
//!
//! What a client sees is tonic's behaviour, error for error (the tests
//! below, and tests/unary.rs, which sends the same raw frames to Check and
//! to CheckFields, still served by tonic): compressed content refused
//! with UNIMPLEMENTED, a compressed flag without `grpc-encoding` or an
//! invalid flag with INTERNAL, a body that ends inside a message with
//! "Unexpected EOF decoding stream.", no message with "Missing request
//! message.", messages after the first decoded (their errors fail the
//! call) and ignored, and a message over tonic's 4 MiB with OUT_OF_RANGE
//! (the transport's `--max-document-bytes` refuses a longer one first
//! while it is at its default). Errors are answered as tonic answers them
//! ([`Status::into_http`], trailers only).

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body as HttpBody, Frame};
use tonic::body::Body;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Largest request message accepted: tonic's default
/// (`DEFAULT_MAX_RECV_MESSAGE_SIZE`), which Check was served with.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// gRPC's message prefix: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// The trailer's name, made once rather than parsed on every answer.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The request header naming its compression, made once rather than
/// parsed on every call.
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// Most reserved ahead for a message that spans frames: an HTTP/2 frame's
/// default largest size. The buffer grows with the bytes that arrive.
const FIRST_RESERVE: usize = 16 * 1024;

/// The request's one message, decoded by `decode`; the messages after it
/// are decoded too and dropped, as tonic's unary path drains them.
pub async fn read_one<B, M>(
    headers: &HeaderMap,
    body: B,
    mut decode: impl FnMut(&[u8]) -> Result<M, Status>,
) -> Result<M, Status>
where
    B: HttpBody,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    refuse_compressed(headers)?;
    let mut body = std::pin::pin!(body);
    let mut pending = Pending::default();
    let mut first = None;
    loop {
        while let Some(message) = pending.next_message()? {
            let decoded = decode(&message)?;
            if first.is_none() {
                first = Some(decoded);
            }
        }
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            Some(Ok(frame)) => {
                // Trailers of a request carry nothing Check reads.
                if let Ok(mut data) = frame.into_data() {
                    let len = data.remaining();
                    pending.push(data.copy_to_bytes(len));
                }
            }
            Some(Err(e)) => {
                let status = Status::from_error(e.into());
                // A request the client cancelled ends here, as in tonic.
                if status.code() == Code::Cancelled {
                    break;
                }
                return Err(status);
            }
            None => {
                if !pending.is_empty() {
                    return Err(Status::internal("Unexpected EOF decoding stream."));
                }
                break;
            }
        }
    }
    first.ok_or_else(|| Status::internal("Missing request message."))
}

/// The request's `grpc-encoding`, refused unless it is `identity`: Check
/// accepts no compressed requests (tonic's error and its
/// `grpc-accept-encoding` answer).
fn refuse_compressed(headers: &HeaderMap) -> Result<(), Status> {
    let Some(value) = headers.get(GRPC_ENCODING) else {
        return Ok(());
    };
    let other = value.as_bytes();
    if other == b"identity" {
        return Ok(());
    }
    Err(compressed(other))
}

#[cold]
#[inline(never)]
fn compressed(other: &[u8]) -> Status {
    let other = match std::str::from_utf8(other) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(format!("{other:?}")),
    };
    // UNIMPLEMENTED is gRPC's code for an encoding the server does not
    // take (compression spec), the code tonic answers with.
    let mut status = Status::new(
        Code::Unimplemented,
        format!("Content is compressed with `{other}` which isn't supported"),
    );
    status.metadata_mut().insert(
        "grpc-accept-encoding",
        MetadataValue::from_static("identity"),
    );
    status
}

/// The request bytes not yet decoded: the frame itself while it is the
/// only one (no copy), a buffer once a message spans frames.
#[derive(Default)]
struct Pending {
    /// Bytes of the current frame, or what is left of it.
    whole: Bytes,
    /// A message's start carried over to later frames.
    joined: BytesMut,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.joined.is_empty()
    }

    fn push(&mut self, data: Bytes) {
        if self.joined.is_empty() && self.whole.is_empty() {
            self.whole = data;
        } else {
            self.joined.extend_from_slice(&data);
        }
    }

    /// What is left of the frame, moved to the buffer because the message
    /// it starts continues in later frames: room for `expected` bytes, at
    /// most [`FIRST_RESERVE`] (not the length a prefix claims, which costs
    /// the client five bytes). Only `whole` or `joined` ever holds bytes.
    fn carry_over(&mut self, expected: usize) {
        if self.joined.is_empty() && !self.whole.is_empty() {
            self.joined.reserve(expected.min(FIRST_RESERVE));
            self.joined.extend_from_slice(&self.whole);
            self.whole = Bytes::new();
        }
    }

    /// The next whole message (without its prefix), or None until more
    /// bytes arrive. The prefix is checked as soon as it is complete, so a
    /// message over the limit is refused before its bytes are buffered.
    fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        let held: &[u8] = if self.joined.is_empty() {
            &self.whole
        } else {
            &self.joined
        };
        let Some(&[flag, a, b, c, d]) = held.get(..PREFIX) else {
            self.carry_over(PREFIX);
            return Ok(None);
        };
        let held = held.len();
        match flag {
            0 => {}
            1 => {
                return Err(Status::internal(
                    "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                ))
            }
            f => return Err(invalid_flag(f)),
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > MAX_MESSAGE {
            return Err(too_large(len));
        }
        if held < PREFIX + len {
            self.carry_over(PREFIX + len);
            return Ok(None);
        }
        let message = if self.joined.is_empty() {
            self.whole.advance(PREFIX);
            self.whole.split_to(len)
        } else {
            self.joined.advance(PREFIX);
            self.joined.split_to(len).freeze()
        };
        Ok(Some(message))
    }
}

#[cold]
#[inline(never)]
fn invalid_flag(f: u8) -> Status {
    Status::internal(format!(
        "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
    ))
}

#[cold]
#[inline(never)]
fn too_large(len: usize) -> Status {
    Status::out_of_range(format!(
        "Error, decoded message length too large: found {len} bytes, the limit is: {MAX_MESSAGE} bytes"
    ))
}

/// A buffer for an answer's message with room for its prefix, which
/// [`answer`] fills in.
pub fn message_buffer(capacity: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(PREFIX + capacity);
    buf.put_bytes(0, PREFIX);
    buf
}

/// The answer to a unary call: `content-type: application/grpc`, one data
/// frame holding `message` (written after [`message_buffer`]'s prefix),
/// then the trailer `grpc-status: 0`.
pub fn answer(mut message: BytesMut) -> http::Response<Body> {
    let len = message.len() - PREFIX;
    let Ok(len) = u32::try_from(len) else {
        return Status::resource_exhausted(format!(
            "Cannot return body with more than 4GB of data but got {len} bytes"
        ))
        .into_http();
    };
    message[1..PREFIX].copy_from_slice(&len.to_be_bytes());
    let mut response = http::Response::new(Body::new(OneMessage {
        data: Some(message.freeze()),
        done: false,
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The body of a unary answer: its message, then `grpc-status: 0`.
struct OneMessage {
    data: Option<Bytes>,
    done: bool,
}

impl HttpBody for OneMessage {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        self.done = true;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    // No size hint: an exact one makes hyper add a `content-length`
    // header, which tonic's answers do not carry (and which costs its
    // encoding on every call).
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut b = vec![flag];
        b.extend_from_slice(&(message.len() as u32).to_be_bytes());
        b.extend_from_slice(message);
        b
    }

    /// The messages `pending` yields as `frames` arrive, then whether
    /// bytes are left over.
    fn messages(frames: &[&[u8]]) -> Result<(Vec<Vec<u8>>, bool), Status> {
        let mut pending = Pending::default();
        let mut out = Vec::new();
        for frame in frames {
            pending.push(Bytes::copy_from_slice(frame));
            while let Some(m) = pending.next_message()? {
                out.push(m.to_vec());
            }
        }
        Ok((out, !pending.is_empty()))
    }

    proptest! {
        /// However a run of framed messages is cut into frames, the same
        /// messages come out, in order, and nothing is left.
        #[test]
        fn any_split_yields_the_same_messages(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..4),
            cuts in prop::collection::vec(0usize..200, 0..8),
        ) {
            let bytes: Vec<u8> = bodies.iter().flat_map(|b| framed(0, b)).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut frames = Vec::new();
            let mut at = 0;
            for c in cuts {
                frames.push(&bytes[at..c]);
                at = c;
            }
            frames.push(&bytes[at..]);
            let (out, left) = messages(&frames).unwrap();
            prop_assert_eq!(out, bodies);
            prop_assert!(!left);
        }

        /// A message cut short leaves bytes behind (the EOF error).
        #[test]
        fn a_cut_message_leaves_bytes(body in prop::collection::vec(any::<u8>(), 1..40), keep in 1usize..44) {
            let bytes = framed(0, &body);
            let keep = keep.min(bytes.len() - 1);
            let (out, left) = messages(&[&bytes[..keep]]).unwrap();
            prop_assert!(out.is_empty());
            prop_assert!(left);
        }
    }

    #[test]
    fn flags_and_lengths_are_refused_from_the_prefix_alone() {
        let e = messages(&[&framed(1, b"x")]).unwrap_err();
        assert_eq!(e.code(), Code::Internal);
        assert!(e.message().contains("compressed-flag but no grpc-encoding"));
        let e = messages(&[&framed(7, b"x")[..5]]).unwrap_err();
        assert_eq!(e.code(), Code::Internal);
        assert!(e.message().contains("invalid compression flag: 7"));
        let mut prefix = vec![0];
        prefix.extend_from_slice(&(MAX_MESSAGE as u32 + 1).to_be_bytes());
        let e = messages(&[&prefix]).unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        let mut prefix = vec![0];
        prefix.extend_from_slice(&(MAX_MESSAGE as u32).to_be_bytes());
        assert_eq!(
            messages(&[&prefix]).unwrap(),
            (vec![], true),
            "at the limit: waits for its bytes"
        );
    }

    #[test]
    fn only_identity_content_is_accepted() {
        let mut h = HeaderMap::new();
        assert!(refuse_compressed(&h).is_ok());
        h.insert("grpc-encoding", HeaderValue::from_static("identity"));
        assert!(refuse_compressed(&h).is_ok());
        h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        let e = refuse_compressed(&h).unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented);
        assert_eq!(
            e.message(),
            "Content is compressed with `gzip` which isn't supported"
        );
        assert_eq!(
            e.metadata().get("grpc-accept-encoding").unwrap(),
            "identity"
        );
    }

    #[test]
    fn an_answer_is_its_framed_message_then_grpc_status_zero() {
        use http_body::Body as _;
        let mut buf = message_buffer(4);
        buf.put_slice(b"\x08\x01");
        let response = answer(buf);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let mut body = response.into_body();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Some(Ok(data))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("a data frame first");
        };
        assert_eq!(
            data.into_data().unwrap().as_ref(),
            b"\x00\x00\x00\x00\x02\x08\x01"
        );
        let Poll::Ready(Some(Ok(trailers))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("trailers next");
        };
        let trailers = trailers.into_trailers().unwrap();
        assert_eq!(trailers.len(), 1);
        assert_eq!(trailers["grpc-status"], "0");
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
        assert!(body.is_end_stream());
    }
}
