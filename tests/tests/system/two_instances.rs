//! (e) Two kith-server instances on one PostgreSQL database and one S3 bucket behind one
//! address (nginx, round-robin), agents syncing and reporting through it: each key is
//! exported exactly once though both instances' batchers run, both instances serve the same
//! index, the near agent is notified and the far one not. Needs the PostgreSQL and S3
//! servers scripts/test starts (`KITH_TEST_POSTGRES`, `KITH_TEST_S3`) and nginx.

use std::time::Duration;

use kith_tests::System;
use kith_tests::keys::{self, KeyBytes};
use rand::RngCore;

/// A fresh database on `KITH_TEST_POSTGRES` and a fresh bucket on `KITH_TEST_S3`: the
/// servers' `--database` and `--export-store`, or `None` after a skip.
async fn database_and_bucket() -> Option<(String, String)> {
    let (Ok(postgres), Ok(s3)) = (
        std::env::var("KITH_TEST_POSTGRES"),
        std::env::var("KITH_TEST_S3"),
    ) else {
        kith_test_support::skip(
            "KITH_TEST_POSTGRES or KITH_TEST_S3 is not set (scripts/test starts PostgreSQL and \
             an S3 server and sets them)",
        );
        return None;
    };
    if let Err(missing) = kith_launch::nginx::nginx_binary() {
        kith_test_support::skip(missing);
        return None;
    }
    let suffix = rand::rngs::OsRng.next_u64();
    let database = kith_server::create_database(&postgres, &format!("kith_e2e_{suffix:016x}"))
        .unwrap_or_else(|e| panic!("creating a database: {e}"));
    let bucket = format!("kith-e2e-{suffix:016x}");
    let created = reqwest::Client::new()
        .put(format!("{s3}/{bucket}"))
        .body("")
        .send()
        .await
        .expect("the S3 server answers");
    assert!(
        created.status().is_success(),
        "creating {bucket}: {}",
        created.status()
    );
    Some((
        database,
        format!("s3://{bucket}?endpoint={s3}&region=us-east-1"),
    ))
}

/// nginx on a free loopback port, round-robin over `upstreams` (base URLs): its base URL.
fn round_robin(scratch: &std::path::Path, upstreams: &[String]) -> (kith_launch::Nginx, String) {
    let front = kith_launch::free_loopback_addr().expect("a free port");
    let servers: String = upstreams
        .iter()
        .map(|url| format!("    server {};\n", url.trim_start_matches("http://")))
        .collect();
    let http = format!(
        "upstream kith {{\n{servers}}}\nserver {{\n    listen {front};\n    location / {{\n        \
         proxy_pass http://kith;\n        proxy_set_header X-Forwarded-For \
         $proxy_add_x_forwarded_for;\n    }}\n}}\n"
    );
    let nginx =
        kith_launch::Nginx::start(scratch, &http, &[front]).unwrap_or_else(|e| panic!("{e}"));
    (nginx, format!("http://{front}"))
}

/// `GET /v1/config` requests an instance answered (agents make one at each sync), from its
/// `/metrics`.
async fn requests_served(http: &reqwest::Client, operator_url: &str) -> u64 {
    let metrics = http
        .get(format!("{operator_url}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    metrics
        .lines()
        .filter(|line| line.starts_with("kith_http_requests_total"))
        .filter(|line| line.contains(r#"route="/v1/config""#))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub(crate) async fn two_instances_behind_one_address_export_once_and_notify_the_near_agent_only() {
    let Some((database, bucket)) = database_and_bucket().await else {
        return;
    };
    let mut system = System::start_with(&[
        "--database",
        &database,
        "--export-store",
        &bucket,
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    system.step("a second instance on the same database and bucket, nginx in front");
    let second = system.add_instance();
    let (second_url, second_operator) = (second.url(), second.operator_url());
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let (_nginx, front) = round_robin(scratch.path(), &[system.url(), second_url.clone()]);

    system.step("agents on the simulated radio, all talking to the one address");
    system.add_agent_via("alice", [0.0, 0.0], &front);
    system.add_agent_via("bob", [1.5, 0.0], &front);
    system.add_agent_via("carol", [300.0, 0.0], &front);
    system.wait_for_radio().await;
    system.step("bob hears alice");
    system.wait_for_sightings(&["bob"], 2).await;

    system.step("alice reports through the one address");
    let code = system.issue_codes(1).await.remove(0);
    let output = kith_tests::system::agent_cli_via(
        &system.agent("alice").data_dir,
        &front,
        kith_tests::system::REPLAY_OFFSET,
        &["report", "--code", &code],
    )
    .output()
    .await
    .expect("kith-agent report");
    assert!(output.status.success(), "{output:?}");
    let stored: Vec<KeyBytes> = system
        .stored()
        .all_key_bytes()
        .expect("the stored keys")
        .into_iter()
        .collect();
    assert!(!stored.is_empty());

    system.step("both batchers run; every key is exported once");
    let counts = system.wait_for_every_key(&stored).await;
    keys::assert_each_once(&counts);
    let http = system.http().clone();
    let index = |url: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/v1/exports/index.txt"))
                .send()
                .await
                .expect("an instance answers")
                .text()
                .await
                .expect("the index")
        }
    };
    let listed = index(system.url()).await;
    assert_eq!(listed, index(second_url).await, "one index");
    let distinct: std::collections::HashSet<&str> = listed.lines().collect();
    assert_eq!(
        distinct.len(),
        listed.lines().count(),
        "each window listed once: {listed}"
    );

    system.step("bob is notified, carol is not");
    system
        .wait_until("bob notified", Duration::from_secs(60), |s| {
            !s.agent("bob").notifications().is_empty()
        })
        .await;
    let files = system.export_index().await.len();
    system
        .wait_until("carol matched every file", Duration::from_secs(30), |s| {
            s.agent("carol").files_matched() >= files
        })
        .await;
    assert!(system.agent("carol").notifications().is_empty());
    assert_eq!(system.agent("bob").notifications().len(), 1);
    let (first, second) = (
        requests_served(&http, &system.operator_url()).await,
        requests_served(&http, &second_operator).await,
    );
    assert!(
        first > 0 && second > 0,
        "nginx spreads the agents' requests: {first} + {second}"
    );
}
