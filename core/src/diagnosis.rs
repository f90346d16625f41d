//! Diagnosis keys: the keys a positive person published, with what the health authority says of them.

use crate::error::{Error, KeyError, Result};
use crate::keys::TemporaryExposureKey;

/// How a diagnosis was established (GAEN `ReportType`, same numbers as on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ReportType {
    /// Not given.
    #[default]
    Unknown = 0,
    /// A positive laboratory test.
    ConfirmedTest = 1,
    /// A clinician's diagnosis without a test.
    ConfirmedClinicalDiagnosis = 2,
    /// The person's own report.
    SelfReport = 3,
    /// Reserved by GAEN for recursive notification; never scored.
    Recursive = 4,
    /// A diagnosis that was withdrawn; never scored.
    Revoked = 5,
}

impl ReportType {
    /// Whether a published key of this report type may be revised to `to` (R19,
    /// GAEN's `ExposureMatchingTracer.isValidTransition`): a self report may become
    /// a confirmed test, a clinical diagnosis or revoked; a clinical diagnosis may
    /// become a confirmed test or revoked; nothing else changes.
    pub fn may_be_revised_to(self, to: ReportType) -> bool {
        use ReportType::*;
        matches!(
            (self, to),
            (
                SelfReport,
                ConfirmedTest | ConfirmedClinicalDiagnosis | Revoked
            ) | (ConfirmedClinicalDiagnosis, ConfirmedTest | Revoked)
        )
    }

    /// The report types a key may be revised from to reach `to` (see
    /// [`may_be_revised_to`](Self::may_be_revised_to)).
    pub fn revisable_to(to: ReportType) -> impl Iterator<Item = ReportType> {
        [Self::SelfReport, Self::ConfirmedClinicalDiagnosis]
            .into_iter()
            .filter(move |from| from.may_be_revised_to(to))
    }
}

impl TryFrom<i32> for ReportType {
    type Error = Error;

    fn try_from(value: i32) -> Result<Self> {
        Ok(match value {
            0 => Self::Unknown,
            1 => Self::ConfirmedTest,
            2 => Self::ConfirmedClinicalDiagnosis,
            3 => Self::SelfReport,
            4 => Self::Recursive,
            5 => Self::Revoked,
            other => return Err(Error::Key(KeyError::ReportType(other))),
        })
    }
}

/// Days from symptom onset (or test) to the day of a key: −14..=14.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DaysSinceOnset(i8);

impl DaysSinceOnset {
    /// Largest distance from onset GAEN carries.
    pub const MAX_ABS: i32 = 14;

    /// Days since onset; fails outside −14..=14.
    pub fn new(days: i32) -> Result<Self> {
        if days.abs() <= Self::MAX_ABS {
            Ok(Self(days as i8))
        } else {
            Err(Error::Key(KeyError::DaysSinceOnset(days)))
        }
    }

    /// The number of days.
    pub const fn get(self) -> i32 {
        self.0 as i32
    }
}

/// A published Temporary Exposure Key with its diagnosis metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagnosisKey {
    /// The key and its validity.
    pub tek: TemporaryExposureKey,
    /// How the diagnosis was made.
    pub report_type: ReportType,
    /// Days from symptom onset to the key's day, when known.
    pub days_since_onset: Option<DaysSinceOnset>,
    /// GAEN v1 transmission risk level (0..=8), when given; v2 scoring ignores it.
    pub transmission_risk_level: Option<u8>,
}

impl DiagnosisKey {
    /// A key with no diagnosis metadata.
    pub fn new(tek: TemporaryExposureKey) -> Self {
        Self {
            tek,
            report_type: ReportType::Unknown,
            days_since_onset: None,
            transmission_risk_level: None,
        }
    }
}
