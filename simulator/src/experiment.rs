//! An experiment: a scenario run over several seeds, with and without the app, each
//! pair sharing its seed so their difference is the app's effect.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::disease::NEVER;
use crate::error::Result;
use crate::output;
use crate::scenario::Scenario;
use crate::sim::{Arm, Simulation};
use crate::stats::Daily;

/// How well one risk configuration's notifications found the close contacts.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConfigScore {
    /// Configuration name.
    pub config: String,
    /// People it would have notified.
    pub notified: usize,
    /// … who had a close contact (< 2 m, ≥ 15 min) with an uploader.
    pub true_positives: usize,
    /// App users who had such a contact.
    pub close_contacts: usize,
    /// true positives / notified.
    pub precision: f64,
    /// true positives / close contacts.
    pub recall: f64,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// Seed.
    pub seed: u64,
    /// `with_app` or `without_app`.
    pub arm: &'static str,
    /// Agents.
    pub population: u32,
    /// App users.
    pub app_users: usize,
    /// Days simulated.
    pub days: u32,
    /// Transmission rate calibrated to R0.
    pub beta: f64,
    /// Infections, seeds included.
    pub infections: u64,
    /// Infections / population.
    pub attack_rate: f64,
    /// Day with the most new infections.
    pub peak_day: u32,
    /// Mean number infected by each seeded infection (day 0): the reproduction number
    /// the network and calibration give, to set against the scenario's R0.
    pub r_eff_seeds: f64,
    /// Effective reproduction number by infection date (`null` on days without
    /// infections; the last two weeks are censored by the end of the run).
    pub r_eff: Vec<Option<f64>>,
    /// Positive tests.
    pub diagnoses: u64,
    /// Uploads of keys.
    pub uploads: u64,
    /// Keys published.
    pub keys_published: u64,
    /// Notifications (primary configuration).
    pub notifications: u64,
    /// Notifications per uploader, mean.
    pub notifications_per_uploader: f64,
    /// Fraction of notified people who were infected by 7 days after their notification.
    pub notified_infected_fraction: f64,
    /// First day the app changed what someone does (a notification), if any.
    pub app_first_acted: Option<u32>,
    /// Precision and recall of every risk configuration (primary first).
    pub configs: Vec<ConfigScore>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// population × days / seconds.
    pub agent_days_per_second: f64,
}

/// A finished run: its summary, days, and the uploaders' notification counts.
#[derive(Debug)]
pub struct RunResult {
    /// The summary.
    pub summary: RunSummary,
    /// One row per day.
    pub daily: Vec<Daily>,
    /// Notifications each uploader's keys led to.
    pub notifications_per_uploader: Vec<u32>,
}

/// What to run and write.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run the arm without the app too.
    pub baseline: bool,
    /// Write individuals and transmissions files (first seed of each arm).
    pub individuals: bool,
    /// Draw plots.
    pub plots: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            baseline: true,
            individuals: true,
            plots: true,
            progress: true,
        }
    }
}

/// Every run of an experiment.
#[derive(Debug)]
pub struct Experiment {
    /// The scenario.
    pub scenario: Scenario,
    /// Runs with the app, by seed.
    pub with_app: Vec<RunResult>,
    /// Runs without, by seed (empty without a baseline).
    pub without_app: Vec<RunResult>,
    /// Where the files went.
    pub out: PathBuf,
}

/// A progress bar over `total` simulated days, or a hidden one.
pub fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} days {msg} (eta {eta})",
        )
        .expect("a valid template"),
    );
    bar
}

/// Runs `scenario` (every seed, with the app and, with `options.baseline`, without)
/// and writes its files into `out`.
pub fn run(scenario: &Scenario, out: &Path, options: &Options) -> Result<Experiment> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::io(out, e))?;
    let arms: &[Arm] = if options.baseline {
        &[Arm::WithApp, Arm::WithoutApp]
    } else {
        &[Arm::WithApp]
    };
    let total = u64::from(scenario.seeds) * arms.len() as u64 * u64::from(scenario.days);
    let bar = progress_bar(total, options.progress);
    let mut experiment = Experiment {
        scenario: scenario.clone(),
        with_app: Vec::new(),
        without_app: Vec::new(),
        out: out.into(),
    };
    for k in 0..scenario.seeds {
        let seed = scenario.seed + u64::from(k);
        for &arm in arms {
            bar.set_message(format!("seed {seed} {}", arm_name(arm)));
            let (sim, result) = run_one(scenario, seed, arm, |_| bar.inc(1))?;
            if k == 0 {
                output::write_daily(
                    &out.join(format!("daily_{}.csv", arm_name(arm))),
                    &result.daily,
                )?;
                if options.individuals {
                    output::write_individuals(
                        &out.join(format!("individuals_{}.csv", arm_name(arm))),
                        &sim,
                    )?;
                    output::write_transmissions(
                        &out.join(format!("transmissions_{}.csv", arm_name(arm))),
                        &sim,
                    )?;
                }
            } else {
                output::write_daily(
                    &out.join(format!("daily_{}_seed{seed}.csv", arm_name(arm))),
                    &result.daily,
                )?;
            }
            match arm {
                Arm::WithApp => experiment.with_app.push(result),
                Arm::WithoutApp => experiment.without_app.push(result),
            }
        }
    }
    bar.finish_and_clear();
    output::write_summary(&out.join("summary.json"), &experiment)?;
    if options.plots {
        crate::plot::experiment(&experiment)?;
    }
    Ok(experiment)
}

/// The file-name form of an arm.
pub fn arm_name(arm: Arm) -> &'static str {
    match arm {
        Arm::WithApp => "with_app",
        Arm::WithoutApp => "without_app",
    }
}

/// One run to the end; `day_done` is called after each day.
pub fn run_one(
    scenario: &Scenario,
    seed: u64,
    arm: Arm,
    mut day_done: impl FnMut(&Simulation),
) -> Result<(Simulation, RunResult)> {
    let started = Instant::now();
    let mut sim = Simulation::new(scenario, seed, arm)?;
    sim.run(&mut day_done)?;
    let r_eff = sim.r_eff();
    for (row, r) in sim.daily.iter_mut().zip(r_eff) {
        row.r_eff = r;
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = summarize(&sim, seconds);
    let mut per_uploader: Vec<u32> = (0..sim.population.len())
        .filter(|&a| sim.people.uploaded[a] != NEVER)
        .map(|a| {
            sim.notifications_per_uploader
                .get(&(a as u32))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    per_uploader.sort_unstable();
    let result = RunResult {
        summary,
        daily: sim.daily.clone(),
        notifications_per_uploader: per_uploader,
    };
    Ok((sim, result))
}

/// The summary of a finished run.
pub fn summarize(sim: &Simulation, seconds: f64) -> RunSummary {
    let last = sim.daily.last().cloned().unwrap_or_default();
    let peak_day = sim
        .daily
        .iter()
        .max_by_key(|d| (d.new_infections, std::cmp::Reverse(d.day)))
        .map_or(0, |d| d.day);
    let close = &sim.close_contacts;
    let configs = sim
        .exposures
        .configs
        .iter()
        .zip(&sim.notified_by_config)
        .map(|((name, _), notified)| {
            let true_positives = notified.iter().filter(|a| close.contains(a)).count();
            ConfigScore {
                config: name.clone(),
                notified: notified.len(),
                true_positives,
                close_contacts: close.len(),
                precision: ratio(true_positives, notified.len()),
                recall: ratio(true_positives, close.len()),
            }
        })
        .collect();
    let p = &sim.people;
    let notified: Vec<usize> = (0..sim.population.len())
        .filter(|&a| p.notified[a] != NEVER)
        .collect();
    let infected_after = notified
        .iter()
        .filter(|&&a| p.infected[a] != NEVER && p.infected[a] <= p.notified[a].saturating_add(7))
        .count();
    let uploads = last.cum_uploads;
    let keys = sim
        .daily
        .iter()
        .map(|d| u64::from(d.new_keys_published))
        .sum();
    let agent_days = f64::from(sim.scenario.population) * f64::from(sim.scenario.days);
    let r_eff: Vec<Option<f64>> = sim
        .daily
        .iter()
        .map(|d| (!d.r_eff.is_nan()).then_some(d.r_eff))
        .collect();
    RunSummary {
        seed: sim.seed,
        arm: arm_name(sim.arm),
        population: sim.scenario.population,
        app_users: sim.phones.len(),
        days: sim.day,
        beta: sim.beta,
        infections: last.cum_infections,
        attack_rate: last.cum_infections as f64 / f64::from(sim.scenario.population),
        peak_day,
        r_eff_seeds: r_eff.first().copied().flatten().unwrap_or(f64::NAN),
        r_eff,
        diagnoses: last.cum_diagnoses,
        uploads,
        keys_published: keys,
        notifications: last.cum_notifications,
        notifications_per_uploader: ratio(last.cum_notifications as usize, uploads as usize),
        notified_infected_fraction: ratio(infected_after, notified.len()),
        app_first_acted: sim.app_first_acted,
        configs,
        seconds,
        agent_days_per_second: agent_days / seconds.max(1e-9),
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
