//! What keeps clients from stalling the server (SPEC section 6): an accept
//! loop that caps open connections and closes those that never handshake
//! or fall silent, and a layer that caps calls in flight, bounds each
//! call's time, and answers an oversized message RESOURCE_EXHAUSTED.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Code, Status};
use tracing::{debug, warn};

use opentelemetry::context::FutureExt as _;

use crate::telemetry::{CallTelemetry, RpcBody};

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most open connections.
    pub max_connections: usize,
    /// Time a new connection has to send its first bytes.
    pub handshake_timeout: Duration,
    /// Time an open connection may go without sending a byte.
    pub idle_timeout: Duration,
}

/// Pause after a failed accept (out of file descriptors, most likely), so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepted connections, each holding one of `max_connections` slots until
/// it closes; a connection beyond them is closed at once.
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<GuardedStream, io::Error>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    futures::stream::unfold((listener, slots), move |(listener, slots)| async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!(%peer, max = limits.max_connections, "connection refused: at --max-connections");
                drop(stream);
                continue;
            };
            // TCP_NODELAY: without it, replies written in pieces wait
            // for the peer's delayed ACK (about 40 ms per CheckBulk).
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%peer, error = %e, "TCP_NODELAY not set");
            }
            let guarded = GuardedStream::new(stream, slot, limits);
            return Some((Ok(guarded), (listener, slots)));
        }
    })
}

/// A client connection that closes itself (its reads fail with
/// `TimedOut`) when no byte arrives within the handshake timeout of its
/// opening, or within the idle timeout of the last byte read.
pub struct GuardedStream {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    last_read: Option<Instant>,
    deadline: Pin<Box<Sleep>>,
}

impl GuardedStream {
    fn new(io: TcpStream, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        GuardedStream {
            io,
            _slot: slot,
            idle_timeout: limits.idle_timeout,
            last_read: None,
            deadline: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    // The timer is moved only when it fires, not on every
                    // read: reads stay as cheap as they were.
                    this.last_read = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let Some(last_read) = this.last_read else {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no handshake within --handshake-timeout-secs",
                    )));
                };
                let due = last_read + this.idle_timeout;
                if due <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "idle longer than --idle-timeout-secs",
                    )));
                }
                this.deadline.as_mut().reset(due);
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Limits of every call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Most calls in flight across the server.
    pub max_in_flight: usize,
    /// Upper bound on a unary call's time to answer.
    pub request_timeout: Duration,
}

/// The layer of [`CallGuard`].
#[derive(Debug, Clone)]
pub struct CallGuardLayer {
    slots: Arc<Semaphore>,
    limits: CallLimits,
}

impl CallGuardLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: CallLimits) -> Self {
        CallGuardLayer {
            slots: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
        }
    }
}

impl<S> tower_layer::Layer<S> for CallGuardLayer {
    type Service = CallGuard<S>;

    fn layer(&self, inner: S) -> CallGuard<S> {
        CallGuard {
            inner,
            slots: self.slots.clone(),
            limits: self.limits,
        }
    }
}

/// Around every call, in one layer and one boxed future: the call's
/// telemetry (the caller's trace continued, the call counted by RPC and
/// code: `telemetry::CallTelemetry`), and a slot among `max_in_flight` held until its answer
/// (a stream's last message) is sent, RESOURCE_EXHAUSTED at once when none
/// is free; the client's `grpc-timeout`, capped by `request_timeout`, on
/// the time to answer; an oversized request message answered
/// RESOURCE_EXHAUSTED rather than tonic's OUT_OF_RANGE.
#[derive(Debug, Clone)]
pub struct CallGuard<S> {
    inner: S,
    slots: Arc<Semaphore>,
    limits: CallLimits,
}

/// Health probes are never turned away: a full server is busy, not dead.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// CheckService calls change nothing.
const CHECK_PREFIX: &str = "/warden.v1.CheckService/";

/// Import may legitimately take longer than any default bound (tens of
/// seconds for crm-large); only the client's own deadline bounds it.
const IMPORT_PATH: &str = "/warden.v1.AdminService/Import";

/// A call's answer: its body counts the call (`telemetry::RpcBody`) and
/// holds its in-flight slot.
pub type CallResponse = http::Response<RpcBody<Body>>;

type CallFuture = Pin<Box<dyn Future<Output = Result<CallResponse, Infallible>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for CallGuard<S>
where
    S: tower_service::Service<
            http::Request<B>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = CallResponse;
    type Error = Infallible;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> CallFuture {
        let path = req.uri().path();
        let mut telemetry = CallTelemetry::start(req.headers(), path);
        let slot = if path.starts_with(HEALTH_PREFIX) {
            None
        } else {
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    let status = Status::resource_exhausted(format!(
                        "the server has {} calls in flight (--max-in-flight); retry later",
                        self.limits.max_in_flight
                    ));
                    let refused = telemetry.respond(status.into_http(), None);
                    return Box::pin(futures::future::ready(Ok(refused)));
                }
            }
        };
        let server_bound = (path != IMPORT_PATH).then_some(self.limits.request_timeout);
        let read_only = path.starts_with(CHECK_PREFIX);
        let deadline = match (client_timeout(req.headers()), server_bound) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (c, s) => c.or(s),
        };
        // The clone that was made ready stays with this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(parent) = telemetry.take_parent() else {
            // The usual, untraced call. The router's future is made inside
            // the boxed future, in place: made before it and moved in, it
            // was copied into the box on every call (docs/benchmarks.md,
            // "Part E (fourth round)").
            return Box::pin(async move {
                let answer = inner.call(req);
                let response = match deadline {
                    Some(d) => match tokio::time::timeout(d, answer).await {
                        Ok(r) => r?,
                        Err(_) => return Ok(telemetry.respond(late(d, read_only), slot)),
                    },
                    None => answer.await?,
                };
                Ok(telemetry.respond(oversized_as_exhausted(response), slot))
            });
        };
        // A traced call: the router called, and its answer awaited, with
        // the caller's context current, so that the handler's span is a
        // child of the caller's.
        Box::pin(async move {
            let answer = {
                let _attached = parent.clone().attach();
                inner.call(req)
            };
            let response = match deadline {
                Some(d) => match tokio::time::timeout(d, answer).with_context(parent).await {
                    Ok(r) => r?,
                    Err(_) => return Ok(telemetry.respond(late(d, read_only), slot)),
                },
                None => answer.with_context(parent).await?,
            };
            Ok(telemetry.respond(oversized_as_exhausted(response), slot))
        })
    }
}

/// The answer to a call with no answer within `d`.
fn late(d: Duration, read_only: bool) -> http::Response<Body> {
    // As gRPC has it, a write cut short may still have been committed:
    // the client must read to know.
    let caveat = if read_only {
        ""
    } else {
        "; a write may still have been applied: read before retrying"
    };
    Status::deadline_exceeded(format!(
        "no answer within {d:?} (the client's grpc-timeout, at most --request-timeout-secs){caveat}"
    ))
    .into_http()
}

/// The `grpc-timeout` header: digits and a unit (`H M S m u n`).
fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// tonic refuses a request message over the decoding limit with
/// OUT_OF_RANGE ("decoded message length too large: found N bytes, the
/// limit is: M bytes"); a limit reached is RESOURCE_EXHAUSTED.
fn oversized_as_exhausted(mut response: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != Code::OutOfRange
        || !status
            .message()
            .contains("decoded message length too large")
    {
        return response;
    }
    let numbers: Vec<u64> = status
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let message = match numbers.as_slice() {
        [found, limit, ..] => format!(
            "request message: {found} bytes exceed the limit of {limit} bytes (Import: --max-document-bytes)"
        ),
        _ => "request message: larger than the limit (Import: --max-document-bytes)".to_string(),
    };
    if Status::resource_exhausted(message)
        .add_header(response.headers_mut())
        .is_err()
    {
        warn!("could not rewrite an oversized message's status");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acks() {
        use futures::StreamExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            max_connections: 2,
            handshake_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        };
        let mut accepted = Box::pin(incoming(listener, limits));
        let _client = TcpStream::connect(addr).await.unwrap();
        let stream = accepted.next().await.unwrap().unwrap();
        // Linux accepts sockets with Nagle's algorithm on: only the accept
        // loop turns it off.
        assert!(stream.io.nodelay().unwrap(), "TCP_NODELAY is set");
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let mut h = http::HeaderMap::new();
        for (v, d) in [
            ("2S", Duration::from_secs(2)),
            ("1H", Duration::from_secs(3600)),
            ("3M", Duration::from_secs(180)),
            ("250m", Duration::from_millis(250)),
            ("7u", Duration::from_micros(7)),
            ("9n", Duration::from_nanos(9)),
        ] {
            h.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(client_timeout(&h), Some(d), "{v}");
        }
        for bad in ["S", "12", "1x", "1234567890S"] {
            h.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(client_timeout(&h), None, "{bad}");
        }
    }

    #[test]
    fn an_oversized_message_becomes_resource_exhausted_naming_the_limit() {
        let response: http::Response<Body> = Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        )
        .into_http();
        let status = Status::from_header_map(oversized_as_exhausted(response).headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("5000000 bytes exceed the limit of 4194304 bytes"),
            "{}",
            status.message()
        );
        let other: http::Response<Body> = Status::out_of_range("page past the end").into_http();
        let status = Status::from_header_map(oversized_as_exhausted(other).headers()).unwrap();
        assert_eq!(status.code(), Code::OutOfRange);
    }
}
