//! The simulated radio through the CLI: agents that move by their schedule, on an
//! accelerated clock, and the flags' errors.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn agent(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kith-agent"));
    command.args(args);
    command
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "it succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_accelerated_clock_needs_an_origin_and_the_simulated_radio_and_a_bad_stay_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let e = failed(
        &agent(&["status", "--time-scale", "60", "--data-dir", data])
            .output()
            .unwrap(),
    );
    assert!(e.contains("--time-origin"), "{e}");
    let e = failed(
        &agent(&[
            "run",
            "--radio",
            "bluez",
            "--time-scale",
            "60",
            "--time-origin",
            "1",
        ])
        .args(["--data-dir", data])
        .output()
        .unwrap(),
    );
    assert!(e.contains("simulated radio"), "{e}");
    let e = failed(
        &agent(&[
            "run",
            "--radio",
            "sim",
            "--stay",
            "7:30-8=1,1",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap(),
    );
    assert!(
        e.contains("7:30-8=1,1") && e.contains("HH:MM-HH:MM=x,y"),
        "{e}"
    );
}

/// `status --json` of the agent in `data` on the same clock.
fn sightings(data: &Path, clock: &[String]) -> u64 {
    let output = agent(&["status", "--json", "--data-dir", data.to_str().unwrap()])
        .args(clock)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["sightings"].as_u64().unwrap()
}

#[test]
fn agents_hear_each_other_where_their_schedules_bring_them_together_on_a_fast_clock() {
    let dir = tempfile::tempdir().unwrap();
    let ether = dir.path().join("ether");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // 60 times as fast, from 23:00 of the day before yesterday on: in the seconds the
    // test runs, the clock reads 23:00 to 23:05, when the visitor stays beside the host.
    let day = now / 86_400 * 86_400 - 2 * 86_400;
    let clock = vec![
        format!(
            "--clock-offset-seconds={}",
            day as i64 + 23 * 3600 - now as i64
        ),
        "--time-scale=60".to_owned(),
        format!("--time-origin={now}"),
    ];
    let config = dir.path().join("pace.toml");
    // 20 s windows (⅓ s real) every 30 s (½ s real), packets every 50 ms real.
    std::fs::write(
        &config,
        "[scan]\nscan_millis = 20000\nperiod_seconds = { start = 30, end = 30 }\n[sim]\ninterval_millis = 50\n",
    )
    .unwrap();
    let run = |name: &str, position: &str, stays: &[&str]| {
        let mut command = agent(&["run", "--radio", "sim", "--position", position]);
        command
            .arg("--ether")
            .arg(&ether)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join(name))
            .args(&clock);
        for stay in stays {
            command.args(["--stay", stay]);
        }
        command.spawn().unwrap()
    };
    let mut host = run("host", "0,0", &[]);
    // Far away but for five minutes beside the host; another far away all the time.
    let mut visitor = run("visitor", "3000,0", &["23:00-23:05=1.5,0"]);
    let mut stranger = run("stranger", "0,3000", &[]);
    std::thread::sleep(Duration::from_secs(4));
    for child in [&mut host, &mut visitor, &mut stranger] {
        // SIGTERM: they stop cleanly and their stores are theirs again.
        Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap();
    }
    let (host_heard, visitor_heard) = (
        sightings(&dir.path().join("host"), &clock),
        sightings(&dir.path().join("visitor"), &clock),
    );
    assert!(
        host_heard >= 2 && visitor_heard >= 2,
        "host {host_heard}, visitor {visitor_heard}"
    );
    assert_eq!(sightings(&dir.path().join("stranger"), &clock), 0);
}
