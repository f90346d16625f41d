//! A hostile CDN between agents and the server: it forwards GETs, but spoils the first
//! downloads of every export file — the first cut short (the connection closes before the
//! body's announced length), the second re-signed by a key nobody trusts — and passes the
//! later ones through. Or ([`SpoilingProxy::mutating_trace_warnings`]) it leaves the exports
//! alone and serves seeded garbage for the first downloads of every trace-warning package.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kith_core::{ExportBatch, ExportFile, ExportLimits, ExportSigner, OsRng, SigningKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy did to one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoiled {
    /// Sent half the body, then closed.
    Truncated,
    /// Sent the file re-signed by an unknown key with the server's key id.
    BadSignature,
    /// Sent random bytes, or the package with a few bytes changed.
    Mutated,
    /// Passed it through.
    Intact,
}

/// Which files the proxy spoils, and how.
#[derive(Debug)]
enum Mode {
    /// The first download of each export file truncated, the second re-signed.
    Exports,
    /// The first `rounds` downloads of each trace-warning package mutated.
    TraceWarnings {
        rng: Box<Mutex<ChaCha8Rng>>,
        rounds: usize,
    },
}

/// The proxy, stopped when dropped.
#[derive(Debug)]
pub struct SpoilingProxy {
    url: String,
    downloads: Arc<Mutex<HashMap<String, Vec<Spoiled>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SpoilingProxy {
    /// Listens on an ephemeral loopback port, forwarding to `upstream`, spoiling exports.
    pub async fn start(upstream: String) -> Self {
        Self::start_in(upstream, Mode::Exports).await
    }

    /// Listens on an ephemeral loopback port, forwarding to `upstream`; the first `rounds`
    /// downloads of each trace-warning package get random bytes or the package mutated
    /// ([`fuzz`](crate::fuzz), seeded by `seed`), the later ones pass.
    pub async fn mutating_trace_warnings(upstream: String, seed: u64, rounds: usize) -> Self {
        let rng = Box::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
        Self::start_in(upstream, Mode::TraceWarnings { rng, rounds }).await
    }

    async fn start_in(upstream: String, mode: Mode) -> Self {
        let mode = Arc::new(mode);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let downloads = Arc::new(Mutex::new(HashMap::new()));
        let http = reqwest::Client::new();
        let task = {
            let downloads = downloads.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (http, upstream, downloads, mode) = (
                        http.clone(),
                        upstream.clone(),
                        downloads.clone(),
                        mode.clone(),
                    );
                    tokio::spawn(async move {
                        // A client that hangs up is no concern of the proxy's.
                        let _ = serve(stream, &http, &upstream, &downloads, &mode).await;
                    });
                }
            })
        };
        Self {
            url,
            downloads,
            task,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Per spoiled file's path, what each of its downloads got, in order.
    pub fn downloads(&self) -> HashMap<String, Vec<Spoiled>> {
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for SpoilingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request on one connection (answered with `Connection: close`).
async fn serve(
    mut stream: TcpStream,
    http: &reqwest::Client,
    upstream: &str,
    downloads: &Mutex<HashMap<String, Vec<Spoiled>>>,
    mode: &Mode,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("/")
        .to_owned();
    let if_none_match = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("if-none-match")
            .then(|| value.trim().to_owned())
    });
    let mut request = http.get(format!("{upstream}{path}"));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let Ok(answer) = request.send().await else {
        return stream
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
    };
    let status = answer.status();
    let etag = answer
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = answer
        .bytes()
        .await
        .map_err(std::io::Error::other)?
        .to_vec();
    let mut announced = body.len();
    // Only the files the mode concerns: trace-warning packages are zips too, in another
    // format than exports.
    let concerned = match mode {
        Mode::Exports => path.starts_with("/v1/exports/"),
        Mode::TraceWarnings { .. } => path.starts_with("/v1/trace-warnings/"),
    };
    if concerned && path.ends_with(".zip") && status.is_success() {
        let spoiled = {
            let mut downloads = downloads.lock().unwrap_or_else(PoisonError::into_inner);
            let seen = downloads.entry(path.clone()).or_default();
            let spoiled = match (mode, seen.len()) {
                (Mode::Exports, 0) => Spoiled::Truncated,
                (Mode::Exports, 1) => Spoiled::BadSignature,
                (Mode::TraceWarnings { rounds, .. }, n) if n < *rounds => Spoiled::Mutated,
                _ => Spoiled::Intact,
            };
            seen.push(spoiled);
            spoiled
        };
        match (spoiled, mode) {
            (Spoiled::Truncated, _) => body.truncate(body.len() / 2),
            (Spoiled::BadSignature, _) => {
                body = resigned(&body);
                announced = body.len();
            }
            (Spoiled::Mutated, Mode::TraceWarnings { rng, .. }) => {
                let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
                body = if rng.gen_ratio(1, 4) {
                    crate::fuzz::random_bytes(&mut rng, 2 * body.len())
                } else {
                    crate::fuzz::mutate(&mut rng, &body)
                };
                announced = body.len();
            }
            _ => {}
        }
    }
    let mut reply = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {announced}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if let Some(tag) = etag {
        reply += &format!("etag: {tag}\r\n");
    }
    reply += "\r\n";
    stream.write_all(reply.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// The same keys and header, signed by a fresh key that claims the server's key id.
fn resigned(file: &[u8]) -> Vec<u8> {
    let file = ExportFile::parse(file, &ExportLimits::default()).expect("the server's file parses");
    let info = file.signatures()[0].info().clone();
    let export = file.insecure_skip_verification();
    let keys: Vec<_> = export.keys().map(|k| k.expect("a key")).collect();
    let header = export.header();
    let batch = ExportBatch {
        region: header.region(),
        start_timestamp: header.start_timestamp(),
        end_timestamp: header.end_timestamp(),
        keys: &keys,
        revised_keys: &[],
    };
    let signer = ExportSigner::new(
        info.key_id(),
        info.key_version(),
        SigningKey::generate(&mut OsRng),
    );
    kith_core::write_export(&batch, &[&signer]).expect("re-signing")
}
