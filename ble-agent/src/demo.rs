//! `kith-agent demo`: a kith-server and three simulated agents on this machine.
//!
//! Alice and Bob stand 1.5 m apart, Carol 300 m away. After they have listened to
//! each other for a while, Alice tests positive and reports with a code from the
//! server's admin API; the server's batcher cuts its export files; Bob's next sync
//! finds the exposure and his exposure command prints it; Carol finds nothing.
//!
//! Two things make a demo of minutes out of a protocol of days:
//! - The agents replay yesterday (their clocks run a day behind), so Alice's keys have
//!   expired by the time she uploads and the server may export them at once; today's
//!   key would be embargoed until the day ends.
//! - The server stores key times rounded to 10 s instead of the hour and cuts 10 s
//!   export windows ([`SERVER_ARGS`]); with its defaults no key is exported before the
//!   hour it arrived in has ended. Its risk configuration alerts after one minute
//!   together instead of fifteen.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use kith_core::risk::{Classification, RiskConfig};
use kith_launch::ServerProcess;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::agent::Agent;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::server::{EXPORT_INDEX, Fetched, ServerClient};
use crate::status::Status;

/// Options of the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The kith-server binary (default: next to this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The kith-agent binary the agents run (default: this one).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// Seconds the agents listen to each other before Alice reports.
    #[arg(long, default_value_t = 30)]
    pub listen_seconds: u64,
    /// Keep the demo's files here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// One demo participant.
#[derive(Clone, Copy, Debug)]
pub struct Person {
    /// Its name, also its data directory.
    pub name: &'static str,
    /// Where it stands, `x,y` in metres.
    pub position: &'static str,
}

/// Alice (who reports), Bob beside her, Carol far away.
pub const PEOPLE: [Person; 3] = [
    Person {
        name: "alice",
        position: "0,0",
    },
    Person {
        name: "bob",
        position: "1.5,0",
    },
    Person {
        name: "carol",
        position: "300,0",
    },
];

/// The agents' clock offset: yesterday.
pub const REPLAY_OFFSET: i64 = -86_400;

/// The server's flags: key times stored to 10 s, 10 s export windows cut 2 s after
/// they end, small padding (the batcher runs every export period).
pub const SERVER_ARGS: [&str; 10] = [
    "--truncate-window",
    "10",
    "--export-period",
    "10",
    "--export-min-age",
    "2",
    "--export-min-keys",
    "100",
    "--export-padding-range",
    "10",
];

/// How long the demo waits for the export and for Bob's notification.
const WAIT: Duration = Duration::from_secs(90);

/// How the demo ended: every person's status at the end.
#[derive(Debug)]
pub struct Outcome {
    /// Whether Bob's exposure command ran.
    pub bob_notified: bool,
    /// Each person's name and status, in [`PEOPLE`]'s order.
    pub people: Vec<(&'static str, Status)>,
}

/// Runs the demo, printing as it goes; fails unless Bob was notified.
pub async fn run(args: DemoArgs) -> Result<()> {
    let outcome = play(&args).await?;
    if outcome.bob_notified {
        say("bob was notified; done");
        Ok(())
    } else {
        Err(Error::Server(format!(
            "bob was not notified within {} s",
            WAIT.as_secs()
        )))
    }
}

/// The demo's story, printed as it happens; what each person's status was at the end.
pub async fn play(args: &DemoArgs) -> Result<Outcome> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let exe = match &args.agent_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().map_err(Error::io("finding kith-agent's own path"))?,
    };
    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| exe.with_file_name("kith-server"));
    if !server_bin.exists() {
        return Err(Error::Config(format!(
            "no kith-server at {}: build it (`cargo build --release -p kith-server`) or pass --server-bin",
            server_bin.display()
        )));
    }

    say("starting kith-server");
    let server = start_server(&server_bin, &dir).await?;
    let url = server.url();
    say(&format!("kith-server listening on {url}"));

    let mut agents = Vec::new();
    for person in &PEOPLE {
        say(&format!(
            "starting {} at ({}) m",
            person.name, person.position
        ));
        agents.push(spawn_agent(&exe, &dir, &url, person)?);
    }
    say(&format!(
        "letting them listen for {} s",
        args.listen_seconds
    ));
    tokio::time::sleep(Duration::from_secs(args.listen_seconds)).await;

    say("alice tests positive; the health authority issues a code");
    let admin_key = server
        .admin_key
        .as_deref()
        .ok_or_else(|| Error::Server("kith-server printed no admin key".into()))?;
    let code = issue_code(&server.operator_url(), admin_key).await?;
    let report = Command::new(&exe)
        .args(["report", "--code", &code, "--server", &url, "--data-dir"])
        .arg(dir.join("alice"))
        .args(["--clock-offset-seconds", &REPLAY_OFFSET.to_string()])
        .status()
        .await
        .map_err(Error::io("running kith-agent report"))?;
    if !report.success() {
        return Err(Error::Server("alice's report failed (see above)".into()));
    }

    say("the server's batcher cuts an export file once the 10 s window of the upload has ended");
    let deadline = tokio::time::Instant::now() + WAIT;
    let client = ServerClient::new(&url, None)?;
    let files = loop {
        let index = export_index(&client).await?;
        if !index.is_empty() || tokio::time::Instant::now() >= deadline {
            break index;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if files.is_empty() {
        return Err(Error::Server(format!(
            "the export index stayed empty; the server's log ends:\n{}",
            server.log_tail(20)
        )));
    }
    say(&format!("export files listed: {}", files.join(", ")));

    let notified = dir.join("bob").join("notified");
    while !notified.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One more sync period, so carol has synced too.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for mut agent in agents {
        let _ = agent.kill().await;
    }
    drop(server);

    let mut people = Vec::new();
    for person in &PEOPLE {
        let config = Config {
            data_dir: dir.join(person.name),
            ..Config::default()
        };
        let status = Agent::open(config, SystemClock::shifted(REPLAY_OFFSET))?.status(1)?;
        let verdict = match (status.risk.exposure_windows, status.risk.risk_level) {
            (0, _) => "no exposure".to_owned(),
            (windows, Some(level)) => format!(
                "EXPOSED: risk level {level} on {}, {windows} windows",
                status.risk.days.join(", ")
            ),
            (windows, None) => format!("{windows} exposure windows, below the risk threshold"),
        };
        say(&format!(
            "{}: {} sightings, {verdict}",
            person.name, status.sightings
        ));
        people.push((person.name, status));
    }
    Ok(Outcome {
        bob_notified: notified.exists(),
        people,
    })
}

fn say(line: &str) {
    println!("demo: {line}");
}

/// The demo's risk configuration: ENX's, alerting after one minute together.
fn risk_config() -> RiskConfig {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    config.classifications = vec![Classification {
        per_day_sum: 60.0,
        ..Classification::default()
    }];
    config
}

async fn start_server(bin: &Path, dir: &Path) -> Result<ServerProcess> {
    let risk = dir.join("risk.json");
    std::fs::create_dir_all(dir).map_err(Error::io("creating the demo directory"))?;
    std::fs::write(&risk, risk_config().to_json())
        .map_err(Error::io("writing the demo's risk configuration"))?;
    let (bin, data_dir) = (bin.to_owned(), dir.join("server"));
    tokio::task::spawn_blocking(move || {
        let risk = risk.to_string_lossy();
        let mut args = SERVER_ARGS.to_vec();
        args.extend(["--risk-config", &risk]);
        ServerProcess::start(&bin, &data_dir, &args, &[])
    })
    .await
    .map_err(|e| Error::Server(format!("starting kith-server: {e}")))?
    .map_err(|e| Error::Server(e.to_string()))
}

/// The export index's lines (file paths), read as the agents read it.
async fn export_index(server: &ServerClient) -> Result<Vec<String>> {
    let Fetched::Body { bytes, .. } = server.fetch(EXPORT_INDEX, None).await? else {
        return Err(Error::Server(
            "the export index: 304 to an unconditional request".into(),
        ));
    };
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn spawn_agent(exe: &Path, dir: &Path, url: &str, person: &Person) -> Result<Child> {
    let data = dir.join(person.name);
    let notify = format!(
        "echo \"[{name}] NOTIFIED: $KITH_MESSAGE\"; touch {}",
        data.join("notified").display(),
        name = person.name
    );
    let mut child = Command::new(exe)
        .args([
            "run",
            "--radio",
            "sim",
            "--fast",
            "--position",
            person.position,
        ])
        .arg("--ether")
        .arg(dir.join("ether"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--server", url, "--exposure-command", &notify])
        .args(["--clock-offset-seconds", &REPLAY_OFFSET.to_string()])
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io("starting an agent"))?;
    // Prefix the agent's log lines with its name.
    if let Some(stderr) = child.stderr.take() {
        let name = person.name;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[{name}] {line}");
            }
        });
    }
    Ok(child)
}

/// A one-time code for a confirmed test, from the admin API on the operator listener.
pub async fn issue_code(operator_url: &str, admin_key: &str) -> Result<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{operator_url}/v1/admin/codes"))
        .bearer_auth(admin_key)
        .json(&serde_json::json!({"diagnosis": "confirmed_test"}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| Error::Server(format!("issuing a code: {e}")))?
        .json()
        .await
        .map_err(|e| Error::Server(format!("issuing a code: {e}")))?;
    answer["codes"][0]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Server(format!("the admin API answered {answer}")))
}

/// A directory removed at the end of the demo.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("kith-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(Error::io("creating the demo directory"))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
