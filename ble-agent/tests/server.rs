//! The agent against a real kith-server process (its binary, on a loopback port, with a
//! temp data directory): `report --code` seals the keys to the server's HPKE key and the
//! server stores them; spent and wrong codes give clear errors.

mod common;

use kith_agent::Agent;
use kith_agent::clock::SystemClock;
use kith_agent::config::Config;
use kith_agent::demo::issue_code;
use kith_launch::ServerProcess;

#[tokio::test]
async fn report_uploads_sealed_keys_once_per_code() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start(&common::server_bin(), &dir.path().join("server"), &[], &[]).unwrap();
    let config = Config {
        data_dir: dir.path().join("alice"),
        server: Some(server.url()),
        ..Config::default()
    };
    let mut alice = Agent::open(config, SystemClock::default()).unwrap();
    let now = kith_agent::clock::Clock::now(&SystemClock::default());
    alice.beacon(now).unwrap(); // today's key exists once a beacon has been on the air

    let code = issue_code(&server.operator_url(), server.admin_key.as_deref().unwrap())
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
