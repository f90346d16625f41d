//! Faults on the agent's side: killed in the middle of a sync it resumes and ends where
//! an uninterrupted sync ends, each file matched once; a truncated download and a file
//! with a bad signature are refused and fetched again at the next sync.

use std::time::{Duration, Instant};

use kith_tests::System;
use kith_tests::keys::{self, KeyBytes};
use kith_tests::proxy::{Spoiled, SpoilingProxy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Alice and Bob meet: Bob hears Alice.
async fn alice_meets_bob(system: &mut System, bob_url: Option<&str>) {
    system.step("alice and bob meet");
    system.add_agent("alice", [0.0, 0.0]);
    match bob_url {
        Some(url) => system.add_agent_via("bob", [1.0, 0.0], url),
        None => system.add_agent("bob", [1.0, 0.0]),
    }
    system.wait_for_radio().await;
    system.step("bob hears alice");
    system.wait_for_sightings(&["bob"], 2).await;
}

/// Alice reports with a code from the admin API.
async fn alice_reports(system: &mut System) {
    system.step("alice reports");
    let code = system.issue_codes(1).await.remove(0);
    system.report("alice", &code).await;
}

/// The JSON output of one `kith-agent check` on `data_dir`.
async fn check(system: &System, data_dir: &std::path::Path) -> serde_json::Value {
    let output = system
        .agent_cli(data_dir, &["check", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "check: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

pub(crate) async fn an_agent_killed_mid_sync_resumes_and_matches_each_file_once() {
    // Small files, so that one sync downloads many.
    let mut system = System::start_with(&["--export-max-keys-per-file", "100"]);
    alice_meets_bob(&mut system, None).await;
    // Bob stops listening before anything is exported: his store is copied, so the copy
    // syncs once, uninterrupted, every file.
    system.agent_mut("bob").stop();
    system.agent_mut("alice").stop();
    alice_reports(&mut system).await;
    system.step("forty more people report");
    let codes = system.issue_codes(40).await;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for code in &codes {
        let others: Vec<KeyBytes> = (0..14).map(|_| rng.r#gen()).collect();
        assert_eq!(
            keys::publish(system.http(), &system.url(), code, &others)
                .await
                .unwrap(),
            200
        );
    }
    let bob = system.agent("bob").data_dir.clone();
    let control = system.dir().join("bob-control");
    copy_dir(&bob, &control);
    system.step("waiting for the exports");
    let files = system.wait_for_stored_keys_exported().await;
    assert!(files.len() >= 5, "small files: {files:?}");

    system.step("the control copy syncs once");
    let started = Instant::now();
    let expected = check(&system, &control).await;
    let full_sync = started.elapsed();
    assert_eq!(expected["files_new"], files.len(), "{expected}");
    assert!(
        expected["new_exposures"].as_u64().unwrap() > 0,
        "{expected}"
    );

    for round in 0..6 {
        let delay = full_sync.mul_f64(rng.gen_range(0.05..0.95));
        system.step(&format!(
            "bob's sync, SIGKILL after {delay:?} (round {round})"
        ));
        let mut sync = system
            .agent_cli(&bob, &["check", "--json"])
            .spawn()
            .unwrap();
        tokio::time::sleep(delay).await;
        let _ = sync.start_kill();
        let _ = sync.wait().await;
    }
    system.step("bob syncs to the end");
    check(&system, &bob).await;
    let again = check(&system, &bob).await;
    assert_eq!(again["files_new"], 0, "nothing is left to fetch: {again}");
    assert_eq!(again["files_listed"], files.len());

    system.step("bob ends where the uninterrupted copy ends");
    let status = |dir: std::path::PathBuf| {
        let system = &system;
        async move {
            let text = system
                .agent_cli(&dir, &["status", "--json"])
                .output()
                .await
                .unwrap();
            let mut value: serde_json::Value = serde_json::from_slice(&text.stdout).unwrap();
            value.as_object_mut().unwrap().remove("last_sync");
            value.as_object_mut().unwrap().remove("hours");
            value
        }
    };
    let (resumed, uninterrupted) = (status(bob).await, status(control).await);
    assert_eq!(
        resumed["risk"], uninterrupted["risk"],
        "each file matched once"
    );
    assert_eq!(resumed, uninterrupted);
}

pub(crate) async fn a_truncated_download_and_a_bad_signature_are_refused_and_fetched_again() {
    let mut system = System::start();
    let proxy = SpoilingProxy::start(system.url()).await;
    alice_meets_bob(&mut system, Some(proxy.url())).await;
    alice_reports(&mut system).await;
    let files = system.wait_for_exports(1, Duration::from_secs(60)).await;
    system.step("bob is notified after two spoiled downloads");
    system
        .wait_until("bob notified", Duration::from_secs(60), |s| {
            !s.agent("bob").notifications().is_empty()
        })
        .await;
    system.stop_agents();
    let downloads = proxy.downloads();
    for file in &files {
        let seen = &downloads[&format!("/{file}")];
        assert_eq!(
            seen[..3],
            [Spoiled::Truncated, Spoiled::BadSignature, Spoiled::Intact],
            "{file}"
        );
        assert_eq!(seen.len(), 3, "{file}: fetched again after it was matched");
    }
    // A download cut short ends that sync (the network failed; the next one resumes), a
    // file that does not verify is skipped and the sync goes on.
    let log = system.agent("bob").log_tail(200);
    assert_eq!(log.matches("sync failed").count(), files.len(), "{log}");
    assert_eq!(log.matches("skipping export").count(), files.len(), "{log}");
    assert_eq!(system.agent("bob").notifications().len(), 1);
    let status = system.status("bob").await;
    assert_eq!(status["risk"]["risk_level"], 1, "{status}");
}
