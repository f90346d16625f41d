//! Properties of the protocol types: round trips, validation, and no panics on hostile input.

use kith_core::{
    Aem, BeaconPayload, BluetoothMetadata, CalibrationConfidence, Error, INTERVAL_SECONDS,
    INTERVALS_PER_DAY, IntervalError, IntervalNumber, KeyError, KeyValidity, MetadataVersion,
    PayloadError, RollingPeriod, Rpi, SERVICE_UUID_16, TemporaryExposureKey,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn payload() -> impl Strategy<Value = BeaconPayload> {
    (any::<[u8; 16]>(), any::<[u8; 4]>())
        .prop_map(|(rpi, aem)| BeaconPayload::new(Rpi::from_bytes(rpi), Aem::from_bytes(aem)))
}

fn metadata() -> impl Strategy<Value = BluetoothMetadata> {
    prop_oneof![
        any::<i8>().prop_map(BluetoothMetadata::v1_0),
        (any::<i8>(), 0u8..4).prop_map(|(tx, c)| {
            BluetoothMetadata::v1_1(tx, CalibrationConfidence::try_from(c).unwrap())
        }),
    ]
}

proptest! {
    #[test]
    fn service_data_round_trips(p in payload()) {
        let data = p.to_service_data();
        prop_assert_eq!(BeaconPayload::from_service_data(SERVICE_UUID_16, &data), Ok(p));
    }

    #[test]
    fn advertising_data_round_trips_and_fits_one_advertisement(p in payload()) {
        let data = p.to_advertising_data();
        prop_assert!(data.len() <= 31, "legacy advertisements carry at most 31 bytes");
        prop_assert_eq!(BeaconPayload::from_advertising_data(&data), Ok(p));
    }

    #[test]
    fn decoding_random_bytes_never_panics(uuid in any::<u16>(), data in prop::collection::vec(any::<u8>(), 0..64)) {
        let parsed = BeaconPayload::from_service_data(uuid, &data);
        match parsed {
            Ok(p) => {
                prop_assert_eq!(uuid, SERVICE_UUID_16);
                prop_assert_eq!(&p.to_service_data()[..], &data[..]);
            }
            Err(Error::Payload(PayloadError::WrongServiceUuid(u))) => prop_assert_eq!(u, uuid),
            Err(Error::Payload(PayloadError::Length(actual))) => prop_assert_eq!(actual, data.len()),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
        let _ = BeaconPayload::from_advertising_data(&data);
    }

    #[test]
    fn truncated_advertising_data_is_an_error(p in payload(), cut in 0usize..31) {
        let data = p.to_advertising_data();
        prop_assert!(BeaconPayload::from_advertising_data(&data[..cut]).is_err());
    }

    #[test]
    fn aem_decrypt_inverts_encrypt(key in any::<[u8; 16]>(), rpi in any::<[u8; 16]>(), m in metadata()) {
        let tek = TemporaryExposureKey::from_bytes(key, KeyValidity::day_of(IntervalNumber::new(2_700_000)));
        let aemk = tek.aem_key();
        let rpi = Rpi::from_bytes(rpi);
        let aem = aemk.encrypt(rpi, m);
        prop_assert_eq!(BluetoothMetadata::parse(aemk.decrypt(rpi, aem)), Ok(m));
    }

    #[test]
    fn aems_of_many_identifiers_are_each_ones_aem(
        key in any::<[u8; 16]>(),
        rpis in proptest::collection::vec(any::<[u8; 16]>(), 0..40),
        m in metadata(),
    ) {
        let aemk = TemporaryExposureKey::from_bytes(key, KeyValidity::day_of(IntervalNumber::new(2_700_000))).aem_key();
        let rpis: Vec<Rpi> = rpis.into_iter().map(Rpi::from_bytes).collect();
        let one_by_one: Vec<Aem> = rpis.iter().map(|&rpi| aemk.encrypt(rpi, m)).collect();
        prop_assert_eq!(aemk.encrypt_all(&rpis, m), one_by_one);
    }

    #[test]
    fn metadata_parse_never_panics_and_round_trips_what_it_accepts(bytes in any::<[u8; 4]>()) {
        if let Ok(m) = BluetoothMetadata::parse(bytes) {
            prop_assert_eq!(m.tx_power(), bytes[1] as i8);
            prop_assert_eq!(BluetoothMetadata::parse(m.to_bytes()), Ok(m));
        } else {
            prop_assert_ne!(bytes[0] >> 6, 1);
        }
    }

    #[test]
    fn interval_math_round_trips_at_day_boundaries(day in 0u32..(u32::MAX / INTERVALS_PER_DAY - 1), offset in 0u64..86_400) {
        let day_start = IntervalNumber::new(day * INTERVALS_PER_DAY);
        let seconds = day_start.start_unix_seconds() + offset;
        let interval = IntervalNumber::from_unix_seconds(seconds).unwrap();
        prop_assert_eq!(interval.get() as u64, seconds / INTERVAL_SECONDS);
        prop_assert_eq!(interval.day_start(), day_start);
        prop_assert!(interval.start_unix_seconds() <= seconds && seconds < interval.start_unix_seconds() + INTERVAL_SECONDS);
        prop_assert_eq!(IntervalNumber::from_system_time(interval.start_time()), Ok(interval));
        let validity = KeyValidity::day_of(interval);
        prop_assert!(validity.contains(interval));
        prop_assert_eq!(validity.start(), day_start);
        prop_assert_eq!(validity.end(), day_start.checked_add(INTERVALS_PER_DAY).unwrap());
        prop_assert!(!validity.contains(validity.end()));
        prop_assert!(day == 0 || !validity.contains(day_start.checked_sub(1).unwrap()));
    }
}

#[test]
fn wrong_uuid_and_lengths_are_typed_errors() {
    assert_eq!(
        BeaconPayload::from_service_data(0xFD6E, &[0; 20]),
        Err(Error::Payload(PayloadError::WrongServiceUuid(0xFD6E)))
    );
    for len in [0, 19, 21] {
        assert_eq!(
            BeaconPayload::from_service_data(SERVICE_UUID_16, &vec![0; len]),
            Err(Error::Payload(PayloadError::Length(len)))
        );
    }
    // A well-formed advertisement of some other service.
    let other = [2, 0x01, 0x06, 5, 0x16, 0x0F, 0x18, 0x64, 0x00];
    assert_eq!(
        BeaconPayload::from_advertising_data(&other),
        Err(Error::Payload(PayloadError::NoServiceData))
    );
    assert!(matches!(
        BeaconPayload::from_advertising_data(&[9, 0x16, 0x6F]),
        Err(Error::Payload(PayloadError::MalformedAdvertisingData(_)))
    ));
}

#[test]
fn metadata_versions_and_validation() {
    let v11 = BluetoothMetadata::v1_1(-20, CalibrationConfidence::Medium);
    assert_eq!(v11.to_bytes(), [0x58, (-20i8) as u8, 0, 0]);
    assert_eq!(BluetoothMetadata::parse(v11.to_bytes()), Ok(v11));
    assert_eq!(BluetoothMetadata::v1_0(8).to_bytes(), [0x40, 8, 0, 0]);
    // A later minor version is accepted.
    assert_eq!(
        BluetoothMetadata::parse([0x60, 0, 0, 0]).unwrap().version(),
        MetadataVersion::V1Later(2)
    );
    assert_eq!(
        BluetoothMetadata::parse([0x80, 8, 0, 0]),
        Err(Error::Payload(PayloadError::UnsupportedMetadataVersion {
            major: 2,
            minor: 0
        }))
    );
    assert_eq!(
        CalibrationConfidence::try_from(4),
        Err(Error::Payload(PayloadError::CalibrationConfidence(4)))
    );
}

#[test]
fn rolling_periods_and_validity() {
    assert_eq!(RollingPeriod::new(0), Err(KeyError::RollingPeriod(0)));
    assert_eq!(RollingPeriod::new(145), Err(KeyError::RollingPeriod(145)));
    assert_eq!(RollingPeriod::new(144), Ok(RollingPeriod::FULL_DAY));
    let start = IntervalNumber::new(2_642_976);
    let short = KeyValidity::new(start, RollingPeriod::new(10).unwrap()).unwrap();
    assert_eq!(short.range(), 2_642_976..2_642_986);
    assert_eq!(
        KeyValidity::new(IntervalNumber::new(u32::MAX - 5), RollingPeriod::FULL_DAY),
        Err(Error::Interval(IntervalError::Overflow))
    );
    let full = KeyValidity::day_of(start);
    assert_eq!(
        full.truncated_at(IntervalNumber::new(2_642_976 + 30))
            .period()
            .get(),
        30
    );
    assert_eq!(
        full.truncated_at(start).period().get(),
        1,
        "a released key keeps one interval"
    );
    assert_eq!(IntervalNumber::new(5).checked_sub(6), None);
    assert_eq!(IntervalNumber::new(u32::MAX).checked_add(1), None);
    assert_eq!(
        IntervalNumber::from_unix_seconds(u64::MAX),
        Err(Error::Interval(IntervalError::TimeOutOfRange {
            unix_seconds: u64::MAX as i128
        }))
    );
}

#[test]
fn keys_are_random_day_aligned_and_never_printed() {
    let mut rng = StdRng::seed_from_u64(7);
    let now = IntervalNumber::new(2_642_976 + 77);
    let a = TemporaryExposureKey::generate(&mut rng, now);
    let b = TemporaryExposureKey::generate(&mut rng, now);
    assert_ne!(a, b);
    assert_eq!(a, a.clone());
    assert_eq!(a.validity().start().get(), 2_642_976);
    assert_eq!(a.validity().period(), RollingPeriod::FULL_DAY);

    let hex: String = a
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for shown in [
        format!("{a:?}"),
        format!("{:?}", a.rpi_key()),
        format!("{:?}", a.aem_key()),
        format!("{:?}", a.derive_keys()),
    ] {
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains(&hex[..8]), "{shown}");
    }
    // Same bytes, different validity: a different key for matching purposes.
    let shorter = a.with_validity(a.validity().truncated_at(now));
    assert_ne!(a, shorter);
}
