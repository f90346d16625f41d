//! The whole story with real processes: a kith-server (its binary, ephemeral ports, a
//! temp data directory) and three `kith-agent run --radio sim` processes — Alice and
//! Bob 1.5 m apart, Carol 300 m away — exactly as `kith-agent demo` plays it. Alice
//! reports with a code from the admin API, the server's batcher exports her keys, Bob's
//! sync finds the exposure on the day they met with a score and runs his exposure
//! command; Carol and Alice find none.

mod common;

use kith_agent::clock::{Clock, SystemClock};
use kith_agent::demo::{self, DemoArgs, REPLAY_OFFSET};

/// The agents' day (they replay yesterday).
fn agent_day() -> String {
    SystemClock::shifted(REPLAY_OFFSET).now().day().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_agent_is_notified_of_the_day_they_met_and_the_far_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let first_day = agent_day();
    let outcome = demo::play(&DemoArgs {
        server_bin: Some(common::server_bin()),
        agent_bin: Some(env!("CARGO_BIN_EXE_kith-agent").into()),
        listen_seconds: 8,
        dir: Some(dir.path().to_owned()),
    })
    .await
    .unwrap();
    let days = [first_day, agent_day()];
    let status = |name: &str| {
        &outcome
            .people
            .iter()
            .find(|(person, _)| *person == name)
            .unwrap()
            .1
    };

    let bob = status("bob");
    assert!(outcome.bob_notified, "bob's exposure command ran: {bob:?}");
    assert!(bob.sightings > 0);
    assert!(bob.risk.exposure_windows > 0, "{bob:?}");
    assert_eq!(bob.risk.risk_level, Some(1), "{bob:?}");
    assert!(!bob.risk.days.is_empty());
    assert!(
        bob.risk.days.iter().all(|day| days.contains(day)),
        "exposed on {:?}, met on {days:?}",
        bob.risk.days
    );
    let (day, score) = &bob.risk.daily_scores[0];
    assert!(days.contains(day), "{day}");
    assert!(*score >= 60.0, "a minute together at least: {score}");
    // The last sync came after the one that found the file: it lists it, fetches nothing.
    let sync = bob.last_sync.as_ref().unwrap();
    assert!(
        sync.files_listed >= 1 && sync.files_failed.is_empty(),
        "{sync:?}"
    );

    let carol = status("carol");
    assert_eq!(carol.sightings, 0, "300 m is out of range");
    assert_eq!(carol.risk.exposure_windows, 0);
    assert_eq!(carol.risk.risk_level, None);
    assert!(
        carol
            .last_sync
            .as_ref()
            .is_some_and(|s| s.files_listed >= 1),
        "carol synced the same files: {carol:?}"
    );
    assert!(!dir.path().join("carol/notified").exists());

    // Alice heard Bob, but Bob did not report.
    let alice = status("alice");
    assert!(alice.sightings > 0);
    assert_eq!(alice.risk.exposure_windows, 0);
    assert!(!dir.path().join("alice/notified").exists());
}
