//! The engine object apps hold: one per device, shared between threads.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::store::SqliteStore;
use kith_core::{
    BeaconPayload, BluetoothMetadata, Error as CoreError, IntervalError, IntervalNumber, OsRng,
    Sighting, UnixSeconds,
};
use sha2::{Digest, Sha256};

use crate::beacon::Beacon;
use crate::error::{KithError, Result};
use crate::export::{TrustedPublicKey, trusted_keys};
use crate::keys::ExposureKey;
use crate::summary::ExposureSummary;

/// The exposure-notification engine of one device, over its store (one SQLite file).
///
/// Every method takes the current time as an argument (`now_unix_seconds`), so apps
/// and tests decide what "now" is; the `current_*` convenience methods read the system
/// clock. All methods may be called from any thread: calls are serialized inside,
/// except that the long part of [`ingest_export`](Self::ingest_export) (parsing,
/// verifying and matching a file) runs without blocking the others.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct ExposureEngine {
    /// Core's engine: own keys, sightings, matching, risk, retention.
    engine: Mutex<kith_core::ExposureEngine<SqliteStore>>,
    /// The metadata hidden in every beacon: this phone's calibrated TX power.
    metadata: BluetoothMetadata,
}

#[uniffi::export]
impl ExposureEngine {
    /// Opens (or creates) the store at `store_path`; the engine's beacons announce
    /// `tx_power_dbm`, the phone's calibrated transmit power (from the GAEN
    /// calibration table for its model).
    #[uniffi::constructor]
    pub fn open(store_path: String, tx_power_dbm: i8) -> Result<Arc<Self>> {
        Self::over(SqliteStore::open(store_path), tx_power_dbm)
    }

    /// An engine whose store lives in memory and is gone when the engine is: for
    /// trying things out and for tests.
    #[uniffi::constructor]
    pub fn open_in_memory(tx_power_dbm: i8) -> Result<Arc<Self>> {
        Self::over(SqliteStore::open_in_memory(), tx_power_dbm)
    }

    /// The beacon to advertise at `now_unix_seconds`.
    ///
    /// The day's key is generated (with the OS random generator) and stored on the
    /// first call of each UTC day; the payload changes at every 10-minute interval boundary.
    pub fn beacon(&self, now_unix_seconds: u64) -> Result<Beacon> {
        let now = time_at(now_unix_seconds)?.interval();
        let payload = self.lock().beacon(&mut OsRng, now, self.metadata)?;
        Ok(Beacon {
            service_data: payload.to_service_data().to_vec(),
            interval_number: now.get(),
            next_change_unix_seconds: now.start_unix_seconds() + kith_core::INTERVAL_SECONDS,
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
        rssi: i8,
        seen_at_unix_seconds: u64,
        scan_id: u64,
    ) -> Result<()> {
        let payload = BeaconPayload::from_service_data_bytes(&service_data)?;
        let sighting = Sighting::new(payload, rssi, time_at(seen_at_unix_seconds)?, scan_id);
        Ok(self.lock().record_sighting(sighting)?)
    }

    /// This device's keys of the last 14 days, to upload after a positive test;
    /// today's key is included cut to end at `now_unix_seconds` (the key server holds
    /// it back until it has expired).
    pub fn keys_to_upload(&self, now_unix_seconds: u64) -> Result<Vec<Arc<ExposureKey>>> {
        let keys = self.lock().keys_to_upload(time_at(now_unix_seconds)?)?;
        Ok(keys.into_iter().map(ExposureKey::new).collect())
    }

    /// Reads a downloaded export file (zip bytes), checks its signature against the
    /// health authority's `trusted_public_keys`, matches its keys against the stored
    /// sightings and stores the exposures found. Returns how many keys matched that
    /// had not matched before.
    ///
    /// A file is matched once: the same bytes again return 0 without matching. Its
    /// revised keys (a diagnosis confirmed or revoked after publication) update the
    /// exposures already found. Keys that break GAEN's rules are skipped, as GAEN
    /// clients do; the file's other keys still count. Beacons and sightings are
    /// served while the file is matched.
    pub fn ingest_export(
        &self,
        export_file: Vec<u8>,
        trusted_public_keys: Vec<TrustedPublicKey>,
        now_unix_seconds: u64,
    ) -> Result<u32> {
        let now = time_at(now_unix_seconds)?;
        let trusted = trusted_keys(&trusted_public_keys)?;
        let report = kith_core::ExposureEngine::ingest_export_shared(
            || self.lock(),
            &export_file,
            &trusted,
            now,
        )?;
        Ok(u32::try_from(report.new_exposures).unwrap_or(u32::MAX))
    }

    /// The risk level, its days, the daily summaries and the exposure windows behind
    /// them, as of `now_unix_seconds`, and the venue exposures found among the visits.
    pub fn exposure_summary(&self, now_unix_seconds: u64) -> Result<ExposureSummary> {
        let summary = self.lock().exposure_summary(time_at(now_unix_seconds)?)?;
        Ok(ExposureSummary {
            venue_exposures: self.venue_exposures()?,
            ..summary.into()
        })
    }

    /// [`exposure_summary`](Self::exposure_summary) at the system clock's time.
    pub fn current_exposure_summary(&self) -> Result<ExposureSummary> {
        self.exposure_summary(system_now()?)
    }

    /// Replaces the risk configuration with the health authority's (ENX JSON, as in
    /// its published configuration) and keeps it in the store. Until then Kith's preset
    /// applies: ENX's scoring defaults with an alert at 15 weighted minutes a day
    /// (ENX's own defaults disable every classification, so they never notify).
    pub fn set_risk_configuration(&self, json: String) -> Result<()> {
        Ok(self.lock().set_risk_configuration(&json)?)
    }

    /// Sets this phone's RSSI calibration (dBm added to every measured RSSI, GAEN's
    /// `rssiOffset` for the model), used for exposures matched from now on.
    pub fn set_rssi_correction(&self, rssi_correction_dbm: i8) -> Result<()> {
        Ok(self.lock().set_rssi_correction(rssi_correction_dbm)?)
    }

    /// Deletes everything older than 14 days before `now_unix_seconds`: own keys,
    /// sightings and exposures. Apps call it once a day.
    pub fn purge(&self, now_unix_seconds: u64) -> Result<()> {
        Ok(self.lock().purge(time_at(now_unix_seconds)?)?)
    }
}

impl ExposureEngine {
    fn over(store: kith_core::Result<SqliteStore>, tx_power_dbm: i8) -> Result<Arc<Self>> {
        let engine = store.and_then(kith_core::ExposureEngine::new)?;
        Ok(Arc::new(Self {
            engine: Mutex::new(engine),
            metadata: BluetoothMetadata::v1_0(tx_power_dbm),
        }))
    }

    /// The state, even if a previous call panicked while holding it: core's store
    /// commits each change whole, so what is left is consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, kith_core::ExposureEngine<SqliteStore>> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

/// The name a downloaded file is remembered by: its content, so the same file
/// downloaded twice is recognised.
pub(crate) fn file_name(file: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(file)))
}

/// A time passed in over the FFI (plain Unix seconds, as apps hold them), checked to
/// lie within GAEN's interval numbers: the one place the bindings convert times.
pub(crate) fn time_at(unix_seconds: u64) -> Result<UnixSeconds> {
    IntervalNumber::from_unix_seconds(unix_seconds)?;
    Ok(UnixSeconds::new(unix_seconds))
}

/// Seconds since the Unix epoch by the system clock.
fn system_now() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .map_err(|before| {
            KithError::from(CoreError::from(IntervalError::TimeOutOfRange {
                unix_seconds: -i128::from(before.duration().as_secs()),
            }))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use super::*;
    use crate::export::{ExportSigner, PublishedKey};

    const NOW: u64 = 1_700_038_800;

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
        let keys = alice
            .keys_to_upload(NOW + 3_600)
            .unwrap()
            .into_iter()
            .map(|key| PublishedKey {
                key,
                report_type: kith_core::ReportType::ConfirmedTest,
                days_since_onset: Some(0),
            })
            .collect();
        let file = signer
            .write_export(keys, Vec::new(), "US".into(), NOW, NOW + 86_400)
            .unwrap();
        let trusted = vec![signer.trusted_public_key()];
        assert_eq!(
            bob.ingest_export(file.clone(), trusted.clone(), NOW + 3_600)
                .unwrap(),
            1
        );
        // The same download again is recognised and not matched twice.
        assert_eq!(bob.ingest_export(file, trusted, NOW + 3_600).unwrap(), 0);
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
        let day_start = u32::try_from(NOW / 600).unwrap() / 144 * 144;
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
        let keys = alice
            .keys_to_upload(NOW + 86_400)
            .unwrap()
            .into_iter()
            .map(|key| PublishedKey {
                key,
                report_type: kith_core::ReportType::ConfirmedTest,
                days_since_onset: Some(0),
            })
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
            assert_eq!(ingest.join().unwrap().unwrap(), 1);
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
        let last = u64::from(u32::MAX) * 600;
        assert!(matches!(
            engine.beacon(last),
            Err(KithError::InvalidTime(_))
        ));
        let aired = engine.beacon(last - 600).unwrap();
        let keys = engine.keys_to_upload(last - 600).unwrap();
        let [key] = keys.as_slice() else {
            panic!("expected one key, got {keys:?}");
        };
        let end = u64::from(key.rolling_start_interval_number()) + u64::from(key.rolling_period());
        assert!(
            u64::from(aired.interval_number) < end,
            "the last beacon is covered"
        );
    }

    #[test]
    fn errors_name_the_input_that_was_wrong() {
        let engine = ExposureEngine::open_in_memory(0).unwrap();
        assert!(matches!(
            engine.record_sighting(vec![0; 19], -60, NOW, NOW),
            Err(KithError::InvalidPayload(_))
        ));
        assert!(matches!(
            engine.record_sighting(vec![0; 20], -60, u64::MAX, NOW),
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
