//! Test harness: runs the real `warden serve` binary on a free loopback
//! port with its own store, waits for gRPC health, and hands out clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::check_service_client::CheckServiceClient;
use warden::api::pb::grant_service_client::GrantServiceClient;

/// A running `warden serve`.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: String,
    /// Its store URL.
    pub store: String,
    /// Extra arguments it was started with.
    pub args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh SQLite file.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server on a fresh SQLite file with extra arguments.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("warden.db").display());
        let mut s = Self::spawn(&store, args);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on an existing store.
    pub fn spawn(store: &str, args: &[&str]) -> Server {
        Self::spawn_writing(store, args, &[], "error", Stdio::inherit())
    }

    /// Starts a server on `store` with extra arguments and environment,
    /// logging at `level` to `stderr`, and waits for the line that says
    /// where it listens.
    fn spawn_writing(
        store: &str,
        args: &[&str],
        env: &[(&str, &str)],
        level: &str,
        stderr: Stdio,
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--log",
                level,
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start warden serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("warden listening on ") {
                        break a.to_string();
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    panic!("warden serve exited before listening: {status:?}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            store: store.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            _dir: None,
        }
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to it, once health answers SERVING.
    pub async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(ch) = Channel::from_shared(self.url()).unwrap().connect().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
                let req = tonic_health::pb::HealthCheckRequest {
                    service: "warden.v1.CheckService".into(),
                };
                if let Ok(r) = health.check(req).await {
                    if r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                    {
                        return ch;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "warden at {} never became healthy",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Clients of the three services.
    pub async fn clients(&self) -> Clients {
        let ch = self.channel().await;
        Clients {
            check: CheckServiceClient::new(ch.clone()),
            grant: GrantServiceClient::new(ch.clone()),
            admin: AdminServiceClient::new(ch)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    /// The store directory's database path, for restarts.
    pub fn store_url(&self) -> String {
        self.store.clone()
    }

    /// Takes ownership of the temporary directory (to restart on the same store).
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients of one server.
pub struct Clients {
    /// CheckService.
    pub check: CheckServiceClient<Channel>,
    /// GrantService.
    pub grant: GrantServiceClient<Channel>,
    /// AdminService.
    pub admin: AdminServiceClient<Channel>,
}

/// An organization's exported document (JSON) and the revision it was taken at.
pub async fn export(c: &mut Clients, org: &str) -> (String, String) {
    let e = c
        .admin
        .export(pb::ExportRequest {
            org_id: org.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (e.document, e.revision)
}

/// The scenario file `name` under tests/scenarios.
pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Every scenario file under tests/scenarios (recursively), sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios"),
        &mut out,
    );
    out
}

/// A check request with the common fields.
pub fn check_req(
    org: &str,
    subject: &str,
    module: &str,
    action: &str,
    record: &str,
) -> pb::CheckRequest {
    pb::CheckRequest {
        org_id: org.into(),
        subject: subject.into(),
        module: module.into(),
        action: action.into(),
        record_id: record.into(),
        ..Default::default()
    }
}

/// The status name of a tonic code, as scenario documents write it.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::Unavailable => "UNAVAILABLE",
        _ => "OTHER",
    }
}

pub mod rng;
pub mod services;
pub mod writes;

impl Server {
    /// Starts a server on a fresh SQLite file with extra arguments and
    /// environment variables (for settings that belong in the environment,
    /// such as tokens).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("warden.db").display());
        let mut s = Self::spawn_writing(&store, args, env, "error", Stdio::inherit());
        s._dir = Some(dir);
        s
    }
}

impl Server {
    /// Starts a server on `store` logging at info level into `log` (for
    /// tests of what it says at start-up), with extra arguments.
    pub fn spawn_logged(store: &str, args: &[&str], log: &std::path::Path) -> Server {
        let log_file = std::fs::File::create(log).expect("create the log file");
        Self::spawn_writing(store, args, &[], "info", Stdio::from(log_file))
    }

    /// The process id, to signal the server without waiting for it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Server {
    /// Starts a server on a fresh SQLite file with AuthZEN on a free
    /// loopback port, extra arguments and environment; returns it and the
    /// address of its AuthZEN listener.
    pub fn start_authzen(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("warden.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
            .args(["--log", "error", "--authzen-listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start warden serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut authzen = None;
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("warden authzen listening on ") {
                        authzen = Some(a.to_string());
                    } else if let Some(a) = line.strip_prefix("warden listening on ") {
                        break a.to_string();
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    panic!("warden serve exited before listening: {status:?}");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let server = Server {
            child,
            addr,
            store,
            args: args.iter().map(|s| s.to_string()).collect(),
            _dir: Some(dir),
        };
        let authzen = authzen.expect("the AuthZEN address is printed before the gRPC one");
        (server, authzen)
    }
}

/// A test CA and a certificate it signed for localhost and 127.0.0.1,
/// made with openssl in `dir`: (CA, certificate, key) PEM paths.
pub fn test_certificates(dir: &std::path::Path) -> (String, String, String) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("leaf.csr"),
        p("cert.pem"),
        p("key.pem"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!("req -x509 {ec} -days 1 -subj /CN=test-ca -keyout {ca_key} -out {ca}"),
        format!("req {ec} -subj /CN=localhost -keyout {key} -out {csr}"),
        format!("x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -days 1 -out {cert} -extfile {ext}"),
    ];
    for step in steps {
        let out = Command::new("openssl")
            .args(step.split(' '))
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (ca, cert, key)
}

impl Server {
    /// Starts a server on a fresh SQLite file with `--console-listen
    /// 127.0.0.1:0`, extra arguments and environment, and returns it with
    /// the console's address (the line it prints before the gRPC one).
    pub fn start_with_console(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("warden.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
            .args(["--log", "error", "--console-listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start warden serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut console = None;
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("warden console listening on ") {
                        console = Some(a.to_string());
                    }
                    if let Some(a) = line.strip_prefix("warden listening on ") {
                        break a.to_string();
                    }
                }
                _ => {
                    let status = child.wait().ok();
                    panic!("warden serve exited before listening: {status:?}");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let console = console.expect("the console's address is printed before the gRPC one");
        let server = Server {
            child,
            addr,
            store,
            args: args.iter().map(|s| s.to_string()).collect(),
            _dir: Some(dir),
        };
        (server, console)
    }
}

/// A scenario check as a gRPC `CheckRequest` of organization `org`: every
/// field the scenario gives (record, field, time, description, assign
/// target); consistency and explain left for the caller to set.
pub fn scenario_check(org: &str, check: &warden::document::CheckSpec) -> pb::CheckRequest {
    use warden::api::convert;
    pb::CheckRequest {
        org_id: org.into(),
        subject: check.subject.as_str().into(),
        module: check.module.as_str().into(),
        action: check.action.as_str().into(),
        record_id: check.record.as_deref().unwrap_or_default().into(),
        field: check.field.as_deref().unwrap_or_default().into(),
        at: check.at.map(convert::timestamp),
        record: check.described.as_ref().map(convert::described),
        assign_to: check.assign_to.as_ref().map(convert::owner),
        ..Default::default()
    }
}

/// Imports the scenario file `name` of tests/scenarios (replacing its
/// organization) and returns the parsed scenario.
pub async fn import_scenario(c: &mut Clients, name: &str) -> warden::document::Scenario {
    let text = std::fs::read_to_string(scenario_path(name)).unwrap();
    let scenario = warden::document::parse_scenario(&text).unwrap();
    c.admin
        .import(pb::ImportRequest {
            document: text,
            replace: true,
            ..Default::default()
        })
        .await
        .unwrap();
    scenario
}

/// `msg` with `token` as its bearer credential (the tests that run the
/// server with `--tokens`).
#[allow(dead_code)]
pub fn auth<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}
