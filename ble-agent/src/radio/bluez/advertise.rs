//! Advertising with bluer: one non-connectable broadcast advertisement at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bluer::adv::{Advertisement, AdvertisementHandle, Type};
use kith_core::{BeaconPayload, SERVICE_UUID_16};

use super::{bus_unreachable, unreachable};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::radio::ADVERTISING_INTERVAL_MILLIS;

/// How long to wait for BlueZ to release an unregistered advertisement.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// The advertising half of the BlueZ radio.
#[derive(Debug)]
pub struct Advertiser {
    // Kept so the D-Bus connection (and the served advertisement) stays alive.
    _session: bluer::Session,
    adapter: bluer::Adapter,
    current: Option<(AdvertisementHandle, u64)>,
    advertised_millis: u64,
}

/// 0xFD6F as a 128-bit UUID.
pub fn service_uuid() -> bluer::Uuid {
    bluer::Uuid::from_u128(
        (u128::from(SERVICE_UUID_16) << 96) | 0x0000_0000_0000_1000_8000_0080_5f9b_34fb,
    )
}

impl Advertiser {
    /// Opens `adapter`, or BlueZ's first one, and checks that it is powered.
    pub async fn open(adapter: Option<&str>) -> Result<Self> {
        let session = bluer::Session::new()
            .await
            .map_err(|e| bus_unreachable(&e))?;
        let names = session.adapter_names().await.map_err(|e| unreachable(&e))?;
        let name = match adapter {
            Some(wanted) if names.iter().any(|n| n == wanted) => wanted.to_owned(),
            Some(wanted) => {
                return Err(Error::Bluetooth(format!(
                    "no Bluetooth adapter named {wanted}; BlueZ has: {} (`bluetoothctl list`)",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            None => names.first().cloned().ok_or_else(|| {
                Error::Bluetooth(
                    "no Bluetooth adapter found: plug one in, check `rfkill list` and \
                     `bluetoothctl list`, or run with `--radio sim`"
                        .into(),
                )
            })?,
        };
        let adapter = session.adapter(&name).map_err(|e| unreachable(&e))?;
        if !adapter.is_powered().await.map_err(|e| unreachable(&e))? {
            return Err(Error::Bluetooth(format!(
                "Bluetooth adapter {name} is off: `bluetoothctl power on` \
                 (and `rfkill unblock bluetooth` if it is blocked)"
            )));
        }
        Ok(Self {
            _session: session,
            adapter,
            current: None,
            advertised_millis: 0,
        })
    }

    /// The adapter in use.
    pub fn adapter_name(&self) -> &str {
        self.adapter.name()
    }

    /// Replaces the advertisement with one for `payload`.
    ///
    /// Unregistering the old one first makes the kernel set up a new advertising
    /// instance, and with it a fresh non-resolvable private address. bluer unregisters
    /// a dropped advertisement asynchronously, so registering at once can fail with
    /// "Maximum advertisements reached": wait until the active-instance count falls.
    pub async fn advertise(&mut self, payload: &BeaconPayload) -> Result<()> {
        self.stop().await?;
        let advertisement = Advertisement {
            advertisement_type: Type::Broadcast,
            service_uuids: BTreeSet::from([service_uuid()]),
            service_data: BTreeMap::from([(service_uuid(), payload.to_service_data().to_vec())]),
            discoverable: Some(false),
            min_interval: Some(Duration::from_millis(*ADVERTISING_INTERVAL_MILLIS.start())),
            max_interval: Some(Duration::from_millis(*ADVERTISING_INTERVAL_MILLIS.end())),
            ..Advertisement::default()
        };
        let handle = self.adapter.advertise(advertisement).await.map_err(|e| {
            Error::Bluetooth(match e.kind {
                bluer::ErrorKind::NotPermitted => format!(
                    "adapter {} has no free advertising instance ({e}): another program \
                     is advertising; stop it or use another adapter",
                    self.adapter.name()
                ),
                _ => format!("registering the advertisement failed: {e}"),
            })
        })?;
        self.current = Some((handle, SystemClock::default().now_millis()));
        Ok(())
    }

    /// Unregisters the current advertisement and waits until BlueZ has let it go.
    pub async fn stop(&mut self) -> Result<()> {
        let Some((handle, since)) = self.current.take() else {
            return Ok(());
        };
        self.advertised_millis += SystemClock::default().now_millis().saturating_sub(since);
        let before = self.active_instances().await?;
        drop(handle);
        let deadline = tokio::time::Instant::now() + RELEASE_TIMEOUT;
        while self.active_instances().await? >= before {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Bluetooth(format!(
                    "BlueZ did not release the old advertisement within {RELEASE_TIMEOUT:?} \
                     (still {before} active on {})",
                    self.adapter.name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn active_instances(&self) -> Result<u8> {
        self.adapter
            .active_advertising_instances()
            .await
            .map_err(|e| unreachable(&e))
    }

    /// Estimated beacons on the air so far: time advertised ÷ mean interval.
    pub fn beacons_sent(&self) -> u64 {
        let on_air = self.advertised_millis
            + self.current.as_ref().map_or(0, |(_, since)| {
                SystemClock::default().now_millis().saturating_sub(*since)
            });
        let mean = (ADVERTISING_INTERVAL_MILLIS.start() + ADVERTISING_INTERVAL_MILLIS.end()) / 2;
        on_air / mean
    }
}
