//! A publish as it arrives (the GAEN key-server JSON, plain or inside a sealed body)
//! and GAEN's publish rules (key server `AdjustAndValidate`, `docs/tek_validation.md`),
//! which turn it into an [`Upload`] whose keys are known to be acceptable.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_core::checkin::ProtectedReport;
use kith_core::{
    DaysSinceOnset, DiagnosisKey, INTERVALS_PER_DAY, IntervalNumber, KeyValidity, ReportType,
    RollingPeriod, TemporaryExposureKey,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::calendar::Day;
use crate::clock::UnixSeconds;
use crate::codes::VerificationCode;
use crate::error::{AppError, Result};

/// Most keys in one publish (GAEN `MAX_KEYS_ON_PUBLISH`).
pub const MAX_KEYS: usize = 30;
/// Most keys sharing one rolling start (GAEN `MAX_SAME_START_INTERVAL_KEYS`).
pub const MAX_SAME_START: usize = 3;
/// Oldest key accepted, in intervals before now (GAEN `MAX_INTERVAL_AGE_ON_PUBLISH`, 15 days).
pub const MAX_AGE_INTERVALS: u32 = 15 * INTERVALS_PER_DAY;
/// Highest GAEN v1 transmission risk level.
pub const MAX_TRANSMISSION_RISK: i32 = 8;
/// Most venue check-ins in one publish, real and padding: CWA's 20 a day, for 14 days,
/// the number every phone sends ([`kith_core::checkin::CHECK_INS_PER_UPLOAD`]). The
/// server cannot check the days (the times are encrypted), nor which reports are padding,
/// so padding never counts for less.
pub const MAX_CHECK_INS: usize = kith_core::checkin::CHECK_INS_PER_UPLOAD;
/// Onset assumed when neither the code nor the request gives one (GAEN `DEFAULT_SYMPTOM_ONSET_DAYS_AGO`).
pub const DEFAULT_ONSET_DAYS_AGO: u32 = 4;

/// One key of a publish request (GAEN `ExposureKey`).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposureKey {
    /// The 16 key bytes, standard base64 with padding.
    #[schema(example = "z2Cx9hdz2SlxZ8GEgqTYpA==")]
    pub key: String,
    /// First interval (10 minutes since the epoch) of the key's validity.
    pub rolling_start_number: u32,
    /// Intervals the key is valid for, 1..=144.
    pub rolling_period: u32,
    /// GAEN v1 transmission risk, 0..=8 (optional; v2 scoring ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmission_risk: Option<i32>,
}

/// The publish document, plain or inside a sealed body.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishRequest {
    /// 1 to 30 keys.
    pub temporary_exposure_keys: Vec<ExposureKey>,
    /// The one-time code from the health authority: 12 digits (spaces and dashes ignored).
    pub verification_code: String,
    /// Interval of symptom onset, used only when the code carries no onset or test date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom_onset_interval: Option<u32>,
    /// Venue check-ins to warn the other visitors of: CWA `CheckInProtectedReport`s
    /// (protobuf, standard base64), at most 280 counting padding. Kith's phones always
    /// send 280, their visits hidden among random reports; fewer are padded to 280 here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_in_protected_reports: Vec<String>,
    /// Ignored; lets plain-JSON clients hide the key count (GAEN recommends 1–2 KiB of random text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<String>,
    /// Chaff: validated and answered like a real upload, but nothing is stored and the
    /// code is not checked. Send it sealed, or an observer can read the flag.
    #[serde(default)]
    pub fake: bool,
}

/// The answer to a successful publish (documentation of [`crate::answer::accepted`]).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishResponse {
    /// Number of keys accepted.
    pub inserted_exposures: usize,
    /// Filler that makes every publish response the same length.
    pub padding: String,
}

/// One validated key of an upload.
#[derive(Debug)]
struct UploadKey {
    tek: TemporaryExposureKey,
    transmission_risk: Option<u8>,
    embargo_until: UnixSeconds,
}

/// A publish request that passed every rule that does not need the database.
#[derive(Debug)]
pub struct Upload {
    keys: Vec<UploadKey>,
    /// The venue check-ins to publish.
    pub check_ins: Vec<ProtectedReport>,
    /// The code to redeem.
    pub code: VerificationCode,
    /// Onset day from the request, used when the code has none.
    pub symptom_onset_day: Option<Day>,
    /// A chaff upload: answered like a real one, stored nowhere.
    pub fake: bool,
    today: Day,
}

/// A key ready for storage.
#[derive(Debug)]
pub struct StoredKey {
    /// The key and its diagnosis.
    pub key: DiagnosisKey,
    /// Before this time the key is not exported.
    pub embargo_until: UnixSeconds,
}

fn rule(code: &'static str, index: usize, message: impl std::fmt::Display) -> AppError {
    AppError::invalid(code, format!("temporaryExposureKeys[{index}]: {message}"))
}

/// The rules that hold between the keys of one upload: no key twice, at most
/// [`MAX_SAME_START`] keys per rolling start.
#[derive(Default)]
struct KeySet {
    seen: HashSet<[u8; 16]>,
    per_start: HashMap<IntervalNumber, usize>,
}

impl KeySet {
    fn add(&mut self, index: usize, tek: &TemporaryExposureKey) -> Result<()> {
        if !self.seen.insert(*tek.expose_secret()) {
            return Err(rule("duplicate_key", index, "the same key appears twice"));
        }
        let start = tek.validity().start();
        let same_start = self.per_start.entry(start).or_default();
        *same_start += 1;
        if *same_start > MAX_SAME_START {
            return Err(rule(
                "too_many_keys_same_start",
                index,
                format!(
                    "at most {MAX_SAME_START} keys may share rollingStartNumber {}",
                    start.get()
                ),
            ));
        }
        Ok(())
    }
}

impl UploadKey {
    /// One wire key checked on its own, received at `now`.
    fn validate(index: usize, wire: &ExposureKey, now: UnixSeconds) -> Result<Self> {
        let bytes = zeroize::Zeroizing::new(STANDARD.decode(&wire.key).map_err(|_| {
            rule(
                "invalid_key_encoding",
                index,
                "key must be standard base64 with padding",
            )
        })?);
        let period = RollingPeriod::new(wire.rolling_period)
            .map_err(|e| rule("invalid_rolling_period", index, e))?;
        let start = IntervalNumber::new(wire.rolling_start_number);
        let validity =
            KeyValidity::new(start, period).map_err(|e| rule("invalid_rolling_start", index, e))?;
        let tek = TemporaryExposureKey::from_slice(&bytes, validity)
            .map_err(|e| rule("invalid_key", index, e))?;
        let now_interval = now.interval();
        if start > now_interval {
            return Err(rule(
                "key_in_future",
                index,
                format!(
                    "rollingStartNumber {} is after the current interval {}",
                    start.get(),
                    now_interval.get()
                ),
            ));
        }
        if validity.end() < now_interval.saturating_sub(MAX_AGE_INTERVALS) {
            return Err(rule(
                "key_too_old",
                index,
                "key expired more than 15 days ago",
            ));
        }
        let transmission_risk = match wire.transmission_risk {
            None => None,
            Some(level @ 0..=MAX_TRANSMISSION_RISK) => Some(level as u8),
            Some(level) => {
                return Err(rule(
                    "invalid_transmission_risk",
                    index,
                    format!("transmissionRisk {level} is outside 0..={MAX_TRANSMISSION_RISK}"),
                ));
            }
        };
        // Today's key still broadcasts: publishing it now would let anyone nearby
        // be matched against beacons still on the air, so it waits for its end.
        let embargo_until = if validity.end() > now_interval {
            UnixSeconds::of_interval(validity.end())
        } else {
            now
        };
        Ok(Self {
            tek,
            transmission_risk,
            embargo_until,
        })
    }
}

impl Upload {
    /// Applies GAEN's rules to a request received at `now`.
    pub fn validate(request: &PublishRequest, now: UnixSeconds) -> Result<Self> {
        let count = request.temporary_exposure_keys.len();
        if !(1..=MAX_KEYS).contains(&count) {
            return Err(AppError::invalid(
                "invalid_key_count",
                format!("temporaryExposureKeys must hold 1 to {MAX_KEYS} keys, got {count}"),
            ));
        }
        let mut set = KeySet::default();
        let keys = request
            .temporary_exposure_keys
            .iter()
            .enumerate()
            .map(|(index, wire)| {
                let key = UploadKey::validate(index, wire, now)?;
                set.add(index, &key.tek)?;
                Ok(key)
            })
            .collect::<Result<Vec<_>>>()?;
        let today = Day::of(now);
        Ok(Self {
            keys,
            check_ins: check_ins(&request.check_in_protected_reports)?,
            code: VerificationCode::parse(&request.verification_code)?,
            symptom_onset_day: symptom_onset_day(request.symptom_onset_interval, today)?,
            fake: request.fake,
            today,
        })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys with their diagnosis, counting days since onset from `code_onset_day`
    /// (the code's day if it has one, else the request's, else four days ago).
    pub fn stored_keys(
        &self,
        report_type: ReportType,
        code_onset_day: Option<Day>,
    ) -> Result<Vec<StoredKey>> {
        let onset_day = code_onset_day
            .or(self.symptom_onset_day)
            .unwrap_or(self.today.minus(DEFAULT_ONSET_DAYS_AGO));
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let days = Day::of_interval(k.tek.validity().start()).days_after(onset_day);
                let days_since_onset = i32::try_from(days)
                    .ok()
                    .and_then(|d| DaysSinceOnset::new(d).ok())
                    .ok_or_else(|| {
                        rule(
                            "invalid_days_since_onset",
                            i,
                            format!("key is {days} days from symptom onset: expected -14..=14"),
                        )
                    })?;
                Ok(StoredKey {
                    key: DiagnosisKey {
                        tek: k.tek.clone(),
                        report_type,
                        days_since_onset: Some(days_since_onset),
                        transmission_risk_level: k.transmission_risk,
                    },
                    embargo_until: k.embargo_until,
                })
            })
            .collect()
    }
}

/// The check-ins of a request, each well-formed (what the server can check: the rest is
/// encrypted for the venue's visitors).
fn check_ins(wire: &[String]) -> Result<Vec<ProtectedReport>> {
    if wire.len() > MAX_CHECK_INS {
        return Err(AppError::invalid(
            "invalid_check_in_count",
            format!(
                "checkInProtectedReports holds at most {MAX_CHECK_INS} reports, got {}",
                wire.len()
            ),
        ));
    }
    wire.iter()
        .enumerate()
        .map(|(index, text)| {
            let invalid = |message: String| {
                AppError::invalid(
                    "invalid_check_in",
                    format!("checkInProtectedReports[{index}]: {message}"),
                )
            };
            let bytes = STANDARD
                .decode(text)
                .map_err(|_| invalid("must be standard base64 with padding".into()))?;
            ProtectedReport::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

/// The request's onset day, which must not be after `today`.
fn symptom_onset_day(interval: Option<u32>, today: Day) -> Result<Option<Day>> {
    let Some(interval) = interval else {
        return Ok(None);
    };
    let day = Day::of_interval(IntervalNumber::new(interval));
    if day > today {
        return Err(AppError::invalid(
            "invalid_symptom_onset",
            format!("symptomOnsetInterval {interval} is in the future"),
        ));
    }
    Ok(Some(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixSeconds = UnixSeconds::new(1_700_000_000); // interval 2_833_333, day 19_675
    const NOW_INTERVAL: u32 = 2_833_333;
    const TODAY_START: u32 = NOW_INTERVAL - NOW_INTERVAL % 144;

    fn key(byte: u8, start: u32) -> ExposureKey {
        ExposureKey {
            key: STANDARD.encode([byte; 16]),
            rolling_start_number: start,
            rolling_period: 144,
            transmission_risk: None,
        }
    }

    fn request(keys: Vec<ExposureKey>) -> PublishRequest {
        PublishRequest {
            temporary_exposure_keys: keys,
            verification_code: "1234567890123456".into(),
            symptom_onset_interval: None,
            check_in_protected_reports: Vec::new(),
            padding: None,
            fake: false,
        }
    }

    fn error_code(request: &PublishRequest) -> &'static str {
        match Upload::validate(request, NOW) {
            Err(AppError::Invalid { code, .. }) => code,
            other => panic!("expected a rule violation, got {other:?}"),
        }
    }

    #[test]
    fn fourteen_days_of_keys_pass_and_todays_is_embargoed() {
        let keys = (0..15)
            .map(|d| key(d as u8, TODAY_START - d * 144))
            .collect();
        let upload = Upload::validate(&request(keys), NOW).unwrap();
        assert_eq!(upload.len(), 15);
        let stored = upload.stored_keys(ReportType::ConfirmedTest, None).unwrap();
        let today_end = u64::from(TODAY_START + 144) * 600;
        assert_eq!(stored[0].embargo_until.get(), today_end);
        assert!(stored[1..].iter().all(|k| k.embargo_until == NOW));
        // Default onset is four days ago.
        assert_eq!(stored[0].key.days_since_onset.unwrap().get(), 4);
        assert_eq!(stored[14].key.days_since_onset.unwrap().get(), -10);
    }

    #[test]
    fn every_rule_has_its_error_code() {
        let mut r = request(vec![]);
        assert_eq!(error_code(&r), "invalid_key_count");
        r = request(
            (0..31)
                .map(|i| key(i, TODAY_START - 144 * u32::from(i / 3)))
                .collect(),
        );
        assert_eq!(error_code(&r), "invalid_key_count");
        let mut k = key(1, TODAY_START);
        k.key = "not base64!".into();
        assert_eq!(error_code(&request(vec![k])), "invalid_key_encoding");
        let mut k = key(1, TODAY_START);
        k.key = STANDARD.encode([1u8; 15]);
        assert_eq!(error_code(&request(vec![k])), "invalid_key");
        for period in [0, 145, u32::MAX] {
            let mut k = key(1, TODAY_START);
            k.rolling_period = period;
            assert_eq!(error_code(&request(vec![k])), "invalid_rolling_period");
        }
        assert_eq!(
            error_code(&request(vec![key(1, u32::MAX)])),
            "invalid_rolling_start"
        );
        assert_eq!(
            error_code(&request(vec![key(1, NOW_INTERVAL + 1)])),
            "key_in_future"
        );
        let too_old = TODAY_START - 17 * 144;
        assert_eq!(error_code(&request(vec![key(1, too_old)])), "key_too_old");
        let mut k = key(1, TODAY_START);
        k.transmission_risk = Some(9);
        assert_eq!(error_code(&request(vec![k])), "invalid_transmission_risk");
        let r = request(vec![key(1, TODAY_START), key(1, TODAY_START - 144)]);
        assert_eq!(error_code(&r), "duplicate_key");
        let r = request((0..4).map(|i| key(i, TODAY_START)).collect());
        assert_eq!(error_code(&r), "too_many_keys_same_start");
        let mut r = request(vec![key(1, TODAY_START)]);
        r.verification_code = "12345".into();
        assert_eq!(error_code(&r), "invalid_code_format");
        let mut r = request(vec![key(1, TODAY_START)]);
        r.symptom_onset_interval = Some(TODAY_START + 144);
        assert_eq!(error_code(&r), "invalid_symptom_onset");
        let report = STANDARD.encode(padding_report().to_bytes());
        let mut r = request(vec![key(1, TODAY_START)]);
        r.check_in_protected_reports = vec![report; MAX_CHECK_INS + 1];
        assert_eq!(error_code(&r), "invalid_check_in_count");
        for bad in ["not base64!", "AAAA", ""] {
            let mut r = request(vec![key(1, TODAY_START)]);
            r.check_in_protected_reports = vec![bad.into()];
            assert_eq!(error_code(&r), "invalid_check_in", "{bad}");
        }
    }

    fn padding_report() -> ProtectedReport {
        ProtectedReport::padding(&mut rand_core::OsRng)
    }

    #[test]
    fn check_ins_are_read_up_to_the_limit() {
        let reports: Vec<ProtectedReport> = (0..MAX_CHECK_INS).map(|_| padding_report()).collect();
        let mut r = request(vec![key(1, TODAY_START)]);
        r.check_in_protected_reports = reports
            .iter()
            .map(|report| STANDARD.encode(report.to_bytes()))
            .collect();
        assert_eq!(Upload::validate(&r, NOW).unwrap().check_ins, reports);
    }

    #[test]
    fn limits_themselves_are_accepted() {
        // 30 keys, 3 per start, the oldest just inside 15 days; period 1 and 144; risk 0 and 8.
        let keys: Vec<_> = (0..30u32)
            .map(|i| {
                let mut k = key(i as u8, TODAY_START - 144 * (i / 3));
                k.rolling_period = if i % 2 == 0 { 1 } else { 144 };
                k.transmission_risk = Some(if i % 2 == 0 { 0 } else { 8 });
                k
            })
            .collect();
        let upload = Upload::validate(&request(keys), NOW).unwrap();
        assert_eq!(upload.len(), 30);
        let oldest_ok = NOW_INTERVAL - MAX_AGE_INTERVALS - 144;
        assert!(Upload::validate(&request(vec![key(1, oldest_ok)]), NOW).is_ok());
    }

    #[test]
    fn days_since_onset_must_stay_within_fourteen() {
        let upload = Upload::validate(&request(vec![key(1, TODAY_START - 10 * 144)]), NOW).unwrap();
        let today = Day::new(TODAY_START / 144);
        assert!(
            upload
                .stored_keys(ReportType::ConfirmedTest, Some(today.minus(24)))
                .is_ok()
        );
        assert!(matches!(
            upload.stored_keys(ReportType::ConfirmedTest, Some(today.minus(25))),
            Err(AppError::Invalid {
                code: "invalid_days_since_onset",
                ..
            })
        ));
        assert!(matches!(
            upload.stored_keys(ReportType::ConfirmedTest, Some(today.plus(5))),
            Err(AppError::Invalid {
                code: "invalid_days_since_onset",
                ..
            })
        ));
        let stored = upload
            .stored_keys(ReportType::SelfReport, Some(today.minus(12)))
            .unwrap();
        assert_eq!(stored[0].key.days_since_onset.unwrap().get(), 2);
        assert_eq!(stored[0].key.report_type, ReportType::SelfReport);
    }
}
