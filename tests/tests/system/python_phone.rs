//! (c) A phone app on kith-mobile's Python bindings (`tests/python/phone.py`) and a
//! `kith-agent` device meet on the simulated radio — each advertises its own beacons and
//! records the other's — and match through the same kith-server: both test positive
//! and report with a case worker's codes (the phone with the GAEN key server's JSON
//! publish, the agent sealed), and each is notified of the other, of the day they met;
//! a far agent matches the same files and is not.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kith_tests::bins;
use kith_tests::portal::CaseWorker;
use kith_tests::system::{REPLAY_OFFSET, System, agent_day};

const PHONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/phone.py");

/// The Python module generated from the built kith-mobile library, with the library
/// beside it (where the module loads it from).
fn python_bindings(dir: &Path) -> Result<(), String> {
    let library = bins::mobile_library();
    let output = Command::new(bins::uniffi_bindgen())
        .args([
            "generate",
            "--no-format",
            "--language",
            "python",
            "--out-dir",
        ])
        .arg(dir)
        .arg(&library)
        .output()
        .map_err(|e| format!("running uniffi-bindgen: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "uniffi-bindgen: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let name = library.file_name().expect("a file name");
    std::fs::copy(&library, dir.join(name)).map_err(|e| format!("copying the library: {e}"))?;
    Ok(())
}

fn python3_runs() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `python3 phone.py <args>` with the bindings on the path and the agents' clock.
fn phone(bindings: &Path, system: &System, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(PHONE)
        .args(args)
        .args(["--server", &system.url()])
        .arg(format!("--clock-offset-seconds={REPLAY_OFFSET}"))
        .env("PYTHONPATH", bindings)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

pub(crate) async fn a_python_phone_and_an_agent_meet_on_the_radio_and_each_is_notified_of_the_other()
 {
    if !python3_runs() {
        return kith_test_support::skip("python3 not available");
    }
    let mut system = System::start();
    system.step("generating the Python bindings");
    let bindings = system.dir().join("bindings");
    std::fs::create_dir_all(&bindings).expect("a directory for the bindings");
    python_bindings(&bindings).unwrap_or_else(|e| panic!("{e}"));

    system.step("the phone and the device beside it, another far away, on the radio");
    let ether = system.ether();
    let ether = ether.to_str().expect("a UTF-8 path");
    let run = phone(
        &bindings,
        &system,
        &["run", "--position", "1.5,0", "--ether", ether],
    );
    system.add_process("phone", run, true);
    system.add_agent("device", [0.0, 0.0]);
    system.add_agent("far", [400.0, 0.0]);
    system.wait_for_radio().await;
    let met_on = agent_day();

    system.step("they hear each other");
    let sightings = |s: &System| {
        std::fs::read_to_string(s.agent("phone").data_dir.join("sightings"))
            .ok()
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    system
        .wait_until("the phone heard the device", Duration::from_secs(30), |s| {
            sightings(s) >= 3
        })
        .await;
    system.wait_for_sightings(&["device"], 3).await;

    system.step("a case worker issues two codes; the phone and the device report");
    let worker =
        CaseWorker::sign_up_and_log_in(&system.operator_url(), system.admin_key(), "casey").await;
    let (phone_code, device_code) = (worker.issue_code().await, worker.issue_code().await);
    let phone_dir = system.agent("phone").data_dir.clone();
    let output = phone(&bindings, &system, &["report", "--code", &phone_code])
        .arg("--data-dir")
        .arg(&phone_dir)
        .output()
        .expect("running phone.py report");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "phone.py report: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert!(
        report["answer"]["insertedExposures"].as_u64() >= Some(1),
        "{report}"
    );
    system.report("device", &device_code).await;

    system.step("the server cuts the export; each is notified of the other");
    let files = system.wait_for_stored_keys_exported().await;
    system
        .wait_until(
            "the phone and the device notified, the far agent matched every file",
            Duration::from_secs(60),
            |s| {
                ["phone", "device"]
                    .iter()
                    .all(|name| !s.agent(name).notifications().is_empty())
                    && s.agent("far").files_matched() >= files.len()
            },
        )
        .await;
    system.stop_agents();

    system.step("checking the notifications");
    let met_on = [met_on, agent_day()];
    for name in ["phone", "device"] {
        let notifications = system.agent(name).notifications();
        assert_eq!(
            notifications.len(),
            1,
            "{name} is told once: {notifications:?}"
        );
        let (new_exposures, days) = &notifications[0];
        assert!(*new_exposures >= 1, "{name}: {notifications:?}");
        assert!(
            !days.is_empty() && days.iter().all(|day| met_on.contains(day)),
            "{name} exposed on {days:?}, met on {met_on:?}"
        );
    }
    let status = system.status("device").await;
    assert_eq!(status["risk"]["risk_level"], 1, "{status}");
    assert!(
        system.agent("far").notifications().is_empty(),
        "far was notified"
    );
    assert_eq!(
        system.status("far").await["sightings"],
        0,
        "far is out of range"
    );
}
