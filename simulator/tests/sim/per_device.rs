//! The simulator matches only on phones that met an uploader, and regenerates their
//! sightings of the keys' days (see `kith_sim::app`). Here sampled phones also run the
//! full per-device path — core's `ExposureEngine` over a `MemoryStore`, every sighting
//! of every scan recorded day by day, every day's signed export verified and ingested — and must end with exactly the exposures the simulator gave them.

use crate::common;

use kith_core::ExposureEngine;
use kith_core::risk::ExposureWindow;
use kith_core::store::MemoryStore;
use kith_sim::app::unix_time;
use kith_sim::{Arm, Simulation};

fn sorted(mut windows: Vec<ExposureWindow>) -> Vec<ExposureWindow> {
    windows.sort_by_key(|w| format!("{w:?}"));
    windows
}

#[test]
fn sampled_phones_on_the_full_per_device_path_find_identical_exposures() {
    let scenario = common::town(3_000, 30);
    let seed = 13;
    // A first run tells which phones will match something; sample those and others.
    let mut dry = Simulation::new(&scenario, seed, Arm::WithApp).unwrap();
    dry.run(|_| {}).unwrap();
    let exposed: Vec<u32> = dry.exposures.exposed_phones().collect();
    assert!(exposed.len() >= 30, "only {} phones matched", exposed.len());
    let step = exposed.len() / 25;
    let mut sample: Vec<u32> = exposed.iter().step_by(step.max(1)).copied().collect();
    let phones = dry.phones.len() as u32;
    sample.extend((0..phones).step_by((phones / 15) as usize));
    sample.sort_unstable();
    sample.dedup();

    let mut sim = Simulation::new(&scenario, seed, Arm::WithApp).unwrap();
    let mut engines: Vec<ExposureEngine<MemoryStore>> = sample
        .iter()
        .map(|&phone| {
            let mut engine = ExposureEngine::new(MemoryStore::new()).unwrap();
            engine
                .set_rssi_correction(sim.phones.model[phone as usize].rssi_correction)
                .unwrap();
            engine
        })
        .collect();
    let mut compared_windows = 0;
    while !sim.finished() {
        sim.step().unwrap();
        let day = sim.day - 1;
        let now = unix_time(day + 1, 0) - 1;
        let radio = sim.radio();
        for (engine, &phone) in engines.iter_mut().zip(&sample) {
            let mut sightings = Vec::new();
            radio.sightings(phone, day, 0, &mut sightings);
            engine.record_sightings(&sightings).unwrap();
            if !sim.last_export.is_empty() {
                engine
                    .ingest_export(&sim.last_export, sim.authority.trusted(), now)
                    .unwrap();
            }
            engine.purge(now).unwrap();
            let device = engine.exposure_summary(now).unwrap();
            let simulated = sim.exposures.summary(phone, day);
            assert_eq!(
                device.risk_level, simulated.risk_level,
                "phone {phone}, day {day}"
            );
            assert_eq!(device.days, simulated.days, "phone {phone}, day {day}");
            compared_windows += device.windows.len();
            assert_eq!(
                sorted(device.windows),
                sorted(simulated.windows),
                "phone {phone}, day {day}"
            );
        }
    }
    assert!(
        compared_windows > 100,
        "only {compared_windows} windows compared"
    );
    assert!(
        sample.iter().any(|&p| sim
            .exposures
            .phone(p)
            .is_some_and(|e| !e.notified_days[0].is_empty())),
        "no sampled phone was notified"
    );
}
