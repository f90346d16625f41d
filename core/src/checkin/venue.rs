//! The venue QR code: its payload (CWA's `QRCodePayload`), the location id derived from
//! it, and the hash of that id under which warnings are published.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use prost::Message;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::time::UnixSeconds;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::CheckinError;
use super::proto::{CrowdNotifierData, CwaLocationData, QrCodePayload, TraceLocation};

/// Where CWA's own posters point: a CWA app scans QR texts that start like this.
pub const CWA_QR_PREFIX: &str = "https://e.coronawarn.app?v=1#";

/// Length of a location id and of its hash.
pub const LOCATION_ID_LEN: usize = 32;

/// Length of the random seed in a venue's QR code.
pub const SEED_LEN: usize = 16;

/// Most characters in a description or an address, as CWA allows.
const MAX_TEXT_CHARS: usize = 100;

/// Longest QR text read: the most a QR code can hold (version 40, alphanumeric).
const MAX_QR_TEXT_LEN: usize = 4_296;

/// Marks the payload inside another app's URL fragment (CWA's interoperability pattern
/// `<url>/<vendor>#[extra]/CWA1/<payload>`).
const CWA1_MARKER: &str = "/CWA1/";

/// Domain tags, as CWA hashes them.
const LOCATION_ID_TAG: &[u8] = b"CWA-GUID";
const ENCRYPTION_KEY_TAG: &[u8] = b"CWA-ENCRYPTION-KEY";
const MAC_KEY_TAG: &[u8] = b"CWA-MAC-KEY";

/// The secret that identifies a venue: SHA-256("CWA-GUID" ‖ QR payload bytes).
///
/// Whoever scanned the QR code knows it, and it is the key material that opens the
/// reports of positive visitors, so it is treated as a secret: zeroized on drop, not
/// `Copy`, compared in constant time, shown as `<redacted>`. What is published is its
/// [`LocationIdHash`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LocationId([u8; LOCATION_ID_LEN]);

impl LocationId {
    /// The id of the venue whose QR code carries `payload` (the decoded protobuf bytes,
    /// exactly as in the code: re-encoding could change them).
    pub fn of_payload(payload: &[u8]) -> Self {
        Self(tagged_sha256(LOCATION_ID_TAG, payload))
    }

    /// An id from its 32 bytes, as stored.
    pub fn from_bytes(bytes: [u8; LOCATION_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8; LOCATION_ID_LEN] {
        &self.0
    }

    /// SHA-256 of the id: what reports and warnings carry.
    pub fn hash(&self) -> LocationIdHash {
        LocationIdHash(Sha256::digest(self.0).into())
    }

    /// The AES-256 key of this venue's reports: SHA-256("CWA-ENCRYPTION-KEY" ‖ id).
    pub(crate) fn encryption_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(tagged_sha256(ENCRYPTION_KEY_TAG, &self.0))
    }

    /// The HMAC-SHA256 key of this venue's reports: SHA-256("CWA-MAC-KEY" ‖ id).
    pub(crate) fn mac_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(tagged_sha256(MAC_KEY_TAG, &self.0))
    }
}

impl PartialEq for LocationId {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for LocationId {}

impl fmt::Debug for LocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocationId(<redacted>)")
    }
}

fn tagged_sha256(tag: &[u8], data: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update(data);
    hasher.finalize().into()
}

/// SHA-256 of a [`LocationId`]: public, the same for every report of one venue.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationIdHash([u8; LOCATION_ID_LEN]);

impl LocationIdHash {
    /// A hash from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; LOCATION_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn to_bytes(self) -> [u8; LOCATION_ID_LEN] {
        self.0
    }
}

impl fmt::Debug for LocationIdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocationIdHash(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// What kind of place or event a venue is: CWA's `TraceLocationType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum VenueType {
    /// Not given (or a number this version does not know).
    #[default]
    Unspecified = 0,
    /// Another permanent place.
    PermanentOther = 1,
    /// Another temporary event.
    TemporaryOther = 2,
    /// A shop.
    PermanentRetail = 3,
    /// A restaurant, café or bar.
    PermanentFoodService = 4,
    /// A craft business (hairdresser, workshop).
    PermanentCraft = 5,
    /// A workplace.
    PermanentWorkplace = 6,
    /// A school or university.
    PermanentEducationalInstitution = 7,
    /// A public building.
    PermanentPublicBuilding = 8,
    /// A cultural event.
    TemporaryCulturalEvent = 9,
    /// A club activity.
    TemporaryClubActivity = 10,
    /// A private event.
    TemporaryPrivateEvent = 11,
    /// A worship service.
    TemporaryWorshipService = 12,
}

impl VenueType {
    /// The type numbered `number`, or [`Unspecified`](Self::Unspecified) for numbers this
    /// version does not know (proto3 keeps unknown enum numbers; the payload bytes, and so
    /// the location id, are unaffected).
    pub fn from_number(number: i32) -> Self {
        use VenueType::*;
        [
            Unspecified,
            PermanentOther,
            TemporaryOther,
            PermanentRetail,
            PermanentFoodService,
            PermanentCraft,
            PermanentWorkplace,
            PermanentEducationalInstitution,
            PermanentPublicBuilding,
            TemporaryCulturalEvent,
            TemporaryClubActivity,
            TemporaryPrivateEvent,
            TemporaryWorshipService,
        ]
        .into_iter()
        .find(|kind| *kind as i32 == number)
        .unwrap_or_default()
    }
}

/// What a venue owner (or the health authority) describes when making a QR code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VenueDetails {
    /// Name of the place or event, 1..=100 characters on one line.
    pub description: String,
    /// Its address, 1..=100 characters on one line.
    pub address: String,
    /// Start and end of an event; `None` for a permanent place.
    pub event: Option<(UnixSeconds, UnixSeconds)>,
    /// What kind of place it is.
    pub venue_type: VenueType,
    /// How long a visit lasts unless the visitor checks out earlier, in minutes.
    pub default_check_in_minutes: Option<u32>,
}

/// A venue's QR payload, validated: what a visitor's phone learns by scanning the code.
///
/// It keeps the payload bytes as scanned, since the [`LocationId`] is their hash.
/// `Debug` shows the description, not the seed or the id.
#[derive(Clone)]
pub struct VenuePayload {
    bytes: Vec<u8>,
    details: VenueDetails,
    location_id: LocationId,
}

impl VenuePayload {
    /// A new venue with a fresh random seed; pass [`OsRng`](crate::OsRng) outside tests.
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        details: VenueDetails,
    ) -> Result<Self, CheckinError> {
        let mut seed = Zeroizing::new([0; SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::with_seed(details, &seed)
    }

    /// The venue described by `details` with this seed: the same inputs give the same
    /// QR code (a venue that shows a new code every day derives each day's seed).
    pub fn with_seed(details: VenueDetails, seed: &[u8; SEED_LEN]) -> Result<Self, CheckinError> {
        let (start_timestamp, end_timestamp) = details
            .event
            .map_or((0, 0), |(start, end)| (start.get(), end.get()));
        let payload = QrCodePayload {
            version: 1,
            location_data: Some(TraceLocation {
                version: 1,
                description: details.description,
                address: details.address,
                start_timestamp,
                end_timestamp,
            }),
            crowd_notifier_data: Some(CrowdNotifierData {
                version: 1,
                // Kith does not run CrowdNotifier: no health-authority key to carry.
                public_key: Vec::new(),
                cryptographic_seed: seed.to_vec(),
            }),
            vendor_data: CwaLocationData {
                version: 1,
                r#type: details.venue_type as i32,
                default_check_in_length_in_minutes: details.default_check_in_minutes.unwrap_or(0),
            }
            .encode_to_vec(),
        };
        Self::from_payload_bytes(&payload.encode_to_vec())
    }

    /// Reads the text of a scanned QR code: `https://e.coronawarn.app?v=1#<payload>` as
    /// CWA's posters carry it, or another app's `https://…#…/CWA1/<payload>`; the payload
    /// in base64url or base64, with or without padding.
    pub fn from_qr_text(text: &str) -> Result<Self, CheckinError> {
        let text = text.trim();
        if text.len() > MAX_QR_TEXT_LEN {
            return Err(CheckinError::NotAVenueCode);
        }
        let (url, fragment) = text.split_once('#').ok_or(CheckinError::NotAVenueCode)?;
        if !url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            return Err(CheckinError::NotAVenueCode);
        }
        let encoded = match fragment.rfind(CWA1_MARKER) {
            Some(at) => &fragment[at + CWA1_MARKER.len()..],
            None => fragment,
        };
        if encoded.is_empty() {
            return Err(CheckinError::NotAVenueCode);
        }
        Self::from_payload_bytes(&decode_base64(encoded)?)
    }

    /// Reads the decoded payload bytes, checking them as CWA does: version 1, a
    /// description and an address of 1..=100 characters on one line each, an event that
    /// does not end before it starts, and a 16-byte seed.
    pub fn from_payload_bytes(bytes: &[u8]) -> Result<Self, CheckinError> {
        let payload = QrCodePayload::decode(bytes).map_err(|error| CheckinError::Malformed {
            what: "QRCodePayload",
            reason: error.to_string(),
        })?;
        if payload.version != 1 {
            return Err(CheckinError::UnsupportedVersion(payload.version));
        }
        let location = payload
            .location_data
            .ok_or(CheckinError::MissingField("location data"))?;
        let seed = payload
            .crowd_notifier_data
            .ok_or(CheckinError::MissingField("CrowdNotifier data"))?
            .cryptographic_seed;
        if seed.len() != SEED_LEN {
            return Err(CheckinError::InvalidLength {
                what: "venue seed",
                expected: SEED_LEN,
                actual: seed.len(),
            });
        }
        check_text("description", &location.description)?;
        check_text("address", &location.address)?;
        let (start, end) = (location.start_timestamp, location.end_timestamp);
        if end != 0 && start > end {
            return Err(CheckinError::InvalidEventTimes { start, end });
        }
        let vendor = CwaLocationData::decode(payload.vendor_data.as_slice()).map_err(|error| {
            CheckinError::Malformed {
                what: "CWALocationData",
                reason: error.to_string(),
            }
        })?;
        Ok(Self {
            bytes: bytes.to_vec(),
            details: VenueDetails {
                description: location.description,
                address: location.address,
                event: (start != 0 || end != 0)
                    .then_some((UnixSeconds::new(start), UnixSeconds::new(end))),
                venue_type: VenueType::from_number(vendor.r#type),
                default_check_in_minutes: (vendor.default_check_in_length_in_minutes != 0)
                    .then_some(vendor.default_check_in_length_in_minutes),
            },
            location_id: LocationId::of_payload(bytes),
        })
    }

    /// The text to put in the QR code: `prefix` (such as [`CWA_QR_PREFIX`]) followed by
    /// the payload in unpadded base64url.
    pub fn qr_text(&self, prefix: &str) -> String {
        format!(
            "{prefix}{}",
            general_purpose::URL_SAFE_NO_PAD.encode(&self.bytes)
        )
    }

    /// The payload bytes, as scanned.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What the payload says about the venue.
    pub fn details(&self) -> &VenueDetails {
        &self.details
    }

    /// The venue's secret id.
    pub fn location_id(&self) -> &LocationId {
        &self.location_id
    }
}

impl fmt::Debug for VenuePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VenuePayload")
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

fn check_text(field: &'static str, text: &str) -> Result<(), CheckinError> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS || text.contains(['\n', '\r']) {
        return Err(CheckinError::InvalidText { field, chars });
    }
    Ok(())
}

/// Either alphabet, padded or not: CWA's own posters use base64url, while other
/// generators (and CWA's iOS tests) write standard base64.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, CheckinError> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if encoded.contains(['+', '/']) {
        &base64::alphabet::STANDARD
    } else {
        &base64::alphabet::URL_SAFE
    };
    GeneralPurpose::new(alphabet, config)
        .decode(encoded)
        .map_err(|_| CheckinError::PayloadNotBase64)
}
