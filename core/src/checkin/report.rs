//! A visit (a stay at a venue), and the protected report in which a positive person
//! shares it: encrypted and authenticated under keys only the venue's visitors know.

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use prost::Message;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;

use super::error::CheckinError;
use super::proto::{CheckInProtectedReport, CheckInRecord};
use super::venue::{LOCATION_ID_LEN, LocationId, LocationIdHash};
use crate::interval::INTERVAL_SECONDS;
use crate::time::UnixSeconds;

/// Length of a report's initialisation vector.
pub const IV_LEN: usize = 16;
/// Length of a report's MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// Length of every encrypted record: a `CheckInRecord` takes at most 15 bytes, so
/// PKCS#7 always pads it to one AES block. Fixing it keeps real and padding reports alike.
pub const ENCRYPTED_RECORD_LEN: usize = 16;

/// Longest stay: a day. Longer check-ins are forgotten check-outs.
pub const MAX_STAY_SECONDS: u64 = 86_400;

/// Most 10-minute intervals a record covers: a day.
const MAX_RECORD_INTERVALS: u32 = (MAX_STAY_SECONDS / INTERVAL_SECONDS) as u32;

/// One visit: arrival and departure, departure after arrival and at most
/// [`MAX_STAY_SECONDS`] later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stay {
    arrival: UnixSeconds,
    departure: UnixSeconds,
}

impl Stay {
    /// A stay from `arrival` to `departure`.
    pub fn new(arrival: UnixSeconds, departure: UnixSeconds) -> Result<Self, CheckinError> {
        if departure <= arrival || departure.since(arrival) > MAX_STAY_SECONDS {
            return Err(CheckinError::InvalidStay { arrival, departure });
        }
        Ok(Self { arrival, departure })
    }

    /// Arrival.
    pub const fn arrival(self) -> UnixSeconds {
        self.arrival
    }

    /// Departure.
    pub const fn departure(self) -> UnixSeconds {
        self.departure
    }

    /// The seconds `self` and `other` have in common.
    pub fn overlap(self, other: Self) -> Option<Self> {
        let arrival = self.arrival.max(other.arrival);
        let departure = self.departure.min(other.departure);
        (departure > arrival).then_some(Self { arrival, departure })
    }

    /// Length in whole minutes, rounded to the nearest (as CWA rounds overlaps).
    pub const fn minutes(self) -> u64 {
        (self.departure.since(self.arrival) + 30) / 60
    }
}

/// How contagious the reporting person was on the day of the visit: CWA's 1..=8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransmissionRiskLevel(u8);

impl TransmissionRiskLevel {
    /// The highest level, for a visit whose day's contagiousness is not known.
    pub const HIGHEST: Self = Self(8);

    /// The level `level`, 1..=8.
    pub fn new(level: u32) -> Result<Self, CheckinError> {
        match u8::try_from(level) {
            Ok(level @ 1..=8) => Ok(Self(level)),
            _ => Err(CheckinError::InvalidTransmissionRiskLevel(level)),
        }
    }

    /// The level.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// What a warning says once opened: when the positive person was there, to the
/// 10-minute interval, and how contagious they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The reported stay, widened to whole 10-minute intervals.
    pub stay: Stay,
    /// The reporting person's transmission risk level that day.
    pub transmission_risk_level: TransmissionRiskLevel,
}

/// One check-in as a positive person uploads it and the server publishes it: CWA's
/// `CheckInProtectedReport`.
///
/// ```text
///  location id ─SHA-256─────────────────────────────▶ location id hash (public)
///       ├─SHA-256("CWA-ENCRYPTION-KEY" ‖ id)─▶ AES-256-CBC(iv, CheckInRecord) ─▶ ciphertext
///       └─SHA-256("CWA-MAC-KEY" ‖ id)────────▶ HMAC-SHA256(iv ‖ ciphertext) ──▶ mac
/// ```
///
/// The server and the CDN see only the hash: the times open only for phones that
/// scanned the venue's code.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtectedReport {
    location_id_hash: LocationIdHash,
    iv: [u8; IV_LEN],
    encrypted_record: [u8; ENCRYPTED_RECORD_LEN],
    mac: [u8; MAC_LEN],
}

type HmacSha256 = Hmac<Sha256>;

impl ProtectedReport {
    /// Encrypts `stay` at the venue `location_id` with a fresh random IV.
    ///
    /// The record covers the stay in whole 10-minute intervals: from the interval of
    /// the arrival to the end of the interval of the departure.
    pub fn seal<R: RngCore + CryptoRng>(
        rng: &mut R,
        location_id: &LocationId,
        stay: Stay,
        transmission_risk_level: TransmissionRiskLevel,
    ) -> Self {
        let mut iv = [0; IV_LEN];
        rng.fill_bytes(&mut iv);
        Self::seal_with_iv(iv, location_id, stay, transmission_risk_level)
    }

    fn seal_with_iv(
        iv: [u8; IV_LEN],
        location_id: &LocationId,
        stay: Stay,
        transmission_risk_level: TransmissionRiskLevel,
    ) -> Self {
        let start = stay.arrival.get() / INTERVAL_SECONDS;
        // A day-long stay that starts inside an interval would touch 145: keep it at 144.
        let end = stay
            .departure
            .get()
            .div_ceil(INTERVAL_SECONDS)
            .min(start + u64::from(MAX_RECORD_INTERVALS));
        let record = CheckInRecord {
            // Interval numbers fit in 32 bits until the year 83 000; saturate beyond.
            start_interval_number: u32::try_from(start).unwrap_or(u32::MAX),
            period: (end - start) as u32,
            transmission_risk_level: u32::from(transmission_risk_level.get()),
        }
        .encode_to_vec();
        let mut encrypted_record = [0; ENCRYPTED_RECORD_LEN];
        cbc::Encryptor::<Aes256>::new(location_id.encryption_key().as_ref().into(), &iv.into())
            .encrypt_padded_b2b_mut::<Pkcs7>(&record, &mut encrypted_record)
            .expect("a check-in record always fits one padded block");
        let mac = mac(location_id, &iv, &encrypted_record)
            .finalize()
            .into_bytes()
            .into();
        Self {
            location_id_hash: location_id.hash(),
            iv,
            encrypted_record,
            mac,
        }
    }

    /// A report of random bytes, as long as a real one, that opens for no venue: sent
    /// beside the real ones so that their number does not show.
    pub fn padding<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0; LOCATION_ID_LEN + IV_LEN + ENCRYPTED_RECORD_LEN + MAC_LEN];
        rng.fill_bytes(&mut bytes);
        let (hash, rest) = bytes.split_at(LOCATION_ID_LEN);
        let (iv, rest) = rest.split_at(IV_LEN);
        let (encrypted_record, mac) = rest.split_at(ENCRYPTED_RECORD_LEN);
        Self {
            location_id_hash: LocationIdHash::from_bytes(hash.try_into().unwrap()),
            iv: iv.try_into().unwrap(),
            encrypted_record: encrypted_record.try_into().unwrap(),
            mac: mac.try_into().unwrap(),
        }
    }

    /// The hash of the venue's id, the only part readable without it.
    pub fn location_id_hash(&self) -> LocationIdHash {
        self.location_id_hash
    }

    /// Checks the MAC with `location_id` (in constant time), then decrypts the record.
    ///
    /// Fails with [`CheckinError::BadMac`] for a report altered in any byte or made for
    /// another venue, and with [`CheckinError::Undecryptable`] or
    /// [`CheckinError::InvalidRecord`] for one that authenticates but holds no valid stay.
    pub fn open(&self, location_id: &LocationId) -> Result<Warning, CheckinError> {
        mac(location_id, &self.iv, &self.encrypted_record)
            .verify_slice(&self.mac)
            .map_err(|_| CheckinError::BadMac)?;
        let mut plain = [0; ENCRYPTED_RECORD_LEN];
        let record = cbc::Decryptor::<Aes256>::new(
            location_id.encryption_key().as_ref().into(),
            &self.iv.into(),
        )
        .decrypt_padded_b2b_mut::<Pkcs7>(&self.encrypted_record, &mut plain)
        .map_err(|_| CheckinError::Undecryptable)?;
        let record = CheckInRecord::decode(record).map_err(|_| CheckinError::Undecryptable)?;
        if record.period == 0 || record.period > MAX_RECORD_INTERVALS {
            return Err(CheckinError::InvalidRecord {
                start: record.start_interval_number,
                period: record.period,
            });
        }
        let arrival =
            UnixSeconds::of_interval(crate::IntervalNumber::new(record.start_interval_number));
        let stay = Stay {
            arrival,
            departure: arrival.plus(u64::from(record.period) * INTERVAL_SECONDS),
        };
        Ok(Warning {
            stay,
            transmission_risk_level: TransmissionRiskLevel::new(record.transmission_risk_level)?,
        })
    }

    /// The report as the protobuf `CheckInProtectedReport`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Reads a `CheckInProtectedReport`, checking every field's length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckinError> {
        let report =
            CheckInProtectedReport::decode(bytes).map_err(|error| CheckinError::Malformed {
                what: "CheckInProtectedReport",
                reason: error.to_string(),
            })?;
        Self::from_proto(report)
    }

    pub(crate) fn to_proto(&self) -> CheckInProtectedReport {
        CheckInProtectedReport {
            location_id_hash: self.location_id_hash.to_bytes().to_vec(),
            iv: self.iv.to_vec(),
            encrypted_check_in_record: self.encrypted_record.to_vec(),
            mac: self.mac.to_vec(),
        }
    }

    pub(crate) fn from_proto(report: CheckInProtectedReport) -> Result<Self, CheckinError> {
        Ok(Self {
            location_id_hash: LocationIdHash::from_bytes(exact(
                "location id hash",
                &report.location_id_hash,
            )?),
            iv: exact("report IV", &report.iv)?,
            encrypted_record: exact(
                "encrypted check-in record",
                &report.encrypted_check_in_record,
            )?,
            mac: exact("report MAC", &report.mac)?,
        })
    }
}

fn mac(location_id: &LocationId, iv: &[u8], encrypted_record: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(location_id.mac_key().as_ref())
        .expect("HMAC takes keys of any length");
    mac.update(iv);
    mac.update(encrypted_record);
    mac
}

fn exact<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[u8; N], CheckinError> {
    bytes.try_into().map_err(|_| CheckinError::InvalidLength {
        what,
        expected: N,
        actual: bytes.len(),
    })
}
