//! The server two ways, behind one [`Api`]: in-process ([`TestServer`]: `app(state)`
//! driven with `oneshot` on a manual clock, no socket) and as the real binary on an
//! ephemeral port ([`ServerProcess`]), for the tests where the process itself matters.

pub mod export_store;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_server::{Config, ManualClock, Server, UnixSeconds};
use serde_json::{Value, json};
use tower::ServiceExt;

#[macro_use]
pub mod backend;
pub use backend::Backend;

/// A running server process (kith-launch's, as every crate starts one), with the
/// tests' conveniences: panics instead of errors, and URLs by listener.
pub struct ServerProcess(kith_launch::ServerProcess);

impl std::ops::Deref for ServerProcess {
    type Target = kith_launch::ServerProcess;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl ServerProcess {
    /// Starts the binary on `data_dir` with extra flags; waits until it listens.
    /// On the test's [`Backend`] unless `args` name a `--database` (and an
    /// `--export-store`).
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_kith-server"));
        let backend = Backend::current();
        let mut args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        if !args.iter().any(|arg| arg == "--database") {
            if let Some(url) = backend.database_url(data_dir) {
                args.extend(["--database".to_owned(), url]);
            }
        }
        if !args.iter().any(|arg| arg == "--export-store") {
            args.extend(backend.export_store(data_dir).args());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self(kith_launch::ServerProcess::start(bin, data_dir, &args, env).unwrap())
    }

    /// What the process stored (in its data directory, or its test database).
    pub fn stored(&self) -> kith_server::inspect::StoredData {
        stored_data(&self.data_dir, Backend::current())
    }

    /// The URL of `path` on the listener that serves it.
    pub fn url(&self, path: &str) -> String {
        match Listener::of(path) {
            Listener::Public => format!("http://{}{path}", self.addr),
            Listener::Operator => format!("http://{}{path}", self.operator_addr),
        }
    }

    /// SIGTERM, then waits for a clean exit; returns whether it exited successfully.
    pub fn stop(self) -> bool {
        self.0.stop().unwrap().success()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(self) {
        self.0.kill().unwrap();
    }
}

/// A first start of the binary on a new temporary data directory: the directory, the
/// server, its admin key.
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

/// The two listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Publish, config, health.
    Public,
    /// Admin API, portal, metrics.
    Operator,
}

impl Listener {
    /// The listener that serves `path`.
    pub fn of(path: &str) -> Self {
        if ["/v1/admin", "/portal", "/metrics"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            Self::Operator
        } else {
            Self::Public
        }
    }
}

/// The server in this process, on a temporary data directory and a manual clock.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub admin_key: String,
    /// Where it keeps its export files.
    pub exports: export_store::ExportBackend,
    public: axum::Router,
    operator: axum::Router,
    pub server: Server,
}

impl TestServer {
    /// Defaults, with the clock at the system's time.
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// The defaults changed by `configure`.
    pub fn with_config(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(dir.path());
        configure(&mut config);
        let backend = Backend::current();
        if config.database_url.is_none() {
            config.database_url = backend
                .database_url(dir.path())
                .map(|url| url.parse().unwrap());
        }
        if config.export_store.is_none() {
            backend.export_store(dir.path()).configure(&mut config);
        }
        let exports = export_store::ExportBackend::of(&config);
        let clock = ManualClock::starting_now();
        let mut server = Server::open(config, clock.clock()).unwrap();
        let admin_key = server
            .take_new_admin_key()
            .expect("first start creates the admin key")
            .expose_secret()
            .to_owned();
        Self {
            public: kith_server::public(server.state()),
            operator: kith_server::operator(server.state()),
            dir,
            clock,
            admin_key,
            exports,
            server,
        }
    }

    /// A server cutting minute export windows 5 s after they end, keeping times to
    /// `truncate` seconds (`--truncate-window`), configured further by `configure`; its
    /// clock 10 s past a full hour.
    pub fn with_minute_windows(truncate: u64, configure: impl FnOnce(&mut Config)) -> Self {
        let server = Self::with_config(|config| {
            config.export.period_seconds = 60;
            config.export.min_age_seconds = 5;
            config.export.truncate_seconds = truncate;
            configure(config);
        });
        let now = server.now().get();
        server.clock.set(UnixSeconds::new(now - now % 3600 + 10));
        server
    }

    /// The server, to serve on real sockets, and its data directory; the in-process
    /// routers go (they would keep the server's writer from stopping).
    pub fn into_server(self) -> (Server, tempfile::TempDir) {
        (self.server, self.dir)
    }

    /// What it stored (in its data directory, or its database).
    pub fn stored(&self) -> kith_server::inspect::StoredData {
        let config = &self.server.state().config;
        kith_server::inspect::StoredData::of(&config.data_dir, config.database_url.as_ref())
            .unwrap()
    }
}

/// The keys stored in the PostgreSQL database at `url` (mixed or still staged).
pub fn stored_keys(url: &str) -> u64 {
    kith_server::inspect::StoredData::connect(&url.parse().unwrap())
        .unwrap()
        .count_keys()
        .unwrap()
}

/// What a server on `data_dir` stored on `backend`.
pub fn stored_data(data_dir: &Path, backend: Backend) -> kith_server::inspect::StoredData {
    let url = backend
        .database_url(data_dir)
        .map(|url| url.parse().unwrap());
    kith_server::inspect::StoredData::of(data_dir, url.as_ref()).unwrap()
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Something that answers HTTP requests: the server in-process or a process.
pub trait Api {
    /// Sends a request (path only in its URI) and reads the whole answer.
    fn send(&self, request: Request<Vec<u8>>) -> impl Future<Output = Reply>;

    /// The server's "now".
    fn now(&self) -> UnixSeconds;
}

impl TestServer {
    /// Sends a request to one listener's router.
    pub async fn send_to(&self, listener: Listener, request: Request<Vec<u8>>) -> Reply {
        let router = match listener {
            Listener::Public => &self.public,
            Listener::Operator => &self.operator,
        };
        let response = router
            .clone()
            .oneshot(request.map(Body::from))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Api for TestServer {
    async fn send(&self, request: Request<Vec<u8>>) -> Reply {
        let listener = Listener::of(request.uri().path());
        self.send_to(listener, request).await
    }

    fn now(&self) -> UnixSeconds {
        self.clock.clock().now()
    }
}

impl Api for ServerProcess {
    async fn send(&self, request: Request<Vec<u8>>) -> Reply {
        send_over_http(request, |path| self.url(path)).await
    }

    fn now(&self) -> UnixSeconds {
        UnixSeconds::new(now_unix())
    }
}

/// Servers at two addresses, as a proxy in front of instances shows them: the public
/// listener's and the operator's.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    /// Publish, config, exports.
    pub public: std::net::SocketAddr,
    /// Admin API, portal, metrics.
    pub operator: std::net::SocketAddr,
}

impl Api for Remote {
    async fn send(&self, request: Request<Vec<u8>>) -> Reply {
        send_over_http(request, |path| match Listener::of(path) {
            Listener::Public => format!("http://{}{path}", self.public),
            Listener::Operator => format!("http://{}{path}", self.operator),
        })
        .await
    }

    fn now(&self) -> UnixSeconds {
        UnixSeconds::new(now_unix())
    }
}

/// Sends `request` to the URL `url` makes of its path, over a real connection.
async fn send_over_http(request: Request<Vec<u8>>, url: impl Fn(&str) -> String) -> Reply {
    let (parts, body) = request.into_parts();
    let response = client()
        .request(parts.method, url(&parts.uri.to_string()))
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A request to `path` with an optional content type and body.
pub fn request(
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Vec<u8>> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body).unwrap()
}

/// A JSON POST.
pub fn post_json(path: &str, value: &Value) -> Request<Vec<u8>> {
    request(
        Method::POST,
        path,
        Some("application/json"),
        value.to_string().into_bytes(),
    )
}

/// A GET.
pub fn get(path: &str) -> Request<Vec<u8>> {
    request(Method::GET, path, None, Vec::new())
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

/// First interval of the server's today (UTC).
pub fn today_start(api: &impl Api) -> u32 {
    let interval = api.now().interval().get();
    interval - interval % 144
}

/// `YYYY-MM-DD` of `days_ago` days before the server's today.
pub fn date_days_ago(api: &impl Api, days_ago: u32) -> String {
    kith_server::calendar::Day::of(api.now())
        .minus(days_ago)
        .to_string()
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

/// `n` keys for the last `n` days before `today_start` (today first) with a publish
/// document around them.
pub fn publish_doc_at(today_start: u32, code: &str, keys: &[[u8; 16]]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(day, key)| key_json(key, today_start - 144 * day as u32))
        .collect();
    json!({"temporaryExposureKeys": keys, "verificationCode": code, "padding": "AAAA"})
}

/// [`publish_doc_at`] the server's today.
pub fn publish_doc(api: &impl Api, code: &str, keys: &[[u8; 16]]) -> Value {
    publish_doc_at(today_start(api), code, keys)
}

/// Issues codes through the admin API.
pub async fn issue_codes(api: &impl Api, admin_key: &str, body: Value) -> Vec<String> {
    let mut request = post_json("/v1/admin/codes", &body);
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {admin_key}").parse().unwrap(),
    );
    let reply = api.send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// `count` codes for confirmed tests.
pub async fn issue_many(api: &impl Api, admin_key: &str, count: u32) -> Vec<String> {
    let order = json!({"diagnosis": "confirmed_test", "count": count});
    issue_codes(api, admin_key, order).await
}

/// Creates a case-worker account through the admin API; the answer's status.
pub async fn add_case_worker(api: &impl Api, admin_key: &str, name: &str, password: &str) -> u16 {
    let mut request = post_json(
        "/v1/admin/case-workers",
        &json!({"name": name, "password": password}),
    );
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {admin_key}").parse().unwrap(),
    );
    api.send(request).await.status
}

/// One code for a confirmed test.
pub async fn issue_code(api: &impl Api, admin_key: &str) -> String {
    issue_codes(api, admin_key, json!({"diagnosis": "confirmed_test"}))
        .await
        .remove(0)
}

/// The export keys `/v1/config` lists, as a device would trust them, and the listing.
pub async fn trusted(api: &impl Api) -> (kith_core::TrustedKeys, Vec<Value>) {
    trusted_from(&get_json(api, "/v1/config").await)
}

/// The keys a `/v1/config` document lists, as a device would trust them.
pub fn trusted_from(config: &Value) -> (kith_core::TrustedKeys, Vec<Value>) {
    let listed = config["exportVerificationKeys"].as_array().unwrap().clone();
    let mut trusted = kith_core::TrustedKeys::new();
    for key in &listed {
        trusted.insert(
            key["keyId"].as_str().unwrap(),
            key["keyVersion"].as_str().unwrap(),
            kith_core::VerifyingKey::from_public_key_pem(key["publicKeyPem"].as_str().unwrap())
                .unwrap(),
        );
    }
    (trusted, listed)
}

/// GETs a JSON document.
pub async fn get_json(api: &impl Api, path: &str) -> Value {
    api.send(get(path)).await.json()
}

/// Status, JSON body and body size of an answer.
async fn answer(api: &impl Api, request: Request<Vec<u8>>) -> (u16, Value, usize) {
    let reply = api.send(request).await;
    (reply.status, reply.json(), reply.body.len())
}

/// Publishes a plain JSON document; returns status, body and body size.
pub async fn publish_json(api: &impl Api, doc: &Value) -> (u16, Value, usize) {
    answer(api, post_json("/v1/publish", doc)).await
}

/// The status of publishing `keys` fresh keys with `code`.
pub async fn publish_status(api: &impl Api, code: &str, keys: usize) -> u16 {
    let keys: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
    publish_json(api, &publish_doc(api, code, &keys)).await.0
}

/// Fetches the server's HPKE public key from /v1/config.
pub async fn hpke_key(api: &impl Api) -> Vec<u8> {
    let config = get_json(api, "/v1/config").await;
    STANDARD
        .decode(config["hpke"]["publicKey"].as_str().unwrap())
        .unwrap()
}

/// A sealed publish request of `doc`, and what opens its answer.
pub fn sealed_request(
    public_key: &[u8],
    doc: &Value,
) -> (Request<Vec<u8>>, kith_server::sealed::ResponseOpener) {
    let (sealed, opener) = kith_server::sealed::seal(
        public_key,
        doc.to_string().as_bytes(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let request = request(
        Method::POST,
        "/v1/publish",
        Some(kith_server::sealed::CONTENT_TYPE),
        sealed,
    );
    (request, opener)
}

/// Opens a sealed answer (which must be a 200 of the sealed size): the status and
/// JSON inside.
pub fn open_answer(reply: &Reply, opener: &kith_server::sealed::ResponseOpener) -> (u16, Value) {
    assert_eq!(
        reply.status,
        200,
        "sealed answers are 200 outside: {}",
        reply.text()
    );
    assert_eq!(reply.body.len(), kith_server::sealed::SEALED_RESPONSE_LEN);
    assert_eq!(
        reply.headers["content-type"],
        kith_server::sealed::RESPONSE_CONTENT_TYPE
    );
    let plaintext = opener
        .open(&reply.body)
        .expect("the answer opens for its sender");
    assert_eq!(plaintext.len(), kith_server::RESPONSE_LEN);
    let inside: Value = serde_json::from_slice(&plaintext).unwrap();
    (inside["status"].as_u64().unwrap() as u16, inside)
}

/// Publishes a sealed document; returns the status and JSON sealed inside the answer,
/// and the answer's size on the wire.
pub async fn publish_sealed(api: &impl Api, public_key: &[u8], doc: &Value) -> (u16, Value, usize) {
    let (request, opener) = sealed_request(public_key, doc);
    let reply = api.send(request).await;
    let (status, inside) = open_answer(&reply, &opener);
    (status, inside, reply.body.len())
}

/// What [`three_days_of_activity`] did, and on which days.
#[derive(Debug)]
pub struct Activity {
    /// The day the codes were issued.
    pub issued_on: kith_server::calendar::Day,
    /// The day keys were published.
    pub published_on: kith_server::calendar::Day,
    /// The day the export ran (the server's today afterwards).
    pub exported_on: kith_server::calendar::Day,
    /// The key export files written, with their sizes.
    pub files: Vec<(String, u64)>,
}

/// On `server`'s manual clock: three codes issued three days ago; two of them used the
/// next day to publish 2 and 3 keys (a code used again and a chaff upload that day count
/// nothing); today one export pass.
pub async fn three_days_of_activity(server: &TestServer) -> Activity {
    use kith_server::calendar::Day;
    const DAY: u64 = 86_400;
    // 20:00 three days ago, then 02:00 the next day: the codes (valid 24 h) still work.
    let issued_on = Day::of(UnixSeconds::new(now_unix() - 3 * DAY));
    server.clock.set(issued_on.start().plus(20 * 3600));
    let codes = issue_many(server, &server.admin_key, 3).await;

    server.clock.advance(6 * 3600);
    let published_on = Day::of(server.now());
    for (code, keys) in codes.iter().zip([2, 3]) {
        let keys: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
        let (status, body, _) = publish_json(server, &publish_doc(server, code, &keys)).await;
        assert_eq!(status, 200, "{body}");
    }
    let again = publish_doc(server, &codes[0], &[random_key()]);
    assert_eq!(publish_json(server, &again).await.0, 403, "a used code");
    let mut chaff = publish_doc(server, &codes[2], &[random_key()]);
    chaff["fake"] = json!(true);
    assert_eq!(publish_json(server, &chaff).await.0, 200, "chaff");

    server.clock.advance(2 * DAY);
    let exported_on = Day::of(server.now());
    assert_eq!(exported_on, issued_on.plus(3));
    let pass = server.server.export_pass().unwrap();
    let files = pass
        .export
        .files
        .iter()
        .map(|f| (f.name.clone(), f.bytes))
        .collect();
    Activity {
        issued_on,
        published_on,
        exported_on,
        files,
    }
}
