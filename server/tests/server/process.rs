//! The real binary on an ephemeral port with a temporary data directory, for what only
//! a process shows: restarts, signals, its log and stdout, process-wide metrics.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

fn stored(server: &ServerProcess, key: &[u8; 16]) -> Option<kith_server::inspect::KeyRecord> {
    server.stored().key_record(key).unwrap()
}

fn stored_count(data_dir: &std::path::Path) -> u64 {
    stored_data(data_dir, Backend::current())
        .count_keys()
        .unwrap()
}

/// Metrics are process-wide (the `metrics` crate has one global recorder), so their
/// counts are checked on a process of their own.
#[tokio::test]
async fn metrics_count_requests_by_route_and_codes_by_outcome() {
    let (_dir, server, admin) = fresh_server(&[], &[]);
    let code = issue_code(&server, &admin).await;
    assert_eq!(publish_status(&server, &code, 2).await, 200);
    assert_eq!(publish_status(&server, &code, 1).await, 403);
    assert_eq!(server.send(get("/no/such/path-4711")).await.status, 404);

    let metrics = server.send(get("/metrics")).await.text();
    for expected in [
        r#"kith_http_requests_total{route="/v1/publish",method="POST",status="200"} 1"#,
        r#"kith_http_requests_total{route="/v1/publish",method="POST",status="403"} 1"#,
        r#"kith_http_requests_total{route="/v1/admin/codes",method="POST",status="200"} 1"#,
        r#"kith_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        "kith_http_request_duration_seconds_bucket{route=\"/v1/publish\"",
        "kith_keys_accepted_total 2",
        "kith_codes_issued_total 1",
        "kith_codes_redeemed_total 1",
        r#"kith_codes_rejected_total{reason="used"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    assert!(!metrics.contains("4711"), "raw URIs never become labels");
}
every_backend! {
async fn restart_keeps_keys_codes_and_secrets() {
    let (dir, server, admin) = fresh_server(&[], &[]);
    let used = issue_code(&server, &admin).await;
    let unused = issue_code(&server, &admin).await;
    let key = random_key();
    assert_eq!(
        publish_json(&server, &publish_doc(&server, &used, &[key]))
            .await
            .0,
        200
    );
    let hpke_before = hpke_key(&server).await;
    assert!(server.stop(), "SIGTERM gives a clean exit");

    let again = ServerProcess::start(dir.path(), &[], &[]);
    assert!(again.admin_key.is_none());
    assert!(again.stdout().contains("listening on"));
    assert_eq!(hpke_key(&again).await, hpke_before);
    assert!(stored(&again, &key).is_some());
    assert_eq!(publish_status(&again, &used, 1).await, 403);
    assert_eq!(publish_status(&again, &unused, 1).await, 200);
    // The old admin key still works.
    assert_eq!(
        issue_codes(&again, &admin, json!({"diagnosis": "clinical_diagnosis"}))
            .await
            .len(),
        1
    );
}
}

every_backend! {
async fn logs_hold_no_keys_codes_or_addresses() {
    // At the most verbose level: no crate's trace lines may name the peer.
    let (_dir, server, admin) = fresh_server(&[], &[("KITH_LOG", "trace")]);
    let code = issue_code(&server, &admin).await;
    let key = random_key();
    assert_eq!(
        publish_json(&server, &publish_doc(&server, &code, &[key]))
            .await
            .0,
        200
    );
    assert_eq!(
        publish_json(&server, &publish_doc(&server, &code, &[key]))
            .await
            .0,
        403
    );
    assert_eq!(publish_status(&server, "9999999999999999", 1).await, 401);
    let public_key = hpke_key(&server).await;
    let mut chaff = publish_doc(&server, &code, &[random_key()]);
    chaff["fake"] = json!(true);
    assert_eq!(publish_sealed(&server, &public_key, &chaff).await.0, 200);
    let port = server.addr.port().to_string();
    let operator_port = server.operator_addr.port().to_string();
    assert!(
        server.stdout().contains(&admin),
        "the admin key goes to stdout"
    );
    let log = server.log();
    assert!(server.stop());
    assert!(
        log.contains("request"),
        "debug request lines are logged: {log}"
    );
    for secret in [
        code.clone(),
        STANDARD.encode(key),
        hex::encode(key),
        "9999999999999999".into(),
        admin.clone(),
        "127.0.0.1".into(),
        port,
        operator_port,
    ] {
        assert!(!log.contains(&secret), "log contains {secret}:\n{log}");
    }
}
}

every_backend! {
async fn sigterm_finishes_in_flight_publishes() {
    let (dir, server, admin) = fresh_server(&[], &[]);
    let codes = issue_many(&server, &admin, 200).await;
    let url = server.url("/v1/publish");
    let today = today_start(&server);
    let tasks: Vec<_> = codes
        .into_iter()
        .map(|code| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = client()
                    .post(url)
                    .json(&publish_doc_at(today, &code, &[random_key()]))
                    .send()
                    .await;
                response.ok().map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(server.stop(), "clean exit after SIGTERM");
    let mut acknowledged = 0;
    for task in tasks {
        match task.await.unwrap() {
            Some(200) => acknowledged += 1,
            Some(other) => panic!("an in-flight request got {other} during shutdown"),
            None => {} // never connected: refused after the listener closed
        }
    }
    let stored = stored_count(dir.path());
    assert!(
        stored >= acknowledged,
        "acknowledged {acknowledged} but stored {stored}"
    );
}
}
