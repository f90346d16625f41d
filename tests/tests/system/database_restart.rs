//! PostgreSQL stopped and started under a loaded kith-server: publishers and a phone's
//! report meet the outage and get a clear 503 `database_unavailable` with Retry-After (never
//! a 500, never a hang); once the database is back the same server, never restarted, takes
//! their retries, and every acknowledged key is stored and exported exactly once.
//!
//! The database is a private cluster (kith-launch's `postgres::Cluster`), since the one
//! scripts/test shares between tests cannot be stopped under them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_launch::postgres::Cluster;
use kith_tests::System;
use kith_tests::keys::{self, KeyBytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Publishers sending at once.
const PUBLISHERS: u64 = 4;

/// Keys per upload.
const KEYS_PER_CODE: usize = 3;

/// Longer than any answer may take: a request still open then is a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the publishers saw.
#[derive(Debug, Default)]
struct Seen {
    acknowledged: Mutex<Vec<KeyBytes>>,
    acknowledged_count: AtomicUsize,
    unavailable: AtomicUsize,
    /// Set when the test has seen enough: each publisher finishes its upload and stops.
    stop: AtomicBool,
}

/// One publish: the status, the `Retry-After` header and the error code.
async fn publish(
    http: &reqwest::Client,
    url: &str,
    code: &str,
    keys: &[KeyBytes],
) -> (u16, Option<String>, Option<String>) {
    let answer = http
        .post(format!("{url}/v1/publish"))
        .json(&keys::publish_document(code, keys))
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish got no answer within {REQUEST_TIMEOUT:?}: {e}"));
    let status = answer.status().as_u16();
    let retry_after = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = answer.json().await.unwrap_or_default();
    (
        status,
        retry_after,
        body["error"].as_str().map(str::to_owned),
    )
}

/// Publishes with each code until it is acknowledged, retrying an upload answered 503 as a
/// phone does, until told to stop; panics at any other answer.
async fn publish_all(url: String, codes: Arc<Mutex<Vec<String>>>, seen: Arc<Seen>, seed: u64) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while !seen.stop.load(Ordering::Relaxed) {
        let Some(code) = codes.lock().unwrap().pop() else {
            return;
        };
        let sent: Vec<KeyBytes> = (0..KEYS_PER_CODE).map(|_| rng.r#gen()).collect();
        loop {
            match publish(&http, &url, &code, &sent).await {
                (200, _, _) => break,
                (503, retry_after, error) => {
                    assert_eq!(error.as_deref(), Some("database_unavailable"));
                    assert!(retry_after.is_some(), "a 503 says when to retry");
                    seen.unavailable.fetch_add(1, Ordering::Relaxed);
                    // Sooner than Retry-After says, to meet the database's return early.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("publish answered {other:?}"),
            }
        }
        seen.acknowledged.lock().unwrap().extend(sent);
        seen.acknowledged_count
            .fetch_add(KEYS_PER_CODE, Ordering::Relaxed);
    }
}

/// `kith-agent report` of agent `name` with `code`: how many keys it uploaded, or its
/// error output.
async fn report(system: &System, name: &str, code: &str) -> Result<u64, String> {
    let output = system
        .agent_cli(
            &system.agent(name).data_dir,
            &["report", "--code", code, "--json"],
        )
        .output()
        .await
        .expect("running kith-agent report");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let answer: Value = serde_json::from_slice(&output.stdout).expect("report --json");
    Ok(answer["keys_uploaded"].as_u64().expect("keys_uploaded"))
}

pub(crate) async fn postgres_stopped_under_load_gives_503_and_the_same_server_recovers_losing_nothing()
 {
    if Cluster::bin().is_none() {
        return kith_test_support::skip("initdb not found: install the postgresql package");
    }
    let cluster_dir = tempfile::tempdir().expect("a temporary directory");
    let cluster = Cluster::start(cluster_dir.path(), "").unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url("postgres");
    let mut system = System::start_with(&["--database", &url]);
    system.add_agent("phone", [0.0, 0.0]);
    system.wait_for_radio().await;
    let mut codes = system.issue_codes(1_000).await;
    let phone_code = codes.pop().expect("a code");

    system.step("publishing from four clients");
    let codes = Arc::new(Mutex::new(codes));
    let seen = Arc::new(Seen::default());
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|seed| tokio::spawn(publish_all(system.url(), codes.clone(), seen.clone(), seed)))
        .collect();
    system
        .wait_until("keys acknowledged", Duration::from_secs(30), |_| {
            seen.acknowledged_count.load(Ordering::Relaxed) >= 30
        })
        .await;

    system.step("PostgreSQL stopped (fast shutdown) under the publishers");
    // A seeded moment inside a request.
    let mut rng = ChaCha8Rng::seed_from_u64(0xdb);
    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    cluster.pg_ctl("stop").expect("pg_ctl stop");
    let acknowledged_before = seen.acknowledged_count.load(Ordering::Relaxed);
    system
        .wait_until("publishers answered 503", Duration::from_secs(20), |_| {
            seen.unavailable.load(Ordering::Relaxed) >= 10
        })
        .await;
    system.step("the phone reports during the outage");
    let refused = report(&system, "phone", &phone_code)
        .await
        .expect_err("no report is taken without a database");
    assert!(
        refused.contains("database_unavailable") || refused.contains("503"),
        "the phone is told why: {refused}"
    );
    let status = system
        .http()
        .get(format!("{}/v1/config", system.url()))
        .send()
        .await
        .expect("kith-server answers")
        .status();
    assert!(status == 200 || status == 503, "/v1/config: {status}");

    system.step("PostgreSQL started again; the same server takes the retries");
    cluster.pg_ctl("start").expect("pg_ctl start");
    let phone_keys = report(&system, "phone", &phone_code)
        .await
        .expect("the code met the outage unused and reports now");
    assert!(phone_keys > 0);
    let acknowledged_after = seen.acknowledged_count.load(Ordering::Relaxed);
    system
        .wait_until(
            "keys acknowledged after the outage",
            Duration::from_secs(30),
            |_| seen.acknowledged_count.load(Ordering::Relaxed) >= acknowledged_after + 30,
        )
        .await;
    seen.stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        tokio::time::timeout(Duration::from_secs(30), publisher)
            .await
            .expect("the publishers finish their uploads")
            .expect("a publisher");
    }
    let acknowledged = std::mem::take(&mut *seen.acknowledged.lock().unwrap());
    assert!(acknowledged.len() > acknowledged_before);

    system.step("everything acknowledged is stored and exported, once");
    let stored = system
        .stored()
        .count_keys()
        .expect("counting the stored keys");
    assert_eq!(
        stored,
        acknowledged.len() as u64 + phone_keys,
        "nothing lost, nothing twice"
    );
    let counts = system.wait_for_every_key(&acknowledged).await;
    keys::assert_each_once(&counts);
    let server = system.server();
    assert!(
        !server.log().contains("panicked"),
        "kith-server panicked: {}",
        server.log_tail(20)
    );
}
