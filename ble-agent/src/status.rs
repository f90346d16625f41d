//! `kith-agent status`: what the device holds and did, as a self-check.

use std::collections::{BTreeMap, HashSet};

use kith_core::checkin::VenueExposure;
use kith_core::store::{SqliteStore, Store};
use kith_core::{Day, ExposureEngine, UnixSeconds};
use serde::{Deserialize, Serialize};

use crate::agent::{BEACONS_PER_HOUR, SyncOutcome, last_sync};
use crate::error::Result;

/// The agent's state, as `status` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// Own daily keys stored (one per day, 14 days at most).
    pub keys: usize,
    /// Sightings stored.
    pub sightings: usize,
    /// Per hour, oldest first: beacons sent and distinct RPIs heard.
    pub hours: Vec<Hour>,
    /// The last sync, if any.
    pub last_sync: Option<SyncOutcome>,
    /// The current risk.
    pub risk: Risk,
    /// Venue visits stored (the last 14 days).
    pub check_ins: usize,
    /// Of them, those uploaded after a positive test (they raise no warnings).
    pub check_ins_shared: usize,
    /// Visits that overlapped a positive person's, oldest first.
    pub venue_exposures: Vec<VenueWarning>,
}

/// A visit that overlapped the visit of a person who tested positive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueWarning {
    /// The venue's name, from its QR code.
    pub venue: String,
    /// Its address.
    pub address: String,
    /// When both were there: from (`YYYY-MM-DD HH:MM` UTC) …
    pub from: String,
    /// … until.
    pub until: String,
    /// The same, in Unix seconds.
    pub from_unix: u64,
    /// The same, in Unix seconds.
    pub until_unix: u64,
    /// Minutes together.
    pub minutes: u32,
}

impl From<&VenueExposure> for VenueWarning {
    fn from(exposure: &VenueExposure) -> Self {
        let (from, until) = (exposure.overlap.arrival(), exposure.overlap.departure());
        Self {
            venue: exposure.description.clone(),
            address: exposure.address.clone(),
            from: date_time(from),
            until: date_time(until),
            from_unix: from.get(),
            until_unix: until.get(),
            minutes: exposure.overlap_minutes,
        }
    }
}

impl VenueWarning {
    /// What to tell the owner.
    pub fn message(&self) -> String {
        format!(
            "Possible exposure at {} ({}): {} to {} UTC, {} minutes with a person who tested positive",
            self.venue,
            self.address,
            self.from,
            &self.until[11..],
            self.minutes
        )
    }
}

/// One hour of radio activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hour {
    /// Start of the hour, `YYYY-MM-DD HH:00` UTC.
    pub hour: String,
    /// Beacons this device put on the air.
    pub beacons_sent: u64,
    /// Distinct RPIs heard (other devices nearby, roughly, times their rotations).
    pub distinct_rpis_heard: usize,
}

/// The exposure risk now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Risk {
    /// 1 = most severe classification reached; `None` below every threshold.
    pub risk_level: Option<u8>,
    /// The days (YYYY-MM-DD) at that level.
    pub days: Vec<String>,
    /// Exposure windows scored.
    pub exposure_windows: usize,
    /// Per day with a scored window: the day and its summed score.
    pub daily_scores: Vec<(String, f64)>,
}

/// The hourly beacon counts the agent keeps in the store.
pub(crate) fn beacons_per_hour(engine: &ExposureEngine<SqliteStore>) -> Result<BTreeMap<u64, u64>> {
    Ok(engine
        .store()
        .setting(BEACONS_PER_HOUR)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

/// The status at `now`, with the last `hours` hours.
pub(crate) fn status(
    engine: &ExposureEngine<SqliteStore>,
    now: UnixSeconds,
    hours: u64,
) -> Result<Status> {
    let store = engine.store();
    let sightings = store.sightings()?;
    let this_hour = now.get() / 3600;
    let first = this_hour.saturating_sub(hours.saturating_sub(1));
    let mut heard: BTreeMap<u64, HashSet<[u8; 16]>> = BTreeMap::new();
    for s in &sightings {
        let hour = s.time.get() / 3600;
        if hour >= first {
            heard
                .entry(hour)
                .or_default()
                .insert(s.beacon().rpi().to_bytes());
        }
    }
    let sent = beacons_per_hour(engine)?;
    let hours = (first..=this_hour)
        .map(|h| Hour {
            hour: format!("{} {:02}:00", Day::new((h / 24) as u32), h % 24),
            beacons_sent: sent.get(&h).copied().unwrap_or(0),
            distinct_rpis_heard: heard.get(&h).map_or(0, HashSet::len),
        })
        .collect();
    let summary = engine.exposure_summary(now)?;
    let mut venue_exposures: Vec<VenueWarning> = engine
        .venue_exposures()?
        .iter()
        .map(VenueWarning::from)
        .collect();
    venue_exposures.sort_by_key(|w| (w.from_unix, w.until_unix));
    let check_ins = engine.check_ins()?;
    Ok(Status {
        keys: store.own_keys()?.len(),
        sightings: sightings.len(),
        hours,
        last_sync: last_sync(engine)?,
        risk: Risk {
            risk_level: summary.risk_level,
            days: summary.days.iter().map(Day::to_string).collect(),
            exposure_windows: summary.windows.len(),
            daily_scores: summary
                .daily_summaries
                .iter()
                .map(|d| (d.day.to_string(), d.summary.score_sum))
                .collect(),
        },
        check_ins: check_ins.len(),
        check_ins_shared: check_ins.iter().filter(|c| c.shared).count(),
        venue_exposures,
    })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "keys: {} daily keys; {} sightings stored",
            self.keys, self.sightings
        )?;
        writeln!(f, "hour (UTC)         beacons sent   distinct RPIs heard")?;
        for h in &self.hours {
            writeln!(
                f,
                "{}   {:>12}   {:>19}",
                h.hour, h.beacons_sent, h.distinct_rpis_heard
            )?;
        }
        match &self.last_sync {
            Some(s) => writeln!(
                f,
                "last sync: {} UTC, {} files listed, {} new, {} failed, {} new exposures",
                date_time(s.at),
                s.files_listed,
                s.files_new,
                s.files_failed.len(),
                s.new_exposures
            )?,
            None => writeln!(f, "last sync: never")?,
        }
        match self.risk.risk_level {
            Some(level) => writeln!(f, "risk: level {level} on {}", self.risk.days.join(", "))?,
            None => writeln!(
                f,
                "risk: none ({} exposure windows below the threshold)",
                self.risk.exposure_windows
            )?,
        }
        for (day, score) in &self.risk.daily_scores {
            writeln!(f, "  {day}: score {score:.0}")?;
        }
        writeln!(
            f,
            "venue visits: {} stored, {} shared",
            self.check_ins, self.check_ins_shared
        )?;
        if self.venue_exposures.is_empty() {
            writeln!(f, "venue warnings: none")?;
        }
        for warning in &self.venue_exposures {
            writeln!(f, "venue warning: {}", warning.message())?;
        }
        Ok(())
    }
}

/// `YYYY-MM-DD HH:MM` of `time`.
pub fn date_time(time: UnixSeconds) -> String {
    let unix = time.get();
    format!(
        "{} {:02}:{:02}",
        time.day(),
        unix % 86_400 / 3600,
        unix % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(
            date_time(UnixSeconds::new(1_764_590_400 + 3_723)),
            "2025-12-01 13:02"
        );
    }
}
