//! One-time verification codes: generation, normalisation, hashing, and orders for
//! new codes.

use std::fmt;

use kith_core::ReportType;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use zeroize::{Zeroize, Zeroizing};

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::error::{AppError, Result};

/// Digits in a verification code: 10^16 possible codes (see the README for the odds).
pub const CODE_DIGITS: usize = 16;

/// A verification code as typed by a person: sixteen decimal digits.
/// Zeroized on drop (through `Zeroizing`); `Debug` does not show it.
#[derive(Clone)]
pub struct VerificationCode(Zeroizing<String>);

impl VerificationCode {
    /// A uniformly random code.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut code = String::with_capacity(CODE_DIGITS);
        while code.len() < CODE_DIGITS {
            // Rejection sampling keeps the digits uniform: 250 = 25 * 10.
            let mut byte = [0u8; 1];
            rng.fill_bytes(&mut byte);
            if byte[0] < 250 {
                code.push(char::from(b'0' + byte[0] % 10));
            }
        }
        Self(Zeroizing::new(code))
    }

    /// A code from user input; spaces and dashes between digit groups are ignored.
    pub fn parse(input: &str) -> Result<Self> {
        let digits: Zeroizing<String> =
            Zeroizing::new(input.chars().filter(|c| *c != ' ' && *c != '-').collect());
        if digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits))
        } else {
            Err(AppError::invalid(
                "invalid_code_format",
                format!("verification code must be {CODE_DIGITS} digits"),
            ))
        }
    }

    /// The digits, for showing the code once to the person it is issued for.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the pepper and the code: what the database stores.
    pub fn hash(&self, pepper: &Pepper) -> CodeHash {
        let mut hasher = Sha256::new();
        hasher.update(pepper.0.as_slice());
        hasher.update(self.0.as_bytes());
        CodeHash(hasher.finalize().into())
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(<redacted>)")
    }
}

/// A server-wide secret mixed into code hashes. It lives in its own file, not in the
/// database, so a leaked database alone does not let anyone try all 10^12 codes offline.
#[derive(Clone)]
pub struct Pepper(Zeroizing<[u8; 32]>);

impl Pepper {
    /// A pepper from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes, for storing them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// The stored form of a code.
#[derive(Clone, Copy, Zeroize)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    /// A hash no code has (with overwhelming probability): what chaff looks up.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A hash read back from the database; `None` unless it has 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The bytes, for the database.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl ConstantTimeEq for CodeHash {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(<redacted>)")
    }
}

/// The diagnoses a health authority can attach to a code.
// The variant names are GAEN's report types.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Diagnosis {
    /// A positive laboratory test (GAEN `CONFIRMED_TEST`).
    ConfirmedTest,
    /// A clinician's diagnosis (GAEN `CONFIRMED_CLINICAL_DIAGNOSIS`).
    ClinicalDiagnosis,
    /// The person's own report (GAEN `SELF_REPORT`).
    SelfReport,
}

impl Diagnosis {
    /// All of them, in the order a form lists them.
    pub const ALL: [Self; 3] = [
        Self::ConfirmedTest,
        Self::ClinicalDiagnosis,
        Self::SelfReport,
    ];

    /// The GAEN report type put on the keys.
    pub fn report_type(self) -> ReportType {
        match self {
            Self::ConfirmedTest => ReportType::ConfirmedTest,
            Self::ClinicalDiagnosis => ReportType::ConfirmedClinicalDiagnosis,
            Self::SelfReport => ReportType::SelfReport,
        }
    }

    /// The inverse of [`report_type`](Self::report_type), for reading the database.
    pub fn from_report_type(report_type: ReportType) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.report_type() == report_type)
    }

    /// The name used in JSON and forms.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConfirmedTest => "confirmed_test",
            Self::ClinicalDiagnosis => "clinical_diagnosis",
            Self::SelfReport => "self_report",
        }
    }

    /// What a case worker reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::ConfirmedTest => "Confirmed test",
            Self::ClinicalDiagnosis => "Clinical diagnosis",
            Self::SelfReport => "Self report",
        }
    }
}

/// What the day in a code's onset field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnsetKind {
    /// The day symptoms began.
    Symptom,
    /// The day of the (positive) test, used when there were no symptoms.
    Test,
}

impl OnsetKind {
    /// The name stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            Self::Symptom => "symptom",
            Self::Test => "test",
        }
    }

    /// The inverse of [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Symptom, Self::Test]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// The day from which days since onset are counted, as the health authority gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Onset {
    /// The day (UTC).
    pub day: Day,
    /// Symptom onset or test date.
    pub kind: OnsetKind,
}

/// An order for codes, as the admin API or the portal passes it to storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeOrder {
    /// Diagnosis put on the keys published with these codes.
    pub diagnosis: Diagnosis,
    /// Onset or test day, if the health authority knows it.
    pub onset: Option<Onset>,
    /// How many codes.
    pub count: u32,
    /// When the codes stop working.
    pub expires_at: UnixSeconds,
}

/// Most codes one order may ask for (batch workflows of large test centres).
pub const MAX_CODES_PER_ORDER: u32 = 10_000;

/// Oldest onset or test date accepted, in days before today (GAEN: at most 14 days ago).
pub const MAX_ONSET_AGE_DAYS: u32 = 14;

/// The dates a health authority may give with an order; the symptom onset wins.
#[derive(Clone, Copy, Debug, Default)]
pub struct OnsetDates<'a> {
    /// Day symptoms began, `YYYY-MM-DD` (UTC).
    pub symptom_onset: Option<&'a str>,
    /// Day of the test, `YYYY-MM-DD`, used when there is no symptom onset.
    pub test: Option<&'a str>,
}

impl CodeOrder {
    /// Checks an order placed at `now` for codes that live `lifetime_seconds`.
    pub fn new(
        diagnosis: Diagnosis,
        dates: OnsetDates<'_>,
        count: u32,
        now: UnixSeconds,
        lifetime_seconds: u64,
    ) -> Result<Self> {
        if !(1..=MAX_CODES_PER_ORDER).contains(&count) {
            return Err(AppError::invalid(
                "invalid_count",
                format!("count must be 1..={MAX_CODES_PER_ORDER}, got {count}"),
            ));
        }
        let today = Day::of(now);
        let onset = match (dates.symptom_onset, dates.test) {
            (Some(date), _) => Some(Onset {
                day: recent_day(date, "symptomOnsetDate", today)?,
                kind: OnsetKind::Symptom,
            }),
            (None, Some(date)) => Some(Onset {
                day: recent_day(date, "testDate", today)?,
                kind: OnsetKind::Test,
            }),
            (None, None) => None,
        };
        Ok(Self {
            diagnosis,
            onset,
            count,
            expires_at: now.plus(lifetime_seconds),
        })
    }
}

/// `text` as a day between [`MAX_ONSET_AGE_DAYS`] ago and `today`.
fn recent_day(text: &str, field: &str, today: Day) -> Result<Day> {
    let day = Day::parse(text).ok_or_else(|| {
        AppError::invalid("invalid_date", format!("{field} must be a date YYYY-MM-DD"))
    })?;
    if day > today || day < today.minus(MAX_ONSET_AGE_DAYS) {
        return Err(AppError::invalid(
            "invalid_date",
            format!("{field} must be between {MAX_ONSET_AGE_DAYS} days ago and today (UTC)"),
        ));
    }
    Ok(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn generated_codes_have_sixteen_uniform_digits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = [0u32; 10];
        for _ in 0..1000 {
            let code = VerificationCode::generate(&mut rng);
            assert_eq!(code.expose_secret().len(), CODE_DIGITS);
            for b in code.expose_secret().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 16 000 digits: each should appear ~1600 times.
        assert!(
            counts.iter().all(|&c| (1400..1800).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn parse_ignores_grouping_and_rejects_anything_else() {
        let code = VerificationCode::parse("1234-5678 9012 3456").unwrap();
        assert_eq!(code.expose_secret(), "1234567890123456");
        for bad in [
            "",
            "123456789012",
            "123456789012345",
            "12345678901234567",
            "123456789012345a",
            "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦",
        ] {
            assert!(VerificationCode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{code:?}"), "VerificationCode(<redacted>)");
    }

    #[test]
    fn hash_depends_on_pepper_and_code() {
        let a = VerificationCode::parse("1111111111111111").unwrap();
        let b = VerificationCode::parse("1111111111111112").unwrap();
        let p1 = Pepper::from_bytes([1; 32]);
        let p2 = Pepper::from_bytes([2; 32]);
        assert!(bool::from(a.hash(&p1).ct_eq(&a.hash(&p1))));
        assert!(!bool::from(a.hash(&p1).ct_eq(&b.hash(&p1))));
        assert!(!bool::from(a.hash(&p1).ct_eq(&a.hash(&p2))));
    }

    #[test]
    fn diagnosis_maps_to_report_types_and_back() {
        for d in Diagnosis::ALL {
            assert_eq!(Diagnosis::from_report_type(d.report_type()), Some(d));
        }
        assert_eq!(Diagnosis::from_report_type(ReportType::Revoked), None);
    }

    #[test]
    fn orders_check_count_and_dates() {
        let now = UnixSeconds::new(1_700_000_000); // 2023-11-14
        let order = |dates, count| CodeOrder::new(Diagnosis::SelfReport, dates, count, now, 60);
        let code = |result: Result<CodeOrder>| match result {
            Err(AppError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        let none = OnsetDates::default();
        assert_eq!(order(none, 1).unwrap().expires_at, now.plus(60));
        assert_eq!(code(order(none, 0)), "invalid_count");
        assert_eq!(code(order(none, MAX_CODES_PER_ORDER + 1)), "invalid_count");
        let symptom = |date| OnsetDates {
            symptom_onset: Some(date),
            test: Some("2023-11-01"),
        };
        let onset = order(symptom("2023-11-10"), 1).unwrap().onset.unwrap();
        assert_eq!(
            (onset.day.to_string(), onset.kind),
            ("2023-11-10".into(), OnsetKind::Symptom)
        );
        let test = OnsetDates {
            symptom_onset: None,
            test: Some("2023-10-31"),
        };
        assert_eq!(order(test, 1).unwrap().onset.unwrap().kind, OnsetKind::Test);
        for bad in ["2023-11-15", "2023-10-30", "2023-02-30", "yesterday"] {
            assert_eq!(code(order(symptom(bad), 1)), "invalid_date", "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in ".{0,40}") {
            if let Ok(code) = VerificationCode::parse(&input) {
                prop_assert!(code.expose_secret().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
