//! The benchmark's peers: the simulators researchers use, run on the same machine
//! with the same population, days and seeded infections as kith-sim, each as a
//! child process measured by the kernel (wall time, CPU time, peak resident memory).
//!
//! - OpenABM-Covid19 (C; built from its repository with `make` in `src/`) gets its
//!   `baseline_parameters.csv` with the population, days, seeds and an app uptake
//!   changed, and digital tracing, testing on symptoms and quarantine of traced
//!   contacts switched on (its app is abstract: a traced contact is a contact
//!   between two app users);
//! - Covasim (Python, `pip install covasim`) runs a hybrid population with testing
//!   of symptomatic people and contact tracing at the same uptake.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};

/// What one simulator's run cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The simulator.
    pub name: String,
    /// Agents.
    pub population: u32,
    /// Days.
    pub days: u32,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident memory (MiB).
    pub peak_mib: f64,
    /// Infections by the end, as the simulator reports them.
    pub infections: Option<u64>,
}

impl Measurement {
    /// Agent·days per wall-clock second.
    pub fn agent_days_per_second(&self) -> f64 {
        self.agent_days() / self.wall_seconds.max(1e-9)
    }

    /// Agent·days per CPU second.
    pub fn agent_days_per_cpu_second(&self) -> f64 {
        self.agent_days() / self.cpu_seconds.max(1e-9)
    }

    fn agent_days(&self) -> f64 {
        f64::from(self.population) * f64::from(self.days)
    }

    /// The header of [`Measurement::row`].
    pub fn header() -> String {
        format!(
            "{:<16} {:>9} {:>5} {:>8} {:>8} {:>13} {:>13} {:>9} {:>10}",
            "simulator",
            "agents",
            "days",
            "wall s",
            "CPU s",
            "agent·days/s",
            "… per CPU-s",
            "peak MiB",
            "infections"
        )
    }

    /// One line of the comparison table.
    pub fn row(&self) -> String {
        format!(
            "{:<16} {:>9} {:>5} {:>8.1} {:>8.1} {:>13.0} {:>13.0} {:>9.0} {:>10}",
            self.name,
            self.population,
            self.days,
            self.wall_seconds,
            self.cpu_seconds,
            self.agent_days_per_second(),
            self.agent_days_per_cpu_second(),
            self.peak_mib,
            self.infections.map_or("?".into(), |n| n.to_string())
        )
    }
}

/// CPU seconds (user + system) and peak resident memory (MiB) of this process
/// (`UsageWho::RUSAGE_SELF`) or of its reaped children (`RUSAGE_CHILDREN`: the CPU
/// time of all, the peak of the largest).
pub fn rusage(who: UsageWho) -> (f64, f64) {
    let Ok(usage) = getrusage(who) else {
        return (f64::NAN, f64::NAN);
    };
    let seconds = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (
        seconds(usage.user_time()) + seconds(usage.system_time()),
        usage.max_rss() as f64 / 1024.0,
    )
}

/// The line `kith-sim measure` ends its output with.
const MEASURED: &str = "kith-sim measure:";

/// What `kith-sim measure -- <command>` does: runs the command (its only child, so
/// the kernel's figures for its children are the command's own), passes its output
/// through, and ends with a line of CPU seconds and peak MiB. Returns its exit code.
pub fn measure_child(command: &[String]) -> Result<i32> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Error::Scenario("`measure` needs a command".into()))?;
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| Error::Scenario(format!("cannot start {program}: {e}")))?;
    let (cpu, peak) = rusage(UsageWho::RUSAGE_CHILDREN);
    println!("{MEASURED} {cpu} {peak}");
    Ok(status.code().unwrap_or(1))
}

/// Runs `command` to its end under `kith-sim measure` (this executable); returns its
/// wall-clock seconds, CPU seconds, peak MiB and standard output.
fn measure(command: &Command, what: &str) -> Result<(f64, f64, f64, String)> {
    let me = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let mut wrapped = Command::new(me);
    wrapped
        .arg("measure")
        .arg("--")
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let started = Instant::now();
    let output = wrapped
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| Error::Scenario(format!("cannot start {what}: {e}")))?;
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(Error::Scenario(format!(
            "{what} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let (body, last) = stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", stdout.trim_end()));
    let figures: Vec<f64> = last
        .strip_prefix(MEASURED)
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [cpu, peak] = figures[..] else {
        return Err(Error::Scenario(format!(
            "{what}: no measurement in its output"
        )));
    };
    Ok((wall, cpu, peak, body.to_string()))
}

/// The common settings of a peer run.
#[derive(Clone, Debug)]
pub struct PeerRun {
    /// Agents.
    pub population: u32,
    /// Days.
    pub days: u32,
    /// Infected on day 0.
    pub initial_infections: u32,
    /// Share of people running the app.
    pub uptake: f64,
    /// Seed.
    pub seed: u64,
}

/// OpenABM's parameter file for `run`: its `baseline_parameters.csv` (header and
/// first row) with the run's settings, the app's uptake by age scaled to `uptake`
/// (over the file's age distribution), and digital tracing switched on.
pub fn openabm_parameters(baseline: &str, run: &PeerRun) -> Result<String> {
    let bad = |what: String| Error::Scenario(format!("OpenABM parameters: {what}"));
    let mut lines = baseline.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| bad("empty file".into()))?
        .split(',')
        .collect();
    let mut values: Vec<String> = lines
        .next()
        .ok_or_else(|| bad("no parameter row".into()))?
        .split(',')
        .map(str::to_string)
        .collect();
    if values.len() != header.len() {
        return Err(bad("the first row does not match the header".into()));
    }
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| bad(format!("no column `{name}`")))
    };
    let number = |values: &[String], name: &str| -> Result<f64> {
        values[column(name)?]
            .parse()
            .map_err(|_| bad(format!("`{name}` is not a number")))
    };
    const AGES: [&str; 9] = [
        "0_9", "10_19", "20_29", "30_39", "40_49", "50_59", "60_69", "70_79", "80",
    ];
    let mut people = 0.0;
    let mut users = 0.0;
    for age in AGES {
        let share = number(&values, &format!("population_{age}"))?;
        people += share;
        users += share * number(&values, &format!("app_users_fraction_{age}"))?;
    }
    let scale = if users > 0.0 {
        run.uptake * people / users
    } else {
        0.0
    };
    for age in AGES {
        let name = format!("app_users_fraction_{age}");
        let fraction = number(&values, &name)?;
        values[column(&name)?] = format!("{:.4}", (fraction * scale).min(1.0));
    }
    let mut set = |name: &str, value: String| -> Result<()> {
        values[column(name)?] = value;
        Ok(())
    };
    set("rng_seed", run.seed.to_string())?;
    set("n_total", run.population.to_string())?;
    set("end_time", run.days.to_string())?;
    set("n_seed_infection", run.initial_infections.to_string())?;
    for name in [
        "test_on_symptoms",
        "trace_on_positive",
        "quarantine_on_traced",
    ] {
        set(name, "1".into())?;
    }
    for name in ["app_turn_on_time", "intervention_start_time"] {
        set(name, "0".into())?;
    }
    Ok(format!("{}\n{}\n", header.join(","), values.join(",")))
}

/// Runs OpenABM-Covid19 from its checkout `dir` (with `src/covid19ibm.exe` built);
/// `scratch` holds its parameter file.
pub fn run_openabm(dir: &Path, scratch: &Path, run: &PeerRun) -> Result<Measurement> {
    let baseline_path = dir.join("tests/data/baseline_parameters.csv");
    let baseline =
        std::fs::read_to_string(&baseline_path).map_err(|e| Error::io(&baseline_path, e))?;
    let params = scratch.join("openabm-parameters.csv");
    std::fs::write(&params, openabm_parameters(&baseline, run)?)
        .map_err(|e| Error::io(&params, e))?;
    let exe = dir.join("src/covid19ibm.exe");
    let mut command = Command::new(&exe);
    command.arg(&params).arg("1").current_dir(dir.join("src"));
    let (wall, cpu, peak, stdout) = measure(&command, &exe.display().to_string())?;
    // Its daily lines: time, 5 flags, total_infected, …
    let infections = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|l| l.split(',').nth(6))
        .and_then(|v| v.trim().parse().ok());
    Ok(Measurement {
        name: "OpenABM-Covid19".into(),
        population: run.population,
        days: run.days,
        wall_seconds: wall,
        cpu_seconds: cpu,
        peak_mib: peak,
        infections,
    })
}

/// The Covasim script of `run`; it prints the cumulative infections.
pub fn covasim_script(run: &PeerRun) -> String {
    format!(
        "import covasim as cv\n\
         sim = cv.Sim(pop_size={pop}, n_days={days}, pop_type='hybrid', pop_infected={seeds},\n\
         \x20            rand_seed={seed}, verbose=0,\n\
         \x20            interventions=[cv.test_prob(symp_prob={uptake}, start_day=0),\n\
         \x20                           cv.contact_tracing(trace_probs={uptake}, trace_time=0, start_day=0)])\n\
         sim.run()\n\
         print(int(sim.results['cum_infections'][-1]))\n",
        pop = run.population,
        days = run.days,
        seeds = run.initial_infections,
        seed = run.seed,
        uptake = run.uptake,
    )
}

/// Runs Covasim with `python`; `scratch` holds its script.
pub fn run_covasim(python: &Path, scratch: &Path, run: &PeerRun) -> Result<Measurement> {
    let script: PathBuf = scratch.join("covasim-bench.py");
    std::fs::write(&script, covasim_script(run)).map_err(|e| Error::io(&script, e))?;
    let mut command = Command::new(python);
    command.arg(&script);
    let (wall, cpu, peak, stdout) = measure(&command, "Covasim")?;
    Ok(Measurement {
        name: "Covasim".into(),
        population: run.population,
        days: run.days,
        wall_seconds: wall,
        cpu_seconds: cpu,
        peak_mib: peak,
        infections: stdout.lines().last().and_then(|l| l.trim().parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: PeerRun = PeerRun {
        population: 1000,
        days: 20,
        initial_infections: 7,
        uptake: 0.5,
        seed: 3,
    };

    fn baseline() -> String {
        let ages = [
            "0_9", "10_19", "20_29", "30_39", "40_49", "50_59", "60_69", "70_79", "80",
        ];
        let mut header = vec!["rng_seed", "n_total", "end_time", "n_seed_infection"];
        let mut row = vec!["1", "10000", "200", "5"];
        let names: Vec<String> = ages
            .iter()
            .flat_map(|a| [format!("population_{a}"), format!("app_users_fraction_{a}")])
            .collect();
        for (i, n) in names.iter().enumerate() {
            header.push(n);
            row.push(if i % 2 == 0 { "1" } else { "0.8" });
        }
        for name in [
            "test_on_symptoms",
            "trace_on_positive",
            "quarantine_on_traced",
            "app_turn_on_time",
            "intervention_start_time",
        ] {
            header.push(name);
            row.push("5");
        }
        format!("{}\n{}\n", header.join(","), row.join(","))
    }

    #[test]
    fn openabm_parameters_carry_the_run_and_the_uptake() {
        let text = openabm_parameters(&baseline(), &RUN).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        let get = |name: &str| lines[1][lines[0].iter().position(|h| *h == name).unwrap()];
        assert_eq!(get("n_total"), "1000");
        assert_eq!(get("end_time"), "20");
        assert_eq!(get("n_seed_infection"), "7");
        assert_eq!(get("rng_seed"), "3");
        assert_eq!(get("app_users_fraction_30_39"), "0.5000");
        assert_eq!(get("trace_on_positive"), "1");
        assert_eq!(get("app_turn_on_time"), "0");
    }

    #[test]
    fn openabm_parameters_name_what_is_missing() {
        let e = openabm_parameters("rng_seed\n1\n", &RUN).unwrap_err();
        assert!(e.to_string().contains("population_0_9"), "{e}");
        assert!(openabm_parameters("", &RUN).is_err());
        assert!(openabm_parameters("a,b\n1\n", &RUN).is_err());
    }
}
