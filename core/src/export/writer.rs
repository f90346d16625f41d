//! Writing and signing an export file the way Google's key server does.

use prost::Message;

use super::archive;
use super::proto::{
    KEYS_FIELD, REVISED_KEYS_FIELD, TekSignature, TekSignatureList, TemporaryExposureKeyExport,
    TemporaryExposureKeyRecord,
};
use super::reader::EXPORT_HEADER;
use super::signing::{ExportDigest, ExportSigner};
use crate::diagnosis::DiagnosisKey;
use crate::error::{Error, ExportWriteError, Result};

/// Most signatures in one file: GAEN clients may not check any beyond the tenth.
pub const MAX_EXPORT_SIGNATURES: usize = 10;

/// Bytes one key record takes in `export.bin`, for sizing the buffer up front.
const TYPICAL_RECORD_LEN: usize = 34;

/// What goes into one export file.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportBatch<'a> {
    /// Region the keys are published for, e.g. "US" or an MCC such as "222".
    pub region: &'a str,
    /// Start of the publication window, unix seconds.
    pub start_timestamp: u64,
    /// End of the publication window, unix seconds.
    pub end_timestamp: u64,
    /// Newly published keys, in any order.
    pub keys: &'a [DiagnosisKey],
    /// Keys published before whose report type changed, in any order.
    pub revised_keys: &'a [DiagnosisKey],
}

/// Which file of a batch a file is, when a batch is split into several: `num` of `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPart {
    num: i32,
    size: i32,
}

impl BatchPart {
    /// A batch in one file: 1 of 1.
    pub const WHOLE: Self = Self { num: 1, size: 1 };

    /// File `num` (from 1) of `size`; `None` unless `1 <= num <= size <= i32::MAX`.
    pub fn new(num: usize, size: usize) -> Option<Self> {
        let num = i32::try_from(num).ok()?;
        let size = i32::try_from(size).ok()?;
        (1 <= num && num <= size).then_some(Self { num, size })
    }

    /// The file's number, from 1.
    pub fn num(self) -> i32 {
        self.num
    }

    /// How many files the batch has.
    pub fn size(self) -> i32 {
        self.size
    }
}

/// The export zip for `batch`, signed by every signer in turn.
///
/// As Google's key server writes it: keys (and revised keys) sorted by their bytes,
/// so that a key's position says nothing about its uploader; rolling period omitted
/// when it is a full day; batch 1 of 1. The output is byte-identical for the same
/// batch and keys, since signing is deterministic and the zip carries fixed timestamps.
pub fn write_export(batch: &ExportBatch<'_>, signers: &[&ExportSigner]) -> Result<Vec<u8>> {
    write_export_part(batch, BatchPart::WHOLE, signers)
}

/// As [`write_export`], for file `part` of a batch split into several: `export.bin` and
/// every signature say which file of how many it is.
pub fn write_export_part(
    batch: &ExportBatch<'_>,
    part: BatchPart,
    signers: &[&ExportSigner],
) -> Result<Vec<u8>> {
    check_signer_count(signers)?;
    signed_zip_part(&export_bin(batch, part, signers)?, part, signers)
}

/// The zip of `bin` and its `export.sig`, signed by every signer in turn (batch 1 of
/// 1): shared by every file signed the way key exports are.
pub(crate) fn signed_zip(bin: &[u8], signers: &[&ExportSigner]) -> Result<Vec<u8>> {
    signed_zip_part(bin, BatchPart::WHOLE, signers)
}

fn signed_zip_part(bin: &[u8], part: BatchPart, signers: &[&ExportSigner]) -> Result<Vec<u8>> {
    check_signer_count(signers)?;
    let digest = ExportDigest::of(bin);
    let signatures = TekSignatureList {
        signatures: signers
            .iter()
            .map(|signer| TekSignature {
                signature_info: Some(signer.info().to_proto()),
                batch_num: Some(part.num),
                batch_size: Some(part.size),
                signature: Some(signer.sign(&digest)),
            })
            .collect(),
    };
    archive::write(bin, &signatures.encode_to_vec())
}

fn check_signer_count(signers: &[&ExportSigner]) -> Result<()> {
    if signers.is_empty() {
        return Err(ExportWriteError::NoSigningKey.into());
    }
    if signers.len() > MAX_EXPORT_SIGNATURES {
        return Err(Error::ExportWrite(ExportWriteError::TooManySignatures {
            count: signers.len(),
            limit: MAX_EXPORT_SIGNATURES,
        }));
    }
    Ok(())
}

/// The header followed by the `TemporaryExposureKeyExport` message, keys appended one
/// record at a time in field order, as a single message would encode them.
fn export_bin(
    batch: &ExportBatch<'_>,
    part: BatchPart,
    signers: &[&ExportSigner],
) -> Result<Vec<u8>> {
    let export = TemporaryExposureKeyExport {
        start_timestamp: Some(batch.start_timestamp),
        end_timestamp: Some(batch.end_timestamp),
        region: Some(batch.region.to_owned()),
        batch_num: Some(part.num),
        batch_size: Some(part.size),
        signature_infos: signers
            .iter()
            .map(|signer| signer.info().to_proto())
            .collect(),
    }
    .encode_to_vec();
    let records = batch.keys.len() + batch.revised_keys.len();
    let mut bin =
        Vec::with_capacity(EXPORT_HEADER.len() + export.len() + records * TYPICAL_RECORD_LEN);
    bin.extend_from_slice(EXPORT_HEADER);
    bin.extend_from_slice(&export);
    let mut record = TemporaryExposureKeyRecord::default();
    for (field, keys) in [
        (KEYS_FIELD, batch.keys),
        (REVISED_KEYS_FIELD, batch.revised_keys),
    ] {
        for key in sorted_by_key_bytes(keys) {
            record.set_from_diagnosis_key(&key)?;
            prost::encoding::message::encode(field, &record, &mut bin);
        }
    }
    Ok(bin)
}

/// A copy of `keys` in ascending order of their bytes, equal keys in input order.
///
/// Sorting a copy, rather than positions into `keys`, keeps the encoding loop on
/// sequential memory: visiting half a million keys in random order costs more in
/// cache misses than copying them. Published keys are public, so the comparison
/// need not be constant-time.
fn sorted_by_key_bytes(keys: &[DiagnosisKey]) -> Vec<DiagnosisKey> {
    let mut sorted = keys.to_vec();
    sorted.sort_by_key(|key| u128::from_be_bytes(*key.tek.expose_secret()));
    sorted
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::export::{ExportFile, ExportLimits, SigningKey};
    use crate::{IntervalNumber, KeyValidity, RollingPeriod, TemporaryExposureKey};

    fn signer(seed: u64, id: &str) -> ExportSigner {
        ExportSigner::new(
            id,
            "v1",
            SigningKey::generate(&mut StdRng::seed_from_u64(seed)),
        )
    }

    #[test]
    fn full_day_periods_are_omitted() {
        let key = DiagnosisKey::new(TemporaryExposureKey::from_bytes(
            [9; 16],
            KeyValidity::new(IntervalNumber::new(2_650_032), RollingPeriod::FULL_DAY).unwrap(),
        ));
        let a = signer(4, "310");
        let batch = ExportBatch {
            keys: std::slice::from_ref(&key),
            ..ExportBatch::default()
        };
        let zip = write_export(&batch, &[&a]).unwrap();
        let file = ExportFile::parse(&zip, &ExportLimits::default()).unwrap();
        // key_data (18 bytes) + rolling start (5 bytes), nothing else: 0x3a = field 7.
        let record = [
            [0x3a, 23, 0x0a, 16].as_slice(),
            &[9; 16],
            &[0x18, 0xb0, 0xdf, 0xa1, 0x01],
        ]
        .concat();
        assert!(file.export_bin().ends_with(&record));
    }

    #[test]
    fn a_split_batch_says_which_file_of_how_many() {
        let a = signer(6, "310");
        let batch = ExportBatch::default();
        let zip = write_export_part(&batch, BatchPart::new(2, 3).unwrap(), &[&a]).unwrap();
        let file = ExportFile::parse(&zip, &ExportLimits::default()).unwrap();
        assert_eq!(
            (file.header().batch_num(), file.header().batch_size()),
            (2, 3)
        );
        let signatures = TekSignatureList::decode(archive_signature(&zip).as_slice()).unwrap();
        assert_eq!(signatures.signatures[0].batch_num, Some(2));
        assert_eq!(signatures.signatures[0].batch_size, Some(3));

        let whole = ExportFile::parse(
            &write_export(&batch, &[&a]).unwrap(),
            &ExportLimits::default(),
        )
        .unwrap();
        assert_eq!(
            (whole.header().batch_num(), whole.header().batch_size()),
            (1, 1)
        );
        for (num, size) in [(0, 1), (2, 1), (1, 0), (1, 1 << 31)] {
            assert_eq!(BatchPart::new(num, size), None, "{num} of {size}");
        }
    }

    fn archive_signature(zip: &[u8]) -> Vec<u8> {
        archive::read(zip, &ExportLimits::default())
            .unwrap()
            .1
            .unwrap()
    }

    #[test]
    fn signer_count_is_checked() {
        let batch = ExportBatch::default();
        assert_eq!(
            write_export(&batch, &[]),
            Err(Error::ExportWrite(ExportWriteError::NoSigningKey))
        );
        let a = signer(5, "310");
        assert_eq!(
            write_export(&batch, &[&a; 11]),
            Err(Error::ExportWrite(ExportWriteError::TooManySignatures {
                count: 11,
                limit: 10
            }))
        );
        assert!(write_export(&batch, &[&a; 10]).is_ok());
    }
}
