//! The server killed with SIGKILL while it publishes and while it exports: after a restart
//! every acknowledged key is in exactly one export file, and no key is in two.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_tests::System;
use kith_tests::keys::{self, KeyBytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batcher killed half-way leaves its batch leased: a short lease (instead of five
/// minutes) lets the next batcher take it over within the test, which is the recovery
/// these faults are to prove.
const SHORT_LEASE: [&str; 2] = ["--export-lease", "3"];

/// Three export passes at the harness's pace (2-second periods).
const THREE_EXPORT_PASSES: Duration = Duration::from_secs(6);

/// How long after its upload a key may be exported at the harness's pace: its 2-second
/// window ends and ages a second, and a second to spare.
const EXPORTABLE_AFTER: Duration = Duration::from_secs(4);

/// Publishers sending at once.
const PUBLISHERS: usize = 4;

/// Publishes from `PUBLISHERS` tasks, one code each time with `keys_per_code` fresh keys,
/// until the codes run out or the server stops answering; the keys it acknowledged.
/// `progress` counts them as they are.
async fn publish_until_gone(
    url: String,
    codes: Vec<String>,
    keys_per_code: usize,
    seed: u64,
    progress: Arc<AtomicUsize>,
) -> Vec<KeyBytes> {
    let http = reqwest::Client::new();
    let codes = Arc::new(Mutex::new(codes));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS as u64 {
        let (http, url, codes, acknowledged, progress) = (
            http.clone(),
            url.clone(),
            codes.clone(),
            acknowledged.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed + publisher);
            loop {
                let Some(code) = codes.lock().unwrap().pop() else {
                    return;
                };
                let sent: Vec<KeyBytes> = (0..keys_per_code).map(|_| rng.r#gen()).collect();
                match keys::publish(&http, &url, &code, &sent).await {
                    Ok(200) => {
                        acknowledged.lock().unwrap().extend(sent);
                        progress.fetch_add(keys_per_code, Ordering::Relaxed);
                    }
                    Ok(status) => panic!("publish answered {status}"),
                    // Killed: whatever was in flight is not acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a publisher");
    }
    Arc::try_unwrap(acknowledged).unwrap().into_inner().unwrap()
}

pub(crate) async fn a_server_killed_while_publishing_loses_no_acknowledged_key_and_exports_each_once()
 {
    let mut system = System::start_with(&SHORT_LEASE);
    let mut acknowledged = Vec::new();
    // Killed while the publishers are busy: after this many acknowledged keys, and a
    // seeded few milliseconds more, so the kill lands anywhere in a request.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (round, kill_after_keys) in [30usize, 300, 900].into_iter().enumerate() {
        let codes = system.issue_codes(2_000).await;
        let extra = Duration::from_millis(rng.gen_range(0..20));
        system.step(&format!(
            "publishing, SIGKILL after {kill_after_keys} keys + {extra:?} (round {round})"
        ));
        let progress = Arc::new(AtomicUsize::new(0));
        let publishing = tokio::spawn(publish_until_gone(
            system.url(),
            codes,
            3,
            round as u64 * 100,
            progress.clone(),
        ));
        system
            .wait_until("keys acknowledged", Duration::from_secs(60), |_| {
                progress.load(Ordering::Relaxed) >= kill_after_keys
            })
            .await;
        tokio::time::sleep(extra).await;
        system.kill_server();
        let sent = publishing.await.expect("the publishers");
        assert!(
            !sent.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        acknowledged.extend(sent);
        system.step(&format!("restarting after round {round}"));
        system.restart_server();
    }

    system.step("every acknowledged key is exported, once");
    let counts = system.wait_for_every_key(&acknowledged).await;
    keys::assert_each_once(&counts);
    // Later export passes add nothing twice (what must not happen cannot be polled for:
    // give the batcher a few passes).
    tokio::time::sleep(THREE_EXPORT_PASSES).await;
    let files = system.export_index().await;
    keys::assert_each_once(&keys::exported_key_counts(system.http(), &system.url(), &files).await);
}

pub(crate) async fn export_runs_killed_half_way_export_each_key_exactly_once() {
    let mut system = System::start_with(&SHORT_LEASE);
    system.step("publishing 300 reports of 14 keys");
    let codes = system.issue_codes(300).await;
    let acknowledged = publish_until_gone(system.url(), codes, 14, 7, Arc::default()).await;
    assert_eq!(acknowledged.len(), 300 * 14);
    // The server's own batcher must not export them first: stop it; `export --once`
    // processes do the work, killed at random points.
    system.kill_server();
    // The last upload's window has to end and age before it may be exported.
    tokio::time::sleep(EXPORTABLE_AFTER).await;

    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for round in 0..8 {
        let delay = rng.gen_range(0..250);
        system.step(&format!(
            "export --once, SIGKILL after {delay} ms (round {round})"
        ));
        let mut export = system.spawn_export_once();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _ = export.kill();
        let _ = export.wait();
    }
    system.step("a last export --once runs to completion");
    let finished = system
        .spawn_export_once()
        .wait_with_output()
        .expect("export --once");
    assert!(
        finished.status.success(),
        "export --once: {}: {}",
        finished.status,
        String::from_utf8_lossy(&finished.stderr)
    );

    system.step("the restarted server serves every key once");
    system.restart_server();
    let counts = system.wait_for_every_key(&acknowledged).await;
    keys::assert_each_once(&counts);
}
