//! GAEN's publish rules (key server `AdjustAndValidate`, `docs/tek_validation.md`),
//! turning a wire request into an [`Upload`] whose keys are known to be acceptable.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_core::{
    DaysSinceOnset, DiagnosisKey, INTERVALS_PER_DAY, IntervalNumber, KeyValidity, ReportType,
    RollingPeriod, TemporaryExposureKey,
};

use super::PublishRequest;
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
/// Onset assumed when neither the code nor the request gives one (GAEN `DEFAULT_SYMPTOM_ONSET_DAYS_AGO`).
pub const DEFAULT_ONSET_DAYS_AGO: u32 = 4;

/// One validated key of an upload.
#[derive(Debug)]
pub struct UploadKey {
    tek: TemporaryExposureKey,
    transmission_risk: Option<u8>,
    embargo_until: u64,
}

/// A publish request that passed every rule that does not need the database.
#[derive(Debug)]
pub struct Upload {
    keys: Vec<UploadKey>,
    /// The code to redeem.
    pub code: VerificationCode,
    /// Onset day from the request (days since the epoch), used when the code has none.
    pub symptom_onset_day: Option<u32>,
    /// A chaff upload: answered like a real one, stored nowhere.
    pub fake: bool,
    today: u32,
}

/// A key ready for storage.
#[derive(Debug)]
pub struct StoredKey {
    /// The key and its diagnosis.
    pub key: DiagnosisKey,
    /// Unix seconds before which it is not exported.
    pub embargo_until: u64,
}

fn rule(code: &'static str, index: usize, message: impl std::fmt::Display) -> AppError {
    AppError::invalid(code, format!("temporaryExposureKeys[{index}]: {message}"))
}

impl Upload {
    /// Applies GAEN's rules to a request received at `now_unix`.
    pub fn validate(request: &PublishRequest, now_unix: u64) -> Result<Self> {
        let now = IntervalNumber::from_unix_seconds(now_unix)
            .map_err(|e| AppError::invalid("clock", e.to_string()))?;
        let count = request.temporary_exposure_keys.len();
        if !(1..=MAX_KEYS).contains(&count) {
            return Err(AppError::invalid(
                "invalid_key_count",
                format!("temporaryExposureKeys must hold 1 to {MAX_KEYS} keys, got {count}"),
            ));
        }
        let oldest = now.saturating_sub(MAX_AGE_INTERVALS);
        let mut seen = HashSet::with_capacity(count);
        let mut per_start: HashMap<u32, usize> = HashMap::new();
        let mut keys = Vec::with_capacity(count);
        for (i, wire) in request.temporary_exposure_keys.iter().enumerate() {
            let bytes = zeroize::Zeroizing::new(STANDARD.decode(&wire.key).map_err(|_| {
                rule(
                    "invalid_key_encoding",
                    i,
                    "key must be standard base64 with padding",
                )
            })?);
            let period = RollingPeriod::new(wire.rolling_period)
                .map_err(|e| rule("invalid_rolling_period", i, e))?;
            let start = IntervalNumber::new(wire.rolling_start_number);
            let validity =
                KeyValidity::new(start, period).map_err(|e| rule("invalid_rolling_start", i, e))?;
            let tek = TemporaryExposureKey::from_slice(&bytes, validity)
                .map_err(|e| rule("invalid_key", i, e))?;
            if start > now {
                return Err(rule(
                    "key_in_future",
                    i,
                    format!(
                        "rollingStartNumber {} is after the current interval {}",
                        start.get(),
                        now.get()
                    ),
                ));
            }
            if validity.end() < oldest {
                return Err(rule("key_too_old", i, "key expired more than 15 days ago"));
            }
            let transmission_risk = match wire.transmission_risk {
                None => None,
                Some(level @ 0..=MAX_TRANSMISSION_RISK) => Some(level as u8),
                Some(level) => {
                    return Err(rule(
                        "invalid_transmission_risk",
                        i,
                        format!("transmissionRisk {level} is outside 0..={MAX_TRANSMISSION_RISK}"),
                    ));
                }
            };
            if !seen.insert(*tek.expose_secret()) {
                return Err(rule("duplicate_key", i, "the same key appears twice"));
            }
            let same_start = per_start.entry(start.get()).or_default();
            *same_start += 1;
            if *same_start > MAX_SAME_START {
                return Err(rule(
                    "too_many_keys_same_start",
                    i,
                    format!(
                        "at most {MAX_SAME_START} keys may share rollingStartNumber {}",
                        start.get()
                    ),
                ));
            }
            // Today's key still broadcasts: publishing it now would let anyone nearby
            // be matched against beacons still on the air, so it waits for its end.
            let embargo_until = if validity.end() > now {
                validity.end().start_unix_seconds()
            } else {
                now_unix
            };
            keys.push(UploadKey {
                tek,
                transmission_risk,
                embargo_until,
            });
        }
        seen.clear();

        let today = now.get() / INTERVALS_PER_DAY;
        let symptom_onset_day = match request.symptom_onset_interval {
            None => None,
            Some(interval) if interval / INTERVALS_PER_DAY <= today => {
                Some(interval / INTERVALS_PER_DAY)
            }
            Some(interval) => {
                return Err(AppError::invalid(
                    "invalid_symptom_onset",
                    format!("symptomOnsetInterval {interval} is in the future"),
                ));
            }
        };
        Ok(Self {
            keys,
            code: VerificationCode::parse(&request.verification_code)?,
            symptom_onset_day,
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

    /// The keys with their diagnosis, counting days since onset from `onset_day`
    /// (the code's day if it has one, else the request's, else four days ago).
    pub fn stored_keys(
        &self,
        report_type: ReportType,
        code_onset_day: Option<u32>,
    ) -> Result<Vec<StoredKey>> {
        let onset_day = code_onset_day
            .or(self.symptom_onset_day)
            .unwrap_or(self.today.saturating_sub(DEFAULT_ONSET_DAYS_AGO));
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let key_day = k.tek.validity().start().get() / INTERVALS_PER_DAY;
                let days = i64::from(key_day) - i64::from(onset_day);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::ExposureKey;

    const NOW: u64 = 1_700_000_000; // interval 2_833_333, day 19_675
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
            verification_code: "123456789012".into(),
            symptom_onset_interval: None,
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
        assert_eq!(stored[0].embargo_until, today_end);
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
        let today = TODAY_START / 144;
        assert!(
            upload
                .stored_keys(ReportType::ConfirmedTest, Some(today - 24))
                .is_ok()
        );
        assert!(matches!(
            upload.stored_keys(ReportType::ConfirmedTest, Some(today - 25)),
            Err(AppError::Invalid {
                code: "invalid_days_since_onset",
                ..
            })
        ));
        assert!(matches!(
            upload.stored_keys(ReportType::ConfirmedTest, Some(today + 5)),
            Err(AppError::Invalid {
                code: "invalid_days_since_onset",
                ..
            })
        ));
        let stored = upload
            .stored_keys(ReportType::SelfReport, Some(today - 12))
            .unwrap();
        assert_eq!(stored[0].key.days_since_onset.unwrap().get(), 2);
        assert_eq!(stored[0].key.report_type, ReportType::SelfReport);
    }
}
