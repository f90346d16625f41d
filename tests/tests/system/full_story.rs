//! (a) The whole story across processes: a case worker logs in to the portal and issues a
//! code, Alice's agent reports with it, the server cuts its export, the agents near her
//! are notified of the day they met and the far ones are not, though they match the same
//! files.

use std::time::Duration;

use kith_tests::portal::CaseWorker;
use kith_tests::system::{System, agent_day};

const NEAR: [&str; 2] = ["bob", "dave"];
const FAR: [&str; 2] = ["carol", "erin"];
/// Everyone who must match the files without being notified: the far agents and Alice,
/// whose own keys they are.
const NOT_NOTIFIED: [&str; 3] = ["carol", "erin", "alice"];

pub(crate) async fn a_portal_code_notifies_the_near_agents_of_the_day_they_met_and_not_the_far_ones()
 {
    let mut system = System::start();
    system.step("starting five agents on the simulated radio");
    // At the demo's pace (`--fast`: 2-second scans every 4–6 s, a sync every 10 s), not the
    // harness's quicker one: the minute's alert needs scans spread over time (GAEN counts
    // whole minutes between scans), and with 1-second scans for a few seconds Bob once
    // stayed under it (see the kith-tests README).
    let fast = ["--fast".to_owned()];
    for (name, position) in [
        ("alice", [0.0, 0.0]),
        ("bob", [1.5, 0.0]),
        ("dave", [0.0, -2.0]),
        ("carol", [300.0, 0.0]),
        ("erin", [-250.0, 400.0]),
    ] {
        system.add_agent_with(name, position, &fast);
    }
    system.wait_for_radio().await;
    let listening_day = agent_day();

    system.step("the agents hear each other");
    // Two scans each: Bob hears Alice and Dave, Dave hears Alice and Bob.
    system.wait_for_sightings(&NEAR, 4).await;
    tokio::time::sleep(Duration::from_secs(10)).await;

    system.step("a case worker logs in to the portal and issues a code");
    let worker =
        CaseWorker::sign_up_and_log_in(&system.operator_url(), system.admin_key(), "casey").await;
    let code = worker.issue_code().await;

    system.step("alice reports with the code");
    system.report("alice", &code).await;

    system.step("the server cuts the export");
    let files = system.wait_for_exports(1, Duration::from_secs(60)).await;
    // Whichever day it was while they listened (a test may straddle midnight).
    let met_on = [listening_day, agent_day()];

    system.step("bob and dave are notified");
    system
        .wait_until("bob and dave notified", Duration::from_secs(60), |s| {
            NEAR.iter()
                .all(|name| !s.agent(name).notifications().is_empty())
        })
        .await;

    system.step("carol, erin and alice match the same files");
    system
        .wait_until(
            "carol, erin and alice matched every file",
            Duration::from_secs(30),
            |s| {
                NOT_NOTIFIED
                    .iter()
                    .all(|name| s.agent(name).files_matched() >= files.len())
            },
        )
        .await;
    system.stop_agents();

    system.step("checking each agent's notifications and status");
    for name in NEAR {
        let notifications = system.agent(name).notifications();
        assert_eq!(
            notifications.len(),
            1,
            "{name} is told once: {notifications:?}"
        );
        let (new_exposures, days) = &notifications[0];
        assert!(*new_exposures > 0, "{name}: {notifications:?}");
        assert!(
            !days.is_empty() && days.iter().all(|day| met_on.contains(day)),
            "{name} exposed on {days:?}, met on {met_on:?}"
        );
        let status = system.status(name).await;
        assert_eq!(status["risk"]["risk_level"], 1, "{name}: {status}");
        assert_eq!(
            status["risk"]["days"],
            serde_json::json!(days),
            "{name}: {status}"
        );
        assert_eq!(
            system.agent(name).files_matched(),
            files.len(),
            "{name} matched each file once"
        );
    }
    for name in NOT_NOTIFIED {
        assert!(
            system.agent(name).notifications().is_empty(),
            "{name} was notified"
        );
        let status = system.status(name).await;
        assert_eq!(status["risk"]["exposure_windows"], 0, "{name}: {status}");
        assert_eq!(
            status["risk"]["risk_level"],
            serde_json::Value::Null,
            "{name}: {status}"
        );
        assert_eq!(
            system.agent(name).files_matched(),
            files.len(),
            "{name} matched each file once"
        );
    }
    for name in FAR {
        assert_eq!(
            system.status(name).await["sightings"],
            0,
            "{name} is out of range"
        );
    }
}
