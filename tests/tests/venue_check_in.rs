//! (d) Venue check-in across processes: a `kith-agent venue` screen shows the place's
//! code, three agents check in with it through their CLI — Alice and Bob at overlapping
//! times, Carol after Alice left — Alice reports with a code, the server cuts the
//! trace-warning package, and Bob's running agent warns him with the time they were
//! there together; Carol's is not warned, though it matches the same package. They stand a kilometre apart, so Bluetooth plays no part.

use std::time::Duration;

use kith_tests::system::System;
use serde_json::Value;

const HOUR: i64 = 3_600;
const INTERVAL: u64 = 600;

/// `kith-agent check-in` (or `check-out`) of `name`, `hours_ago` before the agents'
/// now: the visit's arrival and departure, Unix seconds.
async fn visit(system: &System, name: &str, hours_ago: f64, args: &[&str]) -> (u64, u64) {
    let shift = (-hours_ago * HOUR as f64) as i64;
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let text = system.agent_command_at(name, shift, &args).await;
    let visits: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let unix = |field: &str| {
        visits[0][field]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: no {field} in {visits}"))
    };
    (unix("arrival_unix"), unix("departure_unix"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_who_overlapped_a_positive_one_is_warned_with_the_time_and_the_later_one_not() {
    let mut system = System::start();
    system.step("the venue's screen shows its code");
    let qr = system
        .add_venue(
            "cafe",
            &[
                "--description",
                "Café Kith",
                "--address",
                "1 Main Street",
                "--minutes",
                "90",
            ],
        )
        .await;

    system.step("three agents on the air, a kilometre apart");
    system.add_agent("alice", [0.0, 0.0]);
    system.add_agent("bob", [1000.0, 0.0]);
    system.add_agent("carol", [0.0, 1000.0]);
    system.wait_for_radio().await;

    // Alice from 3 to 2 hours ago (she checks out); Bob from 2½ hours ago for the
    // venue's 90 minutes (he forgets to); Carol 1½ hours ago, after Alice left.
    system.step("alice checks in 3 hours ago and out 2 hours ago");
    let check_in = ["check-in", "--qr", qr.as_str()];
    let (alice_in, _) = visit(&system, "alice", 3.0, &check_in).await;
    let (left_in, alice_out) = visit(&system, "alice", 2.0, &["check-out"]).await;
    assert_eq!(left_in, alice_in, "the visit checked out is hers");
    system.step("bob checks in 2½ hours ago, carol 1½ hours ago");
    let (bob_in, bob_out) = visit(&system, "bob", 2.5, &check_in).await;
    assert_eq!(bob_out - bob_in, 90 * 60, "the venue's 90 minutes");
    visit(&system, "carol", 1.5, &check_in).await;

    system.step("alice reports with a code, keys and visit");
    let code = system.issue_codes(1).await.remove(0);
    let report: Value = serde_json::from_str(
        &system
            .agent_command("alice", &["report", "--code", &code, "--json"])
            .await,
    )
    .expect("report --json");
    assert_eq!(report["check_ins_uploaded"], 1, "{report}");

    system.step("the server cuts the trace-warning package");
    let packages = system
        .wait_for_trace_warnings(1, Duration::from_secs(60))
        .await;

    system.step("bob's agent warns him; alice's and carol's match the package too");
    system
        .wait_until(
            "every agent matched the package, bob warned",
            Duration::from_secs(60),
            |s| {
                !s.agent("bob").messages().is_empty()
                    && ["alice", "bob", "carol"]
                        .iter()
                        .all(|name| s.agent(name).packages_matched() >= packages.len())
            },
        )
        .await;
    system.stop_agents();

    system.step("checking each agent's warnings");
    // From Bob's arrival to the end of the 10-minute interval Alice left in.
    let from = bob_in.max(alice_in / INTERVAL * INTERVAL);
    let until = bob_out.min(alice_out.div_ceil(INTERVAL) * INTERVAL);
    let minutes = ((until - from) as f64 / 60.0).round() as u64;
    let status = system.status("bob").await;
    let warnings = status["venue_exposures"].as_array().expect("a list");
    assert_eq!(warnings.len(), 1, "bob is warned once: {status}");
    let warning = &warnings[0];
    assert_eq!(warning["venue"], "Café Kith", "{warning}");
    assert_eq!(warning["address"], "1 Main Street", "{warning}");
    assert_eq!(
        (
            warning["from_unix"].as_u64(),
            warning["until_unix"].as_u64()
        ),
        (Some(from), Some(until)),
        "bob was there with alice from {from} until {until}: {warning}"
    );
    assert!((30..=40).contains(&minutes), "{minutes} minutes together");
    assert_eq!(warning["minutes"].as_u64(), Some(minutes), "{warning}");
    let messages = system.agent("bob").messages();
    assert_eq!(
        messages.len(),
        1,
        "bob's exposure command ran once: {messages:?}"
    );
    let (count, message) = &messages[0];
    assert_eq!(*count, 1, "{message}");
    assert!(
        message.starts_with("Possible exposure at Café Kith (1 Main Street): ")
            && message.contains(&format!("{minutes} minutes")),
        "{message}"
    );
    // Alice's own report is in the package, but her agent knows it shared that visit.
    for name in ["alice", "carol"] {
        let status = system.status(name).await;
        assert_eq!(
            status["venue_exposures"],
            serde_json::json!([]),
            "{name}: {status}"
        );
        assert_eq!(status["check_ins"], 1, "{name}: {status}");
        let shared = u64::from(name == "alice");
        assert_eq!(status["check_ins_shared"], shared, "{name}: {status}");
        assert!(system.agent(name).messages().is_empty(), "{name} was told");
    }
    for name in ["alice", "bob", "carol"] {
        assert!(
            system
                .agent(name)
                .notifications()
                .iter()
                .all(|(new, _)| *new == 0),
            "{name}: no Bluetooth exposure a kilometre apart"
        );
        assert_eq!(
            system.agent(name).packages_matched(),
            packages.len(),
            "{name} matched each package once"
        );
    }
}
