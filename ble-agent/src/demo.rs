//! `kith-agent demo`: a kith-server and three simulated agents on this machine.
//!
//! Alice and Bob stand 1.5 m apart, Carol 300 m away. After they have listened to
//! each other for a while, Alice tests positive and reports with a code from the
//! server's admin API; the server cuts its export files; Bob's next sync finds the
//! exposure and his exposure command prints it; Carol finds nothing.
//!
//! The agents replay yesterday (their clocks run a day behind), so Alice's keys have
//! expired by the time she uploads and the server may export them at once; today's
//! key would be embargoed until the day ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::agent::Agent;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::error::{Error, Result};

/// Options of the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The kith-server binary (default: next to this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Seconds the agents listen to each other before Alice reports.
    #[arg(long, default_value_t = 30)]
    pub listen_seconds: u64,
    /// Keep the demo's files here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// One demo participant.
struct Person {
    name: &'static str,
    position: &'static str,
}

const PEOPLE: [Person; 3] = [
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
const REPLAY_OFFSET: i64 = -86_400;

/// Runs the demo, printing as it goes.
pub async fn run(args: DemoArgs) -> Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    let exe = std::env::current_exe().map_err(Error::io("finding kith-agent's own path"))?;
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
    let mut server = RunningServer::start(&server_bin, &dir.join("server")).await?;
    let (admin_key, url) = (server.admin_key.clone(), server.url.clone());
    let operator_url = server.operator_url.clone();
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
    let code = issue_code(&operator_url, &admin_key).await?;
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

    say("the server cuts its export files once the minute of the upload has ended");
    let notified = dir.join("bob").join("notified");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    while !notified.exists() && tokio::time::Instant::now() < deadline {
        let export = Command::new(&server_bin)
            .args([
                "--export-period",
                "60",
                "--export-min-age",
                "5",
                "--data-dir",
            ])
            .arg(dir.join("server"))
            .args(["export", "--once"])
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(Error::io("running kith-server export --once"))?;
        if !export.success() {
            return Err(Error::Server(
                "kith-server export --once failed (see above)".into(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // One more sync period, so carol has synced too.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for mut agent in agents {
        let _ = agent.kill().await;
    }
    let _ = server.child.kill().await;

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
    }
    if notified.exists() {
        say("bob was notified; done");
        Ok(())
    } else {
        Err(Error::Server("bob was not notified within 150 s".into()))
    }
}

fn say(line: &str) {
    println!("demo: {line}");
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

/// A kith-server process started on a free loopback port.
#[derive(Debug)]
pub struct RunningServer {
    /// The process (killed when dropped).
    pub child: Child,
    /// The admin API key it printed on its first start.
    pub admin_key: String,
    /// Its public base URL.
    pub url: String,
    /// Its operator listener (admin API, portal).
    pub operator_url: String,
}

impl RunningServer {
    /// Starts `bin` on 127.0.0.1 with a fresh `data_dir`, and reads the admin key and
    /// the URL it prints.
    pub async fn start(bin: &Path, data_dir: &Path) -> Result<Self> {
        let mut child = Command::new(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--operator-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::io(format!("starting {}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Server("kith-server has no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut admin, mut public) = (None, None);
        let read = async {
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(Error::io("reading kith-server's output"))?
            {
                if let Some(key) = line.split("store it now): ").nth(1) {
                    admin = Some(key.trim().to_owned());
                }
                if let Some(url) = line.strip_prefix("listening on ") {
                    public = Some(url.trim().to_owned());
                }
                if let Some(url) = line.strip_prefix("operator listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            Err(Error::Server("kith-server exited before listening".into()))
        };
        let operator_url = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| Error::Server("kith-server did not start within 30 s".into()))??;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let admin_key =
            admin.ok_or_else(|| Error::Server("kith-server printed no admin key".into()))?;
        let url = public.ok_or_else(|| Error::Server("kith-server printed no address".into()))?;
        Ok(Self {
            child,
            admin_key,
            url,
            operator_url,
        })
    }
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
