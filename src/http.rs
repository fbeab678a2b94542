//! HTTP serving for the JSON APIs beside gRPC (AuthZEN; a web console can
//! be served the same way): the gRPC port's accept loop and limits, TLS
//! from the same `--tls-*` files, HTTP/1.1 and HTTP/2 on one port, bearer
//! tokens, JSON error bodies, a body size limit, a time bound and a cap on
//! requests in flight, and a graceful stop on the server's halt signal.
//! It takes any axum `Router` and holds no policy logic.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls;
use tonic::{Code, Status};
use tracing::{debug, info};

use crate::api::auth::{Caller, Tokens};
use crate::engine::error::bounded_message;
use crate::service::ServiceError;
use crate::transport::ConnectionLimits;

/// How an HTTP listener is served.
#[derive(Clone)]
pub struct HttpOptions {
    /// Open connections, handshake and idle timeouts (as gRPC's).
    pub limits: ConnectionLimits,
    /// TLS, when the server has a certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest request body, refused with 413 before it is parsed.
    pub max_body_bytes: usize,
    /// Upper bound on a request's time to answer.
    pub request_timeout: Duration,
    /// Most requests in flight on this listener; beyond it 429 at once.
    pub max_in_flight: usize,
    /// Most concurrent HTTP/2 streams on one connection.
    pub max_streams_per_connection: u32,
    /// Interval of HTTP/2 keep-alive pings.
    pub keepalive: Duration,
    /// How long the halt signal waits for connections to finish.
    pub drain: Duration,
}

/// The TLS settings of an HTTP listener from the gRPC port's PEM files:
/// the certificate chain, its key and, for mutual TLS, the CA bundle that
/// signs client certificates. ALPN offers HTTP/2, then HTTP/1.1.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: {e}", cert.display()))?;
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("--tls-key {}: {e}", key.display()))?;
    // ring: the provider tonic's TLS is built with, so one crypto library.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("--tls-client-ca {}: {e}", ca.display()))?;
            for c in cas {
                roots
                    .add(c)
                    .with_context(|| format!("--tls-client-ca {}", ca.display()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .with_context(|| format!("--tls-client-ca {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, private_key)
        .with_context(|| format!("--tls-cert {} with --tls-key", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An error answered as JSON: `{"error": {"status": 400, "message":
/// "field: rule"}}`, the shape AuthZEN uses for errors inside a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status.
    pub status: StatusCode,
    /// The field and the rule it broke, or what went wrong.
    pub message: String,
}

impl HttpError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: bounded_message(&message.into()).into_owned(),
        }
    }

    /// 400: `field` broke `rule`.
    pub fn bad_request(field: &str, rule: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("{field}: {rule}"))
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {"status": self.status.as_u16(), "message": self.message}
        })
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        response
    }
}

/// The HTTP status of a gRPC code, as gRPC gateways map them.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<Status> for HttpError {
    fn from(s: Status) -> Self {
        HttpError::new(http_status(s.code()), s.message())
    }
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> Self {
        // Through the gRPC mapping, which logs store failures and hides
        // their details.
        HttpError::from(Status::from(e))
    }
}

/// A JSON request body, read within the listener's size limit and parsed
/// with the path of the value that is wrong (`subject.id: invalid type`).
/// Unknown fields are ignored, as AuthZEN requires.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || v.ends_with("+json")
            })
            .unwrap_or(false);
        if !json {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type: must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| HttpError::new(r.status(), format!("body: {}", r.body_text())))?;
        // A struct would also read from an array, by position: the body
        // must be an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(HttpError::bad_request("body", "must be a JSON object"));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body" } else { path.as_str() };
            HttpError::bad_request(field, e.inner())
        })?;
        // Nothing but whitespace after the object.
        de.end().map_err(|e| HttpError::bad_request("body", e))?;
        Ok(JsonBody(value))
    }
}

/// The caller the bearer layer attached. A request it did not see is
/// refused (a router served without [`guard`]), never let through.
pub fn caller(ext: Option<axum::Extension<Caller>>) -> Result<Caller, HttpError> {
    match ext {
        Some(axum::Extension(c)) => Ok(c),
        None => Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request passed no credential check",
        )),
    }
}

#[derive(Clone)]
struct Guards {
    tokens: Tokens,
    slots: Arc<Semaphore>,
    options: HttpOptions,
    refuse: Refusal,
}

/// How a guard's refusal is written, from its gRPC code, HTTP status and
/// `field: rule` message: each API keeps its own error shape.
pub type Refusal = fn(Code, StatusCode, String) -> Response;

/// AuthZEN's refusals: an [`HttpError`].
fn http_error(_code: Code, status: StatusCode, message: String) -> Response {
    HttpError::new(status, message).into_response()
}

/// `router` with the listener's guards, outermost first: the request id
/// echoed, requests in flight capped, each request's time bounded, the
/// bearer token read (401 without a valid one; handlers check scopes and
/// organizations on the [`Caller`] it attaches), and bodies over the limit
/// refused before they are read. Refusals are [`HttpError`]s.
pub fn guard(router: Router, tokens: Tokens, options: &HttpOptions) -> Router {
    guard_with(router, tokens, options, http_error)
}

/// [`guard`], its refusals written by `refuse`.
pub fn guard_with(
    router: Router,
    tokens: Tokens,
    options: &HttpOptions,
    refuse: Refusal,
) -> Router {
    let guards = Guards {
        tokens,
        slots: Arc::new(Semaphore::new(options.max_in_flight)),
        options: options.clone(),
        refuse,
    };
    router
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn_with_state(guards.clone(), body_size))
        .layer(middleware::from_fn_with_state(guards.clone(), bearer))
        .layer(middleware::from_fn_with_state(guards.clone(), time_bound))
        .layer(middleware::from_fn_with_state(guards, in_flight))
        .layer(middleware::from_fn(request_id))
}

/// AuthZEN: a request's `X-Request-ID` comes back on its response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req.headers().get("x-request-id").cloned();
    let mut response = next.run(req).await;
    if let Some(id) = id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

async fn in_flight(State(g): State<Guards>, req: Request, next: Next) -> Response {
    let Ok(_slot) = g.slots.clone().try_acquire_owned() else {
        let mut r = (g.refuse)(
            Code::ResourceExhausted,
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the server is at its limit of requests in flight (--max-in-flight {}); retry",
                g.options.max_in_flight
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(req).await
}

async fn time_bound(State(g): State<Guards>, req: Request, next: Next) -> Response {
    let limit = g.options.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (g.refuse)(
            Code::DeadlineExceeded,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no answer within --request-timeout-secs ({limit:?})"),
        ),
    }
}

async fn bearer(State(g): State<Guards>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match g.tokens.caller_of(header) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(status) => (g.refuse)(
            status.code(),
            http_status(status.code()),
            bounded_message(status.message()).into_owned(),
        ),
    }
}

/// A body announced larger than the limit is refused before a byte of it
/// is read; one that grows past it while read is refused by the body
/// limit the extractors apply.
async fn body_size(State(g): State<Guards>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = g.options.max_body_bytes;
    if announced.is_some_and(|n| n > limit as u64) {
        return (g.refuse)(
            Code::ResourceExhausted,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: at most {limit} bytes"),
        );
    }
    next.run(req).await
}

/// Serves `router` on `listener` until `halt` turns true; then stops
/// accepting, asks open connections to finish their requests, and waits
/// for them up to the drain time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: HttpOptions,
    mut halt: watch::Receiver<bool>,
) {
    let incoming = crate::transport::incoming(listener, options.limits);
    futures::pin_mut!(incoming);
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut open = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            s = incoming.next() => s,
            // Finished connections are reaped as they end, so the set
            // holds only open ones.
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            _ = halt.changed() => None,
        };
        let Some(Ok(stream)) = stream else {
            break;
        };
        let router = router.clone();
        let options = options.clone();
        let closing = closing_rx.clone();
        open.spawn(async move {
            match options.tls.clone() {
                None => connection(stream, router, &options, closing).await,
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    let handshake = options.limits.handshake_timeout;
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            connection(tls_stream, router, &options, closing).await
                        }
                        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                        Err(_) => debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(options.drain, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        // Dropping the set aborts the connections still open.
        info!(
            left = open.len(),
            "HTTP drain deadline passed; closing connections"
        );
    }
    info!("HTTP listener stopped");
}

/// One connection, HTTP/1.1 or HTTP/2 as the client speaks, finishing its
/// requests in flight when `closing` turns true.
async fn connection<IO>(
    io: IO,
    router: Router,
    options: &HttpOptions,
    mut closing: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A request head must arrive whole within the handshake time: a client
    // trickling its headers a byte at a time is cut off, where the idle
    // timeout (no byte at all) would let it hold the connection for ever.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.limits.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_streams_per_connection)
        .keep_alive_interval(options.keepalive);
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    futures::pin_mut!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "HTTP connection ended");
            }
            return;
        }
        _ = closing.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        debug!(error = %e, "HTTP connection ended while closing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_with_the_status_and_401_names_the_scheme() {
        let e = HttpError::from(Status::unauthenticated("authorization: unknown token"));
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {"status": 401, "message": "authorization: unknown token"}})
        );
        let r = e.into_response();
        assert!(r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
        // A huge message is cut, as gRPC's are.
        let long = HttpError::bad_request("subject.id", "x".repeat(1 << 20));
        assert!(long.message.len() < 5000);
    }

    #[test]
    fn store_failures_keep_their_details_out_of_the_body() {
        let e = HttpError::from(ServiceError::Store(crate::store::StoreError::Backend(
            "password=hunter2 at db:5432".into(),
        )));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}
