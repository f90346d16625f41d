//! The protobuf messages of GAEN's `export.proto` (proto2), as prost structs.
//!
//! Written by hand so that building needs no `protoc`. Field numbers and types
//! follow the key server's schema; fields this crate does not know (the retired
//! `app_bundle_id` / `android_package` of old files, `variant_of_concern`, …) are
//! skipped by prost, as proto2 requires.
//!
//! The export's repeated `keys` (7) and `revised_keys` (8) fields are deliberately
//! missing from [`TemporaryExposureKeyExport`]: the reader walks them one record at a
//! time and the writer appends them one at a time, so half a million keys never sit
//! in memory as a decoded vector.
//!
//! Diagnosis keys are public once published, so these wire structs are not zeroized.

use crate::diagnosis::{DaysSinceOnset, DiagnosisKey, ReportType};
use crate::error::{Error, KeyError, Result};
use crate::interval::{INTERVALS_PER_DAY, IntervalNumber, KeyValidity, RollingPeriod};
use crate::keys::TemporaryExposureKey;

/// Field number of `TemporaryExposureKeyExport.keys`.
pub(crate) const KEYS_FIELD: u32 = 7;
/// Field number of `TemporaryExposureKeyExport.revised_keys`.
pub(crate) const REVISED_KEYS_FIELD: u32 = 8;

/// `TemporaryExposureKeyExport` without its key fields (see the module docs).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TemporaryExposureKeyExport {
    /// Start of the time window, unix seconds.
    #[prost(fixed64, optional, tag = "1")]
    pub start_timestamp: Option<u64>,
    /// End of the time window, unix seconds.
    #[prost(fixed64, optional, tag = "2")]
    pub end_timestamp: Option<u64>,
    /// Region, e.g. an ISO country code or an MCC.
    #[prost(string, optional, tag = "3")]
    pub region: Option<String>,
    /// 1-based number of this file in its batch.
    #[prost(int32, optional, tag = "4")]
    pub batch_num: Option<i32>,
    /// Number of files in the batch.
    #[prost(int32, optional, tag = "5")]
    pub batch_size: Option<i32>,
    /// Which keys sign this file.
    #[prost(message, repeated, tag = "6")]
    pub signature_infos: Vec<SignatureInfo>,
}

/// `SignatureInfo`: which key signed, and how. Fields 1 and 2 are reserved.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SignatureInfo {
    /// Version of the verification key, e.g. "v1".
    #[prost(string, optional, tag = "3")]
    pub verification_key_version: Option<String>,
    /// Id of the verification key, conventionally the region's MCC, e.g. "310".
    #[prost(string, optional, tag = "4")]
    pub verification_key_id: Option<String>,
    /// Signature algorithm OID, "1.2.840.10045.4.3.2" for ECDSA P-256 SHA-256.
    #[prost(string, optional, tag = "5")]
    pub signature_algorithm: Option<String>,
}

/// `TemporaryExposureKey`: one published key.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TemporaryExposureKeyRecord {
    /// The 16 key bytes.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub key_data: Option<Vec<u8>>,
    /// GAEN v1 transmission risk level (deprecated, still written by many servers).
    #[prost(int32, optional, tag = "2")]
    pub transmission_risk_level: Option<i32>,
    /// First interval of the key; absent means 0.
    #[prost(int32, optional, tag = "3")]
    pub rolling_start_interval_number: Option<i32>,
    /// Intervals the key is valid for; absent means 144.
    #[prost(int32, optional, tag = "4", default = "144")]
    pub rolling_period: Option<i32>,
    /// The `ReportType` enum, carried as its number (same numbers as [`ReportType`]).
    #[prost(int32, optional, tag = "5")]
    pub report_type: Option<i32>,
    /// Days since onset of symptoms: zigzag-encoded `sint32`.
    #[prost(sint32, optional, tag = "6")]
    pub days_since_onset_of_symptoms: Option<i32>,
}

/// `TEKSignatureList`, the content of `export.sig`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TekSignatureList {
    /// One entry per signing key.
    #[prost(message, repeated, tag = "1")]
    pub signatures: Vec<TekSignature>,
}

/// `TEKSignature`: one signature over the whole of `export.bin`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TekSignature {
    /// The key that made the signature.
    #[prost(message, optional, tag = "1")]
    pub signature_info: Option<SignatureInfo>,
    /// 1-based number of the signed file in its batch.
    #[prost(int32, optional, tag = "2")]
    pub batch_num: Option<i32>,
    /// Number of files in the batch.
    #[prost(int32, optional, tag = "3")]
    pub batch_size: Option<i32>,
    /// ECDSA signature, DER (X9.62 `SEQUENCE { r INTEGER, s INTEGER }`).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub signature: Option<Vec<u8>>,
}

/// Largest transmission risk level GAEN defines.
const MAX_TRANSMISSION_RISK_LEVEL: u8 = 8;

impl TemporaryExposureKeyRecord {
    /// The diagnosis key this record describes, checked against GAEN's rules.
    ///
    /// Wrong key lengths, rolling periods outside 1..=144 and negative starts are
    /// errors. Values that GAEN itself reads as "not given" become `None` or
    /// [`ReportType::Unknown`] instead: days since onset outside −14..=14 (GAEN treats
    /// |dsos| > 14 as missing), transmission risk levels outside 0..=8, and report type
    /// numbers it does not define (proto2 treats an unknown enum value as absent).
    pub fn into_diagnosis_key(self) -> Result<DiagnosisKey, KeyError> {
        let start = self.rolling_start_interval_number.unwrap_or(0);
        let start = u32::try_from(start).map_err(|_| KeyError::RollingStart(start.into()))?;
        // A negative period is as empty as a zero one.
        let period = u32::try_from(self.rolling_period()).unwrap_or(0);
        let validity = KeyValidity::new(IntervalNumber::new(start), RollingPeriod::new(period)?)
            .expect("a start below 2^31 plus at most 144 intervals fits in 32 bits");
        let tek = TemporaryExposureKey::from_slice(self.key_data(), validity)?;
        Ok(DiagnosisKey {
            tek,
            report_type: self
                .report_type
                .and_then(|number| ReportType::try_from(number).ok())
                .unwrap_or_default(),
            days_since_onset: self
                .days_since_onset_of_symptoms
                .and_then(|days| DaysSinceOnset::new(days).ok()),
            transmission_risk_level: self
                .transmission_risk_level
                .and_then(|level| u8::try_from(level).ok())
                .filter(|level| *level <= MAX_TRANSMISSION_RISK_LEVEL),
        })
    }

    /// Makes this the record the key server writes for `key`: rolling period omitted
    /// when it is a full day, start omitted when 0, report type omitted when unknown.
    ///
    /// Overwrites every field and reuses the key buffer, so one record can encode a
    /// whole file without an allocation per key.
    pub fn set_from_diagnosis_key(&mut self, key: &DiagnosisKey) -> Result<()> {
        let validity = key.tek.validity();
        let start = validity.start().get();
        let start =
            i32::try_from(start).map_err(|_| Error::Key(KeyError::RollingStart(start.into())))?;
        let period = validity.period().get();
        let key_data = self.key_data.get_or_insert_with(Vec::new);
        key_data.clear();
        key_data.extend_from_slice(key.tek.expose_secret());
        self.transmission_risk_level = key.transmission_risk_level.map(i32::from);
        self.rolling_start_interval_number = (start != 0).then_some(start);
        // 1..=144 always fits in an i32.
        self.rolling_period = (period != INTERVALS_PER_DAY).then_some(period as i32);
        self.report_type =
            (key.report_type != ReportType::Unknown).then_some(key.report_type as i32);
        self.days_since_onset_of_symptoms = key.days_since_onset.map(DaysSinceOnset::get);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn record() -> TemporaryExposureKeyRecord {
        TemporaryExposureKeyRecord {
            key_data: Some(vec![7; 16]),
            transmission_risk_level: Some(3),
            rolling_start_interval_number: Some(2_650_000),
            rolling_period: None,
            report_type: Some(1),
            days_since_onset_of_symptoms: Some(-3),
        }
    }

    #[test]
    fn days_since_onset_is_zigzag_encoded() {
        let bytes = TemporaryExposureKeyRecord {
            days_since_onset_of_symptoms: Some(-3),
            ..Default::default()
        }
        .encode_to_vec();
        // Field 6, varint; zigzag(-3) = 5. A plain int32 would take 10 bytes.
        assert_eq!(bytes, [6 << 3, 5]);
    }

    #[test]
    fn absent_rolling_period_means_a_full_day() {
        let key = record().into_diagnosis_key().unwrap();
        assert_eq!(key.tek.validity().period(), RollingPeriod::FULL_DAY);
        assert_eq!(key.tek.validity().start(), IntervalNumber::new(2_650_000));
        assert_eq!(key.report_type, ReportType::ConfirmedTest);
        assert_eq!(key.days_since_onset, Some(DaysSinceOnset::new(-3).unwrap()));
        assert_eq!(key.transmission_risk_level, Some(3));
    }

    #[test]
    fn absent_metadata_stays_absent() {
        let key = TemporaryExposureKeyRecord {
            key_data: Some(vec![1; 16]),
            ..Default::default()
        }
        .into_diagnosis_key()
        .unwrap();
        assert_eq!(key.report_type, ReportType::Unknown);
        assert_eq!(key.days_since_onset, None);
        assert_eq!(key.transmission_risk_level, None);
        assert_eq!(key.tek.validity().start(), IntervalNumber::new(0));
    }

    #[test]
    fn values_gaen_reads_as_missing_become_none() {
        for (dsos, trl, report_type) in [(15, 9, 6), (-15, -1, -1), (i32::MAX, 1000, 99)] {
            let key = TemporaryExposureKeyRecord {
                days_since_onset_of_symptoms: Some(dsos),
                transmission_risk_level: Some(trl),
                report_type: Some(report_type),
                ..record()
            }
            .into_diagnosis_key()
            .unwrap();
            assert_eq!(key.days_since_onset, None, "dsos {dsos}");
            assert_eq!(key.transmission_risk_level, None, "trl {trl}");
            assert_eq!(key.report_type, ReportType::Unknown, "type {report_type}");
        }
        for dsos in [-14, 0, 14] {
            let key = TemporaryExposureKeyRecord {
                days_since_onset_of_symptoms: Some(dsos),
                ..record()
            }
            .into_diagnosis_key()
            .unwrap();
            assert_eq!(key.days_since_onset.map(DaysSinceOnset::get), Some(dsos));
        }
    }

    #[test]
    fn keys_breaking_gaen_rules_are_errors() {
        let cases = [
            (
                TemporaryExposureKeyRecord {
                    rolling_period: Some(0),
                    ..record()
                },
                KeyError::RollingPeriod(0),
            ),
            (
                TemporaryExposureKeyRecord {
                    rolling_period: Some(145),
                    ..record()
                },
                KeyError::RollingPeriod(145),
            ),
            (
                TemporaryExposureKeyRecord {
                    rolling_period: Some(-1),
                    ..record()
                },
                KeyError::RollingPeriod(0),
            ),
            (
                TemporaryExposureKeyRecord {
                    key_data: Some(vec![0; 15]),
                    ..record()
                },
                KeyError::Length(15),
            ),
            (
                TemporaryExposureKeyRecord {
                    key_data: None,
                    ..record()
                },
                KeyError::Length(0),
            ),
            (
                TemporaryExposureKeyRecord {
                    rolling_start_interval_number: Some(-5),
                    ..record()
                },
                KeyError::RollingStart(-5),
            ),
        ];
        for (record, expected) in cases {
            assert_eq!(record.into_diagnosis_key(), Err(expected));
        }
    }

    fn written(key: &DiagnosisKey) -> Result<TemporaryExposureKeyRecord> {
        let mut record = TemporaryExposureKeyRecord::default();
        record.set_from_diagnosis_key(key)?;
        Ok(record)
    }

    #[test]
    fn record_round_trips_and_omits_defaults() {
        let key = record().into_diagnosis_key().unwrap();
        let written_record = written(&key).unwrap();
        assert_eq!(written_record, record());
        assert_eq!(written_record.rolling_period, None, "144 is omitted");

        let short = DiagnosisKey::new(key.tek.with_validity(
            KeyValidity::new(IntervalNumber::new(0), RollingPeriod::new(5).unwrap()).unwrap(),
        ));
        // Reusing a record leaves nothing of the previous key behind.
        let mut reused = record();
        reused.set_from_diagnosis_key(&short).unwrap();
        let written = written(&short).unwrap();
        assert_eq!(reused, written);
        assert_eq!(written.rolling_period, Some(5));
        assert_eq!(written.rolling_start_interval_number, None, "0 is omitted");
        assert_eq!(written.report_type, None);
        assert_eq!(written.into_diagnosis_key().unwrap(), short);
    }

    #[test]
    fn starts_beyond_int32_cannot_be_written() {
        let key = DiagnosisKey::new(TemporaryExposureKey::from_bytes(
            [0; 16],
            KeyValidity::new(IntervalNumber::new(1 << 31), RollingPeriod::FULL_DAY).unwrap(),
        ));
        assert_eq!(
            written(&key),
            Err(Error::Key(KeyError::RollingStart(1 << 31)))
        );
    }
}
