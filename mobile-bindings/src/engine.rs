//! The engine object apps hold: one per device, shared between threads.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::risk::{ModelKind, RiskModel};
use kith_core::store::{Exposure, SqliteStore, Store};
use kith_core::{
    BeaconPayload, BluetoothMetadata, DownloadedExport, Error as CoreError, ExportLimits,
    IntervalError, OsRng, RiskConfigError, Sighting, UnixSeconds,
};
use sha2::{Digest, Sha256};

use crate::beacon::{Beacon, BeaconSighting};
use crate::error::{InputError, KithError, Result};
use crate::explain::RiskExplanation;
use crate::export::{TrustedPublicKey, trusted_keys};
use crate::keys::ExposureKey;
use crate::summary::{ExportIngest, ExposureSummary, KeyExposure};
use crate::units::{dbm, id, seconds, time_at};

/// Core's engine over the device store.
pub(crate) type CoreEngine = kith_core::ExposureEngine<SqliteStore>;

/// The exposure-notification engine of one device, over its store (one SQLite file).
///
/// Every method takes the current time as an argument (`now_unix_seconds`), so apps
/// and tests decide what "now" is; the `current_*` convenience methods read the system
/// clock. All methods may be called from any thread: calls are serialized inside,
/// except that the long part of [`ingest_export`](Self::ingest_export) (parsing,
/// verifying and matching a file) runs without blocking the others.
///
/// Numbers come in as `i64` (times, ids) and `i32` (dBm), the widest integers apps
/// hold, so that one out of range gets a [`KithError`] naming the parameter.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct ExposureEngine {
    /// Core's engine: own keys, sightings, matching, risk, retention.
    engine: Mutex<CoreEngine>,
    /// The metadata hidden in every beacon: this phone's calibrated TX power.
    metadata: BluetoothMetadata,
}

#[uniffi::export]
impl ExposureEngine {
    /// Opens (or creates) the store at `store_path`; the engine's beacons announce
    /// `tx_power_dbm`, the phone's calibrated transmit power (from the GAEN
    /// calibration table for its model).
    #[uniffi::constructor]
    pub fn open(store_path: String, tx_power_dbm: i32) -> Result<Arc<Self>> {
        Self::over(SqliteStore::open(store_path), tx_power_dbm)
    }

    /// An engine whose store lives in memory and is gone when the engine is: for
    /// trying things out and for tests.
    #[uniffi::constructor]
    pub fn open_in_memory(tx_power_dbm: i32) -> Result<Arc<Self>> {
        Self::over(SqliteStore::open_in_memory(), tx_power_dbm)
    }

    /// The beacon to advertise at `now_unix_seconds`.
    ///
    /// The day's key is generated (with the OS random generator) and stored on the
    /// first call of each UTC day; the payload changes at every 10-minute interval
    /// boundary. The last interval number (2^32 − 1) is refused with `InvalidTime`: no
    /// key valid then could be uploaded.
    pub fn beacon(&self, now_unix_seconds: i64) -> Result<Beacon> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?.interval();
        let payload = self.lock().beacon(&mut OsRng, now, self.metadata)?;
        Ok(Beacon {
            service_data: payload.to_service_data().to_vec(),
            interval_number: now.get().into(),
            next_change_unix_seconds: seconds(UnixSeconds::new(
                now.start_unix_seconds() + kith_core::INTERVAL_SECONDS,
            )),
        })
    }

    /// [`beacon`](Self::beacon) at the system clock's time.
    pub fn current_beacon(&self) -> Result<Beacon> {
        self.beacon(system_now()?)
    }

    /// Remembers a beacon heard: its 20 bytes of `0xFD6F` service data, the measured
    /// RSSI (dBm), when it was heard and the scan that heard it (any number unique per
    /// scan, such as the scan's start time: beacons of one scan count as one scan instance).
    pub fn record_sighting(
        &self,
        service_data: Vec<u8>,
        rssi: i32,
        seen_at_unix_seconds: i64,
        scan_id: i64,
    ) -> Result<()> {
        self.record_sightings(vec![BeaconSighting {
            service_data,
            rssi,
            seen_at_unix_seconds,
            scan_id,
        }])
    }

    /// Remembers the beacons of a scan (or of several) at once, all or none: one
    /// that is not valid fails the call, its position named, and none is stored.
    pub fn record_sightings(&self, sightings: Vec<BeaconSighting>) -> Result<()> {
        let sightings = sightings
            .iter()
            .enumerate()
            .map(|(index, heard)| {
                heard
                    .to_core()
                    .map_err(|error| error.at("sightings", index))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.lock().record_sightings(&sightings)?)
    }

    /// This device's keys of the last 14 days, to upload after a positive test;
    /// today's key is included cut to end at `now_unix_seconds` (the key server holds
    /// it back until it has expired). Every beacon aired up to `now_unix_seconds` is
    /// covered by one of them.
    pub fn keys_to_upload(&self, now_unix_seconds: i64) -> Result<Vec<Arc<ExposureKey>>> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        let keys = self.lock().keys_to_upload(now)?;
        Ok(keys.into_iter().map(ExposureKey::new).collect())
    }

    /// Reads a downloaded export file (zip bytes), checks its signature against the
    /// health authority's `trusted_public_keys`, matches its keys against the stored
    /// sightings, stores the exposures found and says what changed: the exposures new
    /// to this file, the earlier ones its revised keys changed (a diagnosis confirmed
    /// or revoked after publication), the risk level before, and the exposure summary
    /// after. A key can match and still not count: the risk configuration decides, so
    /// the app notifies by the summary, not by the matches.
    ///
    /// A file is matched once: the same bytes again report `already_ingested` and
    /// change nothing. Keys that break GAEN's rules are skipped, as GAEN clients do;
    /// the file's other keys still count. Beacons and sightings are served while the
    /// file is matched.
    pub fn ingest_export(
        &self,
        export_file: Vec<u8>,
        trusted_public_keys: Vec<TrustedPublicKey>,
        now_unix_seconds: i64,
    ) -> Result<ExportIngest> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        let trusted = trusted_keys(&trusted_public_keys)?;
        // Parsing, verifying and matching take seconds for a large file: without the lock.
        let download = DownloadedExport::verify(&export_file, &trusted, &ExportLimits::default())?;
        let snapshot = {
            let engine = self.lock();
            if engine.store().is_file_processed(download.name())? {
                return self.already_ingested(&engine, now);
            }
            engine.snapshot()?
        };
        let found = snapshot.match_export(&download);
        let mut engine = self.lock();
        let before = engine.store().exposures()?;
        let previous_risk_level = engine.exposure_summary(now)?.risk_level;
        if engine.commit(found, now)?.already_ingested {
            // Another thread ingested the same file meanwhile.
            return self.already_ingested(&engine, now);
        }
        let after = engine.store().exposures()?;
        let (new_exposures, revised_exposures) = changes(&before, after);
        Ok(ExportIngest {
            already_ingested: false,
            new_exposures,
            revised_exposures,
            previous_risk_level,
            summary: self.summary(&engine, now)?,
        })
    }

    /// The risk level, its days, the daily summaries and the exposure windows behind
    /// them, as of `now_unix_seconds`, and the venue exposures found among the visits.
    pub fn exposure_summary(&self, now_unix_seconds: i64) -> Result<ExposureSummary> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        self.summary(&self.lock(), now)
    }

    /// [`exposure_summary`](Self::exposure_summary) at the system clock's time.
    pub fn current_exposure_summary(&self) -> Result<ExposureSummary> {
        self.exposure_summary(system_now()?)
    }

    /// Why each day is, or is not, risky as of `now_unix_seconds`: per day and window
    /// the seconds in each attenuation bucket, the weights applied and the score, and
    /// every threshold with the day's value and whether it was reached. What an app
    /// shows a user who disputes an alert.
    pub fn explain_risk(&self, now_unix_seconds: i64) -> Result<RiskExplanation> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        Ok(self.lock().explain(now)?.into())
    }

    /// Replaces the risk configuration with the health authority's, as it publishes
    /// it, and keeps it in the store. The model is recognised from the text: ENX /
    /// GAEN v2 JSON (flat, or the file form `{"config": {…}}`), Corona-Warn-App YAML
    /// (its exposure configuration, risk-calculation parameters and transmission-risk
    /// encoding, joined as YAML documents with `---` lines), or GAEN v1 JSON (as
    /// Canada's COVID Alert published it). Anything else, an unknown key or a value
    /// out of range fails with `InvalidRiskConfiguration` saying what was wrong, and
    /// the configuration in use stays.
    ///
    /// Until a configuration is set, Kith's preset applies: ENX's scoring defaults
    /// with an alert at 15 weighted minutes a day (ENX's own defaults disable every
    /// classification, so they never notify).
    pub fn set_risk_configuration(&self, text: String) -> Result<()> {
        Ok(self.lock().set_risk_configuration(&text)?)
    }

    /// [`set_risk_configuration`](Self::set_risk_configuration) of a text named to be
    /// of family `model`: an error then speaks of that family's rules (a field missing
    /// from a CWA file, say), and a text that reads as another family is refused (the
    /// store keeps the text and recognises its family again when the engine is opened).
    pub fn set_risk_configuration_as(&self, model: ModelKind, text: String) -> Result<()> {
        RiskModel::parse_as(model, &text)?;
        let detected = RiskModel::detect(&text)?;
        if detected != model {
            return Err(CoreError::from(RiskConfigError::InvalidValue {
                field: "model".into(),
                value: format!(
                    "{} (named), but the text reads as {}",
                    model.name(),
                    detected.name()
                ),
                expected: format!("a {} configuration", model.name()),
            })
            .into());
        }
        self.set_risk_configuration(text)
    }

    /// The family of the risk configuration in use.
    pub fn risk_model(&self) -> ModelKind {
        self.lock().risk_model().kind()
    }

    /// Sets this phone's RSSI calibration (dB added to every measured RSSI, GAEN's
    /// `rssiOffset` for the model) and keeps it in the store; as in GAEN it applies
    /// to the sightings recorded from now on.
    pub fn set_rssi_correction(&self, rssi_correction_db: i32) -> Result<()> {
        let correction = dbm("rssi_correction_db", rssi_correction_db)?;
        Ok(self.lock().set_rssi_correction(correction)?)
    }

    /// Deletes everything older than 14 days before `now_unix_seconds`: own keys,
    /// sightings, exposures, visits and venue exposures. Apps call it once a day.
    pub fn purge(&self, now_unix_seconds: i64) -> Result<()> {
        let now = time_at("now_unix_seconds", now_unix_seconds)?;
        Ok(self.lock().purge(now)?)
    }
}

impl ExposureEngine {
    fn over(store: kith_core::Result<SqliteStore>, tx_power_dbm: i32) -> Result<Arc<Self>> {
        let tx_power = dbm("tx_power_dbm", tx_power_dbm)?;
        let engine = store.and_then(kith_core::ExposureEngine::new)?;
        Ok(Arc::new(Self {
            engine: Mutex::new(engine),
            metadata: BluetoothMetadata::v1_0(tx_power),
        }))
    }

    /// The state, even if a previous call panicked while holding it: core's store
    /// commits each change whole, so what is left is consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, CoreEngine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exposure summary with the venue exposures, of an engine already locked.
    fn summary(&self, engine: &CoreEngine, now: UnixSeconds) -> Result<ExposureSummary> {
        Ok(ExposureSummary {
            venue_exposures: venue_exposures(engine)?,
            ..engine.exposure_summary(now)?.into()
        })
    }

    /// What ingesting a file changed when it had been ingested before: nothing.
    fn already_ingested(&self, engine: &CoreEngine, now: UnixSeconds) -> Result<ExportIngest> {
        let summary = self.summary(engine, now)?;
        Ok(ExportIngest {
            already_ingested: true,
            new_exposures: Vec::new(),
            revised_exposures: Vec::new(),
            previous_risk_level: summary.risk_level,
            summary,
        })
    }
}

/// The stored venue exposures, for the exposure summary.
pub(crate) fn venue_exposures(engine: &CoreEngine) -> Result<Vec<crate::VenueExposure>> {
    let exposures = engine.venue_exposures().map_err(KithError::Storage)?;
    Ok(exposures.into_iter().map(Into::into).collect())
}

/// The exposures in `after` that are not in `before` (new keys), and those whose
/// diagnosis changed (revised keys).
fn changes(before: &[Exposure], after: Vec<Exposure>) -> (Vec<KeyExposure>, Vec<KeyExposure>) {
    let mut new = Vec::new();
    let mut revised = Vec::new();
    for exposure in after {
        let key = &exposure.matched.key;
        match before
            .iter()
            .find(|earlier| earlier.matched.key.tek == key.tek)
        {
            None => new.push(exposure.into()),
            Some(earlier) if earlier.matched.key != *key => revised.push(exposure.into()),
            Some(_) => {}
        }
    }
    (new, revised)
}

impl fmt::Debug for ExposureEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys stay in the store; only where it is and the TX power are shown.
        f.debug_struct("ExposureEngine")
            .field("store", self.lock().store())
            .field("tx_power_dbm", &self.metadata.tx_power())
            .finish()
    }
}

impl BeaconSighting {
    /// Core's sighting, its numbers checked.
    fn to_core(&self) -> Result<Sighting> {
        let payload =
            BeaconPayload::from_service_data_bytes(&self.service_data).map_err(|error| {
                KithError::InvalidPayload(InputError {
                    parameter: Some("service_data".into()),
                    source: Box::new(error),
                })
            })?;
        Ok(Sighting::new(
            payload,
            dbm("rssi", self.rssi)?,
            time_at("seen_at_unix_seconds", self.seen_at_unix_seconds)?,
            id("scan_id", self.scan_id)?,
        ))
    }
}

/// The name a downloaded file is remembered by: its content, so the same file
/// downloaded twice is recognised.
pub(crate) fn file_name(file: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(file)))
}

/// Seconds since the Unix epoch by the system clock.
fn system_now() -> Result<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|before| {
            KithError::from(CoreError::from(IntervalError::TimeOutOfRange {
                unix_seconds: -i128::from(before.duration().as_secs()),
            }))
        })?;
    Ok(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use super::*;
    use crate::export::{ExportSigner, PublishedKey};

    const NOW: i64 = 1_700_038_800;

    /// `keys` as a health authority publishes them after a confirmed test.
    fn confirmed(keys: Vec<Arc<ExposureKey>>) -> impl Iterator<Item = PublishedKey> {
        keys.into_iter().map(|key| PublishedKey {
            key,
            report_type: kith_core::ReportType::ConfirmedTest,
            days_since_onset: Some(0),
        })
    }

    #[test]
    fn sightings_recorded_from_many_threads_all_count() {
        let alice = ExposureEngine::open_in_memory(-20).unwrap();
        let bob = ExposureEngine::open_in_memory(-20).unwrap();
        // Four threads each record one scan (five minutes apart) of Alice's beacon.
        thread::scope(|scope| {
            for scan in 0..4 {
                let (alice, bob) = (&alice, &bob);
                scope.spawn(move || {
                    let t = NOW + 300 * scan;
                    let beacon = alice.beacon(t).unwrap();
                    bob.record_sighting(beacon.service_data, -60, t, t).unwrap();
                });
            }
        });
        let signer = ExportSigner::generate("310".into(), "v1".into());
        let keys = confirmed(alice.keys_to_upload(NOW + 3_600).unwrap()).collect();
        let file = signer
            .write_export(keys, Vec::new(), "US".into(), NOW, NOW + 86_400)
            .unwrap();
        let trusted = vec![signer.trusted_public_key()];
        let ingest = bob
            .ingest_export(file.clone(), trusted.clone(), NOW + 3_600)
            .unwrap();
        assert_eq!(ingest.new_exposures.len(), 1);
        // The same download again is recognised and not matched twice.
        let again = bob.ingest_export(file, trusted, NOW + 3_600).unwrap();
        assert!(again.already_ingested && again.new_exposures.is_empty());
        let summary = bob.exposure_summary(NOW + 3_600).unwrap();
        let [window] = summary.windows.as_slice() else {
            panic!("expected one window, got {:?}", summary.windows);
        };
        assert_eq!(window.scan_instances.len(), 4);
    }

    #[test]
    fn beacons_and_sightings_are_served_while_an_export_is_ingested() {
        let alice = ExposureEngine::open_in_memory(-20).unwrap();
        let bob = ExposureEngine::open_in_memory(-20).unwrap();
        // Bob hears Alice all day, so every key of the day has intervals to derive.
        for scan in 0..144 {
            let t = NOW - NOW % 86_400 + 600 * scan;
            let beacon = alice.beacon(t).unwrap();
            bob.record_sighting(beacon.service_data, -60, t, t).unwrap();
        }
        // Alice's key among 20 000 others of the day: matching takes a while.
        let day_start = NOW / 600 / 144 * 144;
        let strangers = (0..20_000u32).map(|i| {
            let mut bytes = vec![0u8; 16];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            PublishedKey {
                key: ExposureKey::from_bytes(bytes, day_start, 144).unwrap(),
                report_type: kith_core::ReportType::ConfirmedTest,
                days_since_onset: Some(0),
            }
        });
        let signer = ExportSigner::generate("310".into(), "v1".into());
        let keys = confirmed(alice.keys_to_upload(NOW + 86_400).unwrap())
            .chain(strangers)
            .collect();
        let file = signer
            .write_export(keys, Vec::new(), "US".into(), NOW, NOW + 86_400)
            .unwrap();
        let trusted = vec![signer.trusted_public_key()];

        let ingesting = AtomicBool::new(true);
        let served_meanwhile = thread::scope(|scope| {
            let ingest = scope.spawn(|| {
                let matched = bob.ingest_export(file, trusted, NOW + 86_400);
                ingesting.store(false, Ordering::SeqCst);
                matched
            });
            let mut served = 0;
            let later = NOW + 86_400;
            while ingesting.load(Ordering::SeqCst) {
                let beacon = bob.beacon(later).unwrap();
                bob.record_sighting(beacon.service_data, -70, later, later)
                    .unwrap();
                // Counted only if the ingest was still running when both returned.
                served += usize::from(ingesting.load(Ordering::SeqCst));
            }
            assert_eq!(ingest.join().unwrap().unwrap().new_exposures.len(), 1);
            served
        });
        assert!(
            served_meanwhile > 0,
            "no beacon was served during the ingest"
        );
    }

    #[test]
    fn every_beacon_aired_at_the_end_of_the_interval_range_can_be_uploaded() {
        let engine = ExposureEngine::open_in_memory(0).unwrap();
        let last = i64::from(u32::MAX) * 600;
        assert!(matches!(
            engine.beacon(last),
            Err(KithError::InvalidTime(_))
        ));
        let aired = engine.beacon(last - 600).unwrap();
        let keys = engine.keys_to_upload(last - 600).unwrap();
        let [key] = keys.as_slice() else {
            panic!("expected one key, got {keys:?}");
        };
        let end = key.rolling_start_interval_number() + key.rolling_period();
        assert!(aired.interval_number < end, "the last beacon is covered");
    }

    #[test]
    fn errors_name_the_input_that_was_wrong() {
        let engine = ExposureEngine::open_in_memory(0).unwrap();
        assert!(matches!(
            engine.record_sighting(vec![0; 19], -60, NOW, NOW),
            Err(KithError::InvalidPayload(_))
        ));
        assert!(matches!(
            engine.record_sighting(vec![0; 20], -60, i64::MAX, NOW),
            Err(KithError::InvalidTime(_))
        ));
        assert!(matches!(
            engine.ingest_export(b"PK\x03\x04".to_vec(), Vec::new(), NOW),
            Err(KithError::InvalidExportFile(_))
        ));
        assert!(matches!(
            engine.set_risk_configuration("[]".into()),
            Err(KithError::InvalidRiskConfiguration(_))
        ));
    }
}
