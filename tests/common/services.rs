//! Real backing services for tests: a redis-server process the test can
//! kill and restart, and fresh PostgreSQL databases on the cluster that
//! scripts/test.sh starts (WARDEN_TEST_POSTGRES_URL).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server on a loopback port of its own.
pub struct Redis {
    child: Option<Child>,
    /// Its port (kept across restarts).
    pub port: u16,
}

impl Redis {
    /// Starts redis-server on a free port.
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The admin URL of the test PostgreSQL cluster.
pub fn postgres_admin_url() -> String {
    std::env::var("WARDEN_TEST_POSTGRES_URL").expect(
        "PostgreSQL tests need WARDEN_TEST_POSTGRES_URL: run them with `bash scripts/test.sh`",
    )
}

/// A fresh, empty database on the test cluster; its URL.
pub async fn fresh_postgres_database(prefix: &str) -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test cluster");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("WARDEN_TEST_POSTGRES_URL must end in /DATABASE"),
    }
}
