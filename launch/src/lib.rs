//! # kith-launch
//!
//! Starts the `kith-server` binary on ephemeral loopback ports and reads what it prints
//! on its standard output — the admin API key (first start only) and the two addresses
//! — so that the agent's demo, the end-to-end tests and the load generator start a
//! server one way. The server's log (stderr) and later output are kept in memory, so a
//! failing caller can show their tail. The process is killed when the handle is dropped.
//!
//! ```no_run
//! use kith_launch::ServerProcess;
//! # fn main() -> Result<(), kith_launch::LaunchError> {
//! let dir = std::env::temp_dir().join("kith-example");
//! let server = ServerProcess::start("target/debug/kith-server".as_ref(), &dir, &[], &[])?;
//! println!("public API at {}, admin key {:?}", server.url(), server.admin_key);
//! server.stop()?;
//! # Ok(()) }
//! ```
//!
//! It uses only the standard library (threads read the pipes), so it fits a synchronous
//! test as well as an async program (call it from `spawn_blocking`, or accept the brief
//! block at start-up).
//!
//! [`Nginx`] starts nginx on a configuration of the caller's in a scratch directory: the
//! download benchmark's peer, and the load balancer in front of several instances.
//! [`postgres::Cluster`] starts a throw-away PostgreSQL cluster on a Unix socket.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod nginx;
pub mod postgres;
pub mod test_services;

pub use nginx::{Nginx, free_loopback_addr};

/// How long a server has to print its addresses.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`ServerProcess::stop`] waits after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server prints before its admin API key, on a first start without
/// `--admin-key-file`.
const ADMIN_KEY_PREFIX: &str = "admin API key (shown once, store it now): ";
const PUBLIC_PREFIX: &str = "listening on http://";
const OPERATOR_PREFIX: &str = "operator listening on http://";

/// Why a server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The binary could not be run.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It exited (or closed its stdout) before printing both addresses.
    #[error("kith-server exited before listening ({status}); stdout: {stdout}; log: {log}")]
    Exited {
        /// Its exit status, if it had exited.
        status: String,
        /// What it printed.
        stdout: String,
        /// Its log (stderr).
        log: String,
    },
    /// It printed an address that does not parse.
    #[error("kith-server printed an address that does not parse: {0:?}")]
    BadAddress(String),
    /// It did not print its addresses in time.
    #[error("kith-server did not listen within {0:?}; log: {1}")]
    Timeout(Duration, String),
    /// It did not stop in time after SIGTERM (it was then killed).
    #[error("kith-server did not stop within {0:?} of SIGTERM; log: {1}")]
    DidNotStop(Duration, String),
    /// There is no server binary where it was looked for.
    #[error("{0} not found: build it with `cargo build --release -p kith-server`")]
    NotBuilt(PathBuf),
    /// A program the caller needs is not installed.
    #[error("{tool} not found: apt-get install {package}")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// nginx exited or did not listen.
    #[error("nginx {what}; error log: {log}")]
    Nginx {
        /// What went wrong.
        what: String,
        /// Its error log.
        log: String,
    },
    /// A PostgreSQL tool failed.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The S3 server refused a request, or could not be asked.
    #[error("S3: {0}")]
    S3(String),
    /// Waiting for or signalling the process failed.
    #[error("controlling kith-server: {0}")]
    Io(#[from] std::io::Error),
}

/// A running `kith-server` process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The public listener (publish, `/v1/config`, `/v1/exports`).
    pub addr: SocketAddr,
    /// The operator listener (admin API, portal, metrics).
    pub operator_addr: SocketAddr,
    /// The admin API key, printed on the first start of a data directory only.
    pub admin_key: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `bin` with `--listen 127.0.0.1:0 --operator-listen 127.0.0.1:0 --data-dir
    /// data_dir`, then `args` and the environment `env`, and waits until it prints where
    /// it listens.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, LaunchError> {
        let mut command = Command::new(bin);
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--operator-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| LaunchError::Spawn {
            bin: bin.to_owned(),
            source,
        })?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            collect(pipe, stderr.clone());
        }
        let stdout = Arc::new(Mutex::new(String::new()));
        // A thread reads stdout line by line for good, so the server never blocks on a
        // full pipe; the lines until both addresses also come here.
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        if let Some(pipe) = child.stdout.take() {
            let buffer = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lock(&buffer).push_str(&line);
                    lock(&buffer).push('\n');
                    // The receiver is gone once the addresses were read.
                    let _ = lines_tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut admin_key, mut addr) = (None, None);
        let operator_addr = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(wait) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LaunchError::Timeout(START_TIMEOUT, lock(&stderr).clone()));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child
                        .wait()
                        .map_or_else(|e| e.to_string(), |s| s.to_string());
                    // Let the stderr thread catch the last words.
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(LaunchError::Exited {
                        status,
                        stdout: lock(&stdout).clone(),
                        log: lock(&stderr).clone(),
                    });
                }
            };
            if let Some(key) = line.strip_prefix(ADMIN_KEY_PREFIX) {
                admin_key = Some(key.trim().to_owned());
            } else if let Some(public) = line.strip_prefix(PUBLIC_PREFIX) {
                addr = Some(parse_addr(public)?);
            } else if let Some(operator) = line.strip_prefix(OPERATOR_PREFIX) {
                break parse_addr(operator)?;
            }
        };
        let addr = addr.ok_or_else(|| LaunchError::BadAddress("no public address".into()))?;
        Ok(Self {
            child,
            addr,
            operator_addr,
            admin_key,
            data_dir: data_dir.to_owned(),
            stdout,
            stderr,
        })
    }

    /// The public listener's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The operator listener's base URL.
    pub fn operator_url(&self) -> String {
        format!("http://{}", self.operator_addr)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        lock(&self.stdout).clone()
    }

    /// Whether it has exited (and how), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, LaunchError> {
        Ok(self.child.try_wait()?)
    }

    /// SIGTERM, then waits for it to exit; its exit status. Kills it after
    /// [`STOP_TIMEOUT`].
    pub fn stop(mut self) -> Result<ExitStatus, LaunchError> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            // It had already exited.
            return Ok(self.child.wait()?);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LaunchError::DidNotStop(STOP_TIMEOUT, self.log_tail(20)))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) -> Result<(), LaunchError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `kith-server` binary a program built beside it (an example or a bench) starts:
/// `given` if there is one, else the `kith-server` of the profile directory the running
/// executable sits two levels below (`target/release/examples/x` or
/// `target/release/deps/x-…` → `target/release/kith-server`).
pub fn server_binary(given: Option<PathBuf>) -> Result<PathBuf, LaunchError> {
    let binary = match given {
        Some(binary) => binary,
        None => {
            let exe = std::env::current_exe()?;
            let profile = exe.parent().and_then(Path::parent);
            profile.map_or_else(|| exe.clone(), |dir| dir.join("kith-server"))
        }
    };
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(LaunchError::NotBuilt(binary))
    }
}

/// Whether this process runs as root (effective user id 0), where nginx's workers and
/// PostgreSQL need telling which user to be.
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uids.split_whitespace().nth(1).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn parse_addr(text: &str) -> Result<SocketAddr, LaunchError> {
    text.trim()
        .parse()
        .map_err(|_| LaunchError::BadAddress(text.to_owned()))
}

/// Appends everything `pipe` yields to `buffer`, on a thread of its own.
fn collect(mut pipe: impl Read + Send + 'static, buffer: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            lock(&buffer).push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
}

/// The buffer, even if a reader thread panicked while holding it.
fn lock(buffer: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn a_given_server_binary_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kith-server");
        let missing = server_binary(Some(binary.clone())).unwrap_err();
        assert!(matches!(&missing, LaunchError::NotBuilt(path) if *path == binary));
        assert!(
            missing
                .to_string()
                .contains("cargo build --release -p kith-server")
        );
        std::fs::write(&binary, "").unwrap();
        assert_eq!(server_binary(Some(binary.clone())).unwrap(), binary);
    }

    #[test]
    fn a_program_that_exits_without_listening_is_reported_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-server");
        std::fs::write(&script, "#!/bin/sh\necho hello\necho broken >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let error = ServerProcess::start(&script, dir.path(), &[], &[]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("exited before listening"), "{text}");
        assert!(text.contains("hello"), "{text}");
        assert!(text.contains("broken"), "{text}");
    }

    #[test]
    fn the_printed_key_and_addresses_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-server");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho '{ADMIN_KEY_PREFIX}secret'\necho '{PUBLIC_PREFIX}127.0.0.1:4001'\n\
                 echo '{OPERATOR_PREFIX}127.0.0.1:4002'\necho log line >&2\nexec sleep 30\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let server = ServerProcess::start(&script, dir.path(), &[], &[]).unwrap();
        assert_eq!(server.admin_key.as_deref(), Some("secret"));
        assert_eq!(server.url(), "http://127.0.0.1:4001");
        assert_eq!(server.operator_url(), "http://127.0.0.1:4002");
        let status = server.stop().unwrap();
        assert!(!status.success(), "sleep dies of SIGTERM");
    }
}
