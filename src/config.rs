//! Configuration of `warden serve`: flags and `WARDEN_*` environment
//! variables over compiled-in defaults that work on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::engine::Limits;
use crate::service::ServiceOptions;
use crate::telemetry::DecisionLogSink;

/// Largest `--max-document-bytes`, leaving room under gRPC's 4 GiB
/// message length for the rest of the request.
pub const MAX_MESSAGE_BYTES: usize = (u32::MAX as usize) - (1 << 20);

/// Transparent huge pages for the server's memory (docs/decisions.md,
/// "Transparent huge pages: for the loaded state only").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HugePages {
    /// As the kernel allows while the store's state loads, then none for
    /// memory faulted in afterwards: the loaded record tables keep their
    /// huge pages; a `--bootstrap` merge's document and a request's
    /// short-lived buffers do not pay for new ones.
    LoadOnly,
    /// The kernel's setting throughout.
    Kernel,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of `warden serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Store URL: sqlite://PATH (created if missing).
    #[arg(long, env = "WARDEN_STORE", default_value = "sqlite://warden.db")]
    pub store: String,
    /// Redis URL for change messages between replicas (unset: no Redis; the
    /// poller alone keeps replicas in step).
    #[arg(long = "redis", env = "WARDEN_REDIS_URL")]
    pub redis: Option<String>,
    /// Redis pub/sub channel.
    #[arg(long, env = "WARDEN_REDIS_CHANNEL", default_value = "warden.changes")]
    pub redis_channel: String,
    /// Transparent huge pages: `load-only` (the kernel's setting while the
    /// store's state loads, none for memory faulted in afterwards, a
    /// `--bootstrap` merge included) or `kernel`.
    #[arg(
        long,
        env = "WARDEN_HUGE_PAGES",
        value_enum,
        default_value = "load-only"
    )]
    pub huge_pages: HugePages,
    /// How often the store's revisions are polled, in milliseconds.
    #[arg(long, env = "WARDEN_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Organization document (YAML or JSON) merged into the store at
    /// start-up, or a directory of them (one organization per file).
    #[arg(long, env = "WARDEN_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// Bearer tokens as TOKEN=scope+scope[@org+org] (scopes: check, grant,
    /// admin; with @: only those organizations); none and no token file:
    /// authentication is off. Prefer the environment or --auth-token-file:
    /// a command line is visible to every local user in `ps`.
    #[arg(
        long = "auth-token",
        env = "WARDEN_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub auth_tokens: Vec<String>,
    /// File of bearer tokens, one TOKEN=scope+scope[@org+org] a line (`#`
    /// comments, blank lines), re-read when it changes; with it,
    /// authentication is on even while it lists no token.
    #[arg(long, env = "WARDEN_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// PEM certificate chain: serve TLS.
    #[arg(long, env = "WARDEN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "WARDEN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates it signed (mutual TLS).
    #[arg(long, env = "WARDEN_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "WARDEN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "WARDEN_LOG", default_value = "info")]
    pub log: String,
    /// How long AT_LEAST_AS_FRESH waits for its revision, in milliseconds.
    #[arg(long, env = "WARDEN_FRESHNESS_TIMEOUT_MS", default_value_t = 5000)]
    pub freshness_timeout_ms: u64,
    /// How long SIGTERM waits for in-flight calls, in seconds.
    #[arg(long, env = "WARDEN_DRAIN_TIMEOUT_SECS", default_value_t = 20)]
    pub drain_timeout_secs: u64,
    /// Organizations one principal may be a user in (0: no limit).
    #[arg(long, env = "WARDEN_MAX_ORGS_PER_PRINCIPAL", default_value_t = 0)]
    pub max_orgs_per_principal: usize,
    /// Longest id.
    #[arg(long, env = "WARDEN_MAX_ID_LENGTH", default_value_t = 128)]
    pub max_id_length: usize,
    /// Most checks in one CheckBulk.
    #[arg(long, env = "WARDEN_MAX_BULK_CHECKS", default_value_t = 1000)]
    pub max_bulk_checks: usize,
    /// Most members a group lists.
    #[arg(long, env = "WARDEN_MAX_GROUP_MEMBERS", default_value_t = 10_000)]
    pub max_group_members: usize,
    /// Deepest group nesting.
    #[arg(long, env = "WARDEN_MAX_GROUP_DEPTH", default_value_t = 32)]
    pub max_group_depth: usize,
    /// Deepest role chain.
    #[arg(long, env = "WARDEN_MAX_ROLE_DEPTH", default_value_t = 64)]
    pub max_role_depth: usize,
    /// Most shifts per organization.
    #[arg(long, env = "WARDEN_MAX_SHIFTS", default_value_t = 30)]
    pub max_shifts: usize,
    /// Largest Import document in bytes, refused before it is parsed
    /// (default 80 MiB: the crm-large JSON document is 77 MiB).
    #[arg(long, env = "WARDEN_MAX_DOCUMENT_BYTES", default_value_t = crate::service::DEFAULT_MAX_DOCUMENT_BYTES)]
    pub max_document_bytes: usize,
    /// Most open client connections; beyond it a new connection is closed
    /// at once.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a new connection has to send its first bytes (the HTTP/2 or
    /// TLS handshake) before it is closed; on the HTTP listeners, also the
    /// time a request head has to arrive whole.
    #[arg(long, env = "WARDEN_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may go without sending a byte before it is
    /// closed (live clients answer the server's keep-alive pings).
    #[arg(long, env = "WARDEN_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Seconds between the server's HTTP/2 keep-alive pings; a ping not
    /// answered within 20 s closes the connection.
    #[arg(long, env = "WARDEN_KEEPALIVE_SECS", default_value_t = 60)]
    pub keepalive_secs: u64,
    /// Most calls in flight across the server (streams count until they
    /// end); beyond it a call is answered RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "WARDEN_MAX_IN_FLIGHT", default_value_t = 2048)]
    pub max_in_flight: usize,
    /// Most concurrent calls (HTTP/2 streams) on one connection.
    #[arg(
        long,
        env = "WARDEN_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 1024
    )]
    pub max_streams_per_connection: u32,
    /// Upper bound, in seconds, on a unary call's time to answer (a
    /// client's shorter grpc-timeout wins); streams are bounded by their
    /// client.
    #[arg(long, env = "WARDEN_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Upper bound, in seconds, on a Simulate (gRPC, or the console's What
    /// if): past it the comparison stops and the call answers
    /// DEADLINE_EXCEEDED naming this flag; a call dropped before (its
    /// client gone, --request-timeout-secs) stops it too.
    #[arg(long, env = "WARDEN_SIMULATE_TIMEOUT_SECS", default_value_t = 20)]
    pub simulate_timeout_secs: u64,
    /// Change log (and audit) kept per organization: a number of revisions
    /// behind the newest (`10000`) or an age (`90d`, `12h`, `30m`, `45s`).
    #[arg(long, env = "WARDEN_CHANGE_RETENTION", default_value = "10000", value_parser = crate::store::Retention::parse)]
    pub change_retention: crate::store::Retention,
    /// OTLP/gRPC collector for traces, metrics and (with `--decision-log otlp`)
    /// decision log records, e.g. http://otel-collector:4317
    /// (unset: OTEL_EXPORTER_OTLP_ENDPOINT; neither: no export).
    #[arg(long, env = "WARDEN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Address of the OpenID AuthZEN 1.0 HTTP JSON API, e.g. 0.0.0.0:8080
    /// (unset: off); same tokens (scope `check`) and TLS as gRPC.
    #[arg(long, env = "WARDEN_AUTHZEN_LISTEN")]
    pub authzen_listen: Option<SocketAddr>,
    /// Address of the web console and its JSON API, e.g. 127.0.0.1:8080
    /// (port 0: any free port; the chosen address is printed; unset: off).
    #[arg(long, env = "WARDEN_CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,
    /// Address of the Prometheus endpoint `/metrics`, e.g. 0.0.0.0:9464 (unset: off).
    #[arg(long, env = "WARDEN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Where each Check decision is logged: `off`, `stderr` (one JSON line
    /// each) or `otlp` (one log record each, to `--otlp-endpoint`).
    #[arg(long, env = "WARDEN_DECISION_LOG", value_enum, default_value = "off")]
    pub decision_log: DecisionLogSink,
    /// Fraction of decisions logged, 0.0 to 1.0.
    #[arg(long, env = "WARDEN_DECISION_LOG_SAMPLE", default_value_t = 1.0)]
    pub decision_log_sample: f64,
    /// Log every denial, whatever the sample.
    #[arg(long, env = "WARDEN_DECISION_LOG_DENIALS")]
    pub decision_log_denials: bool,
}

impl ServeConfig {
    /// The engine limits.
    pub fn limits(&self) -> Limits {
        Limits {
            id_length: self.max_id_length,
            bulk_checks: self.max_bulk_checks,
            group_members: self.max_group_members,
            group_depth: self.max_group_depth,
            role_depth: self.max_role_depth,
            shifts: self.max_shifts,
            max_orgs_per_principal: self.max_orgs_per_principal,
            ..Limits::default()
        }
    }

    /// The service options.
    pub fn service_options(&self) -> ServiceOptions {
        ServiceOptions {
            freshness_timeout: Duration::from_millis(self.freshness_timeout_ms),
            max_document_bytes: self.max_document_bytes,
            simulate_timeout: Duration::from_secs(self.simulate_timeout_secs),
        }
    }

    /// Whether `--auth-token` was given on the command line (rather than
    /// through `WARDEN_AUTH_TOKENS`), where `ps` shows it to everyone.
    pub fn tokens_on_command_line(&self) -> bool {
        if self.auth_tokens.is_empty() {
            return false;
        }
        match std::env::var("WARDEN_AUTH_TOKENS") {
            Ok(env) => env
                .split(',')
                .ne(self.auth_tokens.iter().map(String::as_str)),
            Err(_) => true,
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_id_length == 0 || self.max_bulk_checks == 0 || self.max_group_members == 0 {
            return Err("limits must be positive".into());
        }
        let store_ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| self.store.starts_with(p));
        if !store_ok {
            return Err(format!(
                "--store: unsupported URL {:?}; use sqlite://PATH or postgres://…",
                mask_password(&self.store)
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err("--poll-interval-ms must be positive".into());
        }
        let transport = [
            ("--max-document-bytes", self.max_document_bytes as u64),
            ("--max-connections", self.max_connections as u64),
            ("--handshake-timeout-secs", self.handshake_timeout_secs),
            ("--idle-timeout-secs", self.idle_timeout_secs),
            ("--keepalive-secs", self.keepalive_secs),
            ("--max-in-flight", self.max_in_flight as u64),
            (
                "--max-streams-per-connection",
                u64::from(self.max_streams_per_connection),
            ),
            ("--request-timeout-secs", self.request_timeout_secs),
            ("--simulate-timeout-secs", self.simulate_timeout_secs),
        ];
        if let Some((flag, _)) = transport.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be positive"));
        }
        if self.max_document_bytes > MAX_MESSAGE_BYTES {
            return Err(format!(
                "--max-document-bytes: at most {MAX_MESSAGE_BYTES} (a gRPC message is at most 4 GiB)"
            ));
        }
        if !(0.0..=1.0).contains(&self.decision_log_sample) {
            return Err("--decision-log-sample: must be between 0.0 and 1.0".into());
        }
        Ok(())
    }

    /// The configuration for the log, secrets masked.
    pub fn masked(&self) -> String {
        let mut c = self.clone();
        c.auth_tokens = c.auth_tokens.iter().map(|_| "***".to_string()).collect();
        c.store = mask_password(&c.store);
        c.redis = c.redis.as_deref().map(mask_password);
        c.otlp_endpoint = c.otlp_endpoint.as_deref().map(mask_password);
        format!("{c:?}")
    }
}

/// Hides the password of a URL (`scheme://user:PASSWORD@host`).
fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }

    #[test]
    fn defaults_load_and_work_on_a_laptop() {
        let c = Cli::try_parse_from(["warden"]).unwrap().serve;
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.store, "sqlite://warden.db");
        assert!(c.auth_tokens.is_empty());
        assert!(c.auth_token_file.is_none());
        assert_eq!(c.limits(), Limits::default());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn transport_limits_default_and_refuse_zero() {
        let c = Cli::try_parse_from(["warden"]).unwrap().serve;
        assert_eq!(c.max_document_bytes, 80 << 20);
        assert_eq!(
            (c.max_connections, c.max_in_flight, c.handshake_timeout_secs),
            (4096, 2048, 10)
        );
        for flag in [
            "--max-in-flight",
            "--max-connections",
            "--handshake-timeout-secs",
            "--idle-timeout-secs",
        ] {
            let c = Cli::try_parse_from(["warden", flag, "0"]).unwrap().serve;
            assert!(c.validate().unwrap_err().contains(flag), "{flag}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = Cli::try_parse_from(["warden", "--auth-token", "s3cret=admin"])
            .unwrap()
            .serve;
        assert!(!c.masked().contains("s3cret"));
        assert!(c.tokens_on_command_line());
    }

    #[test]
    fn the_token_file_is_a_flag() {
        let c = Cli::try_parse_from(["warden", "--auth-token-file", "/run/secrets/tokens"])
            .unwrap()
            .serve;
        assert_eq!(
            c.auth_token_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/tokens"))
        );
        assert!(!c.tokens_on_command_line());
    }

    #[test]
    fn telemetry_is_off_by_default_and_the_sample_is_a_fraction() {
        let c = Cli::try_parse_from(["warden"]).unwrap().serve;
        assert!(c.otlp_endpoint.is_none() && c.metrics_listen.is_none());
        assert!(c.authzen_listen.is_none());
        let c = Cli::try_parse_from(["warden", "--authzen-listen", "0.0.0.0:8080"])
            .unwrap()
            .serve;
        assert_eq!(c.authzen_listen.map(|a| a.port()), Some(8080));
        assert_eq!(c.decision_log, DecisionLogSink::Off);
        let c = Cli::try_parse_from(["warden", "--decision-log-sample", "1.5"])
            .unwrap()
            .serve;
        assert!(c.validate().unwrap_err().contains("--decision-log-sample"));
        let c = Cli::try_parse_from(["warden", "--otlp-endpoint", "http://u:pw0rd@collector:4317"])
            .unwrap()
            .serve;
        assert!(!c.masked().contains("pw0rd"));
    }

    #[test]
    fn the_console_is_off_by_default_and_takes_an_address() {
        let c = Cli::try_parse_from(["warden"]).unwrap().serve;
        assert!(c.console_listen.is_none());
        let c = Cli::try_parse_from(["warden", "--console-listen", "127.0.0.1:0"])
            .unwrap()
            .serve;
        assert_eq!(
            c.console_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:0")
        );
        assert!(Cli::try_parse_from(["warden", "--console-listen", "nowhere"]).is_err());
    }
}
