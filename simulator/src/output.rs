//! Output files: the daily CSV, the individuals and transmissions files (as OpenABM
//! writes them), and the summary JSON.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::disease::NEVER;
use crate::error::{Error, Result};
use crate::experiment::{ConfigScore, Experiment, RunSummary};
use crate::population::NONE;
use crate::scenario::Scenario;
use crate::sim::Simulation;
use crate::stats::Daily;

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| Error::io(path, e))
}

fn finish(path: &Path, mut w: BufWriter<File>) -> Result<()> {
    w.flush().map_err(|e| Error::io(path, e))
}

/// A day as written in files: `NEVER` is empty.
fn day(d: u16) -> String {
    if d == NEVER {
        String::new()
    } else {
        d.to_string()
    }
}

/// An id as written in files: `NONE` is empty.
fn id(a: u32) -> String {
    if a == NONE {
        String::new()
    } else {
        a.to_string()
    }
}

/// Writes one row per day.
pub fn write_daily(path: &Path, daily: &[Daily]) -> Result<()> {
    let mut w = create(path)?;
    let io = |e| Error::io(path, e);
    if let Some(first) = daily.first() {
        let names: Vec<String> = first.columns().into_iter().map(|(n, _)| n).collect();
        writeln!(w, "{}", names.join(",")).map_err(io)?;
    }
    for row in daily {
        let values: Vec<String> = row
            .columns()
            .into_iter()
            .map(|(_, v)| v.to_string())
            .collect();
        writeln!(w, "{}", values.join(",")).map_err(io)?;
    }
    finish(path, w)
}

/// Writes one row per person.
pub fn write_individuals(path: &Path, sim: &Simulation) -> Result<()> {
    let mut w = create(path)?;
    let io = |e| Error::io(path, e);
    writeln!(
        w,
        "ID,age_group,household,occupation_network,app_user,rssi_correction,tx_power,\
         time_infected,asymptomatic,time_symptomatic,time_recovered,infection_count,tests,\
         time_diagnosed,time_uploaded,time_notified,exposure_windows,quarantine_days"
    )
    .map_err(io)?;
    let p = &sim.people;
    for a in 0..sim.population.len() {
        let phone = sim.phones.phone_of[a];
        let (app, rc, tx, windows) = if phone == NONE {
            (0, String::new(), String::new(), 0)
        } else {
            let m = sim.phones.model[phone as usize];
            let windows = sim.exposures.windows_of(phone).len();
            (
                1,
                m.rssi_correction.to_string(),
                m.tx_power.to_string(),
                windows,
            )
        };
        writeln!(
            w,
            "{a},{},{},{},{app},{rc},{tx},{},{},{},{},{},{},{},{},{},{windows},{}",
            sim.population.age[a],
            sim.population.household[a],
            id(sim.population.group[a]),
            day(p.infected[a]),
            u8::from(p.asymptomatic[a]),
            day(p.onset[a]),
            day(p.recovery[a]),
            p.infections_caused[a],
            p.tests[a],
            day(p.diagnosed[a]),
            day(p.uploaded[a]),
            day(p.notified[a]),
            p.quarantine_days[a],
        )
        .map_err(io)?;
    }
    finish(path, w)
}

/// Writes one row per infection.
pub fn write_transmissions(path: &Path, sim: &Simulation) -> Result<()> {
    let mut w = create(path)?;
    let io = |e| Error::io(path, e);
    writeln!(
        w,
        "ID_source,ID_recipient,network,time_infected,generation_time,source_status,\
         source_app_user,recipient_app_user,time_symptomatic,time_recovered,time_diagnosed,\
         time_notified"
    )
    .map_err(io)?;
    let p = &sim.people;
    for t in &sim.transmissions {
        let r = t.recipient as usize;
        let (generation, status, source_app) = if t.source == NONE {
            (String::new(), "seed", String::new())
        } else {
            let s = t.source as usize;
            let status = if p.asymptomatic[s] {
                "asymptomatic"
            } else if p.onset[s] <= t.day {
                "symptomatic"
            } else {
                "presymptomatic"
            };
            let app = u8::from(sim.phones.has_app(t.source)).to_string();
            ((t.day - p.infected[s]).to_string(), status, app)
        };
        writeln!(
            w,
            "{},{},{},{},{generation},{status},{source_app},{},{},{},{},{}",
            id(t.source),
            t.recipient,
            t.setting.name(),
            t.day,
            u8::from(sim.phones.has_app(t.recipient)),
            day(p.onset[r]),
            day(p.recovery[r]),
            day(p.diagnosed[r]),
            day(p.notified[r]),
        )
        .map_err(io)?;
    }
    finish(path, w)
}

/// Median and 10–90 % range of a number over seeds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Spread {
    /// The spread of `values` (not empty).
    pub fn of(values: &[f64]) -> Self {
        Self {
            median: quantile(values, 0.5),
            p10: quantile(values, 0.1),
            p90: quantile(values, 0.9),
        }
    }
}

/// The `q` quantile of `values`, interpolated linearly; 0 when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[derive(Serialize)]
struct Summary<'a> {
    scenario: &'a Scenario,
    infections_with_app: Spread,
    infections_without_app: Option<Spread>,
    infections_averted: Option<Spread>,
    notifications: Spread,
    precision: Spread,
    recall: Spread,
    configs: Vec<ConfigScore>,
    runs: Vec<&'a RunSummary>,
}

/// The scores of each configuration, averaged over seeds.
pub fn mean_scores(runs: &[&RunSummary]) -> Vec<ConfigScore> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    (0..first.configs.len())
        .map(|c| {
            let n = runs.len() as f64;
            let mean = |f: &dyn Fn(&ConfigScore) -> f64| {
                runs.iter().map(|r| f(&r.configs[c])).sum::<f64>() / n
            };
            ConfigScore {
                config: first.configs[c].config.clone(),
                notified: mean(&|s| s.notified as f64).round() as usize,
                true_positives: mean(&|s| s.true_positives as f64).round() as usize,
                close_contacts: mean(&|s| s.close_contacts as f64).round() as usize,
                precision: mean(&|s| s.precision),
                recall: mean(&|s| s.recall),
            }
        })
        .collect()
}

/// Writes the experiment's summary.
pub fn write_summary(path: &Path, e: &Experiment) -> Result<()> {
    let with: Vec<&RunSummary> = e.with_app.iter().map(|r| &r.summary).collect();
    let without: Vec<&RunSummary> = e.without_app.iter().map(|r| &r.summary).collect();
    let spread = |runs: &[&RunSummary], f: fn(&RunSummary) -> f64| {
        Spread::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let averted: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(a, b)| b.infections as f64 - a.infections as f64)
        .collect();
    let summary = Summary {
        scenario: &e.scenario,
        infections_with_app: spread(&with, |r| r.infections as f64),
        infections_without_app: (!without.is_empty())
            .then(|| spread(&without, |r| r.infections as f64)),
        infections_averted: (!averted.is_empty()).then(|| Spread::of(&averted)),
        notifications: spread(&with, |r| r.notifications as f64),
        precision: spread(&with, |r| r.configs.first().map_or(0.0, |c| c.precision)),
        recall: spread(&with, |r| r.configs.first().map_or(0.0, |c| c.recall)),
        configs: mean_scores(&with),
        runs: with.iter().chain(&without).copied().collect(),
    };
    let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    std::fs::write(path, json + "\n").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert!((quantile(&[0.0, 10.0], 0.1) - 1.0).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
