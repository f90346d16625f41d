//! The agent against a real kith-server process (its binary, on a loopback port, with a
//! temp data directory): `report --code` seals the keys to the server's HPKE key and the
//! server stores them; spent and wrong codes give clear errors.

use std::path::PathBuf;

use kith_agent::Agent;
use kith_agent::clock::SystemClock;
use kith_agent::config::Config;
use kith_agent::demo::{RunningServer, issue_code};

/// The kith-server binary: `$KITH_SERVER_BIN`, else the one `cargo test --workspace`
/// built beside this test.
fn server_bin() -> PathBuf {
    let bin = std::env::var_os("KITH_SERVER_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .and_then(|deps| deps.parent())
                .unwrap()
                .join("kith-server")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "no kith-server at {}: run the workspace's tests (scripts/test), or \
         `cargo build -p kith-server` first",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn report_uploads_sealed_keys_once_per_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = RunningServer::start(&server_bin(), &dir.path().join("server"))
        .await
        .unwrap();
    let config = Config {
        data_dir: dir.path().join("alice"),
        server: Some(server.url.clone()),
        ..Config::default()
    };
    let mut alice = Agent::open(config, SystemClock::default()).unwrap();
    let now = kith_agent::clock::Clock::now(&SystemClock::default());
    alice.beacon(now).unwrap(); // today's key exists once a beacon has been on the air

    let code = issue_code(&server.operator_url, &server.admin_key)
        .await
        .unwrap();
    let outcome = alice.report(&code).await.unwrap();
    assert_eq!(outcome.keys_uploaded, 1);
    assert_eq!(outcome.server.inserted, 1);

    let e = alice.report(&code).await.unwrap_err().to_string();
    assert!(e.contains("code_already_used"), "{e}");
    let e = alice.report("000000000000").await.unwrap_err().to_string();
    assert!(e.contains("invalid_code"), "{e}");
}
