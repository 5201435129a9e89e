//! Shared by the MySQL store's tests and benchmark: a fresh database per test on the MariaDB at
//! 127.0.0.1:3306 (`stowage_test_<random>`), dropped when the guard goes, even after a panic.

#![allow(dead_code)] // each test file uses a different part

use std::hash::{BuildHasher, Hasher};
use std::process::Command;
use std::time::Duration;

use stowage::store::StoreError;
use stowage::store::mysql::{MysqlOptions, MysqlStore};

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 3306;

/// A database that exists for one test.
pub struct TestDb {
    pub name: String,
    pub port: u16,
}

impl TestDb {
    /// Creates `stowage_test_<random>` on the shared server.
    pub fn create() -> Self {
        Self::create_on(PORT)
    }

    /// Creates `stowage_test_<random>` on the server listening on `port`.
    pub fn create_on(port: u16) -> Self {
        // `RandomState` is seeded randomly per instance: a random name without another crate.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let name = format!("stowage_test_{random:016x}");
        sql(port, &format!("CREATE DATABASE `{name}`"));
        Self { name, port }
    }

    pub fn options(&self, history: usize) -> MysqlOptions {
        MysqlOptions {
            host: HOST.to_owned(),
            port: self.port,
            user: "root".to_owned(),
            password: String::new(),
            database: self.name.clone(),
            max_open_conns: 8,
            max_idle_conns: 2,
            purge_after: Duration::from_secs(3600),
            history,
        }
    }

    pub fn store(&self, history: usize) -> MysqlStore {
        MysqlStore::new(self.options(history))
    }

    /// Runs `statement` in this database with the `mariadb` client; returns its tab-separated
    /// output without headers.
    pub fn sql(&self, statement: &str) -> String {
        run(self.port, Some(&self.name), statement)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort. The test's own pool may still hold sessions (a panic leaves transactions
        // open) and the runtime cannot close them while this blocks, so they are killed first;
        // they all belong to this test's database.
        let kill = format!(
            "SELECT CONCAT('KILL ', ID, ';') FROM information_schema.PROCESSLIST WHERE DB = '{}'",
            self.name
        );
        let port = self.port.to_string();
        let mariadb = || {
            let mut command = Command::new("mariadb");
            command.args(["-h", HOST, "-P", &port, "-u", "root", "-N", "-B"]);
            command
        };
        if let Ok(output) = mariadb().args(["-e", &kill]).output() {
            let kills = String::from_utf8_lossy(&output.stdout).into_owned();
            if !kills.trim().is_empty() {
                let _ = mariadb().args(["--force", "-e", &kills]).output();
            }
        }
        let _ = mariadb()
            .args([
                "-e",
                &format!(
                    "SET SESSION lock_wait_timeout = 10; DROP DATABASE IF EXISTS `{}`",
                    self.name
                ),
            ])
            .output();
    }
}

fn sql(port: u16, statement: &str) -> String {
    run(port, None, statement)
}

fn run(port: u16, database: Option<&str>, statement: &str) -> String {
    let mut command = Command::new("mariadb");
    command
        .args([
            "-h",
            HOST,
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "-N",
            "-B",
        ])
        .args(["-e", statement]);
    if let Some(database) = database {
        command.arg(database);
    }
    let output = command.output().expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// How long one store call may take in a test.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits a store call, failing the test with `what` on an error or after [`TIMEOUT`].
pub async fn bounded<T>(what: &str, call: impl Future<Output = Result<T, StoreError>>) -> T {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!("{what}: {error}"),
        Err(_) => panic!("{what}: no answer within {TIMEOUT:?}"),
    }
}
