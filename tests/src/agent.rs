//! One `kith-agent run --radio sim` process.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::output::Output;

/// How long an agent has to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The file the agent's exposure command appends to: one line per notification,
/// `<new exposures> <days, comma separated>`.
const NOTIFICATIONS: &str = "notifications";

/// The file the agent's exposure command appends its message to, one line per
/// notification, `<new venue exposures> <message>`.
const MESSAGES: &str = "messages";

/// Where and how an agent runs.
#[derive(Clone, Debug)]
pub struct AgentSpec<'a> {
    /// Its name, also its data directory's.
    pub name: &'a str,
    /// Where it stands, in metres.
    pub position: [f32; 2],
    /// The server it syncs with.
    pub server_url: &'a str,
    /// The simulated radio's shared directory.
    pub ether: &'a Path,
    /// Its clock's offset from the system's, seconds.
    pub clock_offset_seconds: i64,
    /// More `kith-agent run` flags (a configuration file with its pace, a movement
    /// schedule, an accelerated clock).
    pub extra_args: &'a [String],
}

/// A running agent, killed with its process group when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    /// Its name.
    pub name: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where it stands, in metres (where it stood first, if it moves).
    pub position: [f32; 2],
    child: Child,
    output: Output,
    exit: Option<ExitStatus>,
    stopped: bool,
    on_radio: bool,
}

impl AgentProcess {
    /// Starts `bin run --radio sim` in a process group of its own,
    /// with its data directory `dir/<name>` and an exposure command that records each
    /// notification.
    pub fn spawn(bin: &Path, dir: &Path, spec: &AgentSpec<'_>) -> std::io::Result<Self> {
        let data_dir = dir.join(spec.name);
        let notify = format!(
            r#"echo "$KITH_NEW_EXPOSURES $KITH_EXPOSURE_DAYS" >> '{}'; echo "$KITH_NEW_VENUE_EXPOSURES $KITH_MESSAGE" >> '{}'"#,
            data_dir.join(NOTIFICATIONS).display(),
            data_dir.join(MESSAGES).display()
        );
        let [x, y] = spec.position;
        let mut args: Vec<OsString> = ["run", "--radio", "sim"].map(OsString::from).into();
        args.extend(["--position".into(), format!("{x},{y}").into()]);
        args.extend(["--ether".into(), spec.ether.into()]);
        args.extend(
            ["--server", spec.server_url, "--exposure-command", &notify].map(OsString::from),
        );
        args.extend(spec.extra_args.iter().map(OsString::from));
        args.push(format!("--clock-offset-seconds={}", spec.clock_offset_seconds).into());
        let mut command = Command::new(bin);
        command.args(args);
        let mut agent = Self::start(command, spec.name, data_dir, true)?;
        agent.position = spec.position;
        Ok(agent)
    }

    /// Starts `command --data-dir <data_dir>` (any long-running one: a venue's screen, a
    /// phone app) in a process group of its own, its output captured; `on_radio` if it
    /// joins the simulated radio.
    pub fn start(
        mut command: Command,
        name: &str,
        data_dir: PathBuf,
        on_radio: bool,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&data_dir)?;
        let mut child = command
            .arg("--data-dir")
            .arg(&data_dir)
            .env("KITH_LOG", "info")
            // Plain log lines (tracing colours them even into a pipe).
            .env("NO_COLOR", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = Output::default();
        if let Some(pipe) = child.stdout.take() {
            output.capture(pipe);
        }
        if let Some(pipe) = child.stderr.take() {
            output.capture(pipe);
        }
        Ok(Self {
            name: name.to_owned(),
            data_dir,
            position: [f32::NAN; 2],
            child,
            output,
            exit: None,
            stopped: false,
            on_radio,
        })
    }

    /// Its process id (and process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it exited, if it has, without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Whether the test stopped or killed it (so its exit is no failure).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether it takes part in the simulated radio (a venue's screen does not).
    pub fn on_radio(&self) -> bool {
        self.on_radio
    }

    /// Everything it wrote to its standard output and error so far.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Its last `lines` lines of output.
    pub fn log_tail(&self, lines: usize) -> String {
        self.output.tail(lines)
    }

    /// SIGTERM to its process group, not waiting (see [`AgentProcess::stop`]).
    pub fn terminate(&mut self) {
        self.stopped = true;
        signal_group(self.pid(), "TERM");
    }

    /// SIGTERM to its process group, then waits; SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// SIGKILL to its process group: no chance to clean up.
    pub fn kill(&mut self) -> ExitStatus {
        self.stopped = true;
        signal_group(self.pid(), "KILL");
        let status = self.child.wait().expect("waiting for a killed agent");
        self.exit = Some(status);
        status
    }

    /// Export files its running process downloaded and matched so far (its log's
    /// `synced new_files=N` lines, summed): each file once, however often it synced.
    pub fn files_matched(&self) -> usize {
        self.synced("new_files")
    }

    /// Venue trace-warning packages its running process downloaded and matched so far
    /// (`synced new_packages=N`, summed).
    pub fn packages_matched(&self) -> usize {
        self.synced("new_packages")
    }

    /// The sum of `field=N` over its log's `synced` lines.
    fn synced(&self, field: &str) -> usize {
        let prefix = format!("{field}=");
        self.output
            .text()
            .lines()
            .filter(|line| line.contains(" synced "))
            .filter_map(|line| {
                line.split(prefix.as_str())
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    }

    /// The notifications its exposure command recorded: per run, the number of new
    /// exposures and the exposure days (YYYY-MM-DD).
    pub fn notifications(&self) -> Vec<(usize, Vec<String>)> {
        let text = std::fs::read_to_string(self.data_dir.join(NOTIFICATIONS)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let (count, days) = line.split_once(' ').unwrap_or((line, ""));
                let days = days.split(',').filter(|d| !d.is_empty()).map(str::to_owned);
                (count.parse().unwrap_or(0), days.collect())
            })
            .collect()
    }

    /// The messages its exposure command was given: per run, the number of new venue
    /// exposures and `$KITH_MESSAGE`.
    pub fn messages(&self) -> Vec<(usize, String)> {
        let text = std::fs::read_to_string(self.data_dir.join(MESSAGES)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let (count, message) = line.split_once(' ').unwrap_or((line, ""));
                (count.parse().unwrap_or(0), message.to_owned())
            })
            .collect()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            self.kill();
        }
    }
}

/// `kill -SIGNAL -- -PGID` (its exposure commands run in groups of their own, which the
/// agent kills itself when it stops them).
fn signal_group(pgid: u32, signal: &str) {
    // It may have exited already: then there is nothing to signal.
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}
