//! The `kith-sim` command as a researcher runs it: files, plots, summary, sweeps, errors.

use std::path::Path;
use std::process::Command;

fn kith_sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kith-sim"))
        .args(args)
        .output()
        .expect("kith-sim runs")
}

/// Runs `kith-sim` with `args` on the small scenario ([`SMALL`]), which must succeed;
/// returns what it printed.
fn kith_sim_small(args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(SMALL);
    let result = kith_sim(&args);
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout
}

const SMALL: [&str; 8] = [
    "--set",
    "population=1500",
    "--set",
    "days=15",
    "--set",
    "initial_infections=30",
    "--seeds",
    "2",
];

#[test]
fn a_run_writes_tables_plots_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let stdout = kith_sim_small(&["run", "--quiet", "--out", out.to_str().unwrap()]);
    assert!(stdout.contains("infections without the app"), "{stdout}");
    assert!(stdout.contains("precision"), "{stdout}");

    let daily = std::fs::read_to_string(out.join("daily_with_app.csv")).unwrap();
    let header: Vec<&str> = daily.lines().next().unwrap().split(',').collect();
    for column in [
        "day",
        "n_susceptible",
        "n_infectious",
        "new_infections",
        "cum_infections",
        "new_tests",
        "new_notifications",
        "new_notified_true_immediate",
        "new_notified_false_other",
        "n_quarantined",
        "n_isolated",
        "r_eff",
    ] {
        assert!(header.contains(&column), "no column {column}");
    }
    assert_eq!(daily.lines().count(), 16, "a header and 15 days");
    let individuals = std::fs::read_to_string(out.join("individuals_with_app.csv")).unwrap();
    assert_r_eff_is_by_infection_date(&daily, &individuals);
    for file in [
        "daily_without_app.csv",
        "daily_with_app_seed2.csv",
        "individuals_with_app.csv",
        "transmissions_with_app.csv",
        "individuals_without_app.csv",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    assert_eq!(individuals.lines().count(), 1501);
    let transmissions = std::fs::read_to_string(out.join("transmissions_with_app.csv")).unwrap();
    assert!(transmissions.starts_with("ID_source,ID_recipient,network,"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 4);
    assert_eq!(summary["scenario"]["population"], 1500);
    let run = &summary["runs"][0];
    assert_eq!(run["r_eff"].as_array().unwrap().len(), 15);
    assert_eq!(run["r_eff_seeds"], run["r_eff"][0]);
    assert!(summary["configs"].as_array().unwrap().len() >= 2);
    for plot in [
        "epidemic.svg",
        "notifications_per_index.svg",
        "precision_recall.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline") || svg.contains("<rect"),
            "{plot}"
        );
    }
}

/// Each day's `r_eff` is the mean `infection_count` of the people whose
/// `time_infected` is that day, as the individuals file tells.
fn assert_r_eff_is_by_infection_date(daily: &str, individuals: &str) {
    let column = |header: &str, name: &str| header.split(',').position(|c| c == name).unwrap();
    let header = individuals.lines().next().unwrap();
    let (infected, caused) = (
        column(header, "time_infected"),
        column(header, "infection_count"),
    );
    let mut by_day = [(0u32, 0u32); 15];
    for line in individuals.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if let Ok(day) = fields[infected].parse::<usize>() {
            by_day[day].0 += 1;
            by_day[day].1 += fields[caused].parse::<u32>().unwrap();
        }
    }
    let r = column(daily.lines().next().unwrap(), "r_eff");
    let mut days_with_infections = 0;
    for (day, line) in daily.lines().skip(1).enumerate() {
        let value = line.split(',').nth(r).unwrap();
        let (people, infections) = by_day[day];
        if people == 0 {
            assert_eq!(value, "NaN", "day {day}");
        } else {
            days_with_infections += 1;
            let expected = f64::from(infections) / f64::from(people);
            let got: f64 = value.parse().unwrap();
            assert!(
                (got - expected).abs() < 1e-12,
                "day {day}: {got} ≠ {expected}"
            );
        }
    }
    assert!(days_with_infections >= 5, "{days_with_infections} days");
    assert!(by_day[0].1 > 0, "the seeds infected nobody");
}

#[test]
fn a_sweep_runs_every_value_and_draws_one_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    kith_sim_small(&[
        "sweep",
        "--param",
        "app.uptake",
        "--values",
        "0,0.5,0.9",
        "--quiet",
        "--no-individuals",
        "--out",
        out.to_str().unwrap(),
    ]);
    let sweep = out.join("sweep-app.uptake");
    let csv = std::fs::read_to_string(sweep.join("sweep.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 3 * 2 * 2,
        "header + values × seeds × arms"
    );
    assert!(
        std::fs::read_to_string(sweep.join("sweep.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    assert!(Path::new(&sweep.join("0.5").join("epidemic.svg")).exists());
}

#[test]
fn bad_parameters_are_explained() {
    for (set, message) in [
        ("app.uptake=2", "app.uptake must be within 0..=1"),
        ("app.nonsense=1", "no parameter `app.nonsense`"),
        ("population=many", "population"),
        (
            "app.risk_config=threshold:loud",
            "threshold must be 0..=255 dB",
        ),
    ] {
        let result = kith_sim(&[
            "run",
            "--quiet",
            "--set",
            set,
            "--set",
            "population=200",
            "--set",
            "days=2",
        ]);
        assert!(!result.status.success(), "{set} accepted");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.contains(message), "{set}: {stderr}");
    }
    let result = kith_sim(&["run", "--scenario", "/no/such/scenario.toml"]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("/no/such/scenario.toml"));
}

/// The pandas example loads a run's files (pandas comes from the test command's installs).
#[test]
fn the_pandas_example_reads_the_outputs() {
    let has_pandas = Command::new("python3")
        .args(["-c", "import pandas"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pandas {
        return kith_test_support::skip("python3 with pandas not found (pip install pandas)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    kith_sim_small(&[
        "run",
        "--quiet",
        "--no-plots",
        "--out",
        out.to_str().unwrap(),
    ]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/analyse.py");
    let result = Command::new("python3")
        .arg(example)
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(stdout.contains("infections averted by the app"), "{stdout}");
    assert!(stdout.contains("precision"), "{stdout}");
}

/// Runs score with the health authorities' own files: Corona-Warn-App's YAML (its three
/// published files as `---` documents) as the primary model, Canada's COVID Alert
/// (GAEN v1) evaluated beside it.
#[test]
fn published_cwa_and_gaen_v1_models_score_a_run() {
    let files = [
        "configs/cwa_exposure-configuration.yaml",
        "configs/cwa_risk-calculation-parameters.yaml",
        "configs/cwa_transmission-risk-encoding.yaml",
        "configs/canada_covidalert_v1_config_1.2.6.json.txt",
    ];
    let Some(paths) = files
        .iter()
        .map(|f| kith_test_support::shared_gaen(f))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cwa = dir.path().join("cwa.yaml");
    let documents: Vec<String> = paths[..3]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    std::fs::write(&cwa, documents.join("\n---\n")).unwrap();
    // The shared copy's first line is a note on its origin; the file is the rest.
    let covid_alert = dir.path().join("covidalert-v1.json");
    let v1 = std::fs::read_to_string(&paths[3]).unwrap();
    let json: String = v1.lines().filter(|l| !l.starts_with("//")).collect();
    std::fs::write(&covid_alert, json).unwrap();
    let out = dir.path().join("run");
    let primary = format!("app.risk_config={}", cwa.display());
    let evaluated = format!("app.evaluate=[\"{}\", \"enx\"]", covid_alert.display());
    kith_sim_small(&[
        "run",
        "--quiet",
        "--no-plots",
        "--no-baseline",
        "--no-individuals",
        "--out",
        out.to_str().unwrap(),
        "--set",
        &primary,
        "--set",
        &evaluated,
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let configs = summary["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 3, "{configs:?}");
    assert!(configs[0]["config"].as_str().unwrap().ends_with("cwa.yaml"));
    assert!(
        configs[1]["config"]
            .as_str()
            .unwrap()
            .contains("covidalert")
    );
    // Under ENX's 15-minute alert, someone was notified: the run had exposures to score.
    assert!(configs[2]["notified"].as_u64().unwrap() > 0, "{configs:?}");
}

/// A stand-in for an OpenABM-Covid19 checkout in `dir`: a parameter file with the
/// columns `bench` sets, and a `src/covid19ibm.exe` that prints one daily line whose
/// total infected (7th field) is the `n_total` it was given.
fn fake_openabm(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut columns: Vec<String> = ["rng_seed", "n_total", "end_time", "n_seed_infection"]
        .map(String::from)
        .into();
    for age in [
        "0_9", "10_19", "20_29", "30_39", "40_49", "50_59", "60_69", "70_79", "80",
    ] {
        columns.push(format!("population_{age}"));
        columns.push(format!("app_users_fraction_{age}"));
    }
    columns.extend(
        [
            "test_on_symptoms",
            "trace_on_positive",
            "quarantine_on_traced",
            "app_turn_on_time",
            "intervention_start_time",
        ]
        .map(String::from),
    );
    let row = vec!["1"; columns.len()].join(",");
    std::fs::create_dir_all(dir.join("tests/data")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("tests/data/baseline_parameters.csv"),
        format!("{}\n{row}\n", columns.join(",")),
    )
    .unwrap();
    let exe = dir.join("src/covid19ibm.exe");
    std::fs::write(
        &exe,
        "#!/bin/sh\nawk -F, 'NR==1{for(i=1;i<=NF;i++) if($i==\"n_total\") c=i} \
         NR==2{print \"1,0,0,0,0,0,\" $c}' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn bench_measures_itself_beside_each_openabm_build() {
    let dir = tempfile::tempdir().unwrap();
    let (o0, o3) = (dir.path().join("openabm-O0"), dir.path().join("openabm-O3"));
    fake_openabm(&o0);
    fake_openabm(&o3);
    let result = kith_sim(&[
        "bench",
        "--population",
        "3000",
        "--days",
        "5",
        "--openabm",
        o0.to_str().unwrap(),
        "--openabm",
        o3.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let ours = row("kith-sim ");
    assert_eq!(ours[1..3], ["3000", "5"], "{stdout}");
    for build in ["openabm-O0", "openabm-O3"] {
        let peer = row(&format!("OpenABM-Covid19 ({build})"));
        // Same population and days; the stand-in reports the population it was given.
        assert_eq!(peer[2..4], ["3000", "5"], "{stdout}");
        assert_eq!(peer.last(), Some(&"3000"), "{stdout}");
    }

    // A checkout without its build is named in a clear error.
    let empty = dir.path().join("not-built");
    std::fs::create_dir_all(&empty).unwrap();
    let result = kith_sim(&[
        "bench",
        "--population",
        "3000",
        "--days",
        "2",
        "--openabm",
        empty.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("not-built"), "{stderr}");
}
