//! The in-memory [`Store`].

use std::collections::{BTreeMap, HashMap};

use crate::diagnosis::DiagnosisKey;
use crate::error::Result;
use crate::keys::TemporaryExposureKey;
use crate::sighting::Sighting;
use crate::store::{Exposure, IngestReport, Store, own_key_expired, retention_cutoff};

/// A [`Store`] that keeps everything in memory, for tests and simulations.
#[derive(Debug, Default)]
pub struct MemoryStore {
    own_keys: BTreeMap<u32, TemporaryExposureKey>,
    sightings: Vec<Sighting>,
    processed_files: HashMap<String, u64>,
    exposures: Vec<Exposure>,
    settings: HashMap<String, String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn add_own_key(&mut self, key: &TemporaryExposureKey) -> Result<()> {
        self.own_keys
            .insert(key.validity().start().get(), key.clone());
        Ok(())
    }

    fn own_keys(&self) -> Result<Vec<TemporaryExposureKey>> {
        Ok(self.own_keys.values().cloned().collect())
    }

    fn add_sightings(&mut self, sightings: &[Sighting]) -> Result<()> {
        self.sightings.extend_from_slice(sightings);
        Ok(())
    }

    fn sightings(&self) -> Result<Vec<Sighting>> {
        let mut sightings = self.sightings.clone();
        sightings.sort_by_key(|s| (s.time, s.scan_id));
        Ok(sightings)
    }

    fn is_file_processed(&self, name: &str) -> Result<bool> {
        Ok(self.processed_files.contains_key(name))
    }

    fn record_ingest(
        &mut self,
        file: Option<&str>,
        exposures: &[Exposure],
        revised: &[DiagnosisKey],
        now: u64,
    ) -> Result<IngestReport> {
        let before = self.exposures.len();
        for exposure in exposures {
            let key = exposure.matched.key.tek.expose_secret();
            if !self
                .exposures
                .iter()
                .any(|e| e.matched.key.tek.expose_secret() == key)
            {
                self.exposures.push(exposure.clone());
            }
        }
        let new_exposures = self.exposures.len() - before;
        // A key is stored once: the first exposure that takes the revision is the only one.
        let revised_exposures = revised
            .iter()
            .filter(|key| self.exposures.iter_mut().any(|e| e.revise(key)))
            .count();
        if let Some(file) = file {
            self.processed_files.insert(file.to_owned(), now);
        }
        Ok(IngestReport {
            new_exposures,
            revised_exposures,
            already_ingested: false,
        })
    }

    fn exposures(&self) -> Result<Vec<Exposure>> {
        Ok(self.exposures.clone())
    }

    fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.settings.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self.settings.get(name).cloned())
    }

    fn purge(&mut self, now: u64) -> Result<()> {
        let cutoff = retention_cutoff(now);
        self.own_keys.retain(|_, k| !own_key_expired(k, cutoff));
        self.sightings.retain(|s| s.time >= cutoff);
        self.processed_files.retain(|_, at| *at >= cutoff);
        self.exposures.retain(|e| e.last_seen() >= cutoff);
        Ok(())
    }
}
