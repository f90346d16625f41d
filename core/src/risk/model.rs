//! A health authority's risk model: ENX / GAEN v2, Corona-Warn-App or GAEN v1.

use serde_json::Value;

use crate::error::{Result, RiskConfigError};
use crate::risk::config::{RiskConfig, UNDERSTOOD_FORMATS};
use crate::risk::cwa::{CWA_KEYS, CwaModel, yaml_mapping};
use crate::risk::explain::Explanation;
use crate::risk::scoring::ExposureSummary;
use crate::risk::v1::{GaenV1Model, V1_KEYS};
use crate::risk::window::ExposureWindow;
use crate::time::UnixSeconds;

/// Which family a risk model is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// ENX / GAEN v2 daily summaries and classifications (JSON).
    Gaen,
    /// Corona-Warn-App's re-scoring of exposure windows (its YAML files).
    Cwa,
    /// GAEN v1 `ExposureConfiguration` as Canada's COVID Alert used it (JSON).
    GaenV1,
}

impl ModelKind {
    /// The name [`RiskModel::parse_as`] and the bindings take: `gaen`, `cwa`, `gaen-v1`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gaen => "gaen",
            Self::Cwa => "cwa",
            Self::GaenV1 => "gaen-v1",
        }
    }

    /// The kind of a [`name`](Self::name).
    pub fn from_name(name: &str) -> Result<Self> {
        [Self::Gaen, Self::Cwa, Self::GaenV1]
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                RiskConfigError::invalid("model kind", name, "gaen, cwa or gaen-v1").into()
            })
    }
}

/// How a device scores its exposure windows: one of the model families that
/// health authorities published (see [`ModelKind`]).
///
/// ```
/// use kith_core::risk::{ModelKind, RiskModel};
///
/// let model = RiskModel::parse(r#"{"config": {"perDaySumERVThreshold_1": 900}}"#)?;
/// assert_eq!(model.kind(), ModelKind::Gaen);
/// let v1 = RiskModel::parse(r#"{"attenuationDurationThresholds": [50, 62],
///     "minimumExposureDurationMinutes": 15, "attenuationLevelValues": [1,1,1,1,1,1,1,1],
///     "daysSinceLastExposureLevelValues": [1,1,1,1,1,1,1,1],
///     "durationLevelValues": [1,1,1,1,1,1,1,1], "transmissionRiskLevelValues": [1,1,1,1,1,1,1,1]}"#)?;
/// assert_eq!(v1.kind(), ModelKind::GaenV1);
/// assert!(RiskModel::parse("risk: high").is_err());
/// # Ok::<(), kith_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum RiskModel {
    /// ENX / GAEN v2.
    Gaen(RiskConfig),
    /// Corona-Warn-App.
    Cwa(Box<CwaModel>),
    /// GAEN v1 (COVID Alert).
    GaenV1(GaenV1Model),
}

impl From<RiskConfig> for RiskModel {
    fn from(config: RiskConfig) -> Self {
        Self::Gaen(config)
    }
}

impl RiskModel {
    /// Reads a configuration of any family, recognised from its content: JSON with
    /// v1's keys (`attenuationLevelValues`, `minimumExposureDurationMinutes`, …) is
    /// GAEN v1, other JSON is ENX / GAEN v2 (flat or `{"config": {...}}`), YAML with
    /// Corona-Warn-App's keys is CWA. Anything else is an error saying what it saw.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_as(Self::detect(text)?, text)
    }

    /// Reads a configuration of the given family.
    pub fn parse_as(kind: ModelKind, text: &str) -> Result<Self> {
        Ok(match kind {
            ModelKind::Gaen => Self::Gaen(RiskConfig::from_json(text)?),
            ModelKind::Cwa => Self::Cwa(Box::new(CwaModel::from_yaml(text)?)),
            ModelKind::GaenV1 => Self::GaenV1(GaenV1Model::from_json(text)?),
        })
    }

    /// The family of a configuration text.
    pub fn detect(text: &str) -> Result<ModelKind> {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let object = match &value {
                Value::Object(object) => match object.get("config") {
                    Some(Value::Object(config)) => config,
                    _ => object,
                },
                other => {
                    return Err(RiskConfigError::Syntax(format!(
                        "saw JSON that is not an object ({}); {UNDERSTOOD_FORMATS}",
                        kind_of(other)
                    ))
                    .into());
                }
            };
            let v1 = V1_KEYS.iter().any(|key| object.contains_key(*key));
            return Ok(if v1 {
                ModelKind::GaenV1
            } else {
                ModelKind::Gaen
            });
        }
        let mapping = yaml_mapping(text).map_err(|_| {
            RiskConfigError::Syntax(format!(
                "saw text that is neither JSON nor YAML (starting {:?}); {UNDERSTOOD_FORMATS}",
                text.chars().take(40).collect::<String>()
            ))
        })?;
        let keys: Vec<String> = mapping
            .keys()
            .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned))
            .collect();
        if keys.iter().any(|k| CWA_KEYS.contains(&k.as_str())) {
            return Ok(ModelKind::Cwa);
        }
        Err(RiskConfigError::Syntax(format!(
            "saw YAML with keys {keys:?}, none of Corona-Warn-App's; {UNDERSTOOD_FORMATS}"
        ))
        .into())
    }

    /// Its family.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Gaen(_) => ModelKind::Gaen,
            Self::Cwa(_) => ModelKind::Cwa,
            Self::GaenV1(_) => ModelKind::GaenV1,
        }
    }

    /// The v2 configuration GAEN would be given (for the daily summaries).
    pub fn exposure_configuration(&self) -> RiskConfig {
        match self {
            Self::Gaen(config) => config.clone(),
            Self::Cwa(model) => model.exposure_configuration.clone(),
            Self::GaenV1(model) => model.exposure_configuration(),
        }
    }

    /// Why each day of `windows` is or is not risky at `now` (Unix seconds).
    pub fn explain(&self, windows: &[ExposureWindow], now: UnixSeconds) -> Explanation {
        match self {
            Self::Gaen(config) => config.explain(windows, now),
            Self::Cwa(model) => model.explain(windows, now),
            Self::GaenV1(model) => model.explain(windows, now),
        }
    }

    /// The risk level, its days, the daily summaries (of the model's GAEN v2
    /// exposure configuration) and the windows that counted.
    pub fn assess(&self, windows: &[ExposureWindow], now: UnixSeconds) -> ExposureSummary {
        if let Self::Gaen(config) = self {
            return config.assess(windows, now);
        }
        let explanation = self.explain(windows, now);
        let risk_level = explanation.risk_level;
        ExposureSummary {
            risk_level,
            days: explanation
                .days
                .iter()
                .filter(|d| risk_level.is_some() && d.risk_level == risk_level)
                .map(|d| d.day)
                .collect(),
            daily_summaries: self.exposure_configuration().daily_summaries(windows, now),
            windows: explanation
                .days
                .iter()
                .flat_map(|d| &d.windows)
                .filter(|w| w.counted)
                .map(|w| ExposureWindow {
                    report_type: w.report_type,
                    ..windows[w.index].clone()
                })
                .collect(),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
