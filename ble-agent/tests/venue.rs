//! Venue check-in through the agent's CLI.
//!
//! `kith-agent venue`: the day's QR code in CWA's format (what a visitor's app reads), the
//! same code all day and a new one the next, the SVG file, the device's own check-ins,
//! and the private secret the seeds come from.
//!
//! The whole #18 story against a real kith-server process: a venue screen shows its
//! code, three agents check in with it at overlapping and non-overlapping times, one
//! tests positive and reports with a code from the admin API, the server cuts the
//! trace-warning package, and the agent who was there at the same time is warned with
//! the right time (status, check, the exposure command, the log without the place) and
//! once only; the one who came later is not.

mod common;
#[path = "common/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kith_agent::Agent;
use kith_agent::clock::SystemClock;
use kith_agent::config::Config;
use kith_agent::demo::{SERVER_ARGS, issue_code};
use kith_core::checkin::VenuePayload;
use kith_launch::ServerProcess;
use serde_json::Value;

/// `kith-agent <args> --json` on the data directory `dir` with the clock shifted by
/// `offset` seconds: what it printed, and its log.
fn agent(dir: &Path, offset: i64, args: &[&str]) -> (Value, String) {
    let out = process::run_ok(
        Command::new(env!("CARGO_BIN_EXE_kith-agent"))
            .args(args)
            .arg("--json")
            .arg("--data-dir")
            .arg(dir)
            .args(["--clock-offset-seconds", &offset.to_string()]),
    );
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    (json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `venue --once` for Café Kith with the clock shifted by `offset` seconds.
fn venue(dir: &Path, offset: i64, extra: &[&str]) -> Value {
    let mut args = vec!["venue", "--once", "--description", "Café Kith"];
    args.extend(["--address", "1 Main Street", "--minutes", "90"]);
    args.extend(extra);
    agent(dir, offset, &args).0
}

#[test]
fn the_screen_shows_one_code_a_day_in_cwa_format_and_checks_itself_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("venue");
    let svg = dir.path().join("code.svg");
    let svg_arg = svg.to_str().unwrap();

    let today = venue(&data, 0, &["--svg", svg_arg]);
    let text = today["qr_text"].as_str().unwrap();
    assert!(text.starts_with("https://e.coronawarn.app?v=1#"), "{text}");
    let payload = VenuePayload::from_qr_text(text).unwrap();
    assert_eq!(payload.details().description, "Café Kith");
    assert_eq!(payload.details().address, "1 Main Street");
    assert_eq!(payload.details().default_check_in_minutes, Some(90));

    // The SVG is this code's.
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(drawn, kith_agent::venue::render(&payload).unwrap().1);
    assert!(drawn.contains("<svg"));

    // A restart the same day shows the same code; the next day another.
    assert_eq!(venue(&data, 0, &[])["qr_text"], today["qr_text"]);
    let tomorrow = venue(&data, 86_400, &[]);
    assert_ne!(tomorrow["qr_text"], today["qr_text"]);
    assert_ne!(tomorrow["date"], today["date"]);
    let next = VenuePayload::from_qr_text(tomorrow["qr_text"].as_str().unwrap()).unwrap();
    assert_ne!(next.location_id(), payload.location_id());

    // The device checked itself in to today's code once (the restart found the visit).
    let config = Config {
        data_dir: data.clone(),
        ..Config::default()
    };
    let agent = Agent::open(config, SystemClock::default()).unwrap();
    let visits = agent.check_ins().unwrap();
    assert_eq!(visits.len(), 2, "{visits:?}");
    assert!(
        visits
            .iter()
            .any(|v| v.visit.location_id == *payload.location_id())
    );
    assert!(visits.iter().all(|v| v.visit.description == "Café Kith"));

    let mode = std::fs::metadata(data.join("venue.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_description_that_cwa_would_refuse_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kith-agent"))
        .args(["venue", "--once", "--address", "here", "--description", ""])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("venue:"), "{stderr}");
}

const HOUR: i64 = 3_600;

/// Checks in at `qr` `hours_ago` hours ago: the visit's arrival and departure.
fn check_in(dir: &Path, qr: &str, hours_ago: f64) -> (u64, u64) {
    let (visits, _) = agent(
        dir,
        (-hours_ago * HOUR as f64) as i64,
        &["check-in", "--qr", qr],
    );
    (
        visits[0]["arrival_unix"].as_u64().unwrap(),
        visits[0]["departure_unix"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_who_overlapped_a_positive_one_is_warned_with_the_time_and_the_later_one_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let server =
        ServerProcess::start(&common::server_bin(), &path("server"), &SERVER_ARGS, &[]).unwrap();
    let url = server.url();

    // The venue's screen; its visits last 90 minutes unless checked out.
    let screen = venue(&path("venue"), 0, &[]);
    let qr = screen["qr_text"].as_str().unwrap();

    // Alice from 6 to 5 hours ago (she checks out); Bob from 5½ hours ago for the
    // venue's 90 minutes (he forgets to); Carol 4 hours ago, after Alice left.
    let (alice_in, _) = check_in(&path("alice"), qr, 6.0);
    let (out, _) = agent(&path("alice"), -5 * HOUR, &["check-out"]);
    let alice_out = out[0]["departure_unix"].as_u64().unwrap();
    assert_eq!(out[0]["arrival_unix"].as_u64(), Some(alice_in));
    let (bob_in, bob_out) = check_in(&path("bob"), qr, 5.5);
    assert_eq!(
        bob_out - bob_in,
        5_400,
        "auto check-out after the venue's 90 minutes"
    );
    check_in(&path("carol"), qr, 4.0);

    // Alice's device has been on the air (so it has a key), then she tests positive.
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_kith-agent"))
        .args(["run", "--radio", "sim", "--fast", "--data-dir"])
        .arg(path("alice"))
        .arg("--ether")
        .arg(path("ether"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.kill().await.unwrap();
    let code = issue_code(&server.operator_url(), server.admin_key.as_deref().unwrap())
        .await
        .unwrap();
    let (report, log) = agent(
        &path("alice"),
        0,
        &["report", "--code", &code, "--server", &url],
    );
    assert_eq!(report["check_ins_uploaded"], 1, "{report}");
    assert!(report["keys_uploaded"].as_u64() >= Some(1), "{report}");
    assert!(!log.contains(&code), "the code stays out of the log: {log}");

    // The batcher cuts the package once the upload's 10 s window has ended.
    let index = format!("{url}/v1/trace-warnings/index.txt");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while reqwest::get(&index)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .trim()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trace-warning package within 60 s: {}",
            server.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Alice's one visit went out among padding: the package holds the 280 reports of
    // her upload, as it would for 0 visits or 20 a day.
    let listed = reqwest::get(&index).await.unwrap().text().await.unwrap();
    let zip = reqwest::get(format!("{url}/{}", listed.lines().next().unwrap()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let client = kith_agent::server::ServerClient::new(&url, None).unwrap();
    let keys = client.config().await.unwrap().export_keys();
    let trusted = kith_agent::server::trusted_keys(&keys).unwrap();
    let package =
        kith_core::checkin::TraceWarningFile::parse(&zip, &kith_core::ExportLimits::default())
            .unwrap()
            .verify(&trusted)
            .unwrap()
            .reports()
            .len();
    assert_eq!(package, kith_core::checkin::CHECK_INS_PER_UPLOAD);

    // Bob's sync finds the overlap: from his arrival to the end of the 10-minute
    // interval Alice left in, and runs his exposure command with it.
    let notified = path("bob-notified");
    let config = path("bob.toml");
    std::fs::write(
        &config,
        format!(
            "exposure_command = 'echo \"$KITH_NEW_VENUE_EXPOSURES $KITH_MESSAGE\" > {}'\n",
            notified.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (sync, log) = agent(
        &path("bob"),
        0,
        &["check", "--server", &url, "--config", config],
    );
    assert_eq!(sync["trace_warning_packages_new"], 1, "{sync}");
    let from = bob_in.max(alice_in / 600 * 600);
    let until = bob_out.min(alice_out.div_ceil(600) * 600);
    let warning = &sync["new_venue_exposures"][0];
    assert_eq!(
        sync["new_venue_exposures"].as_array().unwrap().len(),
        1,
        "{sync}"
    );
    assert_eq!(warning["venue"], "Café Kith");
    assert_eq!(warning["address"], "1 Main Street");
    assert_eq!(
        (
            warning["from_unix"].as_u64(),
            warning["until_unix"].as_u64()
        ),
        (Some(from), Some(until)),
        "{warning}"
    );
    let minutes = ((until - from) as f64 / 60.0).round() as u64;
    assert!((30..=40).contains(&minutes), "{minutes}");
    assert_eq!(warning["minutes"].as_u64(), Some(minutes));
    let told = std::fs::read_to_string(&notified).unwrap();
    assert!(
        told.starts_with("1 Possible exposure at Café Kith (1 Main Street)")
            && told.contains(&format!("{minutes} minutes")),
        "{told}"
    );
    assert!(log.contains("venue exposure"), "{log}");
    assert!(
        !log.contains("Café") && !log.contains("Main Street"),
        "the place stays out of the log: {log}"
    );

    // Matched once: the next sync lists the package and fetches nothing.
    let (again, _) = agent(&path("bob"), 0, &["check", "--server", &url]);
    assert_eq!(again["trace_warning_packages_listed"], 1, "{again}");
    assert_eq!(again["trace_warning_packages_new"], 0, "{again}");
    assert_eq!(again["new_venue_exposures"], serde_json::json!([]));
    let (status, _) = agent(&path("bob"), 0, &["status"]);
    assert_eq!(status["venue_exposures"], serde_json::json!([warning]));
    let text = process::run_ok(
        Command::new(env!("CARGO_BIN_EXE_kith-agent"))
            .args(["status", "--data-dir"])
            .arg(path("bob")),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("venue warning: Possible exposure at Café Kith"),
        "{text}"
    );

    // Alice's own visit is in the package, but her device knows it shared it.
    let (sync, _) = agent(&path("alice"), 0, &["check", "--server", &url]);
    assert_eq!(sync["trace_warning_packages_new"], 1, "{sync}");
    assert_eq!(sync["new_venue_exposures"], serde_json::json!([]), "{sync}");
    let (status, _) = agent(&path("alice"), 0, &["status"]);
    assert_eq!(
        (&status["check_ins"], &status["check_ins_shared"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{status}"
    );
    assert_eq!(status["venue_exposures"], serde_json::json!([]), "{status}");

    // Carol came after Alice had left: the same package warns her of nothing.
    let (sync, _) = agent(&path("carol"), 0, &["check", "--server", &url]);
    assert_eq!(sync["trace_warning_packages_new"], 1, "{sync}");
    assert_eq!(sync["new_venue_exposures"], serde_json::json!([]));
    let (status, _) = agent(&path("carol"), 0, &["status"]);
    assert_eq!(status["venue_exposures"], serde_json::json!([]));
    assert_eq!(status["check_ins"], 1);
}
