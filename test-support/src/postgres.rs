//! A PostgreSQL cluster of a test's own, to stop and start under a running server.
//!
//! The cluster scripts/test starts (`KITH_TEST_POSTGRES`) is shared by every test, so a test
//! that restarts the database runs its own: `initdb` and `pg_ctl` on a Unix socket in a
//! temporary directory (no TCP port), without fsync.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away PostgreSQL cluster, stopped when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Creates and starts a cluster with user `kith` (trusted, no password), or returns
    /// `None` after [`skip`](crate::skip) when PostgreSQL is not installed.
    #[track_caller]
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            crate::skip("initdb not found: install the postgresql package");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cluster = Self { bin, dir };
        if kith_launch::running_as_root() {
            // initdb and postgres refuse to run as root.
            let chowned = Command::new("chown")
                .arg("postgres")
                .arg(cluster.dir.path())
                .status()
                .expect("running chown");
            assert!(chowned.success(), "chown postgres {:?}", cluster.dir.path());
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "kith", "--auth=trust", "--no-sync"],
        );
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// Its connection URL, database `postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://kith@localhost/postgres?host={}",
            self.dir.path().display()
        )
    }

    /// `pg_ctl <action>` (`start`, `stop`, `restart`), waiting until it is done. Stops are
    /// fast shutdowns, which end the sessions of connected clients as a restart by an
    /// operator (or a managed database's maintenance) does.
    pub fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off",
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let args = ["-D", &data, "-l", &log, "-w", "-m", "fast", "-o", &options];
        self.run("pg_ctl", &[&args[..], &[action]].concat());
    }

    /// Whether it is running (its postmaster's PID file exists).
    pub fn is_running(&self) -> bool {
        Path::new(&self.data()).join("postmaster.pid").exists()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
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
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
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
        if self.is_running() {
            self.pg_ctl("stop");
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: `$KITH_POSTGRES_BIN`, else the newest
/// Debian PostgreSQL, else `/usr/local/bin` or `/usr/bin`.
fn postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KITH_POSTGRES_BIN") {
        return Some(dir.into());
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    // Newest first.
    candidates.sort();
    candidates.reverse();
    candidates.extend(["/usr/local/bin".into(), "/usr/bin".into()]);
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}
