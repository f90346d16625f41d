//! GAEN key-export files: the signed zip files in which health authorities publish
//! diagnosis keys.
//!
//! ```text
//!  export.zip ─┬─ export.bin = "EK Export v1    " ‖ protobuf TemporaryExposureKeyExport
//!              └─ export.sig = protobuf TEKSignatureList: ECDSA P-256 / SHA-256 over all of export.bin
//!
//!  bytes ──ExportFile::parse──▶ ExportFile ──verify(&TrustedKeys)──▶ VerifiedExport ──keys()──▶ DiagnosisKey…
//!  &[DiagnosisKey] ──write_export(batch, &[&ExportSigner])──▶ bytes
//! ```
//!
//! Reading is bounded by [`ExportLimits`] and never panics. Keys are decoded one at
//! a time from `export.bin`, and only after the signature verified: an
//! [`ExportFile`] has no method that yields keys.
//!
//! ```
//! use kith_core::{
//!     DiagnosisKey, ExportBatch, ExportFile, ExportLimits, ExportSigner, IntervalNumber, OsRng,
//!     SigningKey, TemporaryExposureKey, TrustedKeys, write_export,
//! };
//!
//! // The health authority's server signs a file …
//! let signer = ExportSigner::new("310", "v1", SigningKey::generate(&mut OsRng));
//! let today = IntervalNumber::new(2_650_032);
//! let keys = [DiagnosisKey::new(TemporaryExposureKey::generate(&mut OsRng, today))];
//! let batch = ExportBatch { region: "US", keys: &keys, ..ExportBatch::default() };
//! let zip = write_export(&batch, &[&signer])?;
//!
//! // … and a device that trusts its published key reads it.
//! let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
//! let export = ExportFile::parse(&zip, &ExportLimits::default())?.verify(&trusted)?;
//! for key in export.keys() {
//!     assert_eq!(key?, keys[0]);
//! }
//! # Ok::<(), kith_core::Error>(())
//! ```

mod archive;
mod limits;
mod proto;
mod reader;
mod signing;
mod writer;

pub use limits::ExportLimits;
pub use reader::{
    EXPORT_HEADER, ExportFile, ExportHeader, ExportKeys, ExportSignature, UnverifiedExport,
    VerifiedExport,
};
pub use signing::{
    ECDSA_P256_SHA256_OID, ExportSigner, SignatureInfo, SigningKey, TrustedKeys, VerifyingKey,
};
pub use writer::{BatchPart, ExportBatch, MAX_EXPORT_SIGNATURES, write_export, write_export_part};

// For the other files signed the way key exports are (venue trace warnings).
pub(crate) use archive::read as read_zip;
pub(crate) use reader::{parse_signatures, verify_signatures};
pub(crate) use writer::signed_zip;
