//! Scenarios: every parameter of a run, read from TOML, with published defaults.
//!
//! `scenarios/default.toml` lists every parameter with its default and its source;
//! [`Scenario::default`] is the same scenario (a test keeps them equal). A file may
//! give any subset: what it leaves out keeps its default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One contact setting: where two people meet, which decides how long and how close
/// they are, how much infection passes, and how Bluetooth propagates there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Setting {
    /// Members of one household, every day.
    Household = 0,
    /// Colleagues of one workplace (adults, and day networks of the elderly).
    Work = 1,
    /// Classmates of one school (ages 0–19).
    School = 2,
    /// Random community contacts, outdoors or in shops.
    Community = 3,
    /// Random contacts in a vehicle (bus, tram, train).
    Transport = 4,
}

impl Setting {
    /// Every setting, in number order.
    pub const ALL: [Setting; 5] = [
        Setting::Household,
        Setting::Work,
        Setting::School,
        Setting::Community,
        Setting::Transport,
    ];

    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Household => "household",
            Setting::Work => "work",
            Setting::School => "school",
            Setting::Community => "community",
            Setting::Transport => "transport",
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name, used in output folders and plots.
    pub name: String,
    /// Number of agents.
    pub population: u32,
    /// Days simulated.
    pub days: u32,
    /// Seed of the first run; run `k` uses `seed + k`.
    pub seed: u64,
    /// Runs per arm (with and without the app), for the 10–90 % bands.
    pub seeds: u32,
    /// People infected on day 0.
    pub initial_infections: u32,
    /// Who lives with and meets whom.
    pub network: Network,
    /// The natural history of infection.
    pub disease: Disease,
    /// Testing and isolation of people with symptoms.
    pub testing: Testing,
    /// Manual contact tracing (the baseline intervention).
    pub tracing: Tracing,
    /// The exposure-notification app.
    pub app: App,
    /// The Bluetooth channel between phones.
    pub ble: Ble,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "default".into(),
            population: 100_000,
            days: 60,
            seed: 1,
            seeds: 2,
            initial_infections: 50,
            network: Network::default(),
            disease: Disease::default(),
            testing: Testing::default(),
            tracing: Tracing::default(),
            app: App::default(),
            ble: Ble::default(),
        }
    }
}

/// The contact network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// `structured`: households, schools, workplaces and random contacts;
    /// `homogeneous`: everyone has exactly `homogeneous_contacts` random contacts a day.
    pub kind: NetworkKind,
    /// Contacts per person per day on the homogeneous network.
    pub homogeneous_contacts: u32,
    /// Households of size 1 … 6 (relative; ONS UK, via OpenABM's baseline parameters).
    pub household_sizes: [f64; 6],
    /// People aged 0–9 … 80+ (relative; ONS UK, via OpenABM).
    pub age_distribution: [f64; 9],
    /// Daily occupation contacts of children (0–19), adults (20–69) and the elderly
    /// (70+): 10 / 7 / 3 (Mossong et al. 2008, via OpenABM).
    pub occupation_contacts: [f64; 3],
    /// Fraction of one's occupation network met each day: 0.5 (OpenABM).
    pub daily_fraction_occupation: f64,
    /// Mean daily random contacts of children, adults and the elderly: 2 / 4 / 3 (OpenABM).
    pub random_contacts_mean: [f64; 3],
    /// Standard deviation of daily random contacts: 2 / 4 / 3 (OpenABM).
    pub random_contacts_sd: [f64; 3],
    /// Fraction of random contacts that happen in a vehicle (assumption).
    pub transport_fraction: f64,
    /// Per setting: transmission weight, duration and distance of contacts.
    pub settings: Settings,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            kind: NetworkKind::Structured,
            homogeneous_contacts: 10,
            household_sizes: [7452.0, 9936.0, 4416.0, 4140.0, 1104.0, 552.0],
            age_distribution: [
                8054.0, 7528.0, 8712.0, 8835.0, 8500.0, 8968.0, 7069.0, 5488.0, 3281.0,
            ],
            occupation_contacts: [10.0, 7.0, 3.0],
            daily_fraction_occupation: 0.5,
            random_contacts_mean: [2.0, 4.0, 3.0],
            random_contacts_sd: [2.0, 4.0, 3.0],
            transport_fraction: 0.2,
            settings: Settings::default(),
        }
    }
}

/// Which network to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// Households, occupations and random contacts.
    Structured,
    /// Random contacts only, the same number for everyone.
    Homogeneous,
}

/// Parameters of each setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Household contacts.
    pub household: SettingParams,
    /// Workplace contacts.
    pub work: SettingParams,
    /// School contacts.
    pub school: SettingParams,
    /// Community contacts.
    pub community: SettingParams,
    /// Transport contacts.
    pub transport: SettingParams,
}

impl Settings {
    /// The parameters of `setting`.
    pub fn get(&self, setting: Setting) -> &SettingParams {
        match setting {
            Setting::Household => &self.household,
            Setting::Work => &self.work,
            Setting::School => &self.school,
            Setting::Community => &self.community,
            Setting::Transport => &self.transport,
        }
    }
}

impl Default for Settings {
    // Weights: household ×2 (OpenABM `relative_transmission_household`), others ×1.
    // Durations and distances are assumptions in the spirit of Mossong et al. 2008
    // (household contacts last hours, most community contacts under 15 minutes);
    // path loss: indoors as measured, outdoors a little weaker (no reflections),
    // vehicles flat with distance (Leith & Farrell: attenuation need not grow with
    // distance on a bus).
    fn default() -> Self {
        Self {
            household: SettingParams::new(2.0, 240.0, 1.5, 0.0, 1.0),
            work: SettingParams::new(1.0, 60.0, 1.5, 0.0, 1.0),
            school: SettingParams::new(1.0, 90.0, 1.2, 0.0, 1.0),
            community: SettingParams::new(1.0, 10.0, 2.0, 3.0, 1.0),
            transport: SettingParams::new(1.0, 20.0, 1.0, -2.0, 0.3),
        }
    }
}

/// How contacts in one setting look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingParams {
    /// Relative transmission per contact.
    pub weight: f64,
    /// Median contact duration (minutes); lognormal with `duration_sdlog`.
    pub duration_median_minutes: f64,
    /// Spread of the duration's logarithm.
    pub duration_sdlog: f64,
    /// Median distance (metres); lognormal with `distance_sdlog`.
    pub distance_median_m: f64,
    /// Spread of the distance's logarithm.
    pub distance_sdlog: f64,
    /// Extra path loss (dB) in this environment.
    pub path_loss_offset_db: f64,
    /// Factor on the distance term of the path loss (1 = as measured indoors).
    pub path_loss_slope_factor: f64,
}

impl SettingParams {
    fn new(weight: f64, duration: f64, distance: f64, offset: f64, slope: f64) -> Self {
        Self {
            weight,
            duration_median_minutes: duration,
            duration_sdlog: 0.8,
            distance_median_m: distance,
            distance_sdlog: 0.5,
            path_loss_offset_db: offset,
            path_loss_slope_factor: slope,
        }
    }
}

impl Default for SettingParams {
    fn default() -> Self {
        Self::new(1.0, 15.0, 1.5, 0.0, 1.0)
    }
}

/// Natural history (Ferretti et al. 2020, Science 368:eabb6936, unless noted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Disease {
    /// Basic reproduction number the transmission rate is calibrated to: 2.0.
    pub r0: f64,
    /// Generation time (= infectiousness profile): Weibull shape 2.826 …
    pub generation_shape: f64,
    /// … and scale 5.665 days (mean 5.0, SD 1.9).
    pub generation_scale: f64,
    /// Incubation period: lognormal, meanlog 1.644 …
    pub incubation_meanlog: f64,
    /// … sdlog 0.363 (mean 5.5 d, median 5.2 d).
    pub incubation_sdlog: f64,
    /// Fraction of infections that never show symptoms: 0.4.
    pub asymptomatic_fraction: f64,
    /// Infectiousness of asymptomatic people relative to others: 0.1.
    pub asymptomatic_infectiousness: f64,
    /// Days after infection when a person stops being infectious (the profile holds
    /// 99.99 % of its mass by then).
    pub infectious_days: u32,
    /// Transmission factor of an isolated person at home / elsewhere: 0.3 / 0.1 (Covasim).
    pub isolation_factor: [f64; 2],
    /// Transmission factor of a quarantined person at home / elsewhere: 0.6 / 0.2 (Covasim).
    pub quarantine_factor: [f64; 2],
}

impl Default for Disease {
    fn default() -> Self {
        Self {
            r0: 2.0,
            generation_shape: 2.826,
            generation_scale: 5.665,
            incubation_meanlog: 1.644,
            incubation_sdlog: 0.363,
            asymptomatic_fraction: 0.4,
            asymptomatic_infectiousness: 0.1,
            infectious_days: 14,
            isolation_factor: [0.3, 0.1],
            quarantine_factor: [0.6, 0.2],
        }
    }
}

/// Testing of people with symptoms, and isolation after a positive test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Testing {
    /// Fraction of symptomatic people who get tested (assumption).
    pub symptomatic_test_probability: f64,
    /// Days from symptom onset to the test (assumption; Ferretti's scenarios use 0–3).
    pub test_delay_days: u32,
    /// Days from test to result.
    pub result_delay_days: u32,
    /// Probability that an infected person tests positive (assumption).
    pub sensitivity: f64,
    /// Fraction of positives who isolate (assumption).
    pub isolation_compliance: f64,
    /// Days of isolation after a positive result.
    pub isolation_days: u32,
}

impl Default for Testing {
    fn default() -> Self {
        Self {
            symptomatic_test_probability: 0.6,
            test_delay_days: 2,
            result_delay_days: 1,
            sensitivity: 0.9,
            isolation_compliance: 0.8,
            isolation_days: 10,
        }
    }
}

/// Manual contact tracing after a positive test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tracing {
    /// Whether case workers trace contacts.
    pub enabled: bool,
    /// Days from the positive result to the contacts' quarantine: 3 (Ferretti's finding).
    pub delay_days: u32,
    /// Days of contacts before the result that are traced.
    pub lookback_days: u32,
    /// Fraction of non-household contacts the index case remembers (assumption).
    pub traced_fraction: f64,
    /// Fraction of traced people who quarantine: 0.9 (OpenABM, traced after a positive).
    pub compliance: f64,
    /// Days of quarantine: 14 (OpenABM).
    pub quarantine_days: u32,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            enabled: false,
            delay_days: 3,
            lookback_days: 2,
            traced_fraction: 0.5,
            compliance: 0.9,
            quarantine_days: 14,
        }
    }
}

/// The exposure-notification app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct App {
    /// Fraction of the whole population that runs the app.
    pub uptake: f64,
    /// Relative uptake by age decade 0–9 … 80+: smartphone ownership 0.09, 0.8, 0.97,
    /// 0.96, 0.94, 0.86, 0.7, 0.48, 0.32 (OFCOM, via OpenABM `app_users_fraction_*`),
    /// scaled to `uptake` and capped at 1.
    pub uptake_by_age: [f64; 9],
    /// Fraction of positive app users who upload their keys (assumption).
    pub upload_compliance: f64,
    /// Days from the positive result to the upload.
    pub upload_delay_days: u32,
    /// Fraction of notified people who quarantine: 0.9 (OpenABM).
    pub quarantine_compliance: f64,
    /// Days of quarantine after the last exposure: 14 (OpenABM).
    pub quarantine_days: u32,
    /// Fraction of notified people who get tested the next day (assumption).
    pub test_probability: f64,
    /// Risk configuration the phones use: `enx`, `apple`, `threshold:<dB>` (one
    /// bucket up to that attenuation, 15 minutes) or a path to a health authority's
    /// file: ENX JSON, Corona-Warn-App YAML (its published files as `---` documents)
    /// or GAEN v1 JSON (as Canada's COVID Alert).
    pub risk_config: String,
    /// Further configurations scored on the same exposure windows, for
    /// precision and recall (they do not change what people do).
    pub evaluate: Vec<String>,
}

impl Default for App {
    fn default() -> Self {
        Self {
            uptake: 0.6,
            uptake_by_age: [0.09, 0.8, 0.97, 0.96, 0.94, 0.86, 0.7, 0.48, 0.32],
            upload_compliance: 0.8,
            upload_delay_days: 1,
            quarantine_compliance: 0.9,
            quarantine_days: 14,
            test_probability: 0.5,
            risk_config: "enx".into(),
            evaluate: vec![
                "apple".into(),
                "threshold:50".into(),
                "threshold:55".into(),
                "threshold:60".into(),
                "threshold:65".into(),
                "threshold:70".into(),
            ],
        }
    }
}

/// The Bluetooth channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ble {
    /// Median attenuation at 1 m (dB) …
    pub path_loss_1m_db: f64,
    /// … and its growth per decade of distance: least-squares fit to 48 / 56 / 65 /
    /// 71 dB at 1 / 2 / 4 / 6 m (Lovett et al. 2020, arXiv 2007.05057).
    pub path_loss_db_per_decade: f64,
    /// Who holds the phone and how (pocket, bag, body between): uniform ± this many
    /// dB per contact and direction (Leith & Farrell: ±10 dB).
    pub holder_effect_db: f64,
    /// Scan-to-scan fading, normal with this SD (dB; assumption).
    pub scan_noise_db: f64,
    /// What the calibration table leaves uncorrected per device, normal SD (dB; assumption).
    pub calibration_error_db: f64,
    /// Weakest signal a phone records (dBm).
    pub sensitivity_dbm: f64,
    /// Scans start every 210–300 s (GAEN duty cycle) …
    pub scan_interval_seconds: [u32; 2],
    /// Phone models: a path to the calibration CSV (columns oem, device, model,
    /// rssi_correction, tx_power, calibration_confidence), or empty for the table
    /// built in (Google's en-calibration-2020-12-14, via microG).
    pub calibration_csv: String,
}

impl Default for Ble {
    fn default() -> Self {
        Self {
            path_loss_1m_db: 47.6,
            path_loss_db_per_decade: 29.5,
            holder_effect_db: 10.0,
            scan_noise_db: 2.0,
            calibration_error_db: 3.0,
            sensitivity_dbm: -100.0,
            scan_interval_seconds: [210, 300],
            calibration_csv: String::new(),
        }
    }
}

impl Scenario {
    /// Reads a scenario file; what it leaves out keeps its default.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Scenario(message) => Error::Scenario(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// Reads a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let scenario: Self = toml::from_str(text).map_err(|e| Error::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Sets one parameter by its dotted path, e.g. `app.uptake=0.4` or
    /// `ble.scan_interval_seconds=[200, 300]`; the value is TOML.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (path, value) = assignment.split_once('=').ok_or_else(|| {
            Error::Scenario(format!("`{assignment}`: expected <parameter>=<value>"))
        })?;
        let (path, value) = (path.trim(), value.trim());
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .or_else(|_| toml::from_str::<toml::Table>(&format!("v = \"{value}\"")))
            .map_err(|e| Error::Scenario(format!("`{assignment}`: {e}")))?
            .remove("v")
            .expect("parsed one key");
        let mut tree = toml::Value::try_from(&*self).expect("a scenario serializes");
        let mut node = &mut tree;
        for part in path.split('.') {
            node = node
                .as_table_mut()
                .and_then(|t| t.get_mut(part))
                .ok_or_else(|| Error::Scenario(format!("no parameter `{path}`")))?;
        }
        *node = value;
        let text = toml::to_string(&tree).expect("a TOML tree serializes");
        *self =
            Self::from_toml(&text).map_err(|e| Error::Scenario(format!("`{assignment}`: {e}")))?;
        Ok(())
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<()> {
        let fail = |what: &str| Err(Error::Scenario(what.to_string()));
        if self.population < 2 {
            return fail("population must be at least 2");
        }
        if self.population > 50_000_000 {
            return fail("population must be at most 50 000 000");
        }
        if self.days == 0 || self.days > 2000 {
            return fail("days must be 1..=2000");
        }
        if self.seeds == 0 {
            return fail("seeds must be at least 1");
        }
        if self.initial_infections == 0 || self.initial_infections > self.population {
            return fail("initial_infections must be 1..=population");
        }
        let probabilities = [
            ("app.uptake", self.app.uptake),
            ("app.upload_compliance", self.app.upload_compliance),
            ("app.quarantine_compliance", self.app.quarantine_compliance),
            ("app.test_probability", self.app.test_probability),
            (
                "disease.asymptomatic_fraction",
                self.disease.asymptomatic_fraction,
            ),
            (
                "testing.symptomatic_test_probability",
                self.testing.symptomatic_test_probability,
            ),
            ("testing.sensitivity", self.testing.sensitivity),
            (
                "testing.isolation_compliance",
                self.testing.isolation_compliance,
            ),
            ("tracing.traced_fraction", self.tracing.traced_fraction),
            ("tracing.compliance", self.tracing.compliance),
            (
                "network.transport_fraction",
                self.network.transport_fraction,
            ),
            (
                "network.daily_fraction_occupation",
                self.network.daily_fraction_occupation,
            ),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Scenario(format!(
                    "{name} must be within 0..=1, not {p}"
                )));
            }
        }
        if !(self.disease.r0 > 0.0 && self.disease.r0 < 50.0) {
            return fail("disease.r0 must be within (0, 50)");
        }
        if self.disease.infectious_days == 0 || self.disease.infectious_days > 60 {
            return fail("disease.infectious_days must be 1..=60");
        }
        let [lo, hi] = self.ble.scan_interval_seconds;
        if lo < 10 || lo > hi || hi > 3600 {
            return fail("ble.scan_interval_seconds must be [lo, hi] with 10 ≤ lo ≤ hi ≤ 3600");
        }
        if self.network.household_sizes.iter().sum::<f64>() <= 0.0
            || self.network.age_distribution.iter().sum::<f64>() <= 0.0
        {
            return fail("network.household_sizes and age_distribution need a positive entry");
        }
        for setting in Setting::ALL {
            let s = self.network.settings.get(setting);
            if !(s.duration_median_minutes >= 1.0 && s.distance_median_m > 0.0 && s.weight >= 0.0) {
                return Err(Error::Scenario(format!(
                    "network.settings.{}: duration ≥ 1 minute, distance > 0, weight ≥ 0",
                    setting.name()
                )));
            }
        }
        Ok(())
    }
}
