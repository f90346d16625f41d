//! Two `kith-server` processes on one PostgreSQL database, as a health authority runs them
//! behind a load balancer: a code works once across both, and what one acknowledged the
//! other sees. Needs the PostgreSQL server that scripts/test starts (`KITH_TEST_POSTGRES`).

mod common;

use common::*;

/// A fresh database on the test server: its URL and a client on it.
async fn fresh_database() -> Option<(String, tokio_postgres::Client)> {
    if std::env::var(backend::POSTGRES_VAR).is_err() {
        kith_test_support::skip(
            "KITH_TEST_POSTGRES is not set (scripts/test starts a PostgreSQL server and sets it)",
        );
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
    let stored: i64 = db
        .query_one("SELECT count(*) FROM diagnosis_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, accepted);
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
    let stored: i64 = db
        .query_one("SELECT count(*) FROM diagnosis_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, accepted + 4);
    assert!(b.stop());
}

/// `kith-server export --once` on `dir` and the database at `url`, with one-second leases.
fn export_once(dir: &std::path::Path, url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kith-server"));
    command
        .arg("--data-dir")
        .arg(dir)
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
    let Some((url, db)) = fresh_database().await else {
        return;
    };
    let server = TestServer::with_config(|config| {
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
    let published: std::collections::HashSet<Vec<u8>> = db
        .query("SELECT key_data FROM diagnosis_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(published.len(), 72);

    let dir = server.dir.path();
    // Batchers killed at random points, leaving leases, padding and files half done, then
    // two at once; one-second leases, so the racers also take batches over from each other.
    for delay_ms in [20, 80, 160, 300] {
        let mut child = export_once(dir, &url).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let racers: Vec<_> = (0..2)
        .map(|_| export_once(dir, &url).spawn().unwrap())
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
    let index = std::fs::read_to_string(dir.join("v1/exports/index.txt")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for name in index.lines() {
        let zip = std::fs::read(dir.join(name)).unwrap();
        let file = kith_core::ExportFile::parse(&zip, &kith_core::ExportLimits::default())
            .unwrap()
            .verify(&trusted)
            .unwrap();
        for key in file.keys() {
            let key = key.unwrap().tek.expose_secret().to_vec();
            if published.contains(&key) {
                assert!(seen.insert(key), "{name} exports a key a second time");
            }
        }
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
