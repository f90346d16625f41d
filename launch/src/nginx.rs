//! nginx in the foreground on a configuration of the caller's, in a scratch directory:
//! the peer of the download benchmark, and the load balancer in front of several
//! `kith-server` instances in the scale-out test.
//!
//! The caller writes what goes inside `http { … }` (servers, upstreams, `listen` lines on
//! addresses from [`free_loopback_addr`]); this module adds what makes nginx run unprivileged
//! in a temporary directory (its pid file, error log and temporary paths there, no daemon)
//! and waits until it listens. nginx is stopped gracefully by [`Nginx::stop`], killed when
//! dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{LaunchError, running_as_root};

/// How long nginx has to listen on every address it was given.
pub const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with `http` as the body of its `http` block, its files in `scratch` (which
    /// must exist), and waits until it accepts connections on each of `listens` (the
    /// addresses `http` listens on).
    pub fn start(scratch: &Path, http: &str, listens: &[SocketAddr]) -> Result<Self, LaunchError> {
        let bin = nginx_binary()?;
        let s = scratch.display();
        // As root, workers would otherwise run as nobody, who cannot read a temporary
        // directory; as anyone else nginx ignores the line.
        let user = if running_as_root() {
            "user root root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}
daemon off;
master_process on;
worker_processes auto;
pid {s}/nginx.pid;
error_log {s}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {s}/body;
    proxy_temp_path {s}/proxy;
    fastcgi_temp_path {s}/fastcgi;
    uwsgi_temp_path {s}/uwsgi;
    scgi_temp_path {s}/scgi;
{http}
}}
"
        );
        let conf_path = scratch.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut child = Command::new(&bin)
            .arg("-p")
            .arg(scratch)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(scratch.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| LaunchError::Spawn { bin, source })?;
        let nginx_failed = |what: String, dir: &Path| LaunchError::Nginx {
            what,
            log: error_log(dir),
        };
        let deadline = Instant::now() + NGINX_START_TIMEOUT;
        for addr in listens {
            while TcpStream::connect(addr).is_err() {
                if let Some(status) = child.try_wait()? {
                    return Err(nginx_failed(format!("exited ({status})"), scratch));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(nginx_failed(
                        format!("did not listen on {addr} within {NGINX_START_TIMEOUT:?}"),
                        scratch,
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Self {
            child,
            dir: scratch.to_owned(),
        })
    }

    /// The master process's id (its workers are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What nginx wrote to its error log so far.
    pub fn error_log(&self) -> String {
        error_log(&self.dir)
    }

    /// SIGQUIT (a graceful stop: requests in flight are finished), then waits.
    pub fn stop(mut self) -> Result<ExitStatus, LaunchError> {
        Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Nginx {
    /// SIGTERM (nginx's fast shutdown: the master stops its workers, which SIGKILL to the
    /// master alone would leave running), then SIGKILL if it is still there after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's error log in `dir`, or an empty string.
fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

/// The nginx binary: on the `PATH`, else `/usr/sbin/nginx` (where Debian puts it, outside a
/// normal user's `PATH`).
pub fn nginx_binary() -> Result<PathBuf, LaunchError> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"));
    on_path
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|path| path.is_file())
        .ok_or(LaunchError::MissingTool {
            tool: "nginx",
            package: "nginx-light",
        })
}

/// A loopback address with a free port, for a program that cannot report the port it
/// picked (as nginx cannot): the port is free now, and rarely taken before it is used.
pub fn free_loopback_addr() -> Result<SocketAddr, LaunchError> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Skips (returns `None`) where nginx is not installed; scripts/test installs it.
    fn installed() -> Option<PathBuf> {
        nginx_binary()
            .map_err(|error| kith_test_support::skip(error))
            .ok()
    }

    #[test]
    fn nginx_serves_a_file_from_its_configuration_and_stops() {
        if installed().is_none() {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("hello.txt"), "hello from nginx").unwrap();
        let addr = free_loopback_addr().unwrap();
        let http = format!(
            "server {{ listen {addr}; root {}; }}",
            root.path().display()
        );
        let nginx = Nginx::start(scratch.path(), &http, &[addr]).unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello from nginx"), "{answer}");
        assert!(nginx.stop().unwrap().success());
        assert!(TcpStream::connect(addr).is_err(), "stopped");
    }

    #[test]
    fn dropped_nginx_takes_its_workers_with_it() {
        if installed().is_none() {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let addr = free_loopback_addr().unwrap();
        let http = format!("server {{ listen {addr}; return 204; }}");
        let nginx = Nginx::start(scratch.path(), &http, &[addr]).unwrap();
        drop(nginx);
        assert!(
            TcpStream::connect(addr).is_err(),
            "no worker still listens after the drop"
        );
    }

    #[test]
    fn a_broken_configuration_is_reported_with_the_error_log() {
        if installed().is_none() {
            return;
        }
        let scratch = tempfile::tempdir().unwrap();
        let addr = free_loopback_addr().unwrap();
        let error = Nginx::start(scratch.path(), "no_such_directive on;", &[addr]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("exited"), "{text}");
        assert!(text.contains("no_such_directive"), "{text}");
    }
}
