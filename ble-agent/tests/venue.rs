//! `kith-agent venue` through the CLI: the day's QR code in CWA's format (what a visitor's
//! app reads), the same code all day and a new one the next, the SVG file, the device's
//! own check-ins, and the private secret the seeds come from.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kith_agent::Agent;
use kith_agent::clock::SystemClock;
use kith_agent::config::Config;
use kith_core::checkin::VenuePayload;

/// Runs `venue --once --json` with the clock shifted by `offset` seconds.
fn venue(dir: &Path, offset: i64, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kith-agent"))
        .args(["venue", "--once", "--json", "--description", "Café Kith"])
        .args([
            "--address",
            "1 Main Street",
            "--minutes",
            "90",
            "--data-dir",
        ])
        .arg(dir)
        .args(["--clock-offset-seconds", &offset.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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
