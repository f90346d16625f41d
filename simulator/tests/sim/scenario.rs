//! Scenario files: the documented defaults are the code's defaults; bad files are explained.

use std::path::Path;

use kith_sim::Scenario;

fn scenario_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn default_toml_is_the_default_scenario() {
    let file = Scenario::from_file(&scenario_file("default.toml")).unwrap();
    assert_eq!(file, Scenario::default());
}

#[test]
fn shipped_scenarios_parse() {
    for name in ["benchmark.toml", "manual-tracing.toml"] {
        let s = Scenario::from_file(&scenario_file(name)).unwrap();
        assert_ne!(s.name, "default", "{name}");
    }
}

#[test]
fn files_may_give_a_subset_and_set_overrides() {
    let mut s = Scenario::from_toml("population = 500\n[app]\nuptake = 0.3\n").unwrap();
    assert_eq!(
        (s.population, s.app.uptake, s.days),
        (500, 0.3, Scenario::default().days)
    );
    s.set("ble.scan_interval_seconds=[200, 250]").unwrap();
    s.set("app.risk_config=apple").unwrap();
    assert_eq!(s.ble.scan_interval_seconds, [200, 250]);
    assert_eq!(s.app.risk_config, "apple");
}

#[test]
fn malformed_scenarios_say_what_is_wrong() {
    let err = Scenario::from_toml("populaton = 5")
        .unwrap_err()
        .to_string();
    assert!(err.contains("populaton"), "{err}");
    let err = Scenario::from_toml("[disease]\nr0 = -1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("disease.r0"), "{err}");
    let err = Scenario::from_toml("[ble]\nscan_interval_seconds = [300, 200]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("scan_interval_seconds"), "{err}");
    let err = Scenario::from_toml("days = \"ten\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("days"), "{err}");
}
