//! Daily keys as apps hand them on: this device's keys to upload, or published keys.

use std::fmt;
use std::sync::Arc;

use kith_core::{
    Error as CoreError, IntervalNumber, KeyError, KeyValidity, RollingPeriod, TemporaryExposureKey,
};

use crate::error::{KithError, Result};

/// One daily Temporary Exposure Key with the intervals it is valid for.
///
/// An object rather than a record so that printing it (`Debug`, Python's `repr`,
/// Kotlin's `toString`) never shows the key: the 16 bytes come out only through
/// [`expose_secret`](Self::expose_secret), e.g. to build the upload request.
#[derive(PartialEq, uniffi::Object)]
#[uniffi::export(Debug, Eq)]
pub struct ExposureKey(TemporaryExposureKey);

#[uniffi::export]
impl ExposureKey {
    /// A key from its 16 bytes and validity, as a key server receives it.
    #[uniffi::constructor]
    pub fn from_bytes(
        key_data: Vec<u8>,
        rolling_start_interval_number: i64,
        rolling_period: i64,
    ) -> Result<Arc<Self>> {
        let rolling_start_interval_number: u32 = KithError::in_range(
            "rolling_start_interval_number",
            rolling_start_interval_number,
            "0..=2^32-1",
        )?;
        let rolling_period = KithError::in_range("rolling_period", rolling_period, "1..=144")?;
        let period = RollingPeriod::new(rolling_period).map_err(CoreError::from)?;
        // A key that would end past the last interval number is a bad key, not a bad clock.
        let validity = KeyValidity::new(IntervalNumber::new(rolling_start_interval_number), period)
            .map_err(|_| {
                CoreError::from(KeyError::RollingStart(rolling_start_interval_number.into()))
            })?;
        let key = TemporaryExposureKey::from_slice(&key_data, validity).map_err(CoreError::from)?;
        Ok(Arc::new(Self(key)))
    }

    /// The 16 secret key bytes (`key_data` of GAEN uploads and exports).
    pub fn expose_secret(&self) -> Vec<u8> {
        self.0.expose_secret().to_vec()
    }

    /// First interval the key is valid for (`rolling_start_interval_number`).
    pub fn rolling_start_interval_number(&self) -> i64 {
        self.0.validity().start().get().into()
    }

    /// Number of intervals it is valid for, 1..=144 (`rolling_period`).
    pub fn rolling_period(&self) -> i64 {
        self.0.validity().period().get().into()
    }
}

impl ExposureKey {
    /// Wraps a core key.
    pub(crate) fn new(key: TemporaryExposureKey) -> Arc<Self> {
        Arc::new(Self(key))
    }

    /// The core key.
    pub(crate) fn key(&self) -> &TemporaryExposureKey {
        &self.0
    }
}

impl fmt::Debug for ExposureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Core's Debug redacts the key bytes.
        fmt::Debug::fmt(&self.0, f)
    }
}
