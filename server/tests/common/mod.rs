//! Runs the real `kith-server` binary on an ephemeral port with a temporary data directory.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Printed on first start only.
    pub admin_key: Option<String>,
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts the binary on `data_dir` with extra flags; waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kith-server"));
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env_remove("KITH_TEST_CLOCK_OFFSET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start kith-server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut admin_key = None;
        let mut printed = String::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!(
                    "kith-server exited before listening; stdout: {printed}; stderr: {}",
                    stderr.lock().unwrap()
                );
            };
            printed.push_str(&line);
            printed.push('\n');
            if let Some(key) = line.strip_prefix("admin API key (shown once, store it now): ") {
                admin_key = Some(key.to_owned());
            }
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.parse().unwrap();
            }
        };
        let stdout = Arc::new(Mutex::new(printed));
        let out_buf = stdout.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                out_buf.lock().unwrap().push_str(&line);
            }
        });
        Self {
            child,
            addr,
            admin_key,
            data_dir: data_dir.to_owned(),
            stderr,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the server wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for a clean exit; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("kith-server did not stop within 5 s of SIGTERM");
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A first start on a new temporary data directory: the directory, the server, its admin key.
pub fn fresh_server(
    args: &[&str],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, ServerProcess, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), args, env);
    let admin = server
        .admin_key
        .clone()
        .expect("first start prints the admin key");
    (dir, server, admin)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// First interval of today (UTC).
pub fn today_start() -> u32 {
    let interval = (now_unix() / 600) as u32;
    interval - interval % 144
}

/// `YYYY-MM-DD` of `days_ago` days before today.
pub fn date_days_ago(days_ago: u32) -> String {
    kith_server::calendar::format_date(kith_server::calendar::day_of(now_unix()) - days_ago)
}

/// A random 16-byte key.
pub fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    key
}

/// A key JSON object.
pub fn key_json(key: &[u8; 16], start: u32) -> Value {
    json!({"key": STANDARD.encode(key), "rollingStartNumber": start, "rollingPeriod": 144, "transmissionRisk": 0})
}

/// `n` keys for the last `n` days (today first) with a publish document around them.
pub fn publish_doc(code: &str, keys: &[[u8; 16]]) -> Value {
    let today = today_start();
    let keys: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(day, key)| key_json(key, today - 144 * day as u32))
        .collect();
    json!({"temporaryExposureKeys": keys, "verificationCode": code, "padding": "AAAA"})
}

/// Issues codes through the admin API.
pub async fn issue_codes(server: &ServerProcess, admin_key: &str, body: Value) -> Vec<String> {
    let response = client()
        .post(server.url("/v1/admin/codes"))
        .bearer_auth(admin_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let body: Value = response.json().await.unwrap();
    body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// `count` codes for confirmed tests.
pub async fn issue_many(server: &ServerProcess, admin_key: &str, count: u32) -> Vec<String> {
    let order = json!({"diagnosis": "confirmed_test", "count": count});
    issue_codes(server, admin_key, order).await
}

/// One code for a confirmed test.
pub async fn issue_code(server: &ServerProcess, admin_key: &str) -> String {
    issue_codes(server, admin_key, json!({"diagnosis": "confirmed_test"}))
        .await
        .remove(0)
}

/// Status, JSON body and body size of an answer.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value, usize) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap(), bytes.len())
}

/// GETs a JSON document.
pub async fn get_json(server: &ServerProcess, path: &str) -> Value {
    answer(client().get(server.url(path))).await.1
}

/// Publishes a plain JSON document; returns status, body and body size.
pub async fn publish_json(server: &ServerProcess, doc: &Value) -> (u16, Value, usize) {
    answer(client().post(server.url("/v1/publish")).json(doc)).await
}

/// The status of publishing `keys` fresh keys with `code`.
pub async fn publish_status(server: &ServerProcess, code: &str, keys: usize) -> u16 {
    let keys: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
    publish_json(server, &publish_doc(code, &keys)).await.0
}

/// Fetches the server's HPKE public key from /v1/config.
pub async fn hpke_key(server: &ServerProcess) -> Vec<u8> {
    let config = get_json(server, "/v1/config").await;
    STANDARD
        .decode(config["hpke"]["publicKey"].as_str().unwrap())
        .unwrap()
}

/// Publishes a sealed document; returns status, body and body size.
pub async fn publish_sealed(
    server: &ServerProcess,
    public_key: &[u8],
    doc: &Value,
) -> (u16, Value, usize) {
    let sealed = kith_server::sealed::seal(
        public_key,
        doc.to_string().as_bytes(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let request = client()
        .post(server.url("/v1/publish"))
        .header("content-type", kith_server::sealed::CONTENT_TYPE)
        .body(sealed);
    answer(request).await
}
