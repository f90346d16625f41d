//! The hourly trace-warning package: the protected reports published in one hour,
//! signed like key exports.
//!
//! ```text
//!  warnings.zip ─┬─ export.bin = protobuf TraceWarningPackage (no header, as CWA's signed downloads)
//!                └─ export.sig = TEKSignatureList: ECDSA P-256 / SHA-256 over all of export.bin
//! ```
//!
//! The zip, the signature list and the signature check are the key exports' own code;
//! only the message inside differs.

use prost::Message;

use super::proto::TraceWarningPackage;
use super::report::ProtectedReport;
use crate::ExportFormatError;
use crate::error::{Error, Result};
use crate::export::{
    ExportLimits, ExportSignature, ExportSigner, SignatureInfo, TrustedKeys, parse_signatures,
    read_zip, signed_zip, verify_signatures,
};

/// Seconds in the hour a package covers.
pub const HOUR_SECONDS: u64 = 3_600;

/// What goes into one package.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceWarningBatch<'a> {
    /// Region the reports are published for, e.g. "DE".
    pub region: &'a str,
    /// The hour they were published in: hours since the Unix epoch.
    pub hour: u32,
    /// The reports, real and padding, in any order.
    pub reports: &'a [ProtectedReport],
}

/// The package zip for `batch`, signed by every signer in turn.
///
/// Reports are sorted by their bytes, so that their order says nothing about who
/// uploaded them or when; the same batch always gives the same bytes.
pub fn write_trace_warnings(
    batch: &TraceWarningBatch<'_>,
    signers: &[&ExportSigner],
) -> Result<Vec<u8>> {
    let mut reports = batch.reports.to_vec();
    reports.sort();
    let package = TraceWarningPackage {
        interval_number: batch.hour,
        region: batch.region.to_owned(),
        check_in_protected_reports: reports.iter().map(ProtectedReport::to_proto).collect(),
    };
    signed_zip(&package.encode_to_vec(), signers)
}

/// A downloaded package whose container was checked but whose signature was not; its
/// reports are out of reach until [`verify`](Self::verify) succeeds.
#[derive(Debug)]
pub struct TraceWarningFile {
    bin: Vec<u8>,
    signatures: Vec<ExportSignature>,
}

impl TraceWarningFile {
    /// Reads a package zip within `limits` (the key exports' limits serve: a report
    /// takes about a tenth of a key's share of them). Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8], limits: &ExportLimits) -> Result<Self> {
        if bytes.len() as u64 > limits.max_file_size {
            return Err(Error::ExportFormat(ExportFormatError::TooLarge {
                what: "trace-warning file",
                limit: limits.max_file_size,
            }));
        }
        let (bin, sig) = read_zip(bytes, limits)?;
        let signatures = match sig {
            Some(sig) => parse_signatures(&sig)?,
            None => Vec::new(),
        };
        Ok(Self { bin, signatures })
    }

    /// The signatures of `export.sig`.
    pub fn signatures(&self) -> &[ExportSignature] {
        &self.signatures
    }

    /// Checks the signatures against `trusted` (as [`ExportFile::verify`](crate::ExportFile::verify)
    /// does) and decodes the package.
    ///
    /// A report whose fields have the wrong lengths is skipped, as a bad key in an
    /// export is: the signature vouches for the others.
    pub fn verify(self, trusted: &TrustedKeys) -> Result<VerifiedTraceWarnings> {
        let signer = verify_signatures(&self.bin, &self.signatures, trusted)?;
        let package = TraceWarningPackage::decode(self.bin.as_slice()).map_err(|error| {
            Error::ExportFormat(ExportFormatError::Malformed {
                what: "TraceWarningPackage",
                reason: error.to_string(),
            })
        })?;
        let total = package.check_in_protected_reports.len();
        let reports: Vec<_> = package
            .check_in_protected_reports
            .into_iter()
            .filter_map(|report| ProtectedReport::from_proto(report).ok())
            .collect();
        Ok(VerifiedTraceWarnings {
            hour: package.interval_number,
            region: package.region,
            skipped: total - reports.len(),
            reports,
            signer,
        })
    }
}

/// A package whose signature verified: its reports can be matched.
#[derive(Debug)]
pub struct VerifiedTraceWarnings {
    hour: u32,
    region: String,
    reports: Vec<ProtectedReport>,
    skipped: usize,
    signer: SignatureInfo,
}

impl VerifiedTraceWarnings {
    /// The hour of publication, hours since the Unix epoch.
    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The well-formed reports.
    pub fn reports(&self) -> &[ProtectedReport] {
        &self.reports
    }

    /// How many reports were skipped because their fields had the wrong lengths.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The trusted key whose signature verified.
    pub fn signer(&self) -> &SignatureInfo {
        &self.signer
    }
}
