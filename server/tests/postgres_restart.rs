//! PostgreSQL restarted under a running `kith-server`: while the database is away, requests
//! that need it get 503 `database_unavailable` (never a 500, nothing half stored); once it
//! is back, the server carries on without a restart of its own. The test runs a private
//! cluster of its own (`initdb` + `pg_ctl` on a Unix socket in a temporary directory), not
//! the one scripts/test shares between tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A throw-away PostgreSQL cluster, stopped when dropped.
struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// The directory holding `initdb` and `pg_ctl`: `$KITH_POSTGRES_BIN`, else the newest
    /// Debian PostgreSQL, else `PATH`.
    fn bin() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("KITH_POSTGRES_BIN") {
            return Some(dir.into());
        }
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .collect();
        candidates.sort();
        candidates.extend(["/usr/local/bin".into(), "/usr/bin".into()]);
        candidates
            .into_iter()
            .rev()
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    }

    fn start() -> Option<Self> {
        let Some(bin) = Self::bin() else {
            kith_test_support::skip("initdb not found: install the postgresql package");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let cluster = Self { bin, dir };
        if kith_launch::running_as_root() {
            // initdb and postgres refuse to run as root.
            assert!(
                Command::new("chown")
                    .args(["postgres"])
                    .arg(cluster.dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "kith",
                "--auth=trust",
                "--no-sync",
            ],
        );
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!(
            "postgres://kith@localhost/postgres?host={}",
            self.dir.path().display()
        )
    }

    /// `pg_ctl <action>` (start, stop, restart), waiting until it is done; stops are fast
    /// shutdowns, which end the sessions of connected clients as a restart by an operator
    /// (or a managed database's maintenance) does.
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off",
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-m",
                "fast",
                "-o",
                &options,
                action,
            ],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if kith_launch::running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            self.pg_ctl("stop");
        }
    }
}

/// Publishes `keys` keys with `code`: the status and the error code of the answer.
async fn publish(api: &impl Api, code: &str, keys: usize) -> (u16, Option<String>) {
    let keys: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
    let (status, body, _) = publish_json(api, &publish_doc(api, code, &keys)).await;
    (status, body["error"].as_str().map(str::to_owned))
}

async fn stored_keys(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM diagnosis_keys", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn postgres_restarted_under_the_server_gives_503_then_everything_works() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.url();
    let (_dir, server, admin) = fresh_server(&["--database", &url], &[]);
    let codes: Vec<String> = {
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(issue_code(&server, &admin).await);
        }
        codes
    };
    assert_eq!(publish(&server, &codes[0], 2).await, (200, None));

    // Restarted between two requests: the next one is served on a fresh connection.
    cluster.pg_ctl("restart");
    assert_eq!(publish(&server, &codes[1], 3).await, (200, None));

    // Stopped: publishing and issuing codes answer 503 and store nothing.
    cluster.pg_ctl("stop");
    let unavailable = (503, Some("database_unavailable".to_owned()));
    assert_eq!(publish(&server, &codes[2], 4).await, unavailable);
    let mut issue = post_json(
        "/v1/admin/codes",
        &serde_json::json!({"diagnosis": "confirmed_test"}),
    );
    issue
        .headers_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let issue = server.send(issue).await;
    assert_eq!(issue.status, 503, "{}", issue.text());
    assert_eq!(issue.json()["error"], "database_unavailable");

    // Back: the code that met the outage is still unused and publishes now.
    cluster.pg_ctl("start");
    assert_eq!(publish(&server, &codes[2], 4).await, (200, None));
    assert_eq!(
        stored_keys(&url).await,
        2 + 3 + 4,
        "nothing lost, nothing twice"
    );
    assert!(server.stop());
}
