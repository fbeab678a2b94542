//! Wiring of `warden serve`: builds everything fallibly before serving,
//! then serves the three services with health and reflection until SIGTERM
//! or Ctrl-C, when health turns NOT_SERVING and in-flight calls drain.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tracing::{info, warn};

use crate::api::admin::AdminApi;
use crate::api::auth::{Authenticated, Tokens};
use crate::api::bulk_wire::CheckRoutes;
use crate::api::check::CheckApi;
use crate::api::grant::GrantApi;
use crate::api::pb;
use crate::api::pb::admin_service_server::AdminServiceServer;
use crate::api::pb::check_service_server::CheckServiceServer;
use crate::api::pb::grant_service_server::GrantServiceServer;
use crate::config::ServeConfig;
use crate::document::parse_document;
use crate::engine::{Command, Writer};
use crate::service::Warden;
use crate::store::Store;
use crate::transport::{CallGuardLayer, CallLimits, ConnectionLimits};

/// How often the token file is re-read for changes.
const TOKEN_FILE_POLL: Duration = Duration::from_secs(1);

/// How long shutdown waits for spans and metrics to reach the collector.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

/// Largest Export document sent (Import's is `--max-document-bytes`).
const MAX_EXPORT_BYTES: usize = 512 << 20;

/// Room in an Import request for its fields besides the document, so that
/// a document at the limit still decodes and one over it is refused by
/// the handler, naming the limit.
const IMPORT_MESSAGE_MARGIN: usize = 64 << 10;

/// A keep-alive ping not answered within this closes the connection.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// HTTP/2 flow-control window of one stream: what a client may send on a
/// call before the server has read it. 1 MiB holds ten of the largest
/// check request (a 1,000-check CheckBulk is about 100 KiB) in one round
/// trip; the unread data it allows is bounded by --max-connections.
const STREAM_WINDOW: u32 = 1 << 20;

/// Window of a whole connection: room for several bulk calls in flight on
/// one connection (a client multiplexes its calls over a few) without one
/// waiting for another's WINDOW_UPDATE.
const CONNECTION_WINDOW: u32 = 4 << 20;

/// Largest frame a client may send us: the protocol's default. Larger
/// frames save little (a frame header is 9 bytes) and let one large Import
/// hold a connection's reads longer between the small frames of checks.
const MAX_FRAME: u32 = 16 << 10;

/// `--bootstrap PATH`: one document, or every `*.json`, `*.yaml` and
/// `*.yml` file of a directory in name order (one organization each, as
/// `warden generate --preset tenants` writes them).
async fn bootstrap_all(warden: &Warden, path: &std::path::Path) -> anyhow::Result<()> {
    let metadata = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("--bootstrap: cannot read {}", path.display()))?;
    if !metadata.is_dir() {
        return bootstrap(warden, path).await;
    }
    let mut files = Vec::new();
    let mut entries = tokio::fs::read_dir(path)
        .await
        .with_context(|| format!("--bootstrap: cannot list {}", path.display()))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .with_context(|| format!("--bootstrap: cannot list {}", path.display()))?
    {
        let file = entry.path();
        let document = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"));
        if document {
            files.push(file);
        }
    }
    files.sort();
    for file in &files {
        bootstrap(warden, file).await?;
    }
    info!(documents = files.len(), directory = %path.display(), "bootstrap directory merged");
    Ok(())
}

async fn bootstrap(warden: &Warden, path: &std::path::Path) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(path)
        .await
        .with_context(|| format!("--bootstrap: cannot read {}", path.display()))?;
    let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let document = parse_document(&text)
        .map_err(|e| anyhow::anyhow!("--bootstrap {}: {e}", path.display()))?;
    // The text is as large as the document: not kept through the merge.
    drop(text);
    let org = document.organization.clone();
    // Merging crm-large again takes half a minute and gigabytes: a store
    // that already holds this very document needs nothing.
    if warden.store().bootstrap_sha256(&org).await?.as_deref() == Some(sha256.as_str()) {
        info!(org = %org, "bootstrap document unchanged (sha256 {sha256}); skipped");
        return Ok(());
    }
    let meta = crate::service::WriteMeta {
        operator: Some("bootstrap".to_string()),
        bootstrap_sha256: Some(sha256),
    };
    let command = Command::Import {
        document,
        replace: false,
    };
    let revision = warden
        .write_with(&org, &Writer::Operator, command, meta)
        .await
        .map_err(|e| anyhow::anyhow!("--bootstrap {}: {e}", path.display()))?
        .revision;
    crate::memory::hand_back();
    info!(org = %org, revision, "bootstrap document merged");
    Ok(())
}

fn tls(config: &ServeConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let cert = std::fs::read(cert).with_context(|| format!("--tls-cert {}", cert.display()))?;
    let key = std::fs::read(key).with_context(|| format!("--tls-key {}", key.display()))?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &config.tls_client_ca {
        let ca = std::fs::read(ca).with_context(|| format!("--tls-client-ca {}", ca.display()))?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

/// The shutdown signals (SIGTERM, SIGINT), registered when this is
/// called, and a future that ends at the first of them. `serve` calls it
/// before any of its listeners says it listens: a handler registered
/// later, inside the task that waits for it, left a window after such a
/// line in which a SIGTERM (a test's, or Kubernetes' right after a start)
/// took the default action and killed the process instead of draining it.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

/// Elsewhere, Ctrl-C only, registered when the future is first polled
/// (tokio offers no earlier registration there).
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// How an HTTP listener beside gRPC is served: the gRPC port's TLS files
/// and limits, with its own largest body.
fn http_options(
    config: &ServeConfig,
    max_body_bytes: usize,
) -> anyhow::Result<crate::http::HttpOptions> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::http::tls_config(
            cert,
            key,
            config.tls_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let options = crate::http::HttpOptions {
        limits: ConnectionLimits {
            max_connections: config.max_connections,
            handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        },
        max_body_bytes,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        max_in_flight: config.max_in_flight,
        max_streams_per_connection: config.max_streams_per_connection,
        keepalive: Duration::from_secs(config.keepalive_secs),
        drain: Duration::from_secs(config.drain_timeout_secs),
        tls,
    };
    Ok(options)
}

/// Serves AuthZEN on `at` beside gRPC, with the gRPC port's TLS, tokens
/// and limits, until `halt`.
async fn authzen(
    config: &ServeConfig,
    at: std::net::SocketAddr,
    warden: Arc<Warden>,
    tokens: Tokens,
    halt: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = http_options(config, crate::authzen::MAX_BODY_BYTES)?;
    let router = crate::http::guard(
        crate::authzen::router(warden, options.tls.is_some()),
        tokens,
        &options,
    );
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("--authzen-listen {at}"))?;
    // Printed before gRPC's line, which tells that the server is ready.
    println!("warden authzen listening on {}", listener.local_addr()?);
    tokio::spawn(crate::http::serve(listener, router, options, halt));
    Ok(())
}

/// Serves the web console on `at` beside gRPC, with the gRPC port's TLS
/// and connection limits, until `halt`. Its page is served without a
/// token; its API behind the HTTP guard, as AuthZEN.
async fn console(
    config: &ServeConfig,
    at: std::net::SocketAddr,
    warden: Arc<Warden>,
    tokens: Tokens,
    halt: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = http_options(config, crate::console::api::MAX_BODY_BYTES)?;
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("--console-listen {at}"))?;
    // Printed before gRPC's line, which tells that the server is ready.
    println!("warden console listening on {}", listener.local_addr()?);
    let router = crate::console::router(warden, tokens, &options);
    tokio::spawn(crate::http::serve(listener, router, options, halt));
    Ok(())
}

/// Runs `warden serve` until a shutdown signal.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let mut telemetry = crate::telemetry::init(&config)?;
    config.validate().map_err(anyhow::Error::msg)?;
    info!(config = %config.masked(), "starting");
    let mut tokens = Tokens::parse(&config.auth_tokens).map_err(anyhow::Error::msg)?;
    if let Some(path) = &config.auth_token_file {
        tokens = tokens.with_file(path).map_err(anyhow::Error::msg)?;
    }
    if config.tokens_on_command_line() {
        warn!("--auth-token on the command line is visible to every local user in `ps`; use --auth-token-file or WARDEN_AUTH_TOKENS");
    }
    if !tokens.enabled() {
        warn!("no auth token configured: every caller is allowed every scope");
    }
    let token_file = tokens.clone();
    let http_tokens = tokens.clone();
    let tls = tls(&config)?;

    let mut store = Store::open(&config.store)
        .await
        .context("opening the store")?;
    store.set_retention(config.change_retention);
    let warden = Arc::new(Warden::open(store, config.limits(), config.service_options()).await?);
    // The store's state is loaded: what is faulted in from now on is
    // mostly short-lived, a `--bootstrap` merge's text, document and
    // change list included (docs/decisions.md, "Transparent huge pages:
    // for the loaded state only").
    if config.huge_pages == crate::config::HugePages::LoadOnly {
        if crate::memory::no_huge_pages_from_now() {
            info!("transparent huge pages off from here on (--huge-pages load-only): the store's state is loaded");
        } else {
            warn!("--huge-pages load-only: the kernel refused PR_SET_THP_DISABLE; huge pages stay as the kernel allows");
        }
    }
    if let Some(path) = &config.bootstrap {
        bootstrap_all(&warden, path).await?;
    }
    telemetry.observe(&warden);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CheckServiceServer<CheckApi>>().await;
    reporter.set_serving::<GrantServiceServer<GrantApi>>().await;
    reporter.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // Each service's callers authenticated on the HTTP request itself
    // (`Authenticated`), not through an interceptor that rebuilds it.
    // CheckBulk routed by hand (decoded into the engine's checks, encoded
    // from the decisions), every other method by the generated service.
    let check = Authenticated::new(
        CheckRoutes::new(CheckApi::new(warden.clone())),
        tokens.clone(),
    );
    let grant = Authenticated::new(
        GrantServiceServer::new(GrantApi::new(warden.clone())),
        tokens.clone(),
    );
    let admin = Authenticated::new(
        AdminServiceServer::new(AdminApi::new(warden.clone()))
            .max_decoding_message_size(
                config
                    .max_document_bytes
                    .saturating_add(IMPORT_MESSAGE_MARGIN),
            )
            .max_encoding_message_size(MAX_EXPORT_BYTES),
        tokens.clone(),
    );

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("--listen {}", config.listen))?;
    let addr = listener.local_addr()?;

    // Keep-alive pings make a live client send bytes however quiet it is,
    // so the idle timeout closes only connections whose peer is gone. The
    // windows and frame size are fixed (docs/decisions.md, "Transport"):
    // adaptive windows probe the bandwidth-delay product with pings, which
    // a client in the same network never needs and every connection pays.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(config.keepalive_secs)))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .http2_adaptive_window(Some(false))
        .max_frame_size(Some(MAX_FRAME));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    // Before the first line that says a listener is up (metrics, AuthZEN,
    // console, gRPC): from then on a SIGTERM drains.
    let signalled = shutdown_signal().context("registering the SIGTERM and SIGINT handlers")?;
    let (halt_tx, halt_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(crate::bus::poll::run(
        warden.clone(),
        Duration::from_millis(config.poll_interval_ms),
        halt_rx.clone(),
    ));
    tokio::spawn(token_file.watch_file(TOKEN_FILE_POLL, halt_rx.clone()));
    if let Some(url) = &config.redis {
        let bus = Arc::new(crate::bus::Bus::new(url, &config.redis_channel).context("--redis")?);
        tokio::spawn(bus.run(warden.clone(), halt_rx.clone()));
    }
    if let Some(at) = config.metrics_listen {
        let metrics = TcpListener::bind(at)
            .await
            .with_context(|| format!("--metrics-listen {at}"))?;
        println!("warden metrics on http://{}/metrics", metrics.local_addr()?);
        tokio::spawn(crate::telemetry::serve_metrics(
            metrics,
            warden.clone(),
            halt_rx.clone(),
        ));
    }
    if let Some(at) = config.authzen_listen {
        authzen(
            &config,
            at,
            warden.clone(),
            http_tokens.clone(),
            halt_rx.clone(),
        )
        .await?;
    }
    if let Some(at) = config.console_listen {
        console(&config, at, warden.clone(), http_tokens, halt_rx.clone()).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = Duration::from_secs(config.drain_timeout_secs);
    let signal_reporter = reporter.clone();
    tokio::spawn(async move {
        signalled.await;
        info!("shutting down: health NOT_SERVING, draining in-flight calls");
        signal_reporter
            .set_not_serving::<CheckServiceServer<CheckApi>>()
            .await;
        signal_reporter
            .set_not_serving::<GrantServiceServer<GrantApi>>()
            .await;
        signal_reporter
            .set_not_serving::<AdminServiceServer<AdminApi>>()
            .await;
        let _ = stop_tx.send(());
        let _ = halt_tx.send(true);
        tokio::time::sleep(drain).await;
        let _ = deadline_tx.send(());
    });
    let server = builder
        .layer(CallGuardLayer::new(CallLimits {
            max_in_flight: config.max_in_flight,
            request_timeout: Duration::from_secs(config.request_timeout_secs),
        }))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(check)
        .add_service(grant)
        .add_service(admin)
        .serve_with_incoming_shutdown(
            crate::transport::incoming(
                listener,
                ConnectionLimits {
                    max_connections: config.max_connections,
                    handshake_timeout: Duration::from_secs(config.handshake_timeout_secs),
                    idle_timeout: Duration::from_secs(config.idle_timeout_secs),
                },
            ),
            async {
                let _ = stop_rx.await;
            },
        );

    println!("warden listening on {addr}");
    let _ = std::io::stdout().flush();
    info!(%addr, "serving");

    tokio::select! {
        result = server => result.context("serving")?,
        _ = async {
            if deadline_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        } => warn!(?drain, "drain deadline passed; stopping with calls in flight"),
    }
    info!("stopped");
    telemetry.shutdown(TELEMETRY_FLUSH).await;
    Ok(())
}
