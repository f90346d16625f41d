//! The agent: drives core's [`ExposureEngine`] with a radio, a clock and a server.
//!
//! This is also the reference for how an app drives the engine: advertise
//! [`ExposureEngine::beacon`] and replace it at every rotation; hand every scan window to
//! [`ExposureEngine::record_sightings`]; download new export files, verify them and
//! [`ExposureEngine::ingest_export`] them; read [`ExposureEngine::exposure_summary`];
//! [`ExposureEngine::purge`] daily; upload [`ExposureEngine::keys_to_upload`] after a
//! positive test. Venues the same way: [`ExposureEngine::check_in`] with a scanned code,
//! [`ExposureEngine::ingest_trace_warnings`] each verified package, and upload
//! [`ExposureEngine::check_ins_to_upload`] with the keys.

use kith_core::checkin::{CheckIn, TraceWarningFile, TransmissionRiskLevel, VenuePayload};
use kith_core::store::{SqliteStore, Store};
use kith_core::{
    BeaconPayload, BluetoothMetadata, Day, ExportLimits, ExposureEngine, IntervalNumber, OsRng,
    Sighting, TrustedKeys, UnixSeconds,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::clock::{Clock, UnixMillis, seconds};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::radio::{Radio, ScanWindow};
use crate::schedule::{Schedule, Task};
use crate::server::{Fetched, PublishAnswer, ServerClient, Upload, trusted_keys};
use crate::status::{self, Status, VenueWarning};

const LAST_SYNC: &str = "agent.last_sync";
pub(crate) const BEACONS_PER_HOUR: &str = "agent.beacons_per_hour";

/// Where the agent keeps one of the server's indexes and what it has done of it.
struct Feed {
    /// What its files hold.
    kind: FeedKind,
    /// What its files are, for messages.
    what: &'static str,
    /// The index's ETag.
    etag: &'static str,
    /// The index's text as last downloaded.
    index: &'static str,
    /// Index entries already downloaded and ingested (core knows files by content hash;
    /// this saves downloading them again to find out).
    done: &'static str,
}

/// The key export files.
const EXPORTS: Feed = Feed {
    kind: FeedKind::Keys,
    what: "export",
    etag: "agent.index_etag",
    index: "agent.index",
    done: "agent.files_done",
};

/// The venue trace-warning packages.
const TRACE_WARNINGS: Feed = Feed {
    kind: FeedKind::TraceWarnings,
    what: "trace-warning package",
    etag: "agent.trace_warning_index_etag",
    index: "agent.trace_warning_index",
    done: "agent.trace_warnings_done",
};

/// What a feed's files hold, and so what they are matched against.
#[derive(Clone, Copy, Debug)]
enum FeedKind {
    /// Diagnosis keys, against the sightings.
    Keys,
    /// Venue reports, against the check-ins.
    TraceWarnings,
}

/// One file ingested.
#[derive(Debug)]
struct Ingested {
    /// Not ingested before.
    new: bool,
    /// Exposures it revealed that were not known.
    found: usize,
}

/// What one feed's sync did.
#[derive(Debug, Default)]
struct FeedOutcome {
    listed: usize,
    new: usize,
    failed: Vec<String>,
    /// Exposures newly found.
    found: usize,
}

/// Hours of beacon counts kept (as long as sightings).
const HOURS_KEPT: u64 = 14 * 24;

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Venue trace-warning packages the server lists.
    pub trace_warning_packages_listed: usize,
    /// Packages downloaded and matched this time.
    pub trace_warning_packages_new: usize,
    /// Visits newly found to overlap a positive person's.
    pub new_venue_exposures: Vec<VenueWarning>,
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
                        new_packages = outcome.trace_warning_packages_new,
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

    /// Downloads the export files and trace-warning packages not matched yet, verifies
    /// them against the trusted keys, matches them against the sightings and check-ins,
    /// scores the exposures and runs the exposure command if there are new ones.
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
        let now = self.clock.now();
        let venue_before = self.engine.venue_exposures()?;
        let exports = self
            .sync_feed(&server, &EXPORTS, &config.export_index, &trusted, now)
            .await?;
        let warnings = match &config.trace_warning_index {
            Some(index) => {
                self.sync_feed(&server, &TRACE_WARNINGS, index, &trusted, now)
                    .await?
            }
            None => FeedOutcome::default(),
        };
        let new_venue_exposures: Vec<VenueWarning> = self
            .engine
            .venue_exposures()?
            .iter()
            .filter(|e| !venue_before.contains(e))
            .map(VenueWarning::from)
            .collect();
        let summary = self.engine.exposure_summary(now)?;
        let outcome = SyncOutcome {
            at: now,
            files_listed: exports.listed,
            files_new: exports.new,
            files_failed: exports.failed.into_iter().chain(warnings.failed).collect(),
            new_exposures: exports.found,
            risk_level: summary.risk_level,
            risk_days: summary.days.iter().map(Day::to_string).collect(),
            trace_warning_packages_listed: warnings.listed,
            trace_warning_packages_new: warnings.new,
            new_venue_exposures,
        };
        let json = serde_json::to_string(&outcome).map_err(|e| Error::Config(e.to_string()))?;
        self.engine.store_mut().set_setting(LAST_SYNC, &json)?;
        if outcome.new_exposures > 0 || !outcome.new_venue_exposures.is_empty() {
            self.notify(&outcome).await;
        }
        Ok(outcome)
    }

    /// Downloads and ingests the entries of one index not done yet.
    async fn sync_feed(
        &mut self,
        server: &ServerClient,
        feed: &Feed,
        path: &str,
        trusted: &TrustedKeys,
        now: UnixSeconds,
    ) -> Result<FeedOutcome> {
        let index = self.index(server, feed, path).await?;
        let mut outcome = FeedOutcome {
            listed: index.len(),
            ..FeedOutcome::default()
        };
        let mut done: Vec<String> = self
            .engine
            .store()
            .setting(feed.done)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        // Entries that left the index are forgotten, so the list stays as short as it.
        done.retain(|name| index.contains(name));
        for name in &index {
            if done.contains(name) {
                continue;
            }
            match self.fetch_and_match(server, feed, name, trusted, now).await {
                Ok(ingested) => {
                    outcome.new += usize::from(ingested.new);
                    outcome.found += ingested.found;
                    done.push(name.clone());
                    let json =
                        serde_json::to_string(&done).map_err(|e| Error::Config(e.to_string()))?;
                    self.engine.store_mut().set_setting(feed.done, &json)?;
                }
                // The network failing ends this sync; the next one resumes.
                Err(e @ Error::Server(_)) => return Err(e),
                Err(e) => {
                    warn!("skipping {} {name}: {e}", feed.what);
                    outcome.failed.push(format!("{name}: {e}"));
                }
            }
        }
        Ok(outcome)
    }

    /// An index, from the server or (on 304) as last seen.
    async fn index(
        &mut self,
        server: &ServerClient,
        feed: &Feed,
        path: &str,
    ) -> Result<Vec<String>> {
        let store = self.engine.store();
        let etag = Store::setting(store, feed.etag)?;
        let text = match server.fetch(path, etag.as_deref()).await? {
            Fetched::NotModified => Store::setting(store, feed.index)?.unwrap_or_default(),
            Fetched::Body { bytes, etag } => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::Server(format!("the {} index is not UTF-8 text", feed.what))
                })?;
                self.engine.store_mut().set_setting(feed.index, &text)?;
                if let Some(etag) = etag {
                    self.engine.store_mut().set_setting(feed.etag, &etag)?;
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

    /// Downloads `name`, verifies it and matches it: an export file against the
    /// sightings, a trace-warning package against the check-ins.
    async fn fetch_and_match(
        &mut self,
        server: &ServerClient,
        feed: &Feed,
        name: &str,
        trusted: &TrustedKeys,
        now: UnixSeconds,
    ) -> Result<Ingested> {
        let Fetched::Body { bytes, .. } = server.fetch(name, None).await? else {
            return Err(Error::Server(format!(
                "{name}: 304 to an unconditional request"
            )));
        };
        let download = |source| Error::Download {
            name: name.to_owned(),
            source,
        };
        if let FeedKind::Keys = feed.kind {
            let report = self
                .engine
                .ingest_export(&bytes, trusted, now)
                .map_err(download)?;
            return Ok(Ingested {
                new: !report.already_ingested,
                found: report.new_exposures,
            });
        }
        let warnings = TraceWarningFile::parse(&bytes, &ExportLimits::default())
            .and_then(|file| file.verify(trusted))
            .map_err(download)?;
        // Known by content, as core knows export files: the same package under another
        // name is matched once.
        let key = format!("sha256:{:x}", Sha256::digest(&bytes));
        let new = !self.engine.store().is_file_processed(&key)?;
        let found = self.engine.ingest_trace_warnings(&key, &warnings, now)?;
        Ok(Ingested { new, found })
    }

    async fn notify(&self, outcome: &SyncOutcome) {
        let mut parts = Vec::new();
        if outcome.new_exposures > 0 {
            parts.push(match outcome.risk_level {
                Some(level) => format!(
                    "Possible exposure: risk level {level} on {}",
                    outcome.risk_days.join(", ")
                ),
                None => format!(
                    "{} new exposure(s) found, below the risk threshold",
                    outcome.new_exposures
                ),
            });
            info!(
                new_exposures = outcome.new_exposures,
                risk_level = outcome.risk_level,
                days = %outcome.risk_days.join(","),
                "exposure"
            );
        }
        if !outcome.new_venue_exposures.is_empty() {
            parts.extend(
                outcome
                    .new_venue_exposures
                    .iter()
                    .map(VenueWarning::message),
            );
            // Where the owner went is theirs: the log says when, not where.
            let days: std::collections::BTreeSet<&str> = outcome
                .new_venue_exposures
                .iter()
                .map(|w| &w.from[..10])
                .collect();
            info!(
                new_venue_exposures = outcome.new_venue_exposures.len(),
                days = %days.into_iter().collect::<Vec<_>>().join(","),
                "venue exposure"
            );
        }
        let message = parts.join("; ");
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
            .env(
                "KITH_NEW_VENUE_EXPOSURES",
                outcome.new_venue_exposures.len().to_string(),
            )
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
    pub fn check_in_venue(&mut self, venue: &VenuePayload) -> Result<CheckIn> {
        let now = self.now();
        Ok(self.engine.check_in(venue, now)?)
    }

    /// Checks in with the text of a venue's QR code (a Kith or Corona-Warn-App poster,
    /// or a `kith-agent venue` screen), now. The visit ends by itself after the venue's
    /// default length unless [`check_out`](Self::check_out) ends it earlier.
    pub fn check_in_qr(&mut self, qr_text: &str) -> Result<CheckIn> {
        let venue = VenuePayload::from_qr_text(qr_text.trim()).map_err(Error::VenueCode)?;
        self.check_in_venue(&venue)
    }

    /// Ends visit `id` now, or with `None` every visit going on now; returns the visits
    /// ended.
    pub fn check_out(&mut self, id: Option<u64>) -> Result<Vec<CheckIn>> {
        let now = self.now();
        let ids: Vec<u64> = match id {
            Some(id) => vec![id],
            None => self
                .engine
                .check_ins()?
                .iter()
                .filter(|c| (c.visit.stay.arrival()..c.visit.stay.departure()).contains(&now))
                .map(|c| c.id)
                .collect(),
        };
        if ids.is_empty() {
            return Err(Error::Config(
                "no visit is going on now; `status` lists the visits".into(),
            ));
        }
        ids.into_iter()
            .map(|id| Ok(self.engine.check_out(id, now)?))
            .collect()
    }

    /// The venue visits this device holds (the last 14 days).
    pub fn check_ins(&self) -> Result<Vec<CheckIn>> {
        Ok(self.engine.check_ins()?)
    }

    /// Uploads the last 14 days of keys and venue visits with `code`, sealed to the
    /// server's key.
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
        let now = self.clock.now();
        let keys = self.engine.keys_to_upload(now)?;
        if keys.is_empty() {
            return Err(Error::Config(
                "this device has no keys to upload yet".into(),
            ));
        }
        // The device does not know how contagious its owner was on each day; as the
        // phone bindings, every visit carries the highest level.
        // Its visits hide among padding: always the same number of reports.
        let check_ins =
            self.engine
                .check_ins_to_upload(&mut OsRng, now, TransmissionRiskLevel::HIGHEST)?;
        let upload = Upload {
            keys: &keys,
            check_ins: &check_ins.reports,
            code,
        };
        let answer = server.publish_sealed(&config, &upload, &mut OsRng).await?;
        // Acknowledged: the packages that carry these visits must not warn their owner.
        self.engine.mark_check_ins_shared(&check_ins.check_ins)?;
        info!(
            keys = keys.len(),
            "uploaded this device's keys and venue visits"
        );
        Ok(ReportOutcome {
            keys_uploaded: keys.len(),
            check_ins_uploaded: check_ins.visits(),
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
    /// Venue visits sent (each encrypted for that venue's visitors).
    pub check_ins_uploaded: usize,
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
        writeln!(
            f,
            "venue trace warnings: {} packages listed, {} new; {} new venue exposures",
            self.trace_warning_packages_listed,
            self.trace_warning_packages_new,
            self.new_venue_exposures.len()
        )?;
        for failure in &self.files_failed {
            writeln!(f, "  failed: {failure}")?;
        }
        for warning in &self.new_venue_exposures {
            writeln!(f, "{}", warning.message())?;
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
            "uploaded {} keys and {} venue visits (sealed); the server stored {} keys",
            self.keys_uploaded, self.check_ins_uploaded, self.server.inserted
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
