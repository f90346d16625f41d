//! The agent's configuration: a TOML file, then flags on top.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::radio::sim::SimConfig;
use crate::schedule::{DutyCycle, RotationPolicy};

/// Which radio to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RadioKind {
    /// BlueZ over D-Bus (real Bluetooth hardware).
    #[default]
    Bluez,
    /// The loopback ether shared by agents on this machine.
    Sim,
}

/// An export signing key the agent trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// `verification_key_id` the files name.
    pub key_id: String,
    /// `verification_key_version` the files name.
    pub key_version: String,
    /// The public key: DER SubjectPublicKeyInfo in standard base64, or a PEM block.
    pub public_key: String,
}

/// Everything the agent is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the keys, sightings and exposures live (`kith.sqlite`).
    pub data_dir: PathBuf,
    /// The kith-server's public base URL, e.g. `https://keys.example.org`; no syncing without it.
    pub server: Option<String>,
    /// A PEM file of root certificates to trust for the server besides the system's
    /// (`/etc/ssl/certs`), for a health authority with a private CA.
    pub ca_file: Option<PathBuf>,
    /// The radio.
    pub radio: RadioKind,
    /// BlueZ adapter (e.g. `hci0`); the first one when not set.
    pub adapter: Option<String>,
    /// Transmit power written into the beacon metadata, dBm (GAEN: calibrated per
    /// device model; −26 is the median of Google's calibration list).
    pub tx_power: i8,
    /// This receiver's RSSI correction, dB, added to every RSSI before scoring.
    pub rssi_correction: i8,
    /// Seconds between syncs (a tenth of random jitter is added).
    pub sync_every_seconds: u64,
    /// Demo and test pace: fast scan cycle, sync every 10 s.
    pub fast: bool,
    /// Shell command run on a new exposure; `KITH_*` variables describe it.
    pub exposure_command: Option<String>,
    /// Seconds the exposure command may run before it (and what it started) is killed.
    pub exposure_command_timeout_seconds: u64,
    /// Export signing keys to trust; when empty, the keys in the server's `/v1/config`.
    pub trusted_keys: Vec<TrustedKey>,
    /// RPI and address rotation.
    pub rotation: RotationPolicy,
    /// Scan duty cycle (replaced by the fast cycle with `fast`).
    pub scan: DutyCycle,
    /// The simulated radio.
    pub sim: SimConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("kith-agent-data"),
            server: None,
            ca_file: None,
            radio: RadioKind::default(),
            adapter: None,
            tx_power: -26,
            rssi_correction: 0,
            sync_every_seconds: 4 * 3600,
            fast: false,
            exposure_command: None,
            exposure_command_timeout_seconds: 60,
            trusted_keys: Vec::new(),
            rotation: RotationPolicy::default(),
            scan: DutyCycle::default(),
            sim: SimConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` (TOML); a missing file is an error, as a typo in the path would be.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The scan cycle in effect.
    pub fn duty_cycle(&self) -> DutyCycle {
        if self.fast {
            DutyCycle::fast()
        } else {
            self.scan.clone()
        }
    }

    /// Seconds between syncs in effect.
    pub fn sync_period(&self) -> u64 {
        if self.fast {
            10
        } else {
            self.sync_every_seconds
        }
    }

    /// Checks what parsing cannot.
    pub fn validate(&self) -> Result<()> {
        self.duty_cycle().validate().map_err(Error::Config)?;
        self.rotation.validate().map_err(Error::Config)?;
        if self.sync_every_seconds == 0 {
            return Err(Error::Config("sync_every_seconds must be above 0".into()));
        }
        if self.exposure_command_timeout_seconds == 0 {
            return Err(Error::Config(
                "exposure_command_timeout_seconds must be above 0".into(),
            ));
        }
        if let Some(server) = &self.server {
            reqwest::Url::parse(server)
                .map_err(|e| Error::Config(format!("server {server:?} is not a URL: {e}")))?;
        }
        Ok(())
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("kith.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_validates() {
        let text = include_str!("../kith-agent.example.toml");
        let config = Config::from_toml(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.radio, RadioKind::Bluez);
        assert_eq!(config.scan, DutyCycle::default());
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/kith-agent"));
        assert!(config.trusted_keys.is_empty());
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::from_toml("sever = \"http://x\"").unwrap_err();
        assert!(e.contains("sever"), "{e}");
        let e = Config::from_toml("radio = \"wifi\"").unwrap_err();
        assert!(e.contains("wifi") || e.contains("radio"), "{e}");
        let bad = Config {
            server: Some("not a url".into()),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("not a URL")
        );
    }
}
