//! The real radio: BlueZ over D-Bus. btleplug scans (it cannot advertise), bluer
//! advertises.
//!
//! Both talk to the system bus through libdbus, which honours `DBUS_SYSTEM_BUS_ADDRESS`;
//! the tests point it at a private bus with python-dbusmock's BlueZ template on it.

mod advertise;
mod scan;

use kith_core::BeaconPayload;

use super::{Radio, ScanWindow};
use crate::clock::SystemClock;
use crate::error::{Error, Result};

pub use advertise::Advertiser;
pub use scan::Scanner;

/// BlueZ as a [`Radio`]: one adapter, scanned with btleplug, advertised on with bluer.
#[derive(Debug)]
pub struct BluezRadio {
    scanner: Scanner,
    advertiser: Advertiser,
}

impl BluezRadio {
    /// Opens `adapter` (e.g. `hci0`), or the first adapter BlueZ has.
    ///
    /// Fails with a message that says what to do when the bus is unreachable, BlueZ
    /// is not running, there is no adapter, or the adapter is off.
    pub async fn open(adapter: Option<&str>) -> Result<Self> {
        let advertiser = Advertiser::open(adapter).await?;
        let scanner = Scanner::open(advertiser.adapter_name()).await?;
        Ok(Self {
            scanner,
            advertiser,
        })
    }

    /// Stamps what it hears with `clock` (the agent's, which a demo shifts) instead of
    /// the system clock.
    pub fn with_clock(mut self, clock: SystemClock) -> Self {
        self.scanner = self.scanner.with_clock(clock);
        self
    }

    /// The adapter in use.
    pub fn adapter_name(&self) -> &str {
        self.advertiser.adapter_name()
    }
}

impl Radio for BluezRadio {
    async fn advertise(&mut self, payload: &BeaconPayload) -> Result<()> {
        self.advertiser.advertise(payload).await
    }

    async fn stop_advertising(&mut self) -> Result<()> {
        self.advertiser.stop().await
    }

    async fn scan(&mut self, millis: u64) -> Result<ScanWindow> {
        self.scanner.scan(millis).await
    }

    fn beacons_sent(&self) -> u64 {
        self.advertiser.beacons_sent()
    }
}

/// The D-Bus error name inside a bluer error, if it is one.
fn dbus_error_name(e: &bluer::Error) -> Option<&str> {
    match &e.kind {
        bluer::ErrorKind::Internal(bluer::InternalErrorKind::DBus(name)) => Some(name),
        _ => None,
    }
}

/// Turns a failure to reach BlueZ into advice.
fn unreachable(e: &bluer::Error) -> Error {
    match dbus_error_name(e) {
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner",
        ) => Error::Bluetooth(
            "BlueZ is not running (no org.bluez on the system bus): install the `bluez` package \
                 and start it with `sudo systemctl enable --now bluetooth`"
                .into(),
        ),
        Some("org.freedesktop.DBus.Error.AccessDenied") => Error::Bluetooth(format!(
            "the system bus refused access to BlueZ ({e}): run as a user in the `bluetooth` group, \
             or as the systemd unit does"
        )),
        _ => Error::Bluetooth(format!("talking to BlueZ failed: {e}")),
    }
}

/// What to say when the system bus itself cannot be reached.
fn bus_unreachable(detail: &dyn std::fmt::Display) -> Error {
    let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".into());
    Error::Bluetooth(format!(
        "cannot reach the D-Bus system bus at {address} ({detail}): is dbus running \
         (`systemctl status dbus`)? In a container, mount /var/run/dbus"
    ))
}
