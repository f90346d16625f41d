//! The protobuf messages of Corona-Warn-App's presence tracing (`internal/pt/*.proto` in
//! cwa-server), as prost structs.
//!
//! Written by hand, like the export messages, so that building needs no `protoc`. The
//! field numbers and types are CWA's: `trace_location.proto` (the QR payload),
//! `check_in.proto` (the encrypted record and the protected report) and
//! `trace_warning.proto` (the hourly package). All are proto3, so absent scalars read
//! as zero, and unknown fields are skipped.

/// `QRCodePayload`: what a venue's QR code carries, base64url-encoded in the URL fragment.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct QrCodePayload {
    /// Payload version, 1.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Description, address and optional event times.
    #[prost(message, optional, tag = "2")]
    pub location_data: Option<TraceLocation>,
    /// CrowdNotifier's public key and the venue's random seed.
    #[prost(message, optional, tag = "3")]
    pub crowd_notifier_data: Option<CrowdNotifierData>,
    /// The encoded [`CwaLocationData`].
    #[prost(bytes = "vec", tag = "4")]
    pub vendor_data: Vec<u8>,
}

/// `TraceLocation`: what the visitor sees.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceLocation {
    /// Version, 1.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// At most 100 characters.
    #[prost(string, tag = "2")]
    pub description: String,
    /// At most 100 characters.
    #[prost(string, tag = "3")]
    pub address: String,
    /// Start of an event, Unix seconds; 0 for a permanent place.
    #[prost(uint64, tag = "5")]
    pub start_timestamp: u64,
    /// End of an event, Unix seconds; 0 for a permanent place.
    #[prost(uint64, tag = "6")]
    pub end_timestamp: u64,
}

/// `CrowdNotifierData`: carried for cross-border compatibility; only the seed is used here.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CrowdNotifierData {
    /// Version, 1.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The health authority's CrowdNotifier public key (unused by CWA's own matching).
    #[prost(bytes = "vec", tag = "2")]
    pub public_key: Vec<u8>,
    /// 16 random bytes that make the location id unguessable.
    #[prost(bytes = "vec", tag = "3")]
    pub cryptographic_seed: Vec<u8>,
}

/// `CWALocationData`, the vendor data.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CwaLocationData {
    /// Version, 1.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The `TraceLocationType` enum, as its number.
    #[prost(int32, tag = "2")]
    pub r#type: i32,
    /// How long a visit lasts unless the visitor checks out, in minutes; 0 when not given.
    #[prost(uint32, tag = "3")]
    pub default_check_in_length_in_minutes: u32,
}

/// `CheckInRecord`: the plaintext inside a protected report.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub(crate) struct CheckInRecord {
    /// First 10-minute interval of the stay.
    #[prost(uint32, tag = "1")]
    pub start_interval_number: u32,
    /// Number of 10-minute intervals.
    #[prost(uint32, tag = "2")]
    pub period: u32,
    /// Transmission risk level, 1..=8.
    #[prost(uint32, tag = "3")]
    pub transmission_risk_level: u32,
}

/// `CheckInProtectedReport`: one check-in as a positive person uploads it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct CheckInProtectedReport {
    /// SHA-256 of the location id.
    #[prost(bytes = "vec", tag = "1")]
    pub location_id_hash: Vec<u8>,
    /// AES-CBC initialisation vector, 16 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub iv: Vec<u8>,
    /// AES-256-CBC (PKCS#7) of the encoded [`CheckInRecord`].
    #[prost(bytes = "vec", tag = "3")]
    pub encrypted_check_in_record: Vec<u8>,
    /// HMAC-SHA256 over `iv ‖ encrypted_check_in_record`.
    #[prost(bytes = "vec", tag = "4")]
    pub mac: Vec<u8>,
}

/// `TraceWarningPackage`: the reports published in one hour.
#[cfg(feature = "export")]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceWarningPackage {
    /// Hours since the Unix epoch.
    #[prost(uint32, tag = "1")]
    pub interval_number: u32,
    /// Region, e.g. "DE".
    #[prost(string, tag = "2")]
    pub region: String,
    // Field 3, the deprecated unencrypted `timeIntervalWarnings`, is neither read nor written:
    // it would tell everyone which hashed location had a positive visitor when.
    /// The encrypted check-ins.
    #[prost(message, repeated, tag = "4")]
    pub check_in_protected_reports: Vec<CheckInProtectedReport>,
}
