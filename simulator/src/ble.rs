//! The Bluetooth channel between two phones: path loss by distance and environment,
//! who holds the phone and how, scan-to-scan fading, and each phone model's
//! calibration (RSSI correction, TX power) from Google's calibration table.
//!
//! What the receiver measures is chosen so that GAEN's attenuation,
//! TX power − (RSSI + RSSI correction), comes out as the physical attenuation minus
//! what the calibration leaves uncorrected on that device.

use std::path::Path;

use crate::error::{Error, Result};
use crate::rng::{Purpose, Streams};
use crate::scenario::{Ble, Setting, Settings};

/// A phone model's calibration: what GAEN's table says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceModel {
    /// dB added to what the model measures (GAEN `rssiCorrection`).
    pub rssi_correction: i8,
    /// The model's calibrated TX power (dBm), which it advertises in its AEM.
    pub tx_power: i8,
}

/// (RSSI correction, TX power, number of models) of every distinct calibration in
/// Google's `en-calibration-2020-12-14.csv` (551 models, CC-BY-4.0), as transcribed by
/// microG (`microg/GmsCore` commit 15609af, `DeviceInfo.kt`); every model there has
/// calibration confidence 3 (high). Phones draw a model in proportion to the count.
pub const CALIBRATION_2020_12_14: &[(i8, i8, u16)] = &[
    (-29, -23, 1),
    (-12, -22, 1),
    (-11, -23, 1),
    (-10, -23, 2),
    (-8, -26, 1),
    (-8, -6, 1),
    (-7, -3, 1),
    (-6, -25, 2),
    (-6, -6, 1),
    (-5, -29, 1),
    (-5, -5, 1),
    (-5, -4, 1),
    (-5, -3, 1),
    (-4, -26, 1),
    (-4, -25, 1),
    (-4, -21, 1),
    (-4, -18, 1),
    (-4, -7, 1),
    (-4, -5, 1),
    (-4, -4, 1),
    (-4, -2, 1),
    (-4, -1, 1),
    (-4, 0, 1),
    (-4, 1, 1),
    (-3, -34, 1),
    (-3, -33, 1),
    (-3, -30, 1),
    (-3, -28, 1),
    (-3, -26, 3),
    (-3, -25, 1),
    (-3, -24, 1),
    (-3, -23, 1),
    (-3, -21, 1),
    (-3, -11, 1),
    (-3, -10, 2),
    (-3, -8, 1),
    (-3, -6, 1),
    (-3, -4, 2),
    (-3, -2, 2),
    (-2, -32, 1),
    (-2, -31, 1),
    (-2, -29, 1),
    (-2, -27, 3),
    (-2, -26, 1),
    (-2, -25, 1),
    (-2, -24, 2),
    (-2, -21, 1),
    (-2, -20, 1),
    (-2, -16, 1),
    (-1, -33, 1),
    (-1, -32, 1),
    (-1, -31, 1),
    (-1, -30, 1),
    (-1, -29, 1),
    (-1, -26, 2),
    (-1, -25, 1),
    (-1, -24, 1),
    (-1, -23, 2),
    (-1, -21, 1),
    (-1, -20, 1),
    (-1, -18, 1),
    (-1, -17, 1),
    (-1, -12, 1),
    (-1, -11, 1),
    (-1, -3, 1),
    (0, -36, 1),
    (0, -34, 2),
    (0, -32, 1),
    (0, -30, 1),
    (0, -28, 3),
    (0, -26, 2),
    (0, -25, 2),
    (0, -24, 2),
    (0, -22, 1),
    (0, -21, 1),
    (0, -20, 2),
    (0, -19, 1),
    (0, -18, 1),
    (0, -17, 2),
    (1, -36, 2),
    (1, -32, 2),
    (1, -31, 2),
    (1, -30, 2),
    (1, -29, 1),
    (1, -27, 1),
    (1, -26, 3),
    (1, -25, 2),
    (1, -24, 3),
    (1, -23, 1),
    (1, -22, 2),
    (1, -21, 4),
    (1, -20, 5),
    (1, -19, 2),
    (1, -18, 3),
    (1, -17, 1),
    (1, -16, 1),
    (1, -3, 1),
    (2, -33, 2),
    (2, -32, 1),
    (2, -31, 2),
    (2, -30, 1),
    (2, -29, 3),
    (2, -28, 2),
    (2, -27, 6),
    (2, -26, 4),
    (2, -25, 5),
    (2, -24, 4),
    (2, -23, 8),
    (2, -22, 6),
    (2, -21, 1),
    (2, -20, 1),
    (2, -19, 2),
    (2, -18, 4),
    (2, -17, 1),
    (2, -5, 1),
    (2, -4, 1),
    (3, -34, 1),
    (3, -31, 1),
    (3, -30, 1),
    (3, -29, 4),
    (3, -28, 3),
    (3, -27, 7),
    (3, -26, 8),
    (3, -25, 5),
    (3, -24, 7),
    (3, -23, 4),
    (3, -22, 5),
    (3, -21, 4),
    (3, -20, 3),
    (3, -19, 4),
    (3, -18, 4),
    (3, -17, 1),
    (3, -11, 1),
    (3, -7, 1),
    (3, -3, 1),
    (3, -1, 1),
    (4, -45, 1),
    (4, -41, 1),
    (4, -34, 4),
    (4, -32, 2),
    (4, -31, 2),
    (4, -30, 4),
    (4, -29, 5),
    (4, -28, 11),
    (4, -27, 4),
    (4, -26, 6),
    (4, -25, 2),
    (4, -24, 6),
    (4, -23, 4),
    (4, -22, 2),
    (4, -21, 6),
    (4, -20, 6),
    (4, -19, 5),
    (4, -18, 2),
    (4, -10, 1),
    (5, -39, 1),
    (5, -34, 1),
    (5, -33, 4),
    (5, -32, 3),
    (5, -31, 3),
    (5, -30, 3),
    (5, -29, 8),
    (5, -28, 2),
    (5, -27, 3),
    (5, -26, 3),
    (5, -25, 2),
    (5, -24, 7),
    (5, -23, 4),
    (5, -22, 5),
    (5, -21, 3),
    (5, -20, 1),
    (5, -19, 1),
    (5, -5, 2),
    (6, -36, 1),
    (6, -34, 1),
    (6, -33, 2),
    (6, -32, 1),
    (6, -31, 1),
    (6, -30, 4),
    (6, -29, 2),
    (6, -28, 2),
    (6, -27, 4),
    (6, -26, 4),
    (6, -25, 5),
    (6, -24, 7),
    (6, -23, 3),
    (6, -22, 3),
    (6, -20, 1),
    (6, -13, 1),
    (6, -3, 1),
    (6, -2, 2),
    (7, -37, 1),
    (7, -36, 1),
    (7, -34, 1),
    (7, -33, 2),
    (7, -32, 1),
    (7, -31, 2),
    (7, -29, 3),
    (7, -28, 4),
    (7, -27, 2),
    (7, -26, 4),
    (7, -25, 2),
    (7, -24, 5),
    (7, 2, 1),
    (8, -35, 2),
    (8, -34, 1),
    (8, -33, 1),
    (8, -32, 2),
    (8, -31, 3),
    (8, -30, 2),
    (8, -29, 1),
    (8, -28, 3),
    (8, -27, 5),
    (8, -26, 2),
    (8, -25, 2),
    (8, -24, 3),
    (8, -23, 1),
    (8, -3, 2),
    (9, -37, 1),
    (9, -33, 5),
    (9, -32, 2),
    (9, -31, 3),
    (9, -29, 2),
    (9, -28, 2),
    (9, -27, 1),
    (9, -26, 3),
    (9, -25, 4),
    (9, -24, 2),
    (9, -23, 2),
    (10, -33, 1),
    (10, -31, 3),
    (10, -29, 1),
    (10, -27, 3),
    (10, -26, 3),
    (11, -34, 1),
    (11, -33, 2),
    (11, -31, 2),
    (11, -29, 1),
    (11, -27, 1),
    (12, -36, 1),
    (12, -35, 1),
    (12, -30, 1),
    (12, -29, 1),
    (12, -24, 1),
    (13, -40, 1),
    (13, -26, 1),
    (14, -34, 1),
    (15, -39, 1),
    (15, -34, 1),
    (16, -36, 1),
    (17, -33, 1),
    (19, -43, 1),
    (23, -47, 1),
];

/// The phone models a run draws from, with their weights.
#[derive(Clone, Debug)]
pub struct ModelTable {
    models: Vec<DeviceModel>,
    cumulative: Vec<u32>,
}

impl ModelTable {
    /// The table built in ([`CALIBRATION_2020_12_14`]).
    pub fn builtin() -> Self {
        Self::from_counts(
            CALIBRATION_2020_12_14
                .iter()
                .map(|&(rssi_correction, tx_power, n)| {
                    (
                        DeviceModel {
                            rssi_correction,
                            tx_power,
                        },
                        u32::from(n),
                    )
                }),
        )
    }

    /// A table from a calibration CSV with Google's columns (`#` lines are comments;
    /// a header row names `rssi_correction` and `tx_power`).
    pub fn from_csv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad =
            |line: usize, what: &str| Error::Scenario(format!("{}:{line}: {what}", path.display()));
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (header_line, header) = lines.next().ok_or_else(|| bad(1, "no header row"))?;
        let column = |name: &str| {
            header
                .split(',')
                .position(|c| c.trim() == name)
                .ok_or_else(|| bad(header_line + 1, &format!("no column `{name}`")))
        };
        let (rc, tx) = (column("rssi_correction")?, column("tx_power")?);
        let mut counts: Vec<(DeviceModel, u32)> = Vec::new();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let number = |k: usize, name: &str| -> Result<i8> {
                fields
                    .get(k)
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| bad(n + 1, &format!("{name} is not a number from -128 to 127")))
            };
            let model = DeviceModel {
                rssi_correction: number(rc, "rssi_correction")?,
                tx_power: number(tx, "tx_power")?,
            };
            match counts.iter_mut().find(|(m, _)| *m == model) {
                Some((_, count)) => *count += 1,
                None => counts.push((model, 1)),
            }
        }
        if counts.is_empty() {
            return Err(bad(header_line + 1, "no phone models"));
        }
        counts.sort_by_key(|(m, _)| (m.rssi_correction, m.tx_power));
        Ok(Self::from_counts(counts))
    }

    fn from_counts(counts: impl IntoIterator<Item = (DeviceModel, u32)>) -> Self {
        let mut models = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0;
        for (model, count) in counts {
            total += count;
            models.push(model);
            cumulative.push(total);
        }
        Self { models, cumulative }
    }

    /// The model a uniform number `u` in [0, 1) picks.
    pub fn pick(&self, u: f64) -> DeviceModel {
        let total = *self.cumulative.last().expect("a table has models");
        let target = (u * f64::from(total)) as u32;
        let k = self.cumulative.partition_point(|&c| c <= target);
        self.models[k.min(self.models.len() - 1)]
    }

    /// The distinct calibrations and how many models have each.
    pub fn counts(&self) -> Vec<(DeviceModel, u32)> {
        let mut previous = 0;
        self.models
            .iter()
            .zip(&self.cumulative)
            .map(|(&m, &c)| {
                let n = c - previous;
                previous = c;
                (m, n)
            })
            .collect()
    }
}

/// The channel model of a run.
#[derive(Clone, Debug)]
pub struct Channel {
    params: Ble,
    settings: Settings,
}

/// One direction of one contact, as the channel sees it.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Sim day.
    pub day: u32,
    /// Who listens.
    pub receiver: u32,
    /// Who advertises.
    pub sender: u32,
    /// Which of their contacts that day (the contact's salt and setting).
    pub contact: u64,
    /// Distance in metres.
    pub distance_m: f64,
    /// Where they are.
    pub setting: Setting,
}

/// The receiver and sender of `link` in one counter.
fn who(link: &Link) -> u64 {
    (u64::from(link.receiver) << 32) | u64::from(link.sender)
}

impl Channel {
    /// The channel of `params`, in the environments of `settings`.
    pub fn new(params: &Ble, settings: &Settings) -> Self {
        Self {
            params: params.clone(),
            settings: settings.clone(),
        }
    }

    /// The median attenuation (dB) at `distance_m` in `setting`.
    pub fn median_attenuation(&self, distance_m: f64, setting: Setting) -> f64 {
        let env = self.settings.get(setting);
        self.params.path_loss_1m_db
            + env.path_loss_offset_db
            + env.path_loss_slope_factor
                * self.params.path_loss_db_per_decade
                * distance_m.max(0.1).log10()
    }

    /// What all scans of `link` share: median path loss and the holder effect of
    /// this contact and direction. The physical attenuation in a scan adds the
    /// scan's [`fading`](Self::fading).
    pub fn link_attenuation(&self, streams: &Streams, link: &Link) -> f64 {
        let holder = (2.0
            * streams.uniform(Purpose::Ble, [u64::from(link.day), who(link), link.contact])
            - 1.0)
            * self.params.holder_effect_db;
        self.median_attenuation(link.distance_m, link.setting) + holder
    }

    /// The fading of `link` in its scan number `scan`.
    pub fn fading(&self, streams: &Streams, link: &Link, scan: u64) -> f64 {
        self.params.scan_noise_db
            * streams.normal(
                Purpose::Ble,
                [
                    u64::from(link.day),
                    who(link),
                    link.contact ^ ((scan + 1) << 40),
                ],
            )
    }

    /// The RSSI the receiver records in scan `scan`, or `None` when the beacon is
    /// below its sensitivity: the sender's calibrated TX power minus the attenuation,
    /// minus the receiver model's RSSI correction, plus the device's residual error.
    pub fn rssi(
        &self,
        attenuation: f64,
        sender: DeviceModel,
        receiver: DeviceModel,
        residual_db: f64,
    ) -> Option<i8> {
        let rssi = f64::from(sender.tx_power) - attenuation - f64::from(receiver.rssi_correction)
            + residual_db;
        (rssi >= self.params.sensitivity_dbm).then(|| rssi.round().clamp(-127.0, 20.0) as i8)
    }

    /// The scan interval bounds (seconds).
    pub fn scan_interval(&self) -> [u32; 2] {
        self.params.scan_interval_seconds
    }

    /// SD of the per-device calibration residual (dB).
    pub fn calibration_error_db(&self) -> f64 {
        self.params.calibration_error_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_attenuation_follows_the_briers_lognormal_points() {
        let channel = Channel::new(&Ble::default(), &Settings::default());
        // Lovett et al.: 48, 56, 65, 71 dB at 1, 2, 4, 6 m; the fit is within 2.5 dB.
        for (d, db) in [(1.0, 48.0), (2.0, 56.0), (4.0, 65.0), (6.0, 71.0)] {
            let median = channel.median_attenuation(d, Setting::Household);
            assert!((median - db).abs() < 2.5, "{d} m: {median}");
        }
        assert!(
            channel.median_attenuation(4.0, Setting::Transport)
                < channel.median_attenuation(4.0, Setting::Community)
        );
    }

    #[test]
    fn core_attenuation_recovers_the_physical_one() {
        let channel = Channel::new(&Ble::default(), &Settings::default());
        let sender = DeviceModel {
            rssi_correction: 5,
            tx_power: -30,
        };
        let receiver = DeviceModel {
            rssi_correction: -3,
            tx_power: -20,
        };
        let rssi = channel.rssi(55.0, sender, receiver, 0.0).unwrap();
        assert_eq!(
            kith_core::risk::attenuation(sender.tx_power, rssi, receiver.rssi_correction),
            55
        );
        assert_eq!(
            channel.rssi(80.0, sender, receiver, 0.0),
            None,
            "below −100 dBm"
        );
    }

    #[test]
    fn the_builtin_table_is_the_published_csv() {
        let table = ModelTable::builtin();
        assert_eq!(table.counts().iter().map(|(_, n)| n).sum::<u32>(), 551);
        let Some(csv) = kith_test_support::shared_gaen("en_calibration_2020-12-14_via_microg.csv")
        else {
            return;
        };
        assert_eq!(ModelTable::from_csv(&csv).unwrap().counts(), table.counts());
    }
}
