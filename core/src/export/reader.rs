//! Reading an export file: parse it, verify its signature, then stream its keys.

use std::fmt;
use std::iter::FusedIterator;

use prost::Message;
use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use super::archive;
use super::limits::ExportLimits;
use super::proto::{
    KEYS_FIELD, REVISED_KEYS_FIELD, TekSignatureList, TemporaryExposureKeyExport,
    TemporaryExposureKeyRecord,
};
use super::signing::{ECDSA_P256_SHA256_OID, ExportDigest, SignatureInfo, TrustedKeys};
use crate::diagnosis::DiagnosisKey;
use crate::error::{Error, ExportFormatError, ExportTrustError, KeyError, Result};

/// The 16 bytes every `export.bin` starts with: "EK Export v1" padded with 4 spaces.
pub const EXPORT_HEADER: &[u8; 16] = b"EK Export v1    ";

/// An export file whose structure has been checked but whose signature has not.
///
/// Its keys are out of reach until [`verify`](Self::verify) succeeds, so a device
/// cannot act on keys that the health authority did not sign. Its header and
/// signatures can be inspected first (they are unauthenticated).
#[derive(Debug)]
pub struct ExportFile {
    contents: Contents,
    signatures: Vec<ExportSignature>,
}

/// The metadata of an export (everything but the keys), as written in `export.bin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHeader {
    start_timestamp: u64,
    end_timestamp: u64,
    region: String,
    batch_num: i32,
    batch_size: i32,
    signature_infos: Vec<SignatureInfo>,
    key_count: usize,
    revised_key_count: usize,
}

impl ExportHeader {
    /// Start of the time window the keys were published in, unix seconds.
    pub fn start_timestamp(&self) -> u64 {
        self.start_timestamp
    }

    /// End of that time window, unix seconds.
    pub fn end_timestamp(&self) -> u64 {
        self.end_timestamp
    }

    /// Region, e.g. "US" or an MCC such as "222".
    pub fn region(&self) -> &str {
        &self.region
    }

    /// 1-based number of this file in its batch, as written.
    pub fn batch_num(&self) -> i32 {
        self.batch_num
    }

    /// Number of files in the batch, as written.
    pub fn batch_size(&self) -> i32 {
        self.batch_size
    }

    /// The keys `export.bin` says it is signed with.
    pub fn signature_infos(&self) -> &[SignatureInfo] {
        &self.signature_infos
    }

    /// Number of records in `keys`.
    pub fn key_count(&self) -> usize {
        self.key_count
    }

    /// Number of records in `revised_keys`.
    pub fn revised_key_count(&self) -> usize {
        self.revised_key_count
    }
}

/// One signature from `export.sig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSignature {
    info: SignatureInfo,
    der: Vec<u8>,
}

impl ExportSignature {
    /// The key that claims to have made it.
    pub fn info(&self) -> &SignatureInfo {
        &self.info
    }

    /// The signature over all of `export.bin`, DER-encoded (what `openssl dgst -verify` reads).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl ExportFile {
    /// Reads an export: a zip of `export.bin` and `export.sig` as health authorities
    /// publish them, or a bare `export.bin` (which has no signature).
    ///
    /// Checks the sizes against `limits`, the zip entries, the header and the
    /// framing of every protobuf field, and counts the keys; the keys themselves are
    /// decoded later, one at a time. Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8], limits: &ExportLimits) -> Result<Self> {
        if bytes.len() as u64 > limits.max_file_size {
            return Err(Error::ExportFormat(ExportFormatError::TooLarge {
                what: "export file",
                limit: limits.max_file_size,
            }));
        }
        let (bin, sig) = if bytes.starts_with(EXPORT_HEADER) {
            if bytes.len() as u64 > limits.max_export_bin_size {
                return Err(Error::ExportFormat(ExportFormatError::TooLarge {
                    what: archive::BIN_ENTRY,
                    limit: limits.max_export_bin_size,
                }));
            }
            (bytes.to_vec(), None)
        } else if archive::looks_like_zip(bytes) {
            archive::read(bytes, limits)?
        } else {
            return Err(Error::ExportFormat(ExportFormatError::NotRecognized));
        };
        let header = parse_header(&bin, limits)?;
        let signatures = match sig {
            Some(sig) => parse_signatures(&sig)?,
            None => Vec::new(),
        };
        Ok(Self {
            contents: Contents { bin, header },
            signatures,
        })
    }

    /// The metadata; unauthenticated until [`verify`](Self::verify) succeeds.
    pub fn header(&self) -> &ExportHeader {
        &self.contents.header
    }

    /// The signatures of `export.sig`; empty for a bare `export.bin`.
    pub fn signatures(&self) -> &[ExportSignature] {
        &self.signatures
    }

    /// The signed bytes: all of `export.bin`, header included.
    pub fn export_bin(&self) -> &[u8] {
        &self.contents.bin
    }

    /// Checks the signatures against `trusted` and unlocks the keys.
    ///
    /// Succeeds when a signature made by a trusted key (matched by key id and
    /// version) verifies over all of `export.bin`. Fails with
    /// [`ExportTrustError::Unsigned`] when there is no signature,
    /// [`Error::ExportTrust(ExportTrustError::UnknownSigningKey)`] when no signature comes from a trusted key,
    /// and otherwise with the first failure among the trusted keys' signatures
    /// ([`Error::ExportTrust(ExportTrustError::BadSignature)`] or [`Error::ExportTrust(ExportTrustError::UnsupportedSignatureAlgorithm)`]).
    pub fn verify(self, trusted: &TrustedKeys) -> Result<VerifiedExport> {
        let signer = verify_signatures(&self.contents.bin, &self.signatures, trusted)?;
        Ok(VerifiedExport {
            signer,
            contents: self.contents,
        })
    }

    /// Unlocks the keys WITHOUT checking any signature.
    ///
    /// Only for files whose authenticity is established otherwise or does not
    /// matter: old or bare `export.bin` files whose public key is not available,
    /// tests, research. Never for keys a device will act on.
    pub fn insecure_skip_verification(self) -> UnverifiedExport {
        UnverifiedExport {
            contents: self.contents,
        }
    }
}

/// An export whose signature was verified: its keys can be read.
#[derive(Debug)]
pub struct VerifiedExport {
    contents: Contents,
    signer: SignatureInfo,
}

impl VerifiedExport {
    /// The metadata, covered by the signature.
    pub fn header(&self) -> &ExportHeader {
        &self.contents.header
    }

    /// The trusted key whose signature verified.
    pub fn signer(&self) -> &SignatureInfo {
        &self.signer
    }

    /// The diagnosis keys, decoded one at a time (see [`ExportKeys`]).
    pub fn keys(&self) -> ExportKeys<'_> {
        self.contents.keys(KEYS_FIELD)
    }

    /// The revised keys: earlier published keys whose report type changed (e.g. to
    /// `Revoked`).
    pub fn revised_keys(&self) -> ExportKeys<'_> {
        self.contents.keys(REVISED_KEYS_FIELD)
    }
}

/// An export read without checking its signature (see
/// [`ExportFile::insecure_skip_verification`]).
#[derive(Debug)]
pub struct UnverifiedExport {
    contents: Contents,
}

impl UnverifiedExport {
    /// The metadata, unauthenticated.
    pub fn header(&self) -> &ExportHeader {
        &self.contents.header
    }

    /// The diagnosis keys, unauthenticated, decoded one at a time.
    pub fn keys(&self) -> ExportKeys<'_> {
        self.contents.keys(KEYS_FIELD)
    }

    /// The revised keys, unauthenticated, decoded one at a time.
    pub fn revised_keys(&self) -> ExportKeys<'_> {
        self.contents.keys(REVISED_KEYS_FIELD)
    }
}

/// `export.bin` and what [`ExportFile::parse`] learned from it.
struct Contents {
    bin: Vec<u8>,
    header: ExportHeader,
}

impl fmt::Debug for Contents {
    // Megabytes of key records are no use in a debug print: show their size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contents")
            .field("export_bin_len", &self.bin.len())
            .field("header", &self.header)
            .finish()
    }
}

impl Contents {
    fn keys(&self, field: u32) -> ExportKeys<'_> {
        let count = if field == KEYS_FIELD {
            self.header.key_count
        } else {
            self.header.revised_key_count
        };
        ExportKeys {
            // Cannot fail: `parse` checked the header.
            fields: Fields::new(&self.bin[EXPORT_HEADER.len()..]),
            field,
            next_index: 0,
            remaining: count,
        }
    }
}

/// The keys of an export, decoded lazily from `export.bin`.
///
/// Each step decodes one `TemporaryExposureKey` record, so only one key is
/// decoded at a time however large the file. A record that breaks GAEN's rules
/// (key not 16 bytes, rolling period outside 1..=144, negative start, undecodable
/// protobuf) comes out as [`ExportFormatError::InvalidKey`] and the iteration goes on
/// with the next record: the signature vouches for every other key, and dropping
/// all of them because of one bad record would hide real exposures. Callers that
/// prefer to reject the whole file can `collect::<Result<Vec<_>>>()`.
#[derive(Clone, Debug)]
pub struct ExportKeys<'a> {
    fields: Fields<'a>,
    field: u32,
    next_index: usize,
    remaining: usize,
}

impl Iterator for ExportKeys<'_> {
    type Item = Result<DiagnosisKey>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let field = match self.fields.next()? {
                Ok(field) => field,
                // `parse` walked the same fields, so this is unreachable in practice.
                Err(error) => return Some(Err(error)),
            };
            let (true, Some(record)) = (field.tag == self.field, field.payload) else {
                continue;
            };
            let index = self.next_index;
            self.next_index += 1;
            self.remaining = self.remaining.saturating_sub(1);
            return Some(decode_key_record(record).map_err(|source| {
                Error::ExportFormat(ExportFormatError::InvalidKey { index, source })
            }));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ExportKeys<'_> {}

impl FusedIterator for ExportKeys<'_> {}

fn decode_key_record(record: &[u8]) -> Result<DiagnosisKey, KeyError> {
    TemporaryExposureKeyRecord::decode(record)
        .map_err(|error| KeyError::Malformed(error.to_string()))?
        .into_diagnosis_key()
}

/// Checks the header and field framing of `bin`, counts its keys, and decodes the rest.
fn parse_header(bin: &[u8], limits: &ExportLimits) -> Result<ExportHeader> {
    let body = bin
        .strip_prefix(EXPORT_HEADER.as_slice())
        .ok_or(Error::ExportFormat(ExportFormatError::BadHeader))?;
    let (mut key_count, mut revised_key_count) = (0usize, 0usize);
    for field in Fields::new(body) {
        let field = field?;
        let count = match field.tag {
            KEYS_FIELD => &mut key_count,
            REVISED_KEYS_FIELD => &mut revised_key_count,
            _ => continue,
        };
        if field.payload.is_none() {
            return Err(Error::ExportFormat(ExportFormatError::Malformed {
                what: EXPORT_MESSAGE,
                reason: format!("field {} is not a length-delimited message", field.tag),
            }));
        }
        *count += 1;
        if (key_count + revised_key_count) as u64 > limits.max_keys {
            return Err(Error::ExportFormat(ExportFormatError::TooManyKeys {
                limit: limits.max_keys,
            }));
        }
    }
    // The key fields are unknown to this message, so prost only skips over them.
    let export = TemporaryExposureKeyExport::decode(body)
        .map_err(|error| malformed(EXPORT_MESSAGE, error))?;
    Ok(ExportHeader {
        start_timestamp: export.start_timestamp(),
        end_timestamp: export.end_timestamp(),
        region: export.region().to_owned(),
        batch_num: export.batch_num(),
        batch_size: export.batch_size(),
        signature_infos: export
            .signature_infos
            .into_iter()
            .map(SignatureInfo::from_proto)
            .collect(),
        key_count,
        revised_key_count,
    })
}

/// Checks `signatures` over all of `bin` against `trusted` (see [`ExportFile::verify`])
/// and returns the signer whose signature verified: shared by every file signed the
/// way key exports are.
pub(crate) fn verify_signatures(
    bin: &[u8],
    signatures: &[ExportSignature],
    trusted: &TrustedKeys,
) -> Result<SignatureInfo> {
    let first = signatures
        .first()
        .ok_or(Error::ExportTrust(ExportTrustError::Unsigned))?;
    let digest = ExportDigest::of(bin);
    let mut failure = None;
    for signature in signatures {
        let Some(key) = trusted.get(&signature.info) else {
            continue;
        };
        let checked = if signature.info.algorithm() == ECDSA_P256_SHA256_OID {
            key.verify_digest(&digest, &signature.der).map_err(|_| {
                Error::ExportTrust(ExportTrustError::BadSignature {
                    key_id: signature.info.key_id().to_owned(),
                    key_version: signature.info.key_version().to_owned(),
                })
            })
        } else {
            Err(Error::ExportTrust(
                ExportTrustError::UnsupportedSignatureAlgorithm(
                    signature.info.algorithm().to_owned(),
                ),
            ))
        };
        match checked {
            Ok(()) => return Ok(signature.info.clone()),
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    Err(failure.unwrap_or_else(|| {
        Error::ExportTrust(ExportTrustError::UnknownSigningKey {
            key_id: first.info.key_id().to_owned(),
            key_version: first.info.key_version().to_owned(),
        })
    }))
}

pub(crate) fn parse_signatures(sig: &[u8]) -> Result<Vec<ExportSignature>> {
    let list =
        TekSignatureList::decode(sig).map_err(|error| malformed("TEKSignatureList", error))?;
    Ok(list
        .signatures
        .into_iter()
        .map(|signature| ExportSignature {
            info: SignatureInfo::from_proto(signature.signature_info.unwrap_or_default()),
            der: signature.signature.unwrap_or_default(),
        })
        .collect())
}

/// Protobuf name of the message in `export.bin`, for errors.
const EXPORT_MESSAGE: &str = "TemporaryExposureKeyExport";

fn malformed(what: &'static str, error: prost::DecodeError) -> Error {
    Error::ExportFormat(ExportFormatError::Malformed {
        what,
        reason: error.to_string(),
    })
}

/// One top-level protobuf field.
#[derive(Clone, Copy, Debug)]
struct Field<'a> {
    tag: u32,
    /// The content of a length-delimited field; `None` for other wire types.
    payload: Option<&'a [u8]>,
}

/// The top-level fields of a protobuf message, in wire order, without decoding them.
#[derive(Clone, Debug)]
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    fn read_field(&mut self) -> Result<Field<'a>> {
        let prost_error = |error| malformed(EXPORT_MESSAGE, error);
        let (tag, wire_type) = decode_key(&mut self.rest).map_err(prost_error)?;
        if wire_type != WireType::LengthDelimited {
            skip_field(wire_type, tag, &mut self.rest, DecodeContext::default())
                .map_err(prost_error)?;
            return Ok(Field { tag, payload: None });
        }
        let len = decode_varint(&mut self.rest).map_err(prost_error)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.rest.remaining())
            .ok_or_else(|| {
                Error::ExportFormat(ExportFormatError::Malformed {
                    what: EXPORT_MESSAGE,
                    reason: format!("field {tag} claims {len} bytes, more than remain"),
                })
            })?;
        let (payload, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(Field {
            tag,
            payload: Some(payload),
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.read_field();
        if field.is_err() {
            // Stop after the first error: what follows cannot be framed.
            self.rest = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use prost::encoding::{encode_key, encode_varint};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::export::{ExportBatch, ExportSigner, SigningKey, write_export};

    /// `export.bin` holding `records` as field-7 messages after a minimal header.
    fn bin_with_records(records: &[TemporaryExposureKeyRecord]) -> Vec<u8> {
        let mut bin = EXPORT_HEADER.to_vec();
        let header = TemporaryExposureKeyExport {
            region: Some("US".into()),
            ..Default::default()
        };
        header.encode(&mut bin).unwrap();
        for record in records {
            prost::encoding::message::encode(KEYS_FIELD, record, &mut bin);
        }
        bin
    }

    fn record(byte: u8) -> TemporaryExposureKeyRecord {
        TemporaryExposureKeyRecord {
            key_data: Some(vec![byte; 16]),
            rolling_start_interval_number: Some(2_650_032),
            ..Default::default()
        }
    }

    fn unverified(bytes: &[u8]) -> Result<UnverifiedExport> {
        ExportFile::parse(bytes, &ExportLimits::default())
            .map(ExportFile::insecure_skip_verification)
    }

    #[test]
    fn a_bad_key_is_reported_and_the_others_still_read() {
        let bad = TemporaryExposureKeyRecord {
            rolling_period: Some(0),
            ..record(2)
        };
        let short = TemporaryExposureKeyRecord {
            key_data: Some(vec![3; 8]),
            ..record(3)
        };
        let export = unverified(&bin_with_records(&[record(1), bad, short, record(4)])).unwrap();
        let keys = export.keys();
        assert_eq!(keys.len(), 4);
        let results: Vec<_> = keys.collect();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap().tek.expose_secret(), &[1; 16]);
        assert_eq!(
            results[1],
            Err(Error::ExportFormat(ExportFormatError::InvalidKey {
                index: 1,
                source: KeyError::RollingPeriod(0),
            }))
        );
        assert!(matches!(
            &results[2],
            Err(Error::ExportFormat(ExportFormatError::InvalidKey { index: 2, source })) if *source == KeyError::Length(8)
        ));
        assert_eq!(results[3].as_ref().unwrap().tek.expose_secret(), &[4; 16]);
        // Rejecting the whole file is one `collect` away.
        assert!(export.keys().collect::<Result<Vec<_>>>().is_err());
    }

    #[test]
    fn undecodable_key_records_are_per_key_errors() {
        let mut bin = bin_with_records(&[record(1)]);
        // Field 7 holding two bytes that are not a valid message (truncated varint).
        bin.extend_from_slice(&[0x3a, 2, 0x10, 0x80]);
        let export = unverified(&bin).unwrap();
        let results: Vec<_> = export.keys().collect();
        assert!(results[0].is_ok());
        assert!(matches!(
            &results[1],
            Err(Error::ExportFormat(ExportFormatError::InvalidKey { index: 1, source }))
                if matches!(source, KeyError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let mut bin = bin_with_records(&[record(1)]);
        // Unknown varint, fixed32, length-delimited and group fields at the top level …
        encode_key(99, WireType::Varint, &mut bin);
        encode_varint(12345, &mut bin);
        encode_key(100, WireType::ThirtyTwoBit, &mut bin);
        bin.extend_from_slice(&[1, 2, 3, 4]);
        encode_key(101, WireType::LengthDelimited, &mut bin);
        encode_varint(3, &mut bin);
        bin.extend_from_slice(b"abc");
        encode_key(102, WireType::StartGroup, &mut bin);
        encode_key(1, WireType::Varint, &mut bin);
        encode_varint(1, &mut bin);
        encode_key(102, WireType::EndGroup, &mut bin);
        // … and inside a key record (variant_of_concern = 8, a future field 20).
        let mut inner = record(2).encode_to_vec();
        encode_key(8, WireType::Varint, &mut inner);
        encode_varint(1, &mut inner);
        encode_key(20, WireType::LengthDelimited, &mut inner);
        encode_varint(0, &mut inner);
        encode_key(KEYS_FIELD, WireType::LengthDelimited, &mut bin);
        encode_varint(inner.len() as u64, &mut bin);
        bin.extend_from_slice(&inner);

        let export = unverified(&bin).unwrap();
        assert_eq!(export.header().region(), "US");
        let keys: Vec<_> = export.keys().collect::<Result<_>>().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].tek.expose_secret(), &[2; 16]);
    }

    #[test]
    fn structural_errors_reject_the_file() {
        let good = bin_with_records(&[record(1)]);
        type Expectation = fn(&Error) -> bool;
        let cases: Vec<(Vec<u8>, Expectation)> = vec![
            (b"hello world, not an export".to_vec(), |e| {
                *e == Error::ExportFormat(ExportFormatError::NotRecognized)
            }),
            (Vec::new(), |e| {
                *e == Error::ExportFormat(ExportFormatError::NotRecognized)
            }),
            (good[..good.len() - 1].to_vec(), |e| {
                matches!(
                    e,
                    Error::ExportFormat(ExportFormatError::Malformed {
                        what: "TemporaryExposureKeyExport",
                        ..
                    })
                )
            }),
            // Field 7 as a varint instead of a message.
            (
                [good.as_slice(), &[7 << 3, 1]].concat(),
                |e| matches!(e, Error::ExportFormat(ExportFormatError::Malformed { reason, .. }) if reason.contains("field 7")),
            ),
            // A length running past the end.
            (
                [good.as_slice(), &[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]].concat(),
                |e| matches!(e, Error::ExportFormat(ExportFormatError::Malformed { .. })),
            ),
            // Region that is not UTF-8.
            ([good.as_slice(), &[0x1a, 1, 0xff]].concat(), |e| {
                matches!(e, Error::ExportFormat(ExportFormatError::Malformed { .. }))
            }),
        ];
        for (bytes, expected) in cases {
            let error = ExportFile::parse(&bytes, &ExportLimits::default()).unwrap_err();
            assert!(expected(&error), "{error:?}");
        }
        // A zip whose export.bin lacks the header.
        let zip = archive::write(b"EK Export v2    ", b"").unwrap();
        assert_eq!(
            ExportFile::parse(&zip, &ExportLimits::default()).unwrap_err(),
            Error::ExportFormat(ExportFormatError::BadHeader)
        );
    }

    #[test]
    fn limits_are_enforced() {
        let bin = bin_with_records(&[record(1), record(2), record(3)]);
        let limits = ExportLimits {
            max_keys: 2,
            ..ExportLimits::default()
        };
        assert_eq!(
            ExportFile::parse(&bin, &limits).unwrap_err(),
            Error::ExportFormat(ExportFormatError::TooManyKeys { limit: 2 })
        );
        let limits = ExportLimits {
            max_file_size: 10,
            ..ExportLimits::default()
        };
        assert_eq!(
            ExportFile::parse(&bin, &limits).unwrap_err(),
            Error::ExportFormat(ExportFormatError::TooLarge {
                what: "export file",
                limit: 10
            })
        );
        let limits = ExportLimits {
            max_export_bin_size: 20,
            ..ExportLimits::default()
        };
        assert_eq!(
            ExportFile::parse(&bin, &limits).unwrap_err(),
            Error::ExportFormat(ExportFormatError::TooLarge {
                what: "export.bin",
                limit: 20
            })
        );
        let zip = archive::write(&bin, &[0; 100]).unwrap();
        let limits = ExportLimits {
            max_export_sig_size: 99,
            ..ExportLimits::default()
        };
        assert_eq!(
            ExportFile::parse(&zip, &limits).unwrap_err(),
            Error::ExportFormat(ExportFormatError::TooLarge {
                what: "export.sig",
                limit: 99
            })
        );
    }

    fn signed_zip(signer: &ExportSigner) -> Vec<u8> {
        let batch = ExportBatch {
            region: "US",
            ..ExportBatch::default()
        };
        write_export(&batch, &[signer]).unwrap()
    }

    #[test]
    fn verification_failures_are_typed() {
        let signer = ExportSigner::new(
            "310",
            "v1",
            SigningKey::generate(&mut StdRng::seed_from_u64(1)),
        );
        let other = SigningKey::generate(&mut StdRng::seed_from_u64(2)).verifying_key();
        let zip = signed_zip(&signer);
        let parse = || ExportFile::parse(&zip, &ExportLimits::default()).unwrap();

        assert_eq!(
            parse().verify(&TrustedKeys::new()).unwrap_err(),
            Error::ExportTrust(ExportTrustError::UnknownSigningKey {
                key_id: "310".into(),
                key_version: "v1".into()
            })
        );
        assert_eq!(
            parse()
                .verify(&TrustedKeys::new().with("310", "v2", signer.verifying_key()))
                .unwrap_err(),
            Error::ExportTrust(ExportTrustError::UnknownSigningKey {
                key_id: "310".into(),
                key_version: "v1".into()
            })
        );
        assert_eq!(
            parse()
                .verify(&TrustedKeys::new().with("310", "v1", other))
                .unwrap_err(),
            Error::ExportTrust(ExportTrustError::BadSignature {
                key_id: "310".into(),
                key_version: "v1".into()
            })
        );
        let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
        assert!(parse().verify(&trusted).is_ok());

        // A bare export.bin and a zip without export.sig are unsigned.
        let bin = parse().export_bin().to_vec();
        assert_eq!(
            ExportFile::parse(&bin, &ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .unwrap_err(),
            Error::ExportTrust(ExportTrustError::Unsigned)
        );
        let empty_sig = archive::write(&bin, b"").unwrap();
        assert_eq!(
            ExportFile::parse(&empty_sig, &ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .unwrap_err(),
            Error::ExportTrust(ExportTrustError::Unsigned)
        );
    }

    #[test]
    fn other_signature_algorithms_are_refused() {
        let signer = ExportSigner::new(
            "310",
            "v1",
            SigningKey::generate(&mut StdRng::seed_from_u64(3)),
        );
        let (bin, sig) = archive::read(&signed_zip(&signer), &ExportLimits::default()).unwrap();
        let mut list = TekSignatureList::decode(sig.unwrap().as_slice()).unwrap();
        list.signatures[0]
            .signature_info
            .as_mut()
            .unwrap()
            .signature_algorithm = Some("1.2.840.10045.4.3.4".into());
        let zip = archive::write(&bin, &list.encode_to_vec()).unwrap();
        let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
        assert_eq!(
            ExportFile::parse(&zip, &ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .unwrap_err(),
            Error::ExportTrust(ExportTrustError::UnsupportedSignatureAlgorithm(
                "1.2.840.10045.4.3.4".into()
            ))
        );
    }

    #[test]
    fn debug_shows_the_size_not_the_bytes() {
        let export = unverified(&bin_with_records(&[record(1), record(2)])).unwrap();
        let debug = format!("{export:?}");
        assert!(debug.contains("export_bin_len: 70"), "{debug}");
        assert!(debug.contains("key_count: 2"), "{debug}");
    }

    #[test]
    fn a_good_signature_after_bad_ones_still_verifies() {
        let signer = ExportSigner::new(
            "310",
            "v1",
            SigningKey::generate(&mut StdRng::seed_from_u64(4)),
        );
        let (bin, sig) = archive::read(&signed_zip(&signer), &ExportLimits::default()).unwrap();
        let good = TekSignatureList::decode(sig.unwrap().as_slice())
            .unwrap()
            .signatures[0]
            .clone();
        let mut bad = good.clone();
        bad.signature.as_mut().unwrap()[10] ^= 1;
        let trusted = TrustedKeys::new().with("310", "v1", signer.verifying_key());
        let verify = |signatures: Vec<_>| {
            let zip =
                archive::write(&bin, &TekSignatureList { signatures }.encode_to_vec()).unwrap();
            ExportFile::parse(&zip, &ExportLimits::default())
                .unwrap()
                .verify(&trusted)
                .map(|export| export.signer().clone())
        };
        let mut signatures = vec![bad; 50];
        assert_eq!(
            verify(signatures.clone()),
            Err(Error::ExportTrust(ExportTrustError::BadSignature {
                key_id: "310".into(),
                key_version: "v1".into()
            }))
        );
        signatures.push(good);
        assert_eq!(verify(signatures), Ok(signer.info().clone()));
    }

    #[test]
    fn a_malformed_signature_file_is_rejected() {
        let zip = archive::write(&bin_with_records(&[]), &[0x0a, 5, 1]).unwrap();
        assert!(matches!(
            ExportFile::parse(&zip, &ExportLimits::default()),
            Err(Error::ExportFormat(ExportFormatError::Malformed {
                what: "TEKSignatureList",
                ..
            }))
        ));
    }
}
