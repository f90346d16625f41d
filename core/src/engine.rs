//! The device side in one object: own keys, sightings, matching, risk, retention.

use rand_core::{CryptoRng, RngCore};

use crate::diagnosis::DiagnosisKey;
use crate::error::Result;
use crate::interval::{IntervalNumber, KeyValidity};
use crate::keys::TemporaryExposureKey;
use crate::matching::SightingIndex;
use crate::metadata::BluetoothMetadata;
use crate::payload::BeaconPayload;
use crate::risk::{ExposureSummary, ExposureWindow, RiskConfig, ScanTimeline};
use crate::sighting::Sighting;
use crate::store::{Exposure, RETENTION_SECONDS, Store};

/// Name of the setting that holds the risk configuration (ENX JSON).
const RISK_CONFIG_SETTING: &str = "risk_config";

/// What a phone or a Linux device runs: it keeps its keys and sightings in a
/// [`Store`], matches downloaded diagnosis keys and scores the exposures.
///
/// ```
/// use kith_core::store::MemoryStore;
/// use kith_core::{BluetoothMetadata, DiagnosisKey, ExposureEngine, IntervalNumber, OsRng, Sighting};
///
/// let now = 1_700_000_000; // Unix seconds
/// let interval = IntervalNumber::from_unix_seconds(now)?;
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
/// assert_eq!(bob.ingest(Some("export-1.zip"), uploaded, now + 7_200)?, 1);
///
/// let summary = bob.exposure_summary(now + 7_200)?;
/// assert_eq!(summary.windows.len(), 1);
/// assert_eq!(summary.risk_level, None); // 2 min + 5 + 5: below the 15-minute default
/// bob.purge(now + 15 * 86_400)?;
/// # Ok::<(), kith_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ExposureEngine<S> {
    store: S,
    config: RiskConfig,
    rssi_correction: i8,
}

impl<S: Store> ExposureEngine<S> {
    /// An engine over `store`, with the risk configuration stored there (or
    /// [`RiskConfig::enx_defaults`]) and no RSSI correction.
    pub fn new(store: S) -> Result<Self> {
        let config = match store.setting(RISK_CONFIG_SETTING)? {
            Some(json) => RiskConfig::from_json(&json)?,
            None => RiskConfig::enx_defaults(),
        };
        Ok(Self {
            store,
            config,
            rssi_correction: 0,
        })
    }

    /// Sets this receiver's RSSI calibration (dBm added to every measured RSSI),
    /// used for the exposures matched from now on.
    pub fn set_rssi_correction(&mut self, correction: i8) {
        self.rssi_correction = correction;
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    pub(crate) fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The risk configuration in use.
    pub fn risk_config(&self) -> &RiskConfig {
        &self.config
    }

    /// Replaces the risk configuration (ENX JSON) and keeps it in the store.
    pub fn set_risk_config_json(&mut self, json: &str) -> Result<()> {
        let config = RiskConfig::from_json(json)?;
        self.store.set_setting(RISK_CONFIG_SETTING, json)?;
        self.config = config;
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
    pub fn beacon<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        now: IntervalNumber,
        metadata: BluetoothMetadata,
    ) -> Result<BeaconPayload> {
        Ok(self.current_key(rng, now)?.beacon(now, metadata))
    }

    /// Remembers one received beacon.
    pub fn record_sighting(&mut self, sighting: Sighting) -> Result<()> {
        self.store.add_sightings(&[sighting])
    }

    /// Remembers the beacons of one scan, all or none.
    pub fn record_sightings(&mut self, sightings: &[Sighting]) -> Result<()> {
        self.store.add_sightings(sightings)
    }

    /// The own keys of the last 14 days to publish after a positive test; today's
    /// key is cut to end at `now` (Unix seconds).
    pub fn keys_to_upload(&self, now: u64) -> Result<Vec<TemporaryExposureKey>> {
        let now_interval = IntervalNumber::from_unix_seconds(now)?;
        let oldest = IntervalNumber::from_unix_seconds(now.saturating_sub(RETENTION_SECONDS))?;
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
    /// the exposures found; returns how many keys were newly matched.
    ///
    /// With `file`, an export file already processed is skipped (returns 0) and the
    /// file is marked as processed together with its exposures.
    pub fn ingest<I>(&mut self, file: Option<&str>, keys: I, now: u64) -> Result<usize>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        if let Some(file) = file {
            if self.store.is_file_processed(file)? {
                return Ok(0);
            }
        }
        let exposures = self.find_exposures(keys)?;
        self.store.add_exposures(file, &exposures, &[], now)
    }

    /// [`ingest`](Self::ingest) for a verified export file named `name`: its keys
    /// are decoded as they are matched.
    ///
    /// The file's revised keys (report types changed since publication, e.g. to
    /// revoked) are applied to the exposures already stored, and matched like the
    /// other keys in case the file that first published them was missed. Key
    /// records that break GAEN's rules are skipped, as GAEN clients do: the file's
    /// other keys still count.
    #[cfg(feature = "export")]
    pub fn ingest_export(
        &mut self,
        name: &str,
        export: &crate::export::VerifiedExport,
        now: u64,
    ) -> Result<usize> {
        if self.store.is_file_processed(name)? {
            return Ok(0);
        }
        let revised: Vec<DiagnosisKey> = export.revised_keys().filter_map(Result::ok).collect();
        let keys = export
            .keys()
            .filter_map(Result::ok)
            .chain(revised.iter().cloned());
        let exposures = self.find_exposures(keys)?;
        self.store
            .add_exposures(Some(name), &exposures, &revised, now)
    }

    fn find_exposures<I>(&self, keys: I) -> Result<Vec<Exposure>>
    where
        I: IntoIterator<Item = DiagnosisKey>,
    {
        let sightings = self.store.sightings()?;
        let index = SightingIndex::new(&sightings);
        #[cfg(feature = "parallel")]
        let matches = index.par_matches(keys);
        #[cfg(not(feature = "parallel"))]
        let matches: Vec<_> = index.matches(keys).collect();
        let scans = ScanTimeline::new(&sightings);
        Ok(matches
            .into_iter()
            .map(|matched| Exposure {
                windows: ExposureWindow::from_match(&matched, &scans, self.rssi_correction),
                matched,
            })
            .collect())
    }

    /// The risk level, its days, the daily summaries and the windows behind them.
    pub fn exposure_summary(&self, now: u64) -> Result<ExposureSummary> {
        let windows: Vec<ExposureWindow> = self
            .store
            .exposures()?
            .into_iter()
            .flat_map(|e| e.windows)
            .collect();
        Ok(self.config.assess(&windows, now))
    }

    /// Deletes everything older than 14 days before `now` (Unix seconds).
    pub fn purge(&mut self, now: u64) -> Result<()> {
        self.store.purge(now)
    }
}
