//! A throw-away PostgreSQL cluster: `initdb` and `pg_ctl` on a Unix socket in a temporary
//! directory (no TCP port), without fsync, stopped when dropped — for the tests that restart
//! their own database and the benchmarks that need one. As root, the cluster belongs to the
//! `postgres` user the Debian package creates (initdb and postgres refuse to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{LaunchError, running_as_root};

/// A running cluster; its superuser is `kith`, trusted on the socket.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
}

impl Cluster {
    /// The directory holding `initdb` and `pg_ctl`: `$KITH_POSTGRES_BIN`, else the newest
    /// Debian PostgreSQL, else `PATH`'s usual directories.
    pub fn bin() -> Option<PathBuf> {
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

    /// Creates a cluster in `dir` (an empty directory that outlives the cluster) and starts
    /// it, with `options` (`-c name=value …`) added to the server's.
    pub fn start(dir: &Path, options: &str) -> Result<Self, LaunchError> {
        let bin = Self::bin().ok_or(LaunchError::MissingTool {
            tool: "initdb",
            package: "postgresql",
        })?;
        let cluster = Self {
            bin,
            dir: dir.to_owned(),
        };
        if running_as_root() {
            let status = Command::new("chown").arg("postgres").arg(dir).status()?;
            if !status.success() {
                return Err(LaunchError::Postgres(format!("chown postgres: {status}")));
            }
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "kith", "--auth=trust", "--no-sync"],
        )?;
        std::fs::write(cluster.dir.join("options"), options)?;
        cluster.pg_ctl("start")?;
        Ok(cluster)
    }

    /// Where the cluster keeps its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// The URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://kith@localhost/{name}?host={}",
            self.dir.display()
        )
    }

    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> Result<u32, LaunchError> {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))?;
        pid.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| LaunchError::Postgres("postmaster.pid has no pid".into()))
    }

    /// `pg_ctl <action>` (start, stop, restart), waiting until it is done; stops are fast
    /// shutdowns, which end the sessions of connected clients as a restart by an operator
    /// (or a managed database's maintenance) does.
    pub fn pg_ctl(&self, action: &str) -> Result<(), LaunchError> {
        let extra = std::fs::read_to_string(self.dir.join("options")).unwrap_or_default();
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off {extra}",
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-m", "fast", "-o", &options, action,
            ],
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), LaunchError> {
        let program = self.bin.join(tool);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(LaunchError::Postgres(format!(
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.dir.join("data/postmaster.pid").exists() {
            let _ = self.pg_ctl("stop");
        }
    }
}
