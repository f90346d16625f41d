//! The official GAEN v1.2 test vectors, read from `../shared/gaen/test_vectors.txt`.

use std::collections::HashMap;
use std::path::Path;

use kith_core::{
    Aem, BluetoothMetadata, IntervalNumber, KeyValidity, MetadataVersion, RollingPeriod, Rpi,
    RpiKey, TemporaryExposureKey,
};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/gaen/test_vectors.txt"
);

struct Vectors {
    scalars: HashMap<String, String>,
    /// (index, interval number, RPI, AEM) for each row of the table.
    rows: Vec<(usize, u32, [u8; 16], [u8; 4])>,
}

fn load() -> Option<Vectors> {
    if !Path::new(VECTORS).exists() {
        println!("skipped: {VECTORS} not found (../shared/gaen is absent from this checkout)");
        return None;
    }
    let text = std::fs::read_to_string(VECTORS).expect("read test vectors");
    let mut scalars = HashMap::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            // "TEK (TEMPORARY_TRACING_KEY) = 75c7…": keep the first word as the name.
            let name = name.split_whitespace().next().unwrap().to_owned();
            scalars.insert(name, value.trim().to_owned());
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "unexpected table row: {line}");
        rows.push((
            fields[0].parse().unwrap(),
            fields[1].parse().unwrap(),
            hex::decode(fields[2]).unwrap().try_into().unwrap(),
            hex::decode(fields[3]).unwrap().try_into().unwrap(),
        ));
    }
    Some(Vectors { scalars, rows })
}

impl Vectors {
    fn bytes<const N: usize>(&self, name: &str) -> [u8; N] {
        let value = self
            .scalars
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        hex::decode(value).unwrap().try_into().unwrap()
    }

    fn start(&self) -> IntervalNumber {
        IntervalNumber::new(self.scalars["ENIntervalNumber"].parse().unwrap())
    }

    fn tek(&self) -> TemporaryExposureKey {
        let validity = KeyValidity::new(self.start(), RollingPeriod::FULL_DAY).unwrap();
        TemporaryExposureKey::from_bytes(self.bytes("TEK"), validity)
    }
}

#[test]
fn table_has_all_144_intervals_of_the_key() {
    let Some(v) = load() else { return };
    assert_eq!(v.rows.len(), 144);
    for (i, row) in v.rows.iter().enumerate() {
        assert_eq!(row.0, i);
        assert_eq!(row.1, v.start().get() + i as u32);
    }
}

#[test]
fn interval_number_of_key_generation_time() {
    let Some(v) = load() else { return };
    // KEY_GENERATION_NSECONDS is documented in the header as Unix seconds.
    let header = std::fs::read_to_string(VECTORS).unwrap();
    let seconds: u64 = header
        .lines()
        .find_map(|l| l.split("KEY_GENERATION_NSECONDS =").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let interval = IntervalNumber::from_unix_seconds(seconds).unwrap();
    assert_eq!(interval, v.start());
    assert_eq!(
        interval.day_start(),
        interval,
        "the key starts on a day boundary"
    );
    assert_eq!(v.tek().validity(), KeyValidity::day_of(interval));
}

#[test]
fn rpik_and_aemk_derive_from_tek() {
    let Some(v) = load() else { return };
    let tek = v.tek();
    assert_eq!(tek.rpi_key().expose_secret(), &v.bytes::<16>("RPIK"));
    assert_eq!(tek.aem_key().expose_secret(), &v.bytes::<16>("AEMK"));
    let (rpik, aemk) = tek.derive_keys();
    assert_eq!(rpik.expose_secret(), &v.bytes::<16>("RPIK"));
    assert_eq!(aemk.expose_secret(), &v.bytes::<16>("AEMK"));
}

#[test]
fn every_rpi_one_at_a_time() {
    let Some(v) = load() else { return };
    let rpik = RpiKey::from_bytes(&v.bytes("RPIK"));
    for &(i, interval, rpi, _) in &v.rows {
        assert_eq!(
            rpik.rpi(IntervalNumber::new(interval)),
            Rpi::from_bytes(rpi),
            "RPI {i}"
        );
    }
}

#[test]
fn every_rpi_in_one_batch_and_in_sub_ranges() {
    let Some(v) = load() else { return };
    let tek = v.tek();
    let expected: Vec<Rpi> = v.rows.iter().map(|r| Rpi::from_bytes(r.2)).collect();
    assert_eq!(tek.rpi_key().rpis(tek.validity()), expected);

    // Any sub-range, including ones that straddle the batch size of the cipher.
    let rpik = tek.rpi_key();
    for (from, len) in [(0, 1), (5, 7), (40, 60), (47, 2), (100, 44), (143, 1)] {
        let mut out = vec![Rpi::from_bytes([0; 16]); len];
        rpik.rpis_into(IntervalNumber::new(v.start().get() + from as u32), &mut out);
        assert_eq!(out, expected[from..from + len], "range {from}+{len}");
    }
}

#[test]
fn every_aem_encrypts_and_decrypts() {
    let Some(v) = load() else { return };
    let metadata_bytes: [u8; 4] = v.bytes("BLE_METADATA");
    let metadata = BluetoothMetadata::parse(metadata_bytes).unwrap();
    assert_eq!(metadata.version(), MetadataVersion::V1_0);
    assert_eq!(metadata.tx_power(), 8);
    assert_eq!(metadata.to_bytes(), metadata_bytes);

    let tek = v.tek();
    let aemk = tek.aem_key();
    for &(i, interval, rpi, aem) in &v.rows {
        let rpi = Rpi::from_bytes(rpi);
        assert_eq!(aemk.encrypt(rpi, metadata), Aem::from_bytes(aem), "AEM {i}");
        assert_eq!(
            aemk.decrypt(rpi, Aem::from_bytes(aem)),
            metadata_bytes,
            "AEM {i}"
        );
        let beacon = tek.beacon(IntervalNumber::new(interval), metadata);
        assert_eq!((beacon.rpi(), beacon.aem()), (rpi, Aem::from_bytes(aem)));
    }
}
