//! The official GAEN v1.2 test vectors, from `tests/data/gaen_test_vectors_v1.2.txt` (its
//! header names the source).

use std::collections::HashMap;

use kith_core::{
    Aem, BluetoothMetadata, IntervalNumber, KeyValidity, MetadataVersion, RollingPeriod, Rpi,
    RpiKey, TemporaryExposureKey,
};

const VECTORS: &str = include_str!("data/gaen_test_vectors_v1.2.txt");

struct Vectors {
    scalars: HashMap<&'static str, &'static str>,
    /// (index, interval number, RPI, AEM) for each `rpi` line.
    rows: Vec<(usize, u32, [u8; 16], [u8; 4])>,
}

fn load() -> Vectors {
    let mut scalars = HashMap::new();
    let mut rows = Vec::new();
    for line in VECTORS.lines() {
        let line = line.split('#').next().unwrap().trim();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [] => {}
            ["rpi", index, interval, rpi, aem] => rows.push((
                index.parse().unwrap(),
                interval.parse().unwrap(),
                hex::decode(rpi).unwrap().try_into().unwrap(),
                hex::decode(aem).unwrap().try_into().unwrap(),
            )),
            [name, value] => assert!(scalars.insert(name, value).is_none(), "{name} given twice"),
            _ => panic!("unexpected line in the vectors: {line}"),
        }
    }
    Vectors { scalars, rows }
}

impl Vectors {
    fn bytes<const N: usize>(&self, name: &str) -> [u8; N] {
        let value = self
            .scalars
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        hex::decode(value).unwrap().try_into().unwrap()
    }

    fn number<T: std::str::FromStr<Err: std::fmt::Debug>>(&self, name: &str) -> T {
        self.scalars[name].parse().unwrap()
    }

    fn start(&self) -> IntervalNumber {
        IntervalNumber::new(self.number("interval_number"))
    }

    fn tek(&self) -> TemporaryExposureKey {
        let validity = KeyValidity::new(self.start(), RollingPeriod::FULL_DAY).unwrap();
        TemporaryExposureKey::from_bytes(self.bytes("tek"), validity)
    }
}

/// The repository's copy says what the reference file says, wherever that file is present.
#[test]
fn the_repository_copy_matches_the_reference_file() {
    let Some(path) = kith_test_support::shared_gaen("test_vectors.txt") else {
        return;
    };
    let reference = std::fs::read_to_string(path).unwrap();
    let v = load();
    let scalar = |name: &str| {
        reference
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split('=').nth(1))
            .map(|value| value.split_whitespace().next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{name} missing from the reference"))
    };
    assert_eq!(scalar("TEK "), v.scalars["tek"]);
    assert_eq!(scalar("ENIntervalNumber "), v.scalars["interval_number"]);
    assert_eq!(scalar("RPIK "), v.scalars["rpik"]);
    assert_eq!(scalar("AEMK "), v.scalars["aemk"]);
    assert_eq!(scalar("BLE_METADATA "), v.scalars["metadata"]);
    assert_eq!(
        scalar("#   KEY_GENERATION_NSECONDS"),
        v.scalars["key_generation_seconds"]
    );
    let reference_rows: Vec<String> = reference
        .lines()
        .filter(|line| line.starts_with(' ') && !line.trim_start().starts_with('#'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let rows: Vec<String> = VECTORS
        .lines()
        .filter_map(|line| line.strip_prefix("rpi "))
        .map(str::to_owned)
        .collect();
    assert_eq!(reference_rows, rows);
}

#[test]
fn table_has_all_144_intervals_of_the_key() {
    let v = load();
    assert_eq!(v.rows.len(), 144);
    for (i, row) in v.rows.iter().enumerate() {
        assert_eq!(row.0, i);
        assert_eq!(row.1, v.start().get() + i as u32);
    }
}

#[test]
fn interval_number_of_key_generation_time() {
    let v = load();
    let seconds: u64 = v.number("key_generation_seconds");
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
    let v = load();
    let tek = v.tek();
    assert_eq!(tek.rpi_key().expose_secret(), &v.bytes::<16>("rpik"));
    assert_eq!(tek.aem_key().expose_secret(), &v.bytes::<16>("aemk"));
    let (rpik, aemk) = tek.derive_keys();
    assert_eq!(rpik.expose_secret(), &v.bytes::<16>("rpik"));
    assert_eq!(aemk.expose_secret(), &v.bytes::<16>("aemk"));
}

#[test]
fn every_rpi_one_at_a_time() {
    let v = load();
    let rpik = RpiKey::from_bytes(&v.bytes("rpik"));
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
    let v = load();
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
    let v = load();
    let metadata_bytes: [u8; 4] = v.bytes("metadata");
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
