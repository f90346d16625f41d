//! The device side in one object: own keys, sightings, matching, risk, retention.

use rand_core::{CryptoRng, RngCore};

use crate::diagnosis::DiagnosisKey;
use crate::error::{Error, IntervalError, Result, StoreError};
use crate::interval::{IntervalNumber, KeyValidity};
use crate::keys::TemporaryExposureKey;
use crate::matching::SightingIndex;
use crate::metadata::BluetoothMetadata;
use crate::payload::BeaconPayload;
use crate::risk::{
    Explanation, ExposureSummary, ExposureWindow, RiskConfig, RiskModel, ScanTimeline,
};
use crate::sighting::Sighting;
use crate::store::{Exposure, IngestReport, RETENTION_SECONDS, Store};
use crate::time::UnixSeconds;

/// Name of the setting that holds the risk configuration (as given: any model's text).
const RISK_CONFIG_SETTING: &str = "risk_config";

/// Name of the setting that holds the receiver's RSSI correction (dB).
const RSSI_CORRECTION_SETTING: &str = "rssi_correction";

/// What a phone or a Linux device runs: it keeps its keys and sightings in a
/// [`Store`], matches downloaded diagnosis keys and scores the exposures.
///
/// ```
/// use kith_core::store::MemoryStore;
/// use kith_core::{BluetoothMetadata, DiagnosisKey, ExposureEngine, OsRng, Sighting, UnixSeconds};
///
/// let now = UnixSeconds::new(1_700_000_000);
/// let interval = now.interval();
/// let mut alice = ExposureEngine::new(MemoryStore::new())?;
/// let mut bob = ExposureEngine::new(MemoryStore::new())?;
///
/// // Bob hears Alice's beacon for 15 minutes (a scan every 5 minutes, 40 dB attenuation).
/// let beacon = alice.beacon(&mut OsRng, interval, BluetoothMetadata::v1_0(-20))?;
/// for scan in 0..3 {
///     bob.record_sighting(Sighting::new(beacon, -60, now + 300 * scan, scan))?;
/// }
///
/// // Alice tests positive and uploads her keys; Bob downloads and matches them.
/// let uploaded: Vec<DiagnosisKey> = alice
///     .keys_to_upload(now + 3_600)?
///     .into_iter()
///     .map(DiagnosisKey::new)
///     .collect();
/// assert_eq!(bob.ingest(Some("export-1.zip"), uploaded, now + 7_200)?.new_exposures, 1);
///
/// let summary = bob.exposure_summary(now + 7_200)?;
/// assert_eq!(summary.windows.len(), 1);
/// assert_eq!(summary.risk_level, None); // 2 min + 5 + 5: below the 15-minute default
/// bob.purge(now + 15 * 86_400)?;
/// # Ok::<(), kith_core::Error>(())
/// ```
///
/// Matching a large export takes a while; an app that shares the engine between
/// threads (one advertising and scanning, one downloading) need not hold it for that
/// long: [`ingest_export_shared`](Self::ingest_export_shared) takes its lock only for
/// the short steps, so beacons and sightings are served while a file is matched.
#[derive(Debug)]
pub struct ExposureEngine<S> {
    store: S,
    model: RiskModel,
    rssi_correction: i8,
}

impl<S: Store> ExposureEngine<S> {
    /// An engine over `store`, with the risk model and RSSI correction stored there.
    ///
    /// Without a stored model, Kith's preset applies:
    /// [`RiskConfig::enx_with_15_minute_alert`] (ENX's documented scoring defaults with
    /// an alert at 15 weighted minutes a day; ENX's own defaults never notify). A
    /// stored setting that no longer reads is a [`StoreError::InvalidSetting`].
    pub fn new(store: S) -> Result<Self> {
        let invalid = |name: &'static str| {
            move |error| match error {
                Error::RiskConfig(source) => StoreError::InvalidSetting { name, source }.into(),
                other => other,
            }
        };
        let model = match store.setting(RISK_CONFIG_SETTING)? {
            Some(text) => RiskModel::parse(&text).map_err(invalid(RISK_CONFIG_SETTING))?,
            None => RiskConfig::enx_with_15_minute_alert().into(),
        };
        let rssi_correction = match store.setting(RSSI_CORRECTION_SETTING)? {
            Some(text) => text.parse().map_err(|_| {
                invalid(RSSI_CORRECTION_SETTING)(Error::from(
                    crate::error::RiskConfigError::invalid(
                        RSSI_CORRECTION_SETTING,
                        &text,
                        "dB as an integer -128..=127",
                    ),
                ))
            })?,
            None => 0,
        };
        Ok(Self {
            store,
            model,
            rssi_correction,
        })
    }

    /// Sets this receiver's RSSI calibration (dBm added to every measured RSSI,
    /// GAEN's `rssiOffset`) and keeps it in the store. As in GAEN (R1), it is applied
    /// when a sighting is recorded: sightings recorded before keep theirs.
    pub fn set_rssi_correction(&mut self, correction: i8) -> Result<()> {
        self.store
            .set_setting(RSSI_CORRECTION_SETTING, &correction.to_string())?;
        self.rssi_correction = correction;
        Ok(())
    }

    /// The RSSI correction applied to sightings as they are recorded.
    pub fn rssi_correction(&self) -> i8 {
        self.rssi_correction
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for callers that keep their own settings in it (as the agent does).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The risk model in use.
    pub fn risk_model(&self) -> &RiskModel {
        &self.model
    }

    /// Replaces the risk model with a configuration of any family (ENX / GAEN v2
    /// JSON, Corona-Warn-App YAML, GAEN v1 JSON; see [`RiskModel::parse`]) and keeps
    /// it in the store.
    pub fn set_risk_configuration(&mut self, text: &str) -> Result<()> {
        let model = RiskModel::parse(text)?;
        self.store.set_setting(RISK_CONFIG_SETTING, text)?;
        self.model = model;
        Ok(())
    }

    /// Today's own key, generated and stored on the first call of the day.
    pub fn current_key<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: IntervalNumber,
    ) -> Result<TemporaryExposureKey> {
        let today = KeyValidity::day_of(now);
        if let Some(key) = self
            .store
            .own_keys()?
            .into_iter()
            .find(|k| k.validity() == today)
        {
            return Ok(key);
        }
        let key = TemporaryExposureKey::generate(rng, now);
        self.store.add_own_key(&key)?;
        Ok(key)
    }

    /// The beacon to advertise during `now`.
    ///
    /// The last interval number, 2^32 − 1, is refused ([`IntervalError::TimeOutOfRange`]):
    /// a key valid then would end past the range, so no upload could cover that beacon.
    pub fn beacon<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: IntervalNumber,
        metadata: BluetoothMetadata,
    ) -> Result<BeaconPayload> {
        if now.checked_add(1).is_none() {
            return Err(IntervalError::TimeOutOfRange {
                unix_seconds: i128::from(now.start_unix_seconds()),
            }
            .into());
        }
        Ok(self.current_key(rng, now)?.beacon(now, metadata))
    }

    /// Remembers one received beacon, its RSSI corrected by the receiver's calibration.
    pub fn record_sighting(&mut self, sighting: Sighting) -> Result<()> {
        self.record_sightings(&[sighting])
    }

    /// Remembers the beacons of one scan, all or none, their RSSI corrected by the
    /// receiver's calibration (R1: GAEN adds `rssiOffset` at scan time).
    pub fn record_sightings(&mut self, sightings: &[Sighting]) -> Result<()> {
        let corrected: Vec<Sighting> = sightings
            .iter()
            .map(|s| Sighting {
                rssi: s.rssi.saturating_add(self.rssi_correction),
                ..*s
            })
            .collect();
        self.store.add_sightings(&corrected)
    }

    /// The own keys of the last 14 days to publish after a positive test; today's
    /// key is cut to end at `now`.
    pub fn keys_to_upload(&self, now: UnixSeconds) -> Result<Vec<TemporaryExposureKey>> {
        let now_interval = IntervalNumber::from_unix_seconds(now.get())?;
        let oldest = IntervalNumber::from_unix_seconds(now.minus(RETENTION_SECONDS).get())?;
        Ok(self
            .store
            .own_keys()?
            .into_iter()
            .filter(|k| k.validity().end() > oldest && k.validity().start() <= now_interval)
            .map(|k| {
                let cut = k.validity().truncated_at(now_interval.saturating_add(1));
                k.with_validity(cut)
            })
            .collect())
    }

    /// Matches a stream of diagnosis keys against the stored sightings and stores
    /// the exposures found.
    ///
    /// With `file`, an export file already processed is skipped (nothing changes and
    /// the report says so) and the file is marked as processed together with its
    /// exposures.
    pub fn ingest<I>(
        &mut self,
        file: Option<&str>,
        keys: I,
        now: UnixSeconds,
    ) -> Result<IngestReport>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        if let Some(file) = file {
            if self.store.is_file_processed(file)? {
                return Ok(IngestReport::already_ingested());
            }
        }
        let found = FoundExposures {
            file: file.map(str::to_owned),
            exposures: self.snapshot()?.find_exposures(keys),
            revisions: Vec::new(),
        };
        self.commit(found, now)
    }

    /// The sightings and calibration that matching needs, copied out so that the
    /// matching itself runs without the engine (see [`SightingSnapshot`]).
    pub fn snapshot(&self) -> Result<SightingSnapshot> {
        Ok(SightingSnapshot {
            sightings: self.store.sightings()?,
        })
    }

    /// Stores what a matching run found: the new exposures, the revisions of stored
    /// ones, and the file as processed at `now`. A file that was
    /// processed meanwhile (by another thread) changes nothing.
    pub fn commit(&mut self, found: FoundExposures, now: UnixSeconds) -> Result<IngestReport> {
        if let Some(file) = &found.file {
            if self.store.is_file_processed(file)? {
                return Ok(IngestReport::already_ingested());
            }
        }
        self.store.record_ingest(
            found.file.as_deref(),
            &found.exposures,
            &found.revisions,
            now,
        )
    }

    /// The risk level, its days, the daily summaries and the windows behind them.
    pub fn exposure_summary(&self, now: UnixSeconds) -> Result<ExposureSummary> {
        Ok(self.model.assess(&self.windows()?, now))
    }

    /// Why each day is or is not risky at `now`: per day and window the seconds per
    /// attenuation bucket, the weights, the score, and which threshold was reached
    /// or missed.
    pub fn explain(&self, now: UnixSeconds) -> Result<Explanation> {
        Ok(self.model.explain(&self.windows()?, now))
    }

    fn windows(&self) -> Result<Vec<ExposureWindow>> {
        Ok(self
            .store
            .exposures()?
            .into_iter()
            .flat_map(|e| e.windows)
            .collect())
    }

    /// Deletes everything older than 14 days before `now`.
    pub fn purge(&mut self, now: UnixSeconds) -> Result<()> {
        self.store.purge(now)
    }
}

#[cfg(feature = "export")]
mod download {
    use std::ops::DerefMut;

    use sha2::{Digest, Sha256};

    use super::{ExposureEngine, FoundExposures, SightingSnapshot};
    use crate::diagnosis::DiagnosisKey;
    use crate::error::Result;
    use crate::export::{ExportFile, ExportLimits, TrustedKeys, VerifiedExport};
    use crate::store::{IngestReport, Store};
    use crate::time::UnixSeconds;

    /// A downloaded export file whose signature verified, known by its content.
    ///
    /// Its name is the SHA-256 of the file's bytes (`sha256:<hex>`): the same file
    /// downloaded twice, under any URL, is recognised and matched once.
    #[derive(Debug)]
    pub struct DownloadedExport {
        name: String,
        export: VerifiedExport,
    }

    impl DownloadedExport {
        /// Parses `file` (zip bytes) within `limits` and checks its signature against
        /// `trusted`. Fails with [`Error::ExportFormat`](crate::Error::ExportFormat)
        /// for bytes that are not an export, [`Error::ExportTrust`](crate::Error::ExportTrust)
        /// for one not signed by a trusted key.
        pub fn verify(file: &[u8], trusted: &TrustedKeys, limits: &ExportLimits) -> Result<Self> {
            let export = ExportFile::parse(file, limits)?.verify(trusted)?;
            let digest = Sha256::digest(file);
            let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            Ok(Self {
                name: format!("sha256:{hex}"),
                export,
            })
        }

        /// `sha256:` and the lowercase hex SHA-256 of the file's bytes.
        pub fn name(&self) -> &str {
            &self.name
        }

        /// The verified export.
        pub fn export(&self) -> &VerifiedExport {
            &self.export
        }
    }

    impl SightingSnapshot {
        /// Matches a verified export: its keys, and its revised keys (whose report
        /// type changed since publication, e.g. to revoked), which revise the stored
        /// exposures of the same key and are matched like the other keys in case
        /// the file that first published them was missed. Key records that break
        /// GAEN's rules are skipped, as GAEN clients do: the file's other keys still count.
        pub fn match_export(&self, download: &DownloadedExport) -> FoundExposures {
            let export = download.export();
            let revisions: Vec<DiagnosisKey> =
                export.revised_keys().filter_map(Result::ok).collect();
            let keys = export
                .keys()
                .filter_map(Result::ok)
                .chain(revisions.iter().cloned());
            FoundExposures {
                file: Some(download.name().to_owned()),
                exposures: self.find_exposures(keys),
                revisions,
            }
        }
    }

    impl<S: Store> ExposureEngine<S> {
        /// Verifies a downloaded export file (zip bytes) against `trusted`, matches it
        /// against the stored sightings and stores what it changed: new exposures,
        /// revised ones. A file already ingested (the same bytes) changes nothing.
        pub fn ingest_export(
            &mut self,
            file: &[u8],
            trusted: &TrustedKeys,
            now: UnixSeconds,
        ) -> Result<IngestReport> {
            let download = DownloadedExport::verify(file, trusted, &ExportLimits::default())?;
            self.ingest_download(&download, now)
        }

        /// [`ingest_export`](Self::ingest_export) of a file already verified.
        pub fn ingest_download(
            &mut self,
            download: &DownloadedExport,
            now: UnixSeconds,
        ) -> Result<IngestReport> {
            if self.store.is_file_processed(download.name())? {
                return Ok(IngestReport::already_ingested());
            }
            let found = self.snapshot()?.match_export(download);
            self.commit(found, now)
        }

        /// [`ingest_export`](Self::ingest_export) for an engine shared between threads:
        /// `lock` gives access to it (a mutex guard), and is called only for the short
        /// steps. Parsing, verifying and matching, which take seconds for a large
        /// file, run without it, so beacons and sightings are served meanwhile.
        ///
        /// Sightings recorded while the file is matched are not matched against it,
        /// as in GAEN, where a file is matched once against the sightings stored
        /// when it is provided.
        pub fn ingest_export_shared<G>(
            mut lock: impl FnMut() -> G,
            file: &[u8],
            trusted: &TrustedKeys,
            now: UnixSeconds,
        ) -> Result<IngestReport>
        where
            G: DerefMut<Target = Self>,
        {
            let download = DownloadedExport::verify(file, trusted, &ExportLimits::default())?;
            let snapshot = {
                let engine = lock();
                if engine.store.is_file_processed(download.name())? {
                    return Ok(IngestReport::already_ingested());
                }
                engine.snapshot()?
            };
            let found = snapshot.match_export(&download);
            lock().commit(found, now)
        }
    }
}

#[cfg(feature = "export")]
pub use download::DownloadedExport;

/// The stored sightings at one moment (their RSSI already corrected): what
/// matching compares keys against. Taken with [`ExposureEngine::snapshot`].
#[derive(Clone, Debug)]
pub struct SightingSnapshot {
    sightings: Vec<Sighting>,
}

impl SightingSnapshot {
    /// The exposures among `keys`: each key heard, with its exposure windows.
    pub fn find_exposures<I>(&self, keys: I) -> Vec<Exposure>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        let index = SightingIndex::new(&self.sightings);
        #[cfg(feature = "parallel")]
        let matches = index.par_matches(keys);
        #[cfg(not(feature = "parallel"))]
        let matches: Vec<_> = index.matches(keys).collect();
        let scans = ScanTimeline::new(&self.sightings);
        matches
            .into_iter()
            .map(|matched| Exposure {
                windows: ExposureWindow::from_match(&matched, &scans, 0),
                matched,
                revised: false,
            })
            .collect()
    }
}

/// What one matching run found, to store with [`ExposureEngine::commit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FoundExposures {
    /// The file matched, if the keys came from one.
    pub file: Option<String>,
    /// The keys heard, with their windows.
    pub exposures: Vec<Exposure>,
    /// Revised keys, to apply to the stored exposures of the same key.
    pub revisions: Vec<DiagnosisKey>,
}
