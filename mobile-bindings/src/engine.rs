//! The engine object apps hold: one per device, shared between threads.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::{BluetoothMetadata, IntervalNumber, OsRng, TemporaryExposureKey};

use crate::beacon::Beacon;
use crate::error::{KithError, Result};

/// The exposure-notification engine of one device.
///
/// Every method takes the current time as an argument (`now_unix_seconds`), so apps
/// and tests decide what "now" is; the `current_*` convenience methods read the system
/// clock. All methods may be called from any thread: calls are serialized inside.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct ExposureEngine {
    state: Mutex<EngineState>,
}

/// What the engine holds between calls.
struct EngineState {
    /// This device's own daily key of the current day, once one was needed.
    own_key: Option<TemporaryExposureKey>,
    /// The metadata hidden in every beacon: this phone's calibrated TX power.
    metadata: BluetoothMetadata,
}

#[uniffi::export]
impl ExposureEngine {
    /// An engine whose beacons announce `tx_power_dbm`, the phone's calibrated
    /// transmit power (from the GAEN calibration table for its model).
    #[uniffi::constructor]
    pub fn new(tx_power_dbm: i8) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(EngineState {
                own_key: None,
                metadata: BluetoothMetadata::v1_0(tx_power_dbm),
            }),
        })
    }

    /// The beacon to advertise at `now_unix_seconds`.
    ///
    /// A new daily key is generated (with the OS random generator) when the day
    /// of `now` has none yet; the payload changes at every 10-minute interval boundary.
    pub fn beacon(&self, now_unix_seconds: u64) -> Result<Beacon> {
        let now = interval_at(now_unix_seconds)?;
        let mut state = self.lock();
        let metadata = state.metadata;
        let key = state.own_key_for(now);
        let payload = key.beacon(now, metadata);
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
}

impl ExposureEngine {
    /// The state, even if a previous call panicked while holding it: every method
    /// leaves it consistent between its own statements, so it is still usable.
    fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EngineState {
    /// The own key valid at `now`, replacing the previous day's.
    fn own_key_for(&mut self, now: IntervalNumber) -> &TemporaryExposureKey {
        let key = match self.own_key.take() {
            Some(key) if key.validity().contains(now) => key,
            _ => TemporaryExposureKey::generate(&mut OsRng, now),
        };
        self.own_key.insert(key)
    }
}

impl fmt::Debug for ExposureEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ExposureEngine")
            // TemporaryExposureKey's Debug redacts the key bytes.
            .field("own_key", &state.own_key)
            .field("tx_power_dbm", &state.metadata.tx_power())
            .finish()
    }
}

fn interval_at(unix_seconds: u64) -> Result<IntervalNumber> {
    IntervalNumber::from_unix_seconds(unix_seconds).map_err(KithError::InvalidTime)
}

/// Seconds since the Unix epoch by the system clock.
fn system_now() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .map_err(|before| {
            KithError::InvalidTime(kith_core::Error::TimeOutOfRange {
                unix_seconds: -i128::from(before.duration().as_secs()),
            })
        })
}
