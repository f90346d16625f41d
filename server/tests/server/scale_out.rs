//! Two `kith-server` processes on one PostgreSQL database, as a health authority runs them
//! behind a load balancer: a code works once across both, and what one acknowledged the
//! other sees; with one bucket (`--export-store`), batchers on any instance export each
//! key once, and every instance serves every file. Needs the PostgreSQL server that
//! scripts/test starts (`KITH_TEST_POSTGRES`), and for the bucket its S3 server
//! (`KITH_TEST_S3`).

use crate::common::export_store::ExportBackend;
use crate::common::*;

/// A fresh database on the test server: its URL and a client on it.
async fn fresh_database() -> Option<(String, tokio_postgres::Client)> {
    if let Err(missing) = kith_launch::test_services::postgres_server() {
        kith_test_support::skip(missing);
        return None;
    }
    let url = backend::create_database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    Some((url, client))
}

/// The files every instance shares: the pepper codes are hashed with, the admin key's hash,
/// the HPKE key sealed publishes are sealed to, the export signing key.
const SHARED_KEY_FILES: [&str; 4] = [
    "code-pepper.hex",
    "admin-key.sha256",
    "hpke-private-key.hex",
    "export-signing-key.pem",
];

#[tokio::test]
async fn two_instances_on_one_database_redeem_each_code_once() {
    let Some((url, db)) = fresh_database().await else {
        return;
    };
    // Every loser of a race is a failed redemption from 127.0.0.1; allow them all.
    let args = ["--database", &url, "--failed-redemptions-per-source", "100"];
    let (_a_dir, a, admin) = fresh_server(&args, &[]);
    let b_dir = tempfile::tempdir().unwrap();
    for file in SHARED_KEY_FILES {
        std::fs::copy(a.data_dir.join(file), b_dir.path().join(file)).unwrap();
    }
    let b = ServerProcess::start(b_dir.path(), &args, &[]);
    assert!(b.admin_key.is_none(), "B uses A's admin key");

    // Codes issued on either instance, each sent to both at the same moment.
    let mut codes = Vec::new();
    for i in 0..12 {
        codes.push(issue_code(if i % 2 == 0 { &a } else { &b }, &admin).await);
    }
    let mut accepted = 0;
    for code in &codes {
        let (on_a, on_b) = tokio::join!(publish_status(&a, code, 2), publish_status(&b, code, 3));
        let mut statuses = [on_a, on_b];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 403],
            "{code}: exactly one instance redeems it\nA: {}\nB: {}",
            a.log_tail(10),
            b.log_tail(10)
        );
        accepted += if on_a == 200 { 2 } else { 3 };
    }
    // A code used on one is used on the other.
    assert_eq!(publish_status(&b, &codes[0], 1).await, 403);
    assert_eq!(publish_status(&a, &codes[1], 1).await, 403);

    // What was acknowledged is in the database, once.
    let stored = || stored_keys(&url);
    assert_eq!(stored(), accepted);
    let unused: i64 = db
        .query_one("SELECT count(*) FROM verification_codes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unused, 0);

    // Killed without warning, A loses nothing it acknowledged; B goes on alone.
    a.kill();
    let code = issue_code(&b, &admin).await;
    assert_eq!(publish_status(&b, &code, 4).await, 200);
    assert_eq!(stored(), accepted + 4);
    assert!(b.stop());
}

/// `kith-server export --once` on `dir`, the database at `url` and `store`, with one-second
/// leases.
fn export_once(dir: &std::path::Path, url: &str, store: &ExportBackend) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kith-server"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(store.args())
        .args([
            "--database",
            url,
            "--export-min-keys",
            "50",
            "--export-lease",
            "1",
        ])
        .args(["export", "--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

#[tokio::test]
async fn batchers_on_postgres_killed_and_racing_export_each_key_exactly_once() {
    if let Some((url, db)) = fresh_database().await {
        killed_and_racing_batchers(&url, &db, &ExportBackend::DataDir).await;
    }
}

#[tokio::test]
async fn instances_on_one_database_and_one_bucket_export_each_key_once_and_all_serve_it() {
    let Some((url, db)) = fresh_database().await else {
        return;
    };
    let Some(bucket) = ExportBackend::fresh_bucket() else {
        return;
    };
    let server = killed_and_racing_batchers(&url, &db, &bucket).await;

    // Two more instances, on data directories of their own without a file in them: one
    // proxies the bucket, one redirects to it.
    let mut args = vec!["--database".to_owned(), url.clone()];
    args.extend(bucket.args());
    let start = |serve: &str| {
        let dir = tempfile::tempdir().unwrap();
        for file in SHARED_KEY_FILES {
            std::fs::copy(server.dir.path().join(file), dir.path().join(file)).unwrap();
        }
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--export-serve", serve]);
        let process = ServerProcess::start(dir.path(), &args, &[]);
        (dir, process)
    };
    let (_proxy_dir, proxy) = start("proxy");
    let (_redirect_dir, redirect) = start("redirect");
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let fetch = |url: String| {
        let direct = direct.clone();
        async move {
            let reply = direct.get(url).send().await.unwrap();
            let status = reply.status().as_u16();
            let location = reply
                .headers()
                .get("location")
                .map(|value| value.to_str().unwrap().to_owned());
            let cache = reply.headers().get("cache-control").cloned();
            (
                status,
                location,
                cache,
                reply.bytes().await.unwrap().to_vec(),
            )
        }
    };

    let (status, _, _, index) = fetch(proxy.url("/v1/exports/index.txt")).await;
    assert_eq!(status, 200);
    let index = String::from_utf8(index).unwrap();
    let names: Vec<&str> = index.lines().collect();
    assert!(names.len() >= 10, "{index}");
    let mut paths = vec!["v1/exports/index.txt"];
    paths.extend(&names);
    for path in paths {
        let stored = bucket.read(server.dir.path(), path).await.expect(path);
        let (status, _, cache, proxied) = fetch(proxy.url(&format!("/{path}"))).await;
        assert_eq!(
            (status, &proxied),
            (200, &stored),
            "{path} through the proxy"
        );
        let (status, location, redirect_cache, _) = fetch(redirect.url(&format!("/{path}"))).await;
        assert_eq!(status, 307, "{path}");
        assert_eq!(location, bucket.object_url(path), "{path}");
        assert_eq!(redirect_cache, cache, "{path}: the same caching either way");
        let followed = reqwest::get(redirect.url(&format!("/{path}")))
            .await
            .unwrap();
        assert_eq!(followed.bytes().await.unwrap().to_vec(), stored, "{path}");
    }
    let (status, _, _, _) = fetch(proxy.url("/v1/exports/1-2-00001.zip")).await;
    assert_eq!(status, 404);
    assert!(proxy.stop());
    assert!(redirect.stop());
}

/// Publishes keys over two days through an in-process server on the database at `url` and
/// `store`, then runs batchers on them that are killed at random points, then two at once;
/// checks that every key was exported exactly once and every batch completed, and that
/// exporting everything again writes nothing new. Returns the publishing server.
async fn killed_and_racing_batchers(
    url: &str,
    db: &tokio_postgres::Client,
    store: &ExportBackend,
) -> TestServer {
    let server = TestServer::with_config(|config| {
        store.configure(config);
        config.database_url = Some(url.parse().unwrap());
        config.export.min_keys = 50;
        config.export.padding_range = 10;
    });
    // Keys published at 24 different hours over two days, on a clock in the past, the last
    // ones three hours ago (so their window has ended on the batchers' system clock).
    server.clock.set(kith_server::UnixSeconds::new(
        now_unix() - 2 * 86_400 - 3600,
    ));
    for _ in 0..24 {
        let code = issue_code(&server, &server.admin_key).await;
        let keys: Vec<[u8; 16]> = (0..3).map(|_| random_key()).collect();
        let doc = publish_doc_at(today_start(&server) - 144, &code, &keys);
        assert_eq!(publish_json(&server, &doc).await.0, 200);
        server.clock.advance(2 * 3600);
    }
    let published = server.stored().all_key_bytes().unwrap();
    assert_eq!(published.len(), 72);

    let dir = server.dir.path();
    // Batchers killed at random points, leaving leases, padding and files half done, then
    // two at once; one-second leases, so the racers also take batches over from each other.
    for delay_ms in [20, 80, 160, 300] {
        let mut child = export_once(dir, url, store).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let racers: Vec<_> = (0..2)
        .map(|_| export_once(dir, url, store).spawn().unwrap())
        .collect();
    for racer in racers {
        let output = racer.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let (trusted, _) = trusted(&server).await;
    let index = store.read(dir, "v1/exports/index.txt").await.unwrap();
    let index = String::from_utf8(index).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::new();
    for name in index.lines() {
        let zip = store.read(dir, name).await.unwrap();
        let file = kith_core::ExportFile::parse(&zip, &kith_core::ExportLimits::default())
            .unwrap()
            .verify(&trusted)
            .unwrap();
        for key in file.keys() {
            let key = *key.unwrap().tek.expose_secret();
            if published.contains(&key) {
                assert!(seen.insert(key), "{name} exports a key a second time");
            }
        }
        files.push((name.to_owned(), zip));
    }
    assert_eq!(seen, published, "no key skipped");
    let open: i64 = db
        .query_one(
            "SELECT count(*) FROM export_batches WHERE status != 'complete'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "every batch completed once");

    // Exported again from scratch, every file comes out the same: the batcher finds each
    // already there, byte for byte, and succeeds without writing it again.
    db.batch_execute(
        "UPDATE export_batches SET status = 'open', lease_id = NULL, lease_expires = NULL;
         DELETE FROM export_files;",
    )
    .await
    .unwrap();
    let output = export_once(dir, url, store).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (name, zip) in &files {
        assert!(store.read(dir, name).await.as_ref() == Some(zip), "{name}");
    }
    assert_eq!(
        store.read(dir, "v1/exports/index.txt").await.unwrap(),
        index.as_bytes()
    );
    server
}

/// A second instance's data directory, with the key files copied from `first`'s.
fn second_data_dir(first: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in SHARED_KEY_FILES {
        std::fs::copy(first.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_key_rotated_on_one_instance_signs_on_the_other() {
    let Some((url, _db)) = fresh_database().await else {
        return;
    };
    let a = TestServer::with_config(|config| config.database_url = Some(url.parse().unwrap()));
    a.server.export_pass().unwrap();
    let b_dir = second_data_dir(a.dir.path());
    let rotate = std::process::Command::new(env!("CARGO_BIN_EXE_kith-server"))
        .arg("--data-dir")
        .arg(b_dir.path())
        .args(["--database", &url, "keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert_eq!(
        std::fs::read_dir(b_dir.path()).unwrap().count(),
        SHARED_KEY_FILES.len(),
        "the new private key is in the database, not in B's data directory"
    );

    // A's next export pass takes the key up: /v1/config lists it, and it signs.
    a.server.export_pass().unwrap();
    let (_, keys) = trusted(&a).await;
    let versions: Vec<&str> = keys
        .iter()
        .map(|key| key["keyVersion"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
}

#[tokio::test]
async fn the_guessing_budget_spent_on_one_instance_holds_on_the_other() {
    let Some((url, _db)) = fresh_database().await else {
        return;
    };
    // Three failures in all, refilled one an hour.
    let args = [
        "--database",
        &url,
        "--failed-redemptions-burst",
        "3",
        "--failed-redemptions-per-hour",
        "1",
    ];
    let (_a_dir, a, _admin) = fresh_server(&args, &[]);
    let b_dir = second_data_dir(&a.data_dir);
    let b = ServerProcess::start(b_dir.path(), &args, &[]);
    let wrong = "0000000000000000";
    for _ in 0..3 {
        assert_eq!(publish_status(&a, wrong, 1).await, 401);
    }
    // B has not seen this source fail, so its first wrong code is answered; the second
    // meets the budget A spent.
    assert_eq!(publish_status(&b, wrong, 1).await, 401);
    assert_eq!(publish_status(&b, wrong, 1).await, 429);
    assert!(b.stop());
}

/// The instances' flags for exports within seconds: key times stored to 2 s, 2 s windows
/// cut a second after they end (each instance's batcher runs every export period), small
/// padding.
const QUICK_EXPORTS: [&str; 10] = [
    "--truncate-window",
    "2",
    "--export-period",
    "2",
    "--export-min-age",
    "1",
    "--export-min-keys",
    "20",
    "--export-padding-range",
    "5",
];

/// `server/deploy/nginx.conf` with its addresses replaced: each of `(from, to)` must occur
/// in it exactly once.
fn deploy_nginx_conf(replacements: &[(&str, String)]) -> String {
    let conf = include_str!("../../deploy/nginx.conf");
    replacements
        .iter()
        .fold(conf.to_owned(), |conf, (from, to)| {
            assert_eq!(conf.matches(from).count(), 1, "{from} in nginx.conf");
            conf.replace(from, to)
        })
}

/// The `kith_keys_accepted_total` an instance reports.
async fn keys_accepted(server: &ServerProcess) -> u64 {
    let metrics = server.send(get("/metrics")).await.text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("kith_keys_accepted_total "))
        .map_or(0, |count| count.trim().parse().unwrap())
}

/// The README's scale-out steps as written: two instances on one PostgreSQL database and
/// one bucket, the first one's key files copied to the second, behind nginx running the
/// committed `server/deploy/nginx.conf` (only its addresses swapped for free ports). Codes
/// are issued, keys published (plain and sealed) and the exports downloaded and verified,
/// all through nginx; both instances take publishes; with one killed, nginx goes on with
/// the other.
#[tokio::test]
async fn two_instances_behind_nginx_on_the_committed_configuration() {
    let Some((url, _db)) = fresh_database().await else {
        return;
    };
    let Some(bucket) = ExportBackend::fresh_bucket() else {
        return;
    };
    if let Err(missing) = kith_launch::nginx::nginx_binary() {
        return kith_test_support::skip(missing);
    }
    let store = bucket.args();
    let mut args = vec!["--database", &url, "--trusted-proxy", "127.0.0.1"];
    args.extend(store.iter().map(String::as_str));
    args.extend(QUICK_EXPORTS);
    let (_a_dir, a, admin) = fresh_server(&args, &[]);
    let b_dir = second_data_dir(&a.data_dir);
    let b = ServerProcess::start(b_dir.path(), &args, &[]);
    let front = Remote {
        public: kith_launch::free_loopback_addr().unwrap(),
        operator: kith_launch::free_loopback_addr().unwrap(),
    };
    let http = deploy_nginx_conf(&[
        ("listen 8080;", format!("listen {};", front.public)),
        (
            "listen 127.0.0.1:9080;",
            format!("listen {};", front.operator),
        ),
        ("127.0.0.1:8081", a.addr.to_string()),
        ("127.0.0.1:8082", b.addr.to_string()),
        ("127.0.0.1:9081", a.operator_addr.to_string()),
        ("127.0.0.1:9082", b.operator_addr.to_string()),
    ]);
    let scratch = tempfile::tempdir().unwrap();
    let nginx = kith_launch::Nginx::start(scratch.path(), &http, &[front.public, front.operator])
        .unwrap_or_else(|e| panic!("{e}"));

    // Codes from the operator's side, publishes on the public side, half of them sealed.
    let codes = issue_many(&front, &admin, 8).await;
    let hpke = hpke_key(&front).await;
    let mut published = std::collections::HashSet::new();
    for (i, code) in codes.iter().enumerate() {
        // Past days' keys only: today's would be held back until the end of the day.
        let keys: Vec<[u8; 16]> = (0..3).map(|_| random_key()).collect();
        let doc = publish_doc_at(today_start(&front) - 144, code, &keys);
        let (status, body, _) = if i % 2 == 0 {
            publish_json(&front, &doc).await
        } else {
            publish_sealed(&front, &hpke, &doc).await
        };
        assert_eq!(status, 200, "{body}");
        published.extend(keys);
    }
    let (on_a, on_b) = (keys_accepted(&a).await, keys_accepted(&b).await);
    assert_eq!(on_a + on_b, 24);
    assert!(
        on_a > 0 && on_b > 0,
        "nginx spreads publishes: {on_a} + {on_b}"
    );

    // The instances' batchers export every key once; nginx serves the index and the files.
    let (trusted, _) = trusted(&front).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let index = front.send(get("/v1/exports/index.txt")).await;
        assert_eq!(index.status, 200);
        let mut exported = Vec::new();
        for name in index.text().lines() {
            let zip = front.send(get(&format!("/{name}"))).await;
            assert_eq!(zip.status, 200, "{name}");
            assert_eq!(
                zip.headers["cache-control"],
                "public, max-age=31536000, immutable"
            );
            let file = kith_core::ExportFile::parse(&zip.body, &kith_core::ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .unwrap();
            exported.extend(
                file.keys()
                    .map(|key| *key.unwrap().tek.expose_secret())
                    .filter(|key| published.contains(key)),
            );
        }
        let distinct: std::collections::HashSet<[u8; 16]> = exported.iter().copied().collect();
        assert_eq!(distinct.len(), exported.len(), "a key exported twice");
        if distinct == published {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} keys exported after 60 s\nA: {}\nB: {}",
            distinct.len(),
            published.len(),
            a.log_tail(10),
            b.log_tail(10)
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // One instance killed: nginx sends everything to the other.
    a.kill();
    for code in issue_many(&front, &admin, 2).await {
        assert_eq!(publish_status(&front, &code, 1).await, 200);
    }
    assert_eq!(front.send(get("/v1/exports/index.txt")).await.status, 200);
    assert!(b.stop());
    assert!(nginx.stop().unwrap().success());
}
