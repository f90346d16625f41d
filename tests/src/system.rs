//! A kith-server and its agents, as one system under test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kith_core::risk::{Classification, RiskConfig};
use kith_core::{Day, UnixSeconds};
use kith_launch::ServerProcess;
use serde_json::Value;

use crate::agent::{AgentProcess, AgentSpec};
use crate::bins;
use crate::keys::{self, KeyBytes};

/// The agents' clock offset: they replay yesterday, so a reported key has expired and the
/// server may export it at once (today's would be embargoed until midnight).
pub const REPLAY_OFFSET: i64 = kith_agent::demo::REPLAY_OFFSET;

/// How the agents' clocks run: shifted from the system's, and maybe accelerated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentClock {
    /// Seconds the clock is shifted by (at `origin`, when accelerated).
    pub offset_seconds: i64,
    /// How many times as fast as the system's clock it runs (1: as fast).
    pub scale: u32,
    /// The system time (Unix seconds) from which an accelerated clock runs faster.
    pub origin: u64,
}

impl AgentClock {
    /// Yesterday, at the system clock's pace (the default).
    pub const REPLAY: Self = Self {
        offset_seconds: REPLAY_OFFSET,
        scale: 1,
        origin: 0,
    };

    /// A clock `scale` times as fast as the system's that reads `starts_at` (Unix
    /// seconds) at the system time `origin`.
    pub fn accelerated(scale: u32, origin: u64, starts_at: u64) -> Self {
        Self {
            offset_seconds: starts_at as i64 - origin as i64,
            scale,
            origin,
        }
    }

    /// What it reads (Unix seconds) at the system time `real`.
    pub fn at(&self, real: std::time::SystemTime) -> f64 {
        let real = real
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let origin = self.origin as f64;
        origin + (real - origin) * f64::from(self.scale) + self.offset_seconds as f64
    }

    /// What it reads now (Unix seconds).
    pub fn now(&self) -> f64 {
        self.at(std::time::SystemTime::now())
    }

    /// The `kith-agent` flags that accelerate it (none when it is not).
    fn scale_args(&self) -> Vec<String> {
        if self.scale == 1 {
            return Vec::new();
        }
        vec![
            format!("--time-scale={}", self.scale),
            format!("--time-origin={}", self.origin),
        ]
    }
}

/// The server's pace, over the agent demo's ([`kith_agent::demo::SERVER_ARGS`]): key times
/// stored to 2 s, 2-second export windows cut a second after they end, so a report is
/// exported within about five seconds.
pub const QUICK_SERVER_ARGS: [&str; 6] = [
    "--truncate-window",
    "2",
    "--export-period",
    "2",
    "--export-min-age",
    "1",
];

/// The agents' pace unless a test gives its own configuration (`kith-agent run --config`):
/// 1-second scans every 2–3 s (the simulated radio sends every 250 ms) and a sync every
/// 2 s, so agents hear each other within seconds and match an export soon after it is cut.
const QUICK_AGENT_CONFIG: &str = r#"
sync_every_seconds = 2
[scan]
scan_millis = 1000
period_seconds = { start = 2, end = 3 }
"#;

/// The file in the system's directory holding [`QUICK_AGENT_CONFIG`].
const QUICK_AGENT_CONFIG_FILE: &str = "quick-agent.toml";

/// What every instance on one database must share, in its data directory.
const SHARED_KEY_FILES: [&str; 4] = [
    "code-pepper.hex",
    "admin-key.sha256",
    "hpke-private-key.hex",
    "export-signing-key.pem",
];

/// The export files' index, from the server's root.
const EXPORT_INDEX: &str = "v1/exports/index.txt";

/// The venue trace-warning packages' index, from the server's root.
const TRACE_WARNING_INDEX: &str = "v1/trace-warnings/index.txt";

/// Lines of each process's log a failure report shows.
const TAIL_LINES: usize = 25;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(200);

/// A kith-server process and the agents talking to it, all stopped when dropped. When
/// dropped during a panic (a failed assertion), it first prints the step the test was at
/// and every process's state and log tail.
#[derive(Debug)]
pub struct System {
    // Processes go before the directory they run in.
    agents: Vec<AgentProcess>,
    /// More instances on the same database and store, with their data directories.
    instances: Vec<(ServerProcess, tempfile::TempDir)>,
    server: Option<ServerProcess>,
    server_args: Vec<String>,
    server_dir: PathBuf,
    admin_key: String,
    http: reqwest::Client,
    /// The scenario it runs for, to name in its output (scenarios run side by side).
    scenario: &'static str,
    step: String,
    clock: AgentClock,
    dir: tempfile::TempDir,
}

impl System {
    /// A kith-server on SQLite with the agent demo's settings at the quick pace
    /// ([`QUICK_SERVER_ARGS`]: 2-second windows and export periods) and a risk configuration
    /// alerting after one minute together; its agents run at a quick pace too.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`System::start`], with more server flags (replacing the settings of the same
    /// flags).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_in(None, extra_args)
    }

    /// Like [`System::start_with`], the server's data in `data_dir` (a small disk, say).
    pub fn start_on(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_in(Some(data_dir.to_owned()), extra_args)
    }

    /// Like [`System::start`], the agents scoring with `risk` instead.
    pub fn start_scoring(risk: &RiskConfig) -> Self {
        Self::start_in_scoring(None, &[], risk)
    }

    fn start_in(data_dir: Option<PathBuf>, extra_args: &[&str]) -> Self {
        Self::start_in_scoring(data_dir, extra_args, &one_minute_alert())
    }

    fn start_in_scoring(
        data_dir: Option<PathBuf>,
        extra_args: &[&str],
        risk_config: &RiskConfig,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server_dir = data_dir.unwrap_or_else(|| dir.path().join("server"));
        let risk = dir.path().join("risk.json");
        std::fs::write(&risk, risk_config.to_json()).expect("writing risk.json");
        std::fs::write(dir.path().join(QUICK_AGENT_CONFIG_FILE), QUICK_AGENT_CONFIG)
            .expect("writing the agents' configuration");
        // The settings are flag-value pairs; a quick one replaces the demo's, a flag the test
        // gives replaces both (clap refuses a flag twice).
        let overridden = |pair: &&[&str]| {
            !extra_args.contains(&pair[0]) && !QUICK_SERVER_ARGS.contains(&pair[0])
        };
        let mut server_args: Vec<String> = kith_agent::demo::SERVER_ARGS
            .chunks(2)
            .filter(overridden)
            .chain(
                QUICK_SERVER_ARGS
                    .chunks(2)
                    .filter(|pair| !extra_args.contains(&pair[0])),
            )
            .flatten()
            .map(|arg| (*arg).to_owned())
            .collect();
        server_args.extend(["--risk-config".to_owned(), risk.display().to_string()]);
        server_args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let server = launch(&server_dir, &server_args);
        let admin_key = server
            .admin_key
            .clone()
            .expect("a first start prints the admin key");
        Self {
            agents: Vec::new(),
            instances: Vec::new(),
            server: Some(server),
            server_args,
            server_dir,
            admin_key,
            http: reqwest::Client::new(),
            scenario: crate::scenario::current().unwrap_or("the test"),
            step: "starting kith-server".to_owned(),
            clock: AgentClock::REPLAY,
            dir,
        }
    }

    /// Records (and prints) what the test does now, for the failure report.
    pub fn step(&mut self, what: &str) {
        println!("== {}: step: {what}", self.scenario);
        what.clone_into(&mut self.step);
    }

    /// The running server.
    pub fn server(&self) -> &ServerProcess {
        self.server.as_ref().expect("kith-server is running")
    }

    /// The public API's base URL.
    pub fn url(&self) -> String {
        self.server().url()
    }

    /// The operator listener's base URL (admin API, portal).
    pub fn operator_url(&self) -> String {
        self.server().operator_url()
    }

    /// The admin API key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// `count` one-time codes for confirmed tests, from the admin API.
    pub async fn issue_codes(&self, count: u32) -> Vec<String> {
        crate::keys::issue_codes(&self.http, &self.operator_url(), &self.admin_key, count).await
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The directory everything runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's database (SQLite opened read-only, or its PostgreSQL database), to
    /// check what it stored.
    pub fn stored(&self) -> kith_server::inspect::StoredData {
        // Its `--database`, if it runs on PostgreSQL.
        let database = self
            .server_args
            .iter()
            .position(|arg| arg == "--database")
            .and_then(|at| self.server_args.get(at + 1))
            .map(|url| url.parse().expect("a PostgreSQL URL"));
        kith_server::inspect::StoredData::of(&self.server_dir, database.as_ref())
            .expect("opening the server's database")
    }

    /// SIGKILL to the server: no chance to finish what it was doing.
    pub fn kill_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill().expect("killing kith-server");
        }
    }

    /// `kith-server <its flags> export --once` on its data directory: started, not
    /// waited for (a test may kill it half-way).
    pub fn spawn_export_once(&self) -> std::process::Child {
        std::process::Command::new(bins::server())
            .arg("--data-dir")
            .arg(&self.server_dir)
            .args(&self.server_args)
            .args(["export", "--once"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting kith-server export --once")
    }

    /// Starts the server again on its data directory (new ports; agents started later
    /// get the new address).
    pub fn restart_server(&mut self) {
        self.kill_server();
        self.server = Some(launch(&self.server_dir, &self.server_args));
    }

    /// Starts another instance with the server's flags (so on the same `--database` and
    /// `--export-store`) and a copy of the files every instance shares (the code pepper, the
    /// admin key's hash, the HPKE and export signing keys); it runs until the system is
    /// dropped.
    pub fn add_instance(&mut self) -> &ServerProcess {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for file in SHARED_KEY_FILES {
            std::fs::copy(self.server_dir.join(file), dir.path().join(file))
                .unwrap_or_else(|e| panic!("copying {file}: {e}"));
        }
        let instance = launch(dir.path(), &self.server_args);
        self.instances.push((instance, dir));
        &self.instances.last().expect("just added").0
    }

    /// The instances [`System::add_instance`] started.
    pub fn instances(&self) -> impl Iterator<Item = &ServerProcess> {
        self.instances.iter().map(|(instance, _)| instance)
    }

    /// Starts agent `name` at `position` (metres) on the simulated radio.
    pub fn add_agent(&mut self, name: &str, position: [f32; 2]) {
        let url = self.url();
        self.add_agent_via(name, position, &url);
    }

    /// Starts agent `name` at `position`, syncing with `server_url` (a proxy, say).
    pub fn add_agent_via(&mut self, name: &str, position: [f32; 2], server_url: &str) {
        self.spawn_agent(name, position, server_url, &[]);
    }

    /// Starts agent `name` at `position` with more `kith-agent run` flags (`--config FILE`
    /// for a pace of its own, `--stay …`).
    pub fn add_agent_with(&mut self, name: &str, position: [f32; 2], args: &[String]) {
        let url = self.url();
        self.spawn_agent(name, position, &url, args);
    }

    /// Starts an agent with `args`, at the quick pace unless they give a `--config` or
    /// `--fast`.
    fn spawn_agent(&mut self, name: &str, position: [f32; 2], server_url: &str, args: &[String]) {
        let ether = self.ether();
        let mut extra_args = args.to_vec();
        if !args.iter().any(|arg| arg == "--config" || arg == "--fast") {
            let quick = self.dir.path().join(QUICK_AGENT_CONFIG_FILE);
            extra_args.extend(["--config".to_owned(), quick.display().to_string()]);
        }
        extra_args.extend(self.clock.scale_args());
        let spec = AgentSpec {
            name,
            position,
            server_url,
            ether: &ether,
            clock_offset_seconds: self.clock.offset_seconds,
            extra_args: &extra_args,
        };
        let agent = AgentProcess::spawn(&bins::agent(), self.dir.path(), &spec)
            .unwrap_or_else(|e| panic!("starting agent {name}: {e}"));
        self.agents.push(agent);
    }

    /// Runs the agents started from now on, and the agent commands, on `clock`.
    pub fn set_agent_clock(&mut self, clock: AgentClock) {
        self.clock = clock;
    }

    /// The agents' clock.
    pub fn agent_clock(&self) -> AgentClock {
        self.clock
    }

    /// Starts `kith-agent venue` as the screen at a place, with the agents' clock: the
    /// text of the QR code it shows once it shows one. (Its data directory is
    /// `<dir>/<name>`; it checks itself in there.)
    pub async fn add_venue(&mut self, name: &str, args: &[&str]) -> String {
        let mut command = std::process::Command::new(bins::agent());
        command
            .args(["venue", "--json"])
            .args(args)
            .arg(format!(
                "--clock-offset-seconds={}",
                self.clock.offset_seconds
            ))
            .args(self.clock.scale_args());
        self.add_process(name, command, false);
        let mut code = None;
        self.wait_until(
            &format!("the venue {name} showing its code"),
            Duration::from_secs(30),
            |s| {
                code = qr_text(&s.agent(name).output());
                code.is_some()
            },
        )
        .await;
        code.unwrap_or_default()
    }

    /// Starts `command --data-dir <dir>/<name>` as one of the system's processes (a
    /// phone app, say; `on_radio` if it joins the simulated radio): watched, killed, and
    /// reported on as an agent is.
    pub fn add_process(&mut self, name: &str, command: std::process::Command, on_radio: bool) {
        let process = AgentProcess::start(command, name, self.dir.path().join(name), on_radio)
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.agents.push(process);
    }

    /// The simulated radio's shared directory.
    pub fn ether(&self) -> PathBuf {
        self.dir.path().join("ether")
    }

    /// Agent `name`.
    pub fn agent(&self, name: &str) -> &AgentProcess {
        self.agents
            .iter()
            .find(|agent| agent.name == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// Agent `name`, to stop or kill it.
    pub fn agent_mut(&mut self, name: &str) -> &mut AgentProcess {
        self.agents
            .iter_mut()
            .find(|agent| agent.name == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// Every agent.
    pub fn agents(&self) -> &[AgentProcess] {
        &self.agents
    }

    /// Waits until every running agent has joined the ether (announced its port).
    pub async fn wait_for_radio(&mut self) {
        let ether = self.ether();
        let running = self
            .agents
            .iter()
            .filter(|a| a.on_radio() && !a.stopped())
            .count();
        self.wait_until(
            "every agent on the simulated radio",
            Duration::from_secs(30),
            |_| std::fs::read_dir(&ether).map_or(0, Iterator::count) >= running,
        )
        .await;
    }

    /// Waits until each agent in `names` has stored at least `sightings` sightings (one per
    /// beacon it heard per scan, from its `status`, which reads the store it writes),
    /// checking meanwhile that no process died.
    pub async fn wait_for_sightings(&mut self, names: &[&str], sightings: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut waiting = names.to_vec();
        loop {
            self.assert_running();
            let mut short = Vec::new();
            for name in waiting {
                let status = self.status(name).await;
                if status["sightings"].as_u64().unwrap_or(0) < sightings {
                    short.push(name);
                }
            }
            waiting = short;
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {waiting:?} to hear {sightings} beacons"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `done` until it holds, checking meanwhile that no process died; panics
    /// after `timeout` naming `what`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out ({timeout:?}) waiting for {what}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The export files the index lists, waiting up to `timeout` for at least `count`.
    pub async fn wait_for_exports(&mut self, count: usize, timeout: Duration) -> Vec<String> {
        self.wait_for_index(EXPORT_INDEX, count, timeout).await
    }

    /// The trace-warning packages the index lists, waiting up to `timeout` for at least
    /// `count`.
    pub async fn wait_for_trace_warnings(
        &mut self,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        self.wait_for_index(TRACE_WARNING_INDEX, count, timeout)
            .await
    }

    async fn wait_for_index(
        &mut self,
        index: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            let files = self.index(index).await;
            if files.len() >= count {
                return files;
            }
            assert!(
                Instant::now() < deadline,
                "timed out ({timeout:?}) waiting for {count} files in {index}; it lists {files:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to a minute until the export files hold every key in `expected`; how often
    /// each exported key occurs (see [`keys::assert_each_once`]).
    pub async fn wait_for_every_key(&mut self, expected: &[KeyBytes]) -> BTreeMap<KeyBytes, usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            let files = self.export_index().await;
            let counts = keys::exported_key_counts(&self.http, &self.url(), &files).await;
            let missing = expected
                .iter()
                .filter(|key| !counts.contains_key(*key))
                .count();
            if missing == 0 {
                return counts;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} acknowledged keys were never exported",
                expected.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The export files, once every key the server stores is in them (waiting up to a
    /// minute): the whole index after the last report, however many export windows the
    /// reports fell into.
    pub async fn wait_for_stored_keys_exported(&mut self) -> Vec<String> {
        let stored: Vec<KeyBytes> = self
            .stored()
            .all_key_bytes()
            .expect("the stored keys")
            .into_iter()
            .collect();
        self.wait_for_every_key(&stored).await;
        self.export_index().await
    }

    /// The export index's lines (paths from the server's root).
    pub async fn export_index(&self) -> Vec<String> {
        self.index(EXPORT_INDEX).await
    }

    /// The lines of the index at `path` (from the server's root).
    async fn index(&self, path: &str) -> Vec<String> {
        let answer = self
            .http
            .get(format!("{}/{path}", self.url()))
            .send()
            .await
            .expect("kith-server answers");
        assert!(
            answer.status().is_success(),
            "GET {path}: {}",
            answer.status()
        );
        let text = answer.text().await.expect("the index's text");
        text.lines().map(str::to_owned).collect()
    }

    /// `kith-agent <args>` on the data directory `data_dir` with the agents' clock,
    /// against the server: to run, or to kill half-way.
    pub fn agent_cli(&self, data_dir: &Path, args: &[&str]) -> tokio::process::Command {
        self.agent_cli_at(data_dir, 0, args)
    }

    /// Like [`System::agent_cli`], the clock `shift` seconds after the agents' (a
    /// check-in hours ago, say).
    pub fn agent_cli_at(
        &self,
        data_dir: &Path,
        shift: i64,
        args: &[&str],
    ) -> tokio::process::Command {
        let offset = self.clock.offset_seconds + shift;
        let mut command = agent_cli_via(data_dir, &self.url(), offset, args);
        command.args(self.clock.scale_args());
        command
    }

    /// Runs `kith-agent <args>` on agent `name`'s data directory (see
    /// [`System::agent_cli`]); its standard output, after checking it succeeded.
    pub async fn agent_command(&self, name: &str, args: &[&str]) -> String {
        self.agent_command_at(name, 0, args).await
    }

    /// Like [`System::agent_command`], the clock `shift` seconds after the agents'.
    pub async fn agent_command_at(&self, name: &str, shift: i64, args: &[&str]) -> String {
        let output = self
            .agent_cli_at(&self.agent(name).data_dir, shift, args)
            .output()
            .await
            .expect("running kith-agent");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kith-agent {} for {name}: {}\nstdout: {stdout}\nstderr: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `kith-agent report --code CODE` for agent `name`.
    pub async fn report(&self, name: &str, code: &str) {
        self.agent_command(name, &["report", "--code", code]).await;
    }

    /// `kith-agent status --json` of agent `name` (its store is SQLite in WAL mode, so
    /// this reads it while the agent writes; stop the agent for a final count).
    pub async fn status(&self, name: &str) -> Value {
        let text = self.agent_command(name, &["status", "--json"]).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status of {name}: {e}: {text}"))
    }

    /// Stops every agent (SIGTERM), so their stores can be read.
    pub fn stop_agents(&mut self) {
        // All at once, then each waited for: they stop side by side.
        let mut running: Vec<&mut AgentProcess> =
            self.agents.iter_mut().filter(|a| !a.stopped()).collect();
        for agent in &mut running {
            agent.terminate();
        }
        for agent in running {
            agent.stop();
        }
    }

    /// Panics, naming the process, if the server or an agent not stopped on purpose has
    /// exited.
    pub fn assert_running(&mut self) {
        if let Some(server) = &mut self.server {
            if let Ok(Some(status)) = server.try_wait() {
                panic!("kith-server (pid {}) exited: {status}", server.pid());
            }
        }
        for (instance, _) in &mut self.instances {
            if let Ok(Some(status)) = instance.try_wait() {
                panic!(
                    "kith-server instance (pid {}) exited: {status}",
                    instance.pid()
                );
            }
        }
        for agent in &mut self.agents {
            if let (false, Some(status)) = (agent.stopped(), agent.exit_status()) {
                panic!(
                    "agent {} (pid {}) exited: {status}",
                    agent.name,
                    agent.pid()
                );
            }
        }
    }

    fn failure_report(&mut self) -> String {
        let mut report = format!("== {} failed during step: {}\n", self.scenario, self.step);
        match &mut self.server {
            Some(server) => {
                let state = match server.try_wait() {
                    Ok(Some(status)) => format!("exited: {status}"),
                    _ => "running".to_owned(),
                };
                report += &format!(
                    "== kith-server (pid {}, {state}) at {}, log tail:\n{}\n",
                    server.pid(),
                    server.url(),
                    server.log_tail(TAIL_LINES)
                );
            }
            None => report += "== kith-server: not running (killed by the test)\n",
        }
        for (instance, _) in &self.instances {
            report += &format!(
                "== another kith-server instance (pid {}) at {}, log tail:\n{}\n",
                instance.pid(),
                instance.url(),
                instance.log_tail(TAIL_LINES)
            );
        }
        for agent in &mut self.agents {
            let state = match agent.exit_status() {
                Some(status) => format!("exited: {status}"),
                None => "running".to_owned(),
            };
            report += &format!(
                "== agent {} (pid {}, {state}) at {:?}, log tail:\n{}\n",
                agent.name,
                agent.pid(),
                agent.position,
                agent.log_tail(TAIL_LINES)
            );
        }
        report
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.failure_report());
        }
        // The fields' own drops kill the agents' process groups and the server.
    }
}

/// `kith-agent <args>` on the data directory `data_dir`, against `server_url` (a proxy,
/// say), its clock shifted by `clock_offset_seconds`.
pub fn agent_cli_via(
    data_dir: &Path,
    server_url: &str,
    clock_offset_seconds: i64,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bins::agent());
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--server", server_url])
        .arg(format!("--clock-offset-seconds={clock_offset_seconds}"))
        .kill_on_drop(true);
    command
}

/// The day the agents live in now (YYYY-MM-DD): yesterday.
pub fn agent_day() -> String {
    let now = UnixSeconds::from_system_time(std::time::SystemTime::now());
    Day::of(now.minus(REPLAY_OFFSET.unsigned_abs())).to_string()
}

/// The `qr_text` in `output`, what `kith-agent venue --json` prints (pretty, one field
/// a line, its log lines maybe between them).
fn qr_text(output: &str) -> Option<String> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix(r#""qr_text": "#))?;
    serde_json::from_str(line.trim_end_matches(',')).ok()
}

/// ENX's scoring, alerting after one minute together instead of fifteen.
pub fn one_minute_alert() -> RiskConfig {
    let mut config = RiskConfig::enx_with_15_minute_alert();
    config.classifications = vec![Classification {
        per_day_sum: 60.0,
        ..Classification::default()
    }];
    config
}

fn launch(data_dir: &Path, args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&bins::server(), data_dir, &args, &[])
        .unwrap_or_else(|e| panic!("starting kith-server: {e}"))
}
