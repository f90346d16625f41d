//! The command line: `run`, `status`, `check`, `report --code`, `venue`, `check-in`,
//! `check-out`, `demo`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kith_core::UnixSeconds;
use serde::Serialize;

use crate::agent::Agent;
use crate::clock::SystemClock;
use crate::config::{Config, RadioKind};
use crate::error::{Error, Result};
use crate::radio::bluez::BluezRadio;
use crate::radio::sim::{SimRadio, Stay};
use crate::status::date_time;
use crate::venue::{self, VenueArgs};

/// Kith exposure notification on a Linux device.
///
/// Advertises rotating GAEN beacons and listens for others over Bluetooth LE (BlueZ),
/// or over a simulated radio shared by agents on one machine; checks in at venues by
/// their QR codes; downloads the health authority's key files and venue trace warnings
/// from a kith-server, matches them on the device and runs a command when it finds an
/// exposure. Nothing leaves the device except, after a positive test and only with
/// `report`, its own daily keys and its venue visits (encrypted for each venue's visitors).
#[derive(Debug, Parser)]
#[command(name = "kith-agent", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Settings that override the configuration file.
    #[command(flatten)]
    pub global: Global,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML; see kith-agent.example.toml).
    #[arg(long, short, global = true, env = "KITH_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (keys, sightings, exposures).
    #[arg(long, global = true, env = "KITH_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The kith-server's base URL.
    #[arg(long, global = true, env = "KITH_AGENT_SERVER")]
    pub server: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Shifts the agent's clock by this many seconds (the demo replays yesterday).
    #[arg(
        long,
        global = true,
        env = "KITH_AGENT_CLOCK_OFFSET",
        default_value_t = 0,
        allow_hyphen_values = true,
        hide = true
    )]
    pub clock_offset_seconds: i64,
    /// Simulations: the agent's clock runs this many times as fast as the system's
    /// (60: an hour a minute), from `--time-origin` on. Only with the simulated radio;
    /// every agent of one simulation, and every command run on its data, needs the same
    /// scale, origin and offset.
    #[arg(long, global = true, env = "KITH_AGENT_TIME_SCALE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub time_scale: u32,
    /// With `--time-scale`: the system time (Unix seconds) from which the clock runs
    /// faster; at that moment it reads the system's time (shifted by the offset).
    #[arg(long, global = true, env = "KITH_AGENT_TIME_ORIGIN")]
    pub time_origin: Option<u64>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Advertise, scan, sync and purge until stopped (SIGINT/SIGTERM).
    Run(RunArgs),
    /// Keys, beacons sent and distinct RPIs heard per hour, last sync, risk.
    Status {
        /// Hours of history to show.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// Sync with the server and match now.
    Check,
    /// After a positive test: upload the last 14 days of keys and venue visits with the
    /// health authority's verification code (sealed, so only the server can read them).
    Report {
        /// The verification code.
        #[arg(long)]
        code: String,
    },
    /// At a place: check in with the text of its QR code (a Kith or Corona-Warn-App
    /// poster, or a `kith-agent venue` screen; e.g. read with `zbarimg -q --raw`). The
    /// visit ends by itself after the venue's default length.
    CheckIn {
        /// The QR code's text, `https://e.coronawarn.app?v=1#…`.
        #[arg(long)]
        qr: String,
    },
    /// Leaving: end the visits going on now (or the one with `--id`).
    CheckOut {
        /// The visit's id, as `check-in` printed it.
        #[arg(long)]
        id: Option<u64>,
    },
    /// Local demo: a kith-server and three simulated agents (two near, one far).
    Demo(crate::demo::DemoArgs),
    /// At a place: show a venue QR code visitors check in with (a new one every UTC
    /// day, CWA's format), in the terminal and optionally as an SVG file, and check
    /// this device in to it.
    Venue(crate::venue::VenueArgs),
}

/// How `run` listens and talks.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The radio: BlueZ hardware or the simulated loopback ether.
    #[arg(long, value_enum)]
    pub radio: Option<RadioKind>,
    /// BlueZ adapter, e.g. hci0.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Demo pace: 2-second scans every 4–6 s, sync every 10 s.
    #[arg(long)]
    pub fast: bool,
    /// Simulated radio: position in metres, `x,y`.
    #[arg(long, value_parser = parse_position, allow_hyphen_values = true)]
    pub position: Option<[f32; 2]>,
    /// Simulated radio: the shared ether directory.
    #[arg(long)]
    pub ether: Option<PathBuf>,
    /// Simulated radio: somewhere else during a time of day (UTC, the agent's clock),
    /// `HH:MM-HH:MM=x,y`, e.g. `07:30-08:00=250,4`; repeat for a day's schedule (the
    /// first that holds wins; outside them it stands at `--position`). Added to the
    /// configuration's `sim.schedule`.
    #[arg(long = "stay", value_name = "HH:MM-HH:MM=X,Y")]
    pub stays: Vec<Stay>,
    /// Command run on a new exposure (via `sh -c`).
    #[arg(long)]
    pub exposure_command: Option<String>,
}

pub(crate) fn parse_position(text: &str) -> std::result::Result<[f32; 2], String> {
    let (x, y) = text
        .split_once(',')
        .ok_or_else(|| format!("position {text:?}: expected x,y in metres, e.g. 1.5,0"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("position {text:?}: {v:?} is not a number"))
    };
    Ok([parse(x)?, parse(y)?])
}

impl Global {
    /// The agent's clock these flags describe.
    pub fn clock(&self) -> Result<SystemClock> {
        let clock = SystemClock::shifted(self.clock_offset_seconds);
        match (self.time_scale, self.time_origin) {
            (1, _) => Ok(clock),
            (scale, Some(origin)) => Ok(clock.accelerated(scale, UnixSeconds::new(origin))),
            (_, None) => Err(Error::Config(
                "--time-scale needs --time-origin (Unix seconds), the same for every agent \
                 of the simulation, so that their clocks agree"
                    .into(),
            )),
        }
    }

    /// The configuration file with these flags on top.
    pub fn config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(server) = &self.server {
            config.server = Some(server.clone());
        }
        Ok(config)
    }
}

/// Runs one command.
pub async fn main(cli: Cli) -> Result<()> {
    init_logging();
    let mut config = cli.global.config()?;
    let json = cli.global.json;
    let clock = cli.global.clock()?;
    match cli.command {
        Command::Run(args) => {
            if let Some(radio) = args.radio {
                config.radio = radio;
            }
            if args.adapter.is_some() {
                config.adapter = args.adapter;
            }
            config.fast |= args.fast;
            if let Some(position) = args.position {
                config.sim.position = position;
            }
            if let Some(ether) = args.ether {
                config.sim.ether = ether;
            }
            config.sim.schedule.extend(args.stays);
            if args.exposure_command.is_some() {
                config.exposure_command = args.exposure_command;
            }
            run(config, clock).await
        }
        Command::Status { hours } => {
            let agent = Agent::open(config, clock)?;
            print(&agent.status(hours)?, json)
        }
        Command::Check => {
            let mut agent = Agent::open(config, clock)?;
            let outcome = agent.sync().await?;
            print(&outcome, json)
        }
        Command::Report { code } => {
            let mut agent = Agent::open(config, clock)?;
            let outcome = agent.report(&code).await?;
            print(&outcome, json)
        }
        Command::CheckIn { qr } => {
            let mut agent = Agent::open(config, clock)?;
            print(&Visits::new(vec![agent.check_in_qr(&qr)?]), json)
        }
        Command::CheckOut { id } => {
            let mut agent = Agent::open(config, clock)?;
            print(&Visits::new(agent.check_out(id)?), json)
        }
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Venue(args) => venue(config, clock, args, json).await,
    }
}

/// Visits as `check-in` and `check-out` print them.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct Visits(Vec<Visit>);

/// One visit.
#[derive(Debug, Serialize)]
struct Visit {
    id: u64,
    venue: String,
    address: String,
    arrival: String,
    departure: String,
    arrival_unix: u64,
    departure_unix: u64,
    /// Uploaded after a positive test: it no longer raises warnings.
    shared: bool,
}

impl From<kith_core::checkin::CheckIn> for Visit {
    fn from(check_in: kith_core::checkin::CheckIn) -> Self {
        let stay = check_in.visit.stay;
        Self {
            id: check_in.id,
            venue: check_in.visit.description,
            address: check_in.visit.address,
            arrival: date_time(stay.arrival()),
            departure: date_time(stay.departure()),
            arrival_unix: stay.arrival().get(),
            departure_unix: stay.departure().get(),
            shared: check_in.shared,
        }
    }
}

impl Visits {
    fn new(check_ins: Vec<kith_core::checkin::CheckIn>) -> Self {
        Self(check_ins.into_iter().map(Visit::from).collect())
    }
}

impl std::fmt::Display for Visits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for v in &self.0 {
            writeln!(
                f,
                "visit {}: {}, {}, {} to {} UTC{}",
                v.id,
                v.venue,
                v.address,
                v.arrival,
                v.departure,
                if v.shared { " (shared)" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// Shows each day's code until stopped (or once).
async fn venue(config: Config, clock: SystemClock, args: VenueArgs, json: bool) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let mut agent = Agent::open(config, clock)?;
    let secret = venue::secret(&data_dir)?;
    let stop = shutdown();
    tokio::pin!(stop);
    loop {
        let code = venue::show_day(&mut agent, &secret, &args)?;
        if !json && !args.once {
            print!("\x1b[2J\x1b[H"); // a fresh screen for the new code
        }
        print(&code, json)?;
        if args.once {
            return Ok(());
        }
        let wait = venue::until_midnight(agent.now());
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(std::time::Duration::from_secs(wait)) => {}
        }
    }
}

async fn run(config: Config, clock: SystemClock) -> Result<()> {
    let radio_kind = config.radio;
    let tx = config.tx_power;
    let sim = config.sim.clone();
    let adapter = config.adapter.clone();
    let mut agent = Agent::open(config, clock)?;
    match radio_kind {
        RadioKind::Sim => {
            let mut radio = SimRadio::join(sim, tx).await?.with_clock(clock);
            agent.run(&mut radio, None, shutdown()).await
        }
        RadioKind::Bluez if clock.scale() > 1 => Err(Error::Config(
            "--time-scale is for simulations: it needs the simulated radio (--radio sim)".into(),
        )),
        RadioKind::Bluez => {
            let mut radio = BluezRadio::open(adapter.as_deref())
                .await?
                .with_clock(clock);
            tracing::info!(adapter = radio.adapter_name(), "BlueZ radio ready");
            agent.run(&mut radio, None, shutdown()).await
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}

fn print<T: Serialize + std::fmt::Display>(value: &T, json: bool) -> Result<()> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{value}");
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
