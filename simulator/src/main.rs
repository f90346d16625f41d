//! `kith-sim`: run epidemic scenarios with the real exposure-notification protocol in
//! every app user's phone, and write tables and plots.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use kith_sim::experiment::{self, Options};
use kith_sim::output::Spread;
use kith_sim::peers::{self, Measurement, PeerRun};
use kith_sim::plot::{self, SweepPoint};
use kith_sim::{Arm, Experiment, Scenario};
use nix::sys::resource::UsageWho;

/// mimalloc: matching allocates and frees millions of small vectors a day (windows,
/// sightings, matches), which glibc's allocator served at a fifth of the run's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Agent-based epidemic simulator with the real GAEN protocol (kith-core) in every
/// app user's phone.
///
/// Without a subcommand it runs the default scenario (100 000 agents, 60 days, two
/// seeds, with and without the app) and writes CSVs, a summary and plots into
/// `kith-sim-output/<scenario>/`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario over its seeds, with and without the app (the default).
    Run(RunArgs),
    /// Run a scenario at several values of one parameter and draw a combined plot.
    ///
    /// Example: `kith-sim sweep --param app.uptake --values 0,0.2,0.4,0.6,0.8,1`
    Sweep {
        /// Dotted parameter path, e.g. `app.uptake` or `app.risk_config`.
        #[arg(long)]
        param: String,
        /// Comma-separated values (TOML syntax for each).
        #[arg(long, value_delimiter = ',', required = true)]
        values: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Benchmark: one run with the app, no files; prints wall time, CPU time,
    /// agent·days per second and per CPU-second, and peak memory, beside the same run
    /// of OpenABM-Covid19 and Covasim when asked for. Defaults to 1 000 000 agents,
    /// 60 % uptake, 100 days.
    Bench(BenchArgs),
    /// Runs a command and ends its output with its CPU seconds and peak memory (what
    /// `bench` measures its peers with).
    #[command(hide = true)]
    Measure {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Args, Debug, Clone)]
struct BenchArgs {
    /// Agents.
    #[arg(long, default_value_t = 1_000_000)]
    population: u32,
    /// Days.
    #[arg(long, default_value_t = 100)]
    days: u32,
    /// App uptake.
    #[arg(long, default_value_t = 0.6)]
    uptake: f64,
    /// Infected on day 0, in every simulator (default: one in 2000 agents, at least
    /// 10 — enough that no simulator's epidemic dies out by chance).
    #[arg(long)]
    initial_infections: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also run OpenABM-Covid19 from this checkout of
    /// github.com/BDI-pathogens/OpenABM-Covid19 (`make all` done in it, which builds
    /// `src/covid19ibm.exe`), with the same population, days, seeded infections and
    /// app uptake. Repeat it to compare builds, e.g. its Makefile's -O0 and -O3; each
    /// row is then named after its directory.
    #[arg(long, value_name = "DIR")]
    openabm: Vec<PathBuf>,
    /// Also run Covasim (`pip install covasim`) with the same settings.
    #[arg(long)]
    covasim: bool,
    /// The Python that has Covasim.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

#[derive(Args, Debug, Clone, Default)]
struct RunArgs {
    /// Scenario file (TOML); parameters it leaves out keep their defaults
    /// (`simulator/scenarios/default.toml` lists them all with their sources).
    #[arg(long, short)]
    scenario: Option<PathBuf>,
    /// Override one parameter, e.g. `--set app.uptake=0.4 --set population=20000`.
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    set: Vec<String>,
    /// Output folder (default: kith-sim-output/<scenario name>).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Runs per arm (overrides the scenario's `seeds`).
    #[arg(long)]
    seeds: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the arm without the app.
    #[arg(long)]
    no_baseline: bool,
    /// Skip the individuals and transmissions files.
    #[arg(long)]
    no_individuals: bool,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl RunArgs {
    fn scenario(&self) -> kith_sim::Result<Scenario> {
        let mut scenario = match &self.scenario {
            Some(path) => Scenario::from_file(path)?,
            None => Scenario::default(),
        };
        for assignment in &self.set {
            scenario.set(assignment)?;
        }
        if let Some(seeds) = self.seeds {
            scenario.set(&format!("seeds={seeds}"))?;
        }
        Ok(scenario)
    }

    fn options(&self) -> Options {
        Options {
            baseline: !self.no_baseline,
            individuals: !self.no_individuals,
            plots: !self.no_plots,
            progress: !self.quiet,
        }
    }

    fn out(&self, scenario: &Scenario) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("kith-sim-output").join(&scenario.name))
    }
}

fn threads(n: Option<usize>) -> kith_sim::Result<()> {
    if let Some(n) = n {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| kith_sim::Error::Scenario(format!("--threads {n}: {e}")))?;
    }
    Ok(())
}

/// Peak resident memory of this process (VmHWM), in MiB, where Linux tells it.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn spread(s: &Spread) -> String {
    format!("{:.0} (10–90 %: {:.0}–{:.0})", s.median, s.p10, s.p90)
}

fn print_summary(e: &Experiment, seconds: f64) {
    let s = &e.scenario;
    let runs = |arm: &[experiment::RunResult], f: fn(&kith_sim::RunSummary) -> f64| {
        Spread::of(&arm.iter().map(|r| f(&r.summary)).collect::<Vec<_>>())
    };
    let app_users = e.with_app.first().map_or(0, |r| r.summary.app_users);
    println!(
        "kith-sim: scenario `{}`: {} agents ({} with the app), {} days, {} seed(s)",
        s.name, s.population, app_users, s.days, s.seeds
    );
    let with = runs(&e.with_app, |r| r.infections as f64);
    if !e.without_app.is_empty() {
        let without = runs(&e.without_app, |r| r.infections as f64);
        println!("  infections without the app: {}", spread(&without));
        let averted = 1.0 - with.median / without.median.max(1.0);
        println!(
            "  infections with the app:    {}  ({:.0} % fewer)",
            spread(&with),
            100.0 * averted
        );
    } else {
        println!("  infections with the app:    {}", spread(&with));
    }
    let notifications = runs(&e.with_app, |r| r.notifications as f64);
    let uploads = runs(&e.with_app, |r| r.uploads as f64);
    let precision = runs(&e.with_app, |r| r.configs[0].precision);
    let recall = runs(&e.with_app, |r| r.configs[0].recall);
    println!(
        "  uploads: {:.0}; notifications: {}; precision {:.2}, recall {:.2} (`{}` against close contacts < 2 m, ≥ 15 min)",
        uploads.median,
        spread(&notifications),
        precision.median,
        recall.median,
        s.app.risk_config
    );
    let agent_days: f64 = e
        .with_app
        .iter()
        .chain(&e.without_app)
        .map(|r| f64::from(r.summary.population) * f64::from(r.summary.days))
        .sum();
    println!(
        "  {:.1} s, {:.0} agent·days/s, peak memory {:.0} MiB",
        seconds,
        agent_days / seconds,
        peak_memory_mib().unwrap_or(f64::NAN)
    );
    println!(
        "  wrote {}/ (daily_*.csv, individuals_*.csv, transmissions_*.csv, summary.json, *.svg)",
        e.out.display()
    );
}

fn run(args: &RunArgs) -> kith_sim::Result<()> {
    threads(args.threads)?;
    let scenario = args.scenario()?;
    let started = Instant::now();
    let e = experiment::run(&scenario, &args.out(&scenario), &args.options())?;
    print_summary(&e, started.elapsed().as_secs_f64());
    Ok(())
}

fn sweep(param: &str, values: &[String], args: &RunArgs) -> kith_sim::Result<()> {
    threads(args.threads)?;
    let base = args.scenario()?;
    let out = args.out(&base).join(format!("sweep-{param}"));
    let mut experiments = Vec::new();
    for value in values {
        let mut scenario = base.clone();
        scenario.set(&format!("{param}={value}"))?;
        scenario.name = format!("{}-{param}-{value}", base.name);
        let dir = out.join(value.replace(['/', ':'], "_"));
        println!("{param} = {value}");
        let started = Instant::now();
        let e = experiment::run(&scenario, &dir, &args.options())?;
        print_summary(&e, started.elapsed().as_secs_f64());
        experiments.push((value.clone(), e));
    }
    let numeric = experiments.iter().all(|(v, _)| v.parse::<f64>().is_ok());
    let points: Vec<SweepPoint<'_>> = experiments
        .iter()
        .enumerate()
        .map(|(k, (v, e))| SweepPoint {
            label: v.clone(),
            x: if numeric {
                v.parse().expect("checked")
            } else {
                k as f64
            },
            experiment: e,
        })
        .collect();
    let mut csv =
        String::from("value,seed,arm,infections,attack_rate,notifications,precision,recall\n");
    for p in &points {
        for r in p
            .experiment
            .with_app
            .iter()
            .chain(&p.experiment.without_app)
        {
            let s = &r.summary;
            csv += &format!(
                "{},{},{},{},{},{},{},{}\n",
                p.label,
                s.seed,
                s.arm,
                s.infections,
                s.attack_rate,
                s.notifications,
                s.configs[0].precision,
                s.configs[0].recall
            );
        }
    }
    let csv_path = out.join("sweep.csv");
    std::fs::write(&csv_path, csv).map_err(|e| kith_sim::Error::io(csv_path.clone(), e))?;
    let plot_path = out.join("sweep.svg");
    plot::sweep(&plot_path, param, &points)?;
    println!(
        "sweep: wrote {} and {}",
        csv_path.display(),
        plot_path.display()
    );
    Ok(())
}

fn bench(args: &BenchArgs) -> kith_sim::Result<()> {
    threads(args.threads)?;
    let initial_infections = args
        .initial_infections
        .unwrap_or((args.population / 2000).max(10));
    let mut scenario = Scenario {
        name: "bench".into(),
        population: args.population,
        days: args.days,
        initial_infections,
        ..Scenario::default()
    };
    scenario.app.uptake = args.uptake;
    scenario.app.evaluate.clear();
    scenario.validate()?;
    let bar = experiment::progress_bar(u64::from(args.days), true);
    let (cpu_before, _) = peers::rusage(UsageWho::RUSAGE_SELF);
    let started = Instant::now();
    let (sim, result) = experiment::run_one(&scenario, args.seed, Arm::WithApp, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let wall_seconds = started.elapsed().as_secs_f64();
    let (cpu_after, _) = peers::rusage(UsageWho::RUSAGE_SELF);
    let s = &result.summary;
    let ours = Measurement {
        name: "kith-sim".into(),
        population: args.population,
        days: args.days,
        wall_seconds,
        cpu_seconds: cpu_after - cpu_before,
        peak_mib: peak_memory_mib().unwrap_or(f64::NAN),
        infections: Some(s.infections),
    };
    println!(
        "kith-sim: {} agents ({} phones), {} days, {} threads, {} seeded infections",
        args.population,
        sim.phones.len(),
        args.days,
        rayon::current_num_threads(),
        initial_infections,
    );
    println!(
        "  uploads {}, keys published {}, notifications {}, export bytes {}",
        s.uploads,
        s.keys_published,
        s.notifications,
        result.daily.iter().map(|d| d.export_bytes).sum::<u64>()
    );
    drop(sim);
    println!("{}", Measurement::header());
    println!("{}", ours.row());
    let run = PeerRun {
        population: args.population,
        days: args.days,
        initial_infections,
        uptake: args.uptake,
        seed: args.seed,
    };
    let scratch = std::env::temp_dir().join(format!("kith-sim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| kith_sim::Error::io(&scratch, e))?;
    let mut failed = None;
    let mut report = |peer: kith_sim::Result<Measurement>| match peer {
        Ok(m) => println!("{}", m.row()),
        Err(e) => {
            eprintln!("kith-sim bench: {e}");
            failed = Some(e);
        }
    };
    for dir in &args.openabm {
        let mut measured = peers::run_openabm(dir, &scratch, &run);
        if let (Ok(m), [_, _, ..]) = (&mut measured, args.openabm.as_slice()) {
            let build = dir.file_name().unwrap_or(dir.as_os_str());
            m.name = format!("{} ({})", m.name, build.to_string_lossy());
        }
        report(measured);
    }
    if args.covasim {
        report(peers::run_covasim(&args.python, &scratch, &run));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    failed.map_or(Ok(()), Err)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        None => run(&cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Sweep {
            param,
            values,
            run: args,
        }) => sweep(param, values, args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::Measure { command }) => match peers::measure_child(command) {
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
