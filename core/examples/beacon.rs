//! A day in the life of one key: what a phone broadcasts, and how a receiver who later
//! downloads the key recognises the beacons it heard.
//!
//! `cargo run --release -p kith-core --example beacon`

use std::time::{Instant, SystemTime};

use kith_core::{BeaconPayload, BluetoothMetadata, IntervalNumber, OsRng, TemporaryExposureKey};

fn main() -> Result<(), kith_core::Error> {
    let now = IntervalNumber::from_system_time(SystemTime::now())?;
    let tek = TemporaryExposureKey::generate(&mut OsRng, now);
    let validity = tek.validity();
    println!(
        "today's key is valid for intervals {}..{} ({} × 10 min)",
        validity.start().get(),
        validity.end().get(),
        validity.period().get()
    );

    // The sender: one advertisement per interval (phones rotate every 10–20 minutes).
    let metadata = BluetoothMetadata::v1_0(-8);
    let heard: Vec<BeaconPayload> = [now, validity.start(), validity.end().saturating_sub(1)]
        .into_iter()
        .map(|interval| tek.beacon(interval, metadata))
        .collect();
    let advertisement = heard[0].to_advertising_data();
    println!("advertising now ({} bytes on air):", advertisement.len());
    println!("  {}", hex(&advertisement));

    // The receiver, after the key was published: derive the day's identifiers once and look
    // up what it heard.
    let started = Instant::now();
    let (rpik, aemk) = tek.derive_keys();
    let rpis = rpik.rpis(validity);
    let derived_in = started.elapsed();
    for beacon in &heard {
        let offset = rpis.iter().position(|rpi| *rpi == beacon.rpi());
        let metadata = BluetoothMetadata::parse(aemk.decrypt(beacon.rpi(), beacon.aem()))?;
        match offset {
            Some(i) => println!(
                "heard {:?} → interval {} of the key, sender TX power {} dBm",
                beacon.rpi(),
                validity.start().get() + i as u32,
                metadata.tx_power()
            ),
            None => println!("heard {:?} → not this key", beacon.rpi()),
        }
    }
    println!(
        "derived the key's {} identifiers in {derived_in:?}",
        rpis.len()
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
