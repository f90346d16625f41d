//! The agent: drives core's [`ExposureEngine`] with a radio, a clock and a server.
//!
//! This is also the reference for how an app drives the engine: advertise
//! [`ExposureEngine::beacon`] and replace it at every rotation; hand every scan window to
//! [`ExposureEngine::record_sightings`]; download new export files, verify them and
//! [`ExposureEngine::ingest_export`] them; read [`ExposureEngine::exposure_summary`];
//! [`ExposureEngine::purge`] daily; upload [`ExposureEngine::keys_to_upload`] after a
//! positive test.

use kith_core::store::{IngestReport, SqliteStore, Store};
use kith_core::{
    BeaconPayload, BluetoothMetadata, Day, ExposureEngine, IntervalNumber, OsRng, Sighting,
    TrustedKeys, UnixSeconds,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::clock::{Clock, UnixMillis, seconds};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::radio::{Radio, ScanWindow};
use crate::schedule::{Schedule, Task};
use crate::server::{Fetched, PublishAnswer, ServerClient, trusted_keys};
use crate::status::{self, Status};

const INDEX_ETAG: &str = "agent.index_etag";
const INDEX: &str = "agent.index";
const LAST_SYNC: &str = "agent.last_sync";
/// Index entries already downloaded and ingested (core knows files by content hash; this
/// saves downloading them again to find out).
const FILES_DONE: &str = "agent.files_done";
pub(crate) const BEACONS_PER_HOUR: &str = "agent.beacons_per_hour";

/// Hours of beacon counts kept (as long as sightings).
const HOURS_KEPT: u64 = 14 * 24;

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// When it ran.
    pub at: UnixSeconds,
    /// Files the index lists.
    pub files_listed: usize,
    /// Files downloaded and matched this time.
    pub files_new: usize,
    /// Files that failed to download, parse or verify, with the reason (retried next time).
    pub files_failed: Vec<String>,
    /// Exposures newly found.
    pub new_exposures: usize,
    /// The risk level after the sync (1 = most severe), if any.
    pub risk_level: Option<u8>,
    /// Days (YYYY-MM-DD) at that risk level.
    pub risk_days: Vec<String>,
}

/// A device taking part: its engine, configuration and clock.
#[derive(Debug)]
pub struct Agent<C> {
    engine: ExposureEngine<SqliteStore>,
    config: Config,
    clock: C,
    rng: StdRng,
}

impl<C: Clock> Agent<C> {
    /// Opens (or creates) the agent's store in `config.data_dir`.
    pub fn open(config: Config, clock: C) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(Error::io(format!("creating {}", config.data_dir.display())))?;
        restrict(&config.data_dir);
        let mut engine = ExposureEngine::new(SqliteStore::open(config.store_path())?)?;
        engine.set_rssi_correction(config.rssi_correction)?;
        Ok(Self {
            engine,
            config,
            clock,
            rng: StdRng::from_entropy(),
        })
    }

    /// The engine (for status and tests).
    pub fn engine(&self) -> &ExposureEngine<SqliteStore> {
        &self.engine
    }

    /// Uses `rng` for the schedule's jitter (tests make it repeatable).
    pub fn with_schedule_rng(mut self, rng: StdRng) -> Self {
        self.rng = rng;
        self
    }

    /// The beacon to put on the air at `now` (Unix seconds).
    pub fn beacon(&mut self, now: UnixSeconds) -> Result<BeaconPayload> {
        let interval = IntervalNumber::from_unix_seconds(now.get())?;
        Ok(self.engine.beacon(
            &mut OsRng,
            interval,
            BluetoothMetadata::v1_0(self.config.tx_power),
        )?)
    }

    /// Stores what a scan window heard; returns how many beacons that was.
    pub fn record(&mut self, window: &ScanWindow) -> Result<usize> {
        let sightings: Vec<Sighting> = window
            .received
            .iter()
            .map(|r| Sighting::new(r.beacon(), r.rssi, seconds(r.at), window.started_at))
            .collect();
        self.engine.record_sightings(&sightings)?;
        Ok(sightings.len())
    }

    /// Runs until `shutdown` completes (or, with `until`, until the clock passes it):
    /// rotates, scans, syncs and purges on schedule.
    pub async fn run<R: Radio>(
        &mut self,
        radio: &mut R,
        until: Option<UnixMillis>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let start = self.clock.now_millis();
        let sync = self
            .config
            .server
            .as_ref()
            .map(|_| self.config.sync_period());
        let mut schedule = Schedule::new(
            self.config.rotation.clone(),
            self.config.duty_cycle(),
            sync,
            start,
        );
        let mut counted = radio.beacons_sent();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (task, at) = schedule.next();
            if until.is_some_and(|until| at > until) {
                break;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.clock.sleep_until(at) => {}
            }
            let started = self.clock.now_millis();
            match task {
                Task::Rotate => {
                    let beacon = self.beacon(seconds(started))?;
                    radio.advertise(&beacon).await?;
                    info!("rotated: a new identifier and address are on the air");
                }
                Task::Scan => {
                    let window = radio.scan(schedule.scan_millis()).await?;
                    let heard = self.record(&window)?;
                    let sent = radio.beacons_sent();
                    self.count_beacons(seconds(started), sent.saturating_sub(counted))?;
                    counted = sent;
                    tracing::debug!(heard, "scan window closed");
                }
                Task::Sync => match self.sync().await {
                    Ok(outcome) => info!(
                        new_files = outcome.files_new,
                        failed_files = outcome.files_failed.len(),
                        new_exposures = outcome.new_exposures,
                        "synced"
                    ),
                    Err(e) => warn!("sync failed, will retry at the next sync: {e}"),
                },
                Task::Purge => {
                    self.engine.purge(seconds(started))?;
                    info!("purged what is older than 14 days");
                }
            }
            schedule.done(task, started, &mut self.rng);
        }
        let sent = radio.beacons_sent();
        self.count_beacons(self.clock.now(), sent.saturating_sub(counted))?;
        radio.stop_advertising().await
    }

    /// Adds `count` beacons sent to the hour of `now`, forgetting hours past retention.
    fn count_beacons(&mut self, now: UnixSeconds, count: u64) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let mut hours = status::beacons_per_hour(&self.engine)?;
        let hour = now.get() / 3600;
        *hours.entry(hour).or_default() += count;
        hours.retain(|h, _| h + HOURS_KEPT > hour);
        let json = serde_json::to_string(&hours).map_err(|e| Error::Config(e.to_string()))?;
        Ok(self
            .engine
            .store_mut()
            .set_setting(BEACONS_PER_HOUR, &json)?)
    }

    /// Downloads the export files not matched yet, verifies and matches them, scores
    /// the exposures and runs the exposure command if there are new ones.
    pub async fn sync(&mut self) -> Result<SyncOutcome> {
        let server = self.server()?;
        let config = server.config().await?;
        let risk = config.risk_configuration.to_string();
        if *self.engine.risk_model() != kith_core::risk::RiskModel::parse(&risk)? {
            self.engine.set_risk_configuration(&risk)?;
        }
        let trusted = if self.config.trusted_keys.is_empty() {
            trusted_keys(&config.export_keys())?
        } else {
            trusted_keys(&self.config.trusted_keys)?
        };
        let index = self.index(&server, &config.export_index).await?;
        let now = self.clock.now();
        let mut outcome = SyncOutcome {
            at: now,
            files_listed: index.len(),
            ..SyncOutcome::default()
        };
        let mut done: Vec<String> = self
            .engine
            .store()
            .setting(FILES_DONE)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        // Entries that left the index are forgotten, so the list stays as short as it.
        done.retain(|name| index.contains(name));
        for name in &index {
            if done.contains(name) {
                continue;
            }
            match self.fetch_and_match(&server, name, &trusted, now).await {
                Ok(report) => {
                    if !report.already_ingested {
                        outcome.files_new += 1;
                    }
                    outcome.new_exposures += report.new_exposures;
                    done.push(name.clone());
                    let json =
                        serde_json::to_string(&done).map_err(|e| Error::Config(e.to_string()))?;
                    self.engine.store_mut().set_setting(FILES_DONE, &json)?;
                }
                // The network failing ends this sync; the next one resumes.
                Err(e @ Error::Server(_)) => return Err(e),
                Err(e) => {
                    warn!("skipping export {name}: {e}");
                    outcome.files_failed.push(format!("{name}: {e}"));
                }
            }
        }
        let summary = self.engine.exposure_summary(now)?;
        outcome.risk_level = summary.risk_level;
        outcome.risk_days = summary.days.iter().map(Day::to_string).collect();
        let json = serde_json::to_string(&outcome).map_err(|e| Error::Config(e.to_string()))?;
        self.engine.store_mut().set_setting(LAST_SYNC, &json)?;
        if outcome.new_exposures > 0 {
            self.notify(&outcome).await;
        }
        Ok(outcome)
    }

    /// The export index, from the server or (on 304) as last seen.
    async fn index(&mut self, server: &ServerClient, path: &str) -> Result<Vec<String>> {
        let store = self.engine.store();
        let etag = Store::setting(store, INDEX_ETAG)?;
        let text = match server.fetch(path, etag.as_deref()).await? {
            Fetched::NotModified => Store::setting(store, INDEX)?.unwrap_or_default(),
            Fetched::Body { bytes, etag } => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::Server("the export index is not UTF-8 text".into()))?;
                self.engine.store_mut().set_setting(INDEX, &text)?;
                if let Some(etag) = etag {
                    self.engine.store_mut().set_setting(INDEX_ETAG, &etag)?;
                }
                text
            }
        };
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    async fn fetch_and_match(
        &mut self,
        server: &ServerClient,
        name: &str,
        trusted: &TrustedKeys,
        now: UnixSeconds,
    ) -> Result<IngestReport> {
        let Fetched::Body { bytes, .. } = server.fetch(name, None).await? else {
            return Err(Error::Server(format!(
                "{name}: 304 to an unconditional request"
            )));
        };
        self.engine
            .ingest_export(&bytes, trusted, now)
            .map_err(|source| Error::Download {
                name: name.to_owned(),
                source,
            })
    }

    async fn notify(&self, outcome: &SyncOutcome) {
        let message = match outcome.risk_level {
            Some(level) => format!(
                "Possible exposure: risk level {level} on {}",
                outcome.risk_days.join(", ")
            ),
            None => format!(
                "{} new exposure(s) found, below the risk threshold",
                outcome.new_exposures
            ),
        };
        info!(
            new_exposures = outcome.new_exposures,
            risk_level = outcome.risk_level,
            days = %outcome.risk_days.join(","),
            "exposure"
        );
        let Some(command) = &self.config.exposure_command else {
            return;
        };
        let mut hook = tokio::process::Command::new("sh");
        hook.arg("-c")
            .arg(command)
            .env("KITH_MESSAGE", &message)
            .env("KITH_NEW_EXPOSURES", outcome.new_exposures.to_string())
            .env(
                "KITH_RISK_LEVEL",
                outcome
                    .risk_level
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
            )
            .env("KITH_EXPOSURE_DAYS", outcome.risk_days.join(","))
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        let timeout = std::time::Duration::from_secs(self.config.exposure_command_timeout_seconds);
        run_hook(hook, timeout).await;
    }

    /// The agent's clock, in whole seconds.
    pub fn now(&self) -> UnixSeconds {
        self.clock.now()
    }

    /// Checks this device in at `venue` now (a venue's own screen does so with each
    /// day's code); scanning the same code during a visit returns that visit.
    pub fn check_in_venue(
        &mut self,
        venue: &kith_core::checkin::VenuePayload,
    ) -> Result<kith_core::checkin::CheckIn> {
        let now = self.now();
        Ok(self.engine.check_in(venue, now)?)
    }

    /// The venue visits this device holds (the last 14 days).
    pub fn check_ins(&self) -> Result<Vec<kith_core::checkin::CheckIn>> {
        Ok(self.engine.check_ins()?)
    }

    /// Uploads the last 14 days of keys with `code`, sealed to the server's key.
    pub async fn report(&mut self, code: &str) -> Result<ReportOutcome> {
        let code = code.trim();
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::Config(
                "the verification code is letters and digits, as the health authority gave it"
                    .into(),
            ));
        }
        let server = self.server()?;
        let config = server.config().await?;
        let keys = self.engine.keys_to_upload(self.clock.now())?;
        if keys.is_empty() {
            return Err(Error::Config(
                "this device has no keys to upload yet".into(),
            ));
        }
        let answer = server
            .publish_sealed(&config, &keys, code, &mut OsRng)
            .await?;
        info!(keys = keys.len(), "uploaded this device's keys");
        Ok(ReportOutcome {
            keys_uploaded: keys.len(),
            server: answer,
        })
    }

    /// Keys, beacons and RPIs per hour, the last sync and the risk.
    pub fn status(&self, hours: u64) -> Result<Status> {
        status::status(&self.engine, self.clock.now(), hours)
    }

    /// Deletes what is older than 14 days.
    pub fn purge(&mut self) -> Result<()> {
        Ok(self.engine.purge(self.clock.now())?)
    }

    fn server(&self) -> Result<ServerClient> {
        let url = self.config.server.as_deref().ok_or_else(|| {
            Error::Config(
                "no server configured: set `server` in the config or pass --server".into(),
            )
        })?;
        ServerClient::new(url, self.config.ca_file.as_deref())
    }
}

/// Runs the exposure command, killing its process group after `timeout`.
async fn run_hook(mut hook: tokio::process::Command, timeout: std::time::Duration) {
    let mut child = match hook.spawn() {
        Ok(child) => child,
        Err(e) => return warn!("the exposure command could not start: {e}"),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => warn!("the exposure command exited with {status}"),
        Ok(Err(e)) => warn!("waiting for the exposure command failed: {e}"),
        Err(_) => {
            warn!(
                "the exposure command ran longer than {} s; killing it",
                timeout.as_secs()
            );
            if let Some(pid) = child.id() {
                // The group's id is the shell's pid (process_group(0)).
                let _ = tokio::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status()
                    .await;
            }
            let _ = child.kill().await;
        }
    }
}

/// What `report` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ReportOutcome {
    /// Keys sent.
    pub keys_uploaded: usize,
    /// The server's answer.
    pub server: PublishAnswer,
}

impl std::fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "synced: {} files listed, {} new, {} failed; {} new exposures",
            self.files_listed,
            self.files_new,
            self.files_failed.len(),
            self.new_exposures
        )?;
        for failure in &self.files_failed {
            writeln!(f, "  failed: {failure}")?;
        }
        match self.risk_level {
            Some(level) => writeln!(f, "risk: level {level} on {}", self.risk_days.join(", ")),
            None => writeln!(f, "risk: none"),
        }
    }
}

impl std::fmt::Display for ReportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "uploaded {} keys (sealed); the server stored {}",
            self.keys_uploaded, self.server.inserted
        )
    }
}

/// The last sync stored by [`Agent::sync`].
pub(crate) fn last_sync(engine: &ExposureEngine<SqliteStore>) -> Result<Option<SyncOutcome>> {
    Ok(
        Store::setting(engine.store(), LAST_SYNC)?
            .and_then(|json| serde_json::from_str(&json).ok()),
    )
}

/// Keeps the data directory to its owner: it holds the device's keys.
fn restrict(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::clock::ManualClock;
    use crate::radio::Received;
    use crate::schedule::next_interval_boundary;

    /// A radio on a manual clock: records what it advertises, hears one beacon per scan.
    struct FakeRadio {
        clock: ManualClock,
        advertised: Arc<Mutex<Vec<(u64, BeaconPayload)>>>,
        scans: Vec<u64>,
    }

    const HEARD: [u8; 20] = [5; 20];

    impl Radio for FakeRadio {
        async fn advertise(&mut self, payload: &BeaconPayload) -> Result<()> {
            self.advertised
                .lock()
                .unwrap()
                .push((self.clock.now_millis(), *payload));
            Ok(())
        }
        async fn stop_advertising(&mut self) -> Result<()> {
            Ok(())
        }
        async fn scan(&mut self, millis: u64) -> Result<ScanWindow> {
            let started_at = self.clock.now_millis();
            self.scans.push(started_at);
            self.clock.advance(millis);
            let received = Received {
                service_data: HEARD,
                rssi: -60,
                at: started_at + 1,
            };
            Ok(ScanWindow {
                started_at,
                ended_at: self.clock.now_millis(),
                received: vec![received],
            })
        }
        fn beacons_sent(&self) -> u64 {
            self.scans.len() as u64 * 1000
        }
    }

    #[tokio::test]
    async fn a_day_of_running_rotates_at_boundaries_scans_on_the_duty_cycle_and_keeps_what_it_heard()
     {
        let dir = tempfile::tempdir().unwrap();
        let start = 1_764_590_000_123;
        let clock = ManualClock::at(start);
        let config = Config {
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let mut agent = Agent::open(config, clock.clone())
            .unwrap()
            .with_schedule_rng(StdRng::seed_from_u64(3));
        let mut radio = FakeRadio {
            clock: clock.clone(),
            advertised: Arc::default(),
            scans: Vec::new(),
        };
        let day = 86_400_000;
        agent
            .run(&mut radio, Some(start + day), std::future::pending())
            .await
            .unwrap();

        // An RPI per interval, on the air from its boundary, for the interval it is of.
        let advertised = radio.advertised.lock().unwrap().clone();
        assert_eq!(advertised[0].0, start);
        assert_eq!(
            advertised.len(),
            1 + 144,
            "start and each boundary of the day"
        );
        for pair in advertised.windows(2) {
            assert_eq!(pair[1].0, next_interval_boundary(pair[0].0));
            assert_ne!(
                pair[0].1.rpi(),
                pair[1].1.rpi(),
                "every rotation is a new RPI"
            );
        }
        let keys = agent.engine().store().own_keys().unwrap();
        assert_eq!(
            keys.len(),
            2,
            "the day crosses midnight UTC: two daily keys"
        );
        for (at, beacon) in &advertised {
            let interval = IntervalNumber::from_unix_seconds(at / 1000).unwrap();
            let key = keys
                .iter()
                .find(|k| k.validity().contains(interval))
                .unwrap();
            assert_eq!(key.rpi_key().rpi(interval), beacon.rpi());
        }

        // Scans 210–300 s apart; each scan's beacon is a stored sighting.
        let gaps: Vec<u64> = radio.scans.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| (210_000..=304_000).contains(g)),
            "{gaps:?}"
        );
        let sightings = agent.engine().store().sightings().unwrap();
        assert_eq!(sightings.len(), radio.scans.len());
        assert!(
            sightings
                .iter()
                .all(|s| s.beacon().to_service_data() == HEARD && s.rssi == -60)
        );

        // Status counts them per hour.
        let status = agent.status(24).unwrap();
        assert_eq!(status.keys, 2);
        let heard: usize = status.hours.iter().map(|h| h.distinct_rpis_heard).sum();
        assert!(
            heard >= 23,
            "one distinct RPI in (nearly) every hour: {heard}"
        );
        let sent: u64 = status.hours.iter().map(|h| h.beacons_sent).sum();
        assert!(sent > 0 && sent <= radio.beacons_sent());
    }

    #[tokio::test]
    async fn sync_and_report_without_a_server_say_how_to_configure_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let mut agent = Agent::open(config, ManualClock::at(1_764_590_000_000)).unwrap();
        assert!(
            agent
                .sync()
                .await
                .unwrap_err()
                .to_string()
                .contains("--server")
        );
        assert!(
            agent
                .report("123")
                .await
                .unwrap_err()
                .to_string()
                .contains("--server")
        );
        assert!(
            agent
                .report("12 3; rm")
                .await
                .unwrap_err()
                .to_string()
                .contains("letters and digits")
        );
    }
}
