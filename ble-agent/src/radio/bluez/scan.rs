//! Scanning with btleplug: one scan window per duty cycle.
//!
//! btleplug reports a device's service data and its RSSI as separate events (each
//! after its own D-Bus round trip), and devices already known when the scan starts
//! only through their properties; both paths are paired per device here. A controller
//! may report a device once per discovery session despite `DuplicateData`, so
//! discovery is stopped and started for every window, and "showed 0xFD6F data in this
//! window" is the sighting, with the latest RSSI. No Flags structure is required.

use std::collections::HashMap;
use std::time::Duration;

use btleplug::api::{Central, CentralEvent, Manager as _, Peripheral as _, ScanFilter};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use futures_util::StreamExt;
use kith_core::SERVICE_DATA_LEN;

use super::advertise::service_uuid;
use super::bus_unreachable;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::radio::{Received, ScanWindow, WindowCollector};

/// The scanning half of the BlueZ radio.
#[derive(Debug)]
pub struct Scanner {
    adapter: Adapter,
    clock: SystemClock,
}

/// What one device showed in the current window.
#[derive(Debug, Default)]
struct Heard {
    service_data: Option<[u8; SERVICE_DATA_LEN]>,
    rssi: Option<i16>,
    at: u64,
}

impl Scanner {
    /// Opens the btleplug adapter named `name` (e.g. `hci0`).
    pub async fn open(name: &str) -> Result<Self> {
        let manager = Manager::new().await.map_err(|e| bus_unreachable(&e))?;
        let adapters = manager
            .adapters()
            .await
            .map_err(|e| Error::Bluetooth(format!("listing Bluetooth adapters failed: {e}")))?;
        for adapter in adapters {
            let info = adapter.adapter_info().await.unwrap_or_default();
            if info.split_whitespace().next() == Some(name) {
                return Ok(Self {
                    adapter,
                    clock: SystemClock::default(),
                });
            }
        }
        Err(Error::Bluetooth(format!(
            "btleplug does not see adapter {name}, which BlueZ lists: restart bluetoothd"
        )))
    }

    /// Stamps what it hears with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SystemClock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs one scan window of `millis` and returns the 0xFD6F beacons heard in it.
    pub async fn scan(&mut self, millis: u64) -> Result<ScanWindow> {
        let clock = self.clock;
        let failed = |what: &str| {
            let what = what.to_owned();
            move |e: btleplug::Error| Error::Bluetooth(format!("{what}: {e}"))
        };
        // Subscribe before starting, so no event of this window is missed.
        let mut events = self.adapter.events().await.map_err(failed("scan events"))?;
        let filter = ScanFilter {
            services: vec![service_uuid()],
        };
        let started_at = clock.now_millis();
        self.adapter
            .start_scan(filter)
            .await
            .map_err(failed("starting discovery"))?;
        let mut devices: HashMap<PeripheralId, Heard> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
            let now = clock.now_millis();
            match event {
                CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => {
                    // Devices BlueZ knew before the scan carry their data only here.
                    if let Ok(peripheral) = self.adapter.peripheral(&id).await {
                        if let Ok(Some(props)) = peripheral.properties().await {
                            let heard = devices.entry(id).or_default();
                            if let Some(data) = fd6f(&props.service_data) {
                                heard.service_data = Some(data);
                                heard.at = now;
                            }
                            if props.rssi.is_some() {
                                heard.rssi = props.rssi;
                            }
                        }
                    }
                }
                CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                    if let Some(data) = fd6f(&service_data) {
                        let heard = devices.entry(id).or_default();
                        heard.service_data = Some(data);
                        heard.at = now;
                    }
                }
                CentralEvent::RssiUpdate { id, rssi } => {
                    devices.entry(id).or_default().rssi = Some(rssi);
                }
                _ => {}
            }
        }
        let ended_at = clock.now_millis();
        self.adapter
            .stop_scan()
            .await
            .map_err(failed("stopping discovery"))?;
        let mut window = WindowCollector::default();
        for (id, heard) in devices {
            if let (Some(service_data), Some(rssi)) = (heard.service_data, heard.rssi) {
                let rssi = rssi.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8;
                window.hear(
                    &id.to_string(),
                    Received {
                        service_data,
                        rssi,
                        at: heard.at,
                    },
                );
            }
        }
        Ok(window.finish(started_at, ended_at))
    }
}

/// The 20 bytes of 0xFD6F service data, if present with the right length.
fn fd6f(service_data: &HashMap<bluer::Uuid, Vec<u8>>) -> Option<[u8; SERVICE_DATA_LEN]> {
    service_data
        .get(&service_uuid())?
        .as_slice()
        .try_into()
        .ok()
}
