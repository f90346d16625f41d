//! Soak: many simulated agents for simulated days against one kith-server, at
//! accelerated time. Reports memory (RSS) over time of every process, errors, and
//! notifications against the ground truth of who was near whom.
//!
//! ```sh
//! cargo build --release -p kith-server
//! cargo run --release -p kith-tests --example soak -- --agents 1000 --days 7 --plot soak.svg
//! ```
//!
//! The agents are kith-agent's own [`Agent`]s (its engine, SQLite store, sync and sealed
//! report over HTTP), all in this process on one [`ManualClock`] that the soak moves in
//! 10-minute steps: a `kith-agent` process lives in real time only, and the simulated radio's
//! every packet goes to every agent. Instead of the radio, each step hands every agent a scan
//! window with the beacons of those it is with (household at night, workplace by day), so
//! the ground truth is known exactly. The server runs in real time with the demo's 10-second
//! export windows; the agents replay the week before yesterday, so their keys are expired
//! and exported at once.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use kith_agent::Agent;
use kith_agent::clock::{Clock, ManualClock};
use kith_agent::config::Config;
use kith_agent::radio::{Received, ScanWindow};
use kith_core::risk::Infectiousness;
use kith_core::{Day, UnixSeconds};
use kith_launch::ServerProcess;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Soak kith-server with simulated agents for simulated days (see the file's docs).
#[derive(Debug, Parser)]
struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Agents who test positive and report, each day.
    #[arg(long, default_value_t = 5)]
    positives_per_day: usize,
    /// Simulated hours between two syncs of every agent.
    #[arg(long, default_value_t = 6)]
    sync_hours: u64,
    /// Syncs running at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seed of the population, contacts and positives.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The kith-server binary (default: the one beside this example).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Writes the RSS of every process over simulated time as an SVG plot.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Simulated minutes per step: one scan per 10-minute interval.
const STEP_SECONDS: u64 = 600;

/// People per workplace.
const WORKPLACE_SIZE: usize = 8;

/// Attenuation (dB) at home (1 m) and at work (2 m): ENX's near and medium buckets.
const HOME_ATTENUATION: i16 = 45;
const WORK_ATTENUATION: i16 = 55;

/// Where a person is at an hour of the day.
fn place(hour: u64) -> Place {
    match hour {
        0..=7 | 18..=23 => Place::Home,
        9..=16 => Place::Work,
        _ => Place::Commute,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Home,
    Work,
    Commute,
}

/// Households and workplaces: who is with whom.
struct Population {
    household: Vec<Vec<usize>>,
    workplace: Vec<Vec<usize>>,
}

impl Population {
    fn new(agents: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut household = vec![Vec::new(); agents];
        let mut start = 0;
        while start < agents {
            let end = (start + rng.gen_range(1..=4)).min(agents);
            for (a, members) in household.iter_mut().enumerate().take(end).skip(start) {
                *members = (start..end).filter(|b| *b != a).collect();
            }
            start = end;
        }
        // One in five works from home.
        let mut workers: Vec<usize> = (0..agents).filter(|_| rng.gen_ratio(4, 5)).collect();
        workers.shuffle(rng);
        let mut workplace = vec![Vec::new(); agents];
        for group in workers.chunks(WORKPLACE_SIZE) {
            for &a in group {
                workplace[a] = group.iter().copied().filter(|b| *b != a).collect();
            }
        }
        Self {
            household,
            workplace,
        }
    }

    /// Who `a` is with at `place`, and at what attenuation.
    fn with(&self, a: usize, place: Place) -> (&[usize], i16) {
        match place {
            Place::Home => (&self.household[a], HOME_ATTENUATION),
            Place::Work => (&self.workplace[a], WORK_ATTENUATION),
            Place::Commute => (&[], 0),
        }
    }
}

/// One RSS sample: simulated hours since the start, the server's and this process's RSS (KiB).
struct Sample {
    hours: f64,
    server_kib: u64,
    agents_kib: u64,
}

/// Resident set size of process `pid` (`self` for this one), KiB.
fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let dir = tempfile::tempdir()?;
    let risk = kith_tests::system::one_minute_alert();
    let risk_file = dir.path().join("risk.json");
    std::fs::write(&risk_file, risk.to_json())?;
    let mut server_args: Vec<&str> = kith_agent::demo::SERVER_ARGS.to_vec();
    let risk_path = risk_file.display().to_string();
    server_args.extend(["--risk-config", &risk_path]);
    let server_bin = kith_launch::server_binary(args.server_bin.clone())?;
    let server = ServerProcess::start(&server_bin, &dir.path().join("server"), &server_args, &[])?;
    let admin_key = server.admin_key.clone().ok_or("no admin key")?;
    let http = reqwest::Client::new();
    let server_pid = server.pid().to_string();

    // The simulated week ends yesterday, midnight; it starts `days` before.
    let today = Day::of(UnixSeconds::from_system_time(std::time::SystemTime::now()));
    let first_day = today.minus(args.days + 1);
    let clock = ManualClock::at(first_day.start().get() * 1000);
    let population = Population::new(args.agents, &mut rng);
    println!(
        "soak: {} agents, {} simulated days from {first_day}, server {}",
        args.agents,
        args.days,
        server.url()
    );
    let mut agents = Vec::with_capacity(args.agents);
    for a in 0..args.agents {
        let config = Config {
            data_dir: dir.path().join(format!("agent-{a}")),
            server: Some(server.url()),
            ..Config::default()
        };
        agents.push(Agent::open(config, clock.clone())?);
    }

    let steps = u64::from(args.days) * 86_400 / STEP_SECONDS;
    let progress =
        indicatif::ProgressBar::new(steps).with_style(indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} steps ({msg})",
        )?);
    let started = Instant::now();
    let mut isolated: HashSet<usize> = HashSet::new();
    // (agent, positive) → the days they were together before the positive reported.
    let mut met: BTreeMap<(usize, usize), HashSet<Day>> = BTreeMap::new();
    let mut positives: Vec<(usize, Day)> = Vec::new();
    let mut samples = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut notified: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut syncs = 0usize;
    let mut sightings = 0usize;
    for step in 0..steps {
        let now = clock.now();
        let hour = now.get() % 86_400 / 3_600;
        let minute_of_day = now.get() % 86_400;
        // Everyone's beacon for this interval, then everyone's scan of those near.
        let mut beacons = Vec::with_capacity(agents.len());
        for agent in &mut agents {
            beacons.push(agent.beacon(now)?.to_service_data());
        }
        let at = now.get() * 1000 + 60_000;
        let tx_power = i16::from(Config::default().tx_power);
        for (a, agent) in agents.iter_mut().enumerate() {
            if isolated.contains(&a) {
                continue;
            }
            let (near, attenuation) = population.with(a, place(hour));
            let received: Vec<Received> = near
                .iter()
                .filter(|b| !isolated.contains(b))
                .map(|&b| Received {
                    service_data: beacons[b],
                    rssi: i8::try_from(tx_power - attenuation + rng.gen_range(-3..=3))
                        .unwrap_or(i8::MIN),
                    at,
                })
                .collect();
            if received.is_empty() {
                continue;
            }
            for &b in near.iter().filter(|b| !isolated.contains(b)) {
                met.entry((a, b)).or_default().insert(Day::of(now));
            }
            sightings += received.len();
            agent.record(&ScanWindow {
                started_at: at,
                ended_at: at + 4_000,
                received,
            })?;
        }
        // At noon, some test positive, report with a code and isolate.
        if minute_of_day == 12 * 3_600 {
            for _ in 0..args.positives_per_day {
                let a = rng.gen_range(0..agents.len());
                if !isolated.insert(a) {
                    continue;
                }
                let onset = Day::of(now).minus(1);
                match issue_code(&http, &server.operator_url(), &admin_key, onset).await {
                    Ok(code) => match agents[a].report(&code).await {
                        Ok(_) => positives.push((a, onset)),
                        Err(e) => errors.push(format!("report of agent {a}: {e}")),
                    },
                    Err(e) => errors.push(format!("issuing a code: {e}")),
                }
            }
        }
        if minute_of_day % (args.sync_hours * 3_600) == 3 * 3_600 {
            sync_all(&mut agents, args.concurrency, &mut errors, &mut notified).await;
            syncs += agents.len();
        }
        if minute_of_day % 3_600 == 0 {
            samples.push(Sample {
                hours: (step * STEP_SECONDS) as f64 / 3_600.0,
                server_kib: rss_kib(&server_pid),
                agents_kib: rss_kib("self"),
            });
        }
        progress.set_message(format!(
            "{} positives, {} notified, {} errors",
            positives.len(),
            notified.len(),
            errors.len()
        ));
        progress.inc(1);
        clock.advance(STEP_SECONDS * 1000);
    }
    progress.finish();

    // The last reports' window must end and age before it is exported: wait until the
    // index has not changed for two export periods, then everyone syncs until a sync brings
    // no new file.
    println!("waiting for the last exports, then the final syncs");
    wait_for_stable_index(&http, &server.url()).await?;
    loop {
        let new_files = sync_all(&mut agents, args.concurrency, &mut errors, &mut notified).await;
        syncs += agents.len();
        if new_files == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();

    // Ground truth: someone who met a positive on a day the positive's key is infectious
    // for (by the risk configuration, from the onset the code carried), before the report.
    let expected: BTreeMap<usize, HashSet<Day>> = met
        .iter()
        .filter_map(|(&(a, b), days)| {
            let onset = positives.iter().find(|(p, _)| *p == b)?.1;
            let infectious: HashSet<Day> = days
                .iter()
                .copied()
                .filter(|day| {
                    let since = day.days_after(onset);
                    (-14..=14).contains(&since)
                        && risk.infectiousness_by_days_since_onset[(since + 14) as usize]
                            != Infectiousness::None
                })
                .collect();
            (!infectious.is_empty() && !positives.iter().any(|(p, _)| *p == a))
                .then_some((a, infectious))
        })
        .fold(BTreeMap::new(), |mut all, (a, days)| {
            all.entry(a).or_insert_with(HashSet::new).extend(days);
            all
        });
    let notified_people: HashSet<usize> = notified
        .keys()
        .copied()
        .filter(|a| !positives.iter().any(|(p, _)| p == a))
        .collect();
    let expected_people: HashSet<usize> = expected.keys().copied().collect();
    let true_positives = notified_people.intersection(&expected_people).count();
    let missed = expected_people.difference(&notified_people).count();
    let false_alarms = notified_people.difference(&expected_people).count();
    let right_days = notified
        .iter()
        .filter(|(a, _)| expected.contains_key(a))
        .filter(|(a, days)| {
            days.iter()
                .filter_map(|d| Day::parse(d))
                .all(|d| expected[a].contains(&d))
        })
        .count();

    let first = samples
        .first()
        .map_or((0, 0), |s| (s.server_kib, s.agents_kib));
    let last = samples
        .last()
        .map_or((0, 0), |s| (s.server_kib, s.agents_kib));
    let peak_server = samples.iter().map(|s| s.server_kib).max().unwrap_or(0);
    let peak_agents = samples.iter().map(|s| s.agents_kib).max().unwrap_or(0);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| agents × simulated days | {} × {} |",
        args.agents, args.days
    );
    println!("| wall time | {:.1} s |", elapsed.as_secs_f64());
    println!("| sightings recorded | {sightings} |");
    println!("| syncs | {syncs} |");
    println!("| positives who reported | {} |", positives.len());
    println!("| errors | {} |", errors.len());
    println!(
        "| should be notified (ground truth) | {} |",
        expected_people.len()
    );
    println!("| notified and should be | {true_positives} |");
    println!("| notified, days all right | {right_days} |");
    println!("| missed | {missed} |");
    println!("| notified without cause | {false_alarms} |");
    println!(
        "| kith-server RSS first → last (peak), MiB | {:.1} → {:.1} ({:.1}) |",
        first.0 as f64 / 1024.0,
        last.0 as f64 / 1024.0,
        peak_server as f64 / 1024.0
    );
    println!(
        "| soak process ({} agents) RSS first → last (peak), MiB | {:.1} → {:.1} ({:.1}) |",
        args.agents,
        first.1 as f64 / 1024.0,
        last.1 as f64 / 1024.0,
        peak_agents as f64 / 1024.0
    );
    for (i, error) in errors.iter().take(10).enumerate() {
        println!("error {i}: {error}");
    }
    if let Some(path) = &args.plot {
        plot(path, &samples)?;
        println!("wrote {}", path.display());
    }
    server.stop()?;
    Ok(())
}

/// One sync of every agent, `concurrency` at a time; the number of files they downloaded
/// new, together.
async fn sync_all(
    agents: &mut [Agent<ManualClock>],
    concurrency: usize,
    errors: &mut Vec<String>,
    notified: &mut BTreeMap<usize, Vec<String>>,
) -> usize {
    let outcomes: Vec<_> = futures_util::stream::iter(agents.iter_mut().enumerate())
        .map(|(a, agent)| async move { (a, agent.sync().await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut new_files = 0;
    for (a, outcome) in outcomes {
        match outcome {
            Ok(outcome) => {
                new_files += outcome.files_new;
                errors.extend(
                    outcome
                        .files_failed
                        .iter()
                        .map(|f| format!("agent {a}: {f}")),
                );
                if outcome.new_exposures > 0 && outcome.risk_level.is_some() {
                    notified.insert(a, outcome.risk_days);
                }
            }
            Err(e) => errors.push(format!("sync of agent {a}: {e}")),
        }
    }
    new_files
}

/// Waits until the export index has stayed the same for 25 s (two export periods and the
/// batcher's pass).
async fn wait_for_stable_index(
    http: &reqwest::Client,
    url: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut last = String::new();
    let mut since = Instant::now();
    loop {
        let index = http
            .get(format!("{url}/v1/exports/index.txt"))
            .send()
            .await?
            .text()
            .await?;
        if index != last {
            last = index;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_secs(25) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A code for a confirmed test with symptoms since `onset`.
async fn issue_code(
    http: &reqwest::Client,
    operator_url: &str,
    admin_key: &str,
    onset: Day,
) -> Result<String, Box<dyn std::error::Error>> {
    let answer: serde_json::Value = http
        .post(format!("{operator_url}/v1/admin/codes"))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({"diagnosis": "confirmed_test", "symptomOnsetDate": onset.to_string()}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["codes"][0].as_str().ok_or("no code")?.to_owned())
}

/// The RSS of the server and of the agents' process over simulated time.
fn plot(path: &std::path::Path, samples: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let hours = samples.last().map_or(1.0, |s| s.hours.max(1.0));
    let peak = samples
        .iter()
        .map(|s| s.server_kib.max(s.agents_kib))
        .max()
        .unwrap_or(1) as f64
        / 1024.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Soak: resident memory over simulated time",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..hours, 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("simulated hours")
        .y_desc("RSS, MiB")
        .draw()?;
    let series = |f: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| (s.hours, f(s) as f64 / 1024.0))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(series(|s| s.server_kib), &RED))?
        .label("kith-server")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(series(|s| s.agents_kib), &BLUE))?
        .label("the agents' process")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
