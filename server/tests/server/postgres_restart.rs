//! PostgreSQL restarted under a running `kith-server`: while the database is away, requests
//! that need it get 503 `database_unavailable` (never a 500, nothing half stored); once it
//! is back, the server carries on without a restart of its own. The test runs a private
//! cluster of its own (`initdb` + `pg_ctl` on a Unix socket in a temporary directory), not
//! the one scripts/test shares between tests.

use std::path::Path;

use crate::common::*;
use kith_launch::postgres::Cluster;

/// A cluster of this test's own (kith-launch's), or `None` after a skip without PostgreSQL.
fn private_cluster(dir: &Path) -> Option<Cluster> {
    if Cluster::bin().is_none() {
        kith_test_support::skip("initdb not found: install the postgresql package");
        return None;
    }
    Some(Cluster::start(dir, "").unwrap_or_else(|e| panic!("{e}")))
}

/// Publishes `keys` keys with `code`: the status and the error code of the answer.
async fn publish(api: &impl Api, code: &str, keys: usize) -> (u16, Option<String>) {
    let keys: Vec<[u8; 16]> = (0..keys).map(|_| random_key()).collect();
    let (status, body, _) = publish_json(api, &publish_doc(api, code, &keys)).await;
    (status, body["error"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn postgres_restarted_under_the_server_gives_503_then_everything_works() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = private_cluster(dir.path()) else {
        return;
    };
    let url = cluster.url("postgres");
    let (_dir, server, admin) = fresh_server(&["--database", &url], &[]);
    let codes: Vec<String> = {
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(issue_code(&server, &admin).await);
        }
        codes
    };
    assert_eq!(publish(&server, &codes[0], 2).await, (200, None));

    // Restarted between two requests: the next one is served on a fresh connection.
    cluster.pg_ctl("restart").unwrap();
    assert_eq!(publish(&server, &codes[1], 3).await, (200, None));

    // Stopped: publishing and issuing codes answer 503 and store nothing.
    cluster.pg_ctl("stop").unwrap();
    let unavailable = (503, Some("database_unavailable".to_owned()));
    assert_eq!(publish(&server, &codes[2], 4).await, unavailable);
    let mut issue = post_json(
        "/v1/admin/codes",
        &serde_json::json!({"diagnosis": "confirmed_test"}),
    );
    issue
        .headers_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let issue = server.send(issue).await;
    assert_eq!(issue.status, 503, "{}", issue.text());
    assert_eq!(issue.json()["error"], "database_unavailable");

    // Back: the code that met the outage is still unused and publishes now.
    cluster.pg_ctl("start").unwrap();
    assert_eq!(publish(&server, &codes[2], 4).await, (200, None));
    assert_eq!(stored_keys(&url), 2 + 3 + 4, "nothing lost, nothing twice");
    assert!(server.stop());
}
