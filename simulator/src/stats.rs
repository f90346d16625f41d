//! What a run records: one row per day (Covasim's names: stocks `n_<state>`, flows
//! `new_<x>`, totals `cum_<x>`) and one row per infection.

use crate::scenario::Setting;

/// One day of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Daily {
    /// Sim day.
    pub day: u32,
    /// Never infected.
    pub n_susceptible: u32,
    /// Infected today, not yet infectious.
    pub n_exposed: u32,
    /// Infectious (pre-, a- or symptomatic).
    pub n_infectious: u32,
    /// Infectious with symptoms.
    pub n_symptomatic: u32,
    /// No longer infectious.
    pub n_recovered: u32,
    /// Ever tested positive.
    pub n_diagnosed: u32,
    /// In quarantine (notified or traced).
    pub n_quarantined: u32,
    /// In isolation (tested positive).
    pub n_isolated: u32,
    /// Infections today.
    pub new_infections: u32,
    /// Symptom onsets today.
    pub new_symptomatic: u32,
    /// Tests taken today.
    pub new_tests: u32,
    /// Positive results today.
    pub new_diagnoses: u32,
    /// Uploads of keys today.
    pub new_uploads: u32,
    /// Keys in today's export file.
    pub new_keys_published: u32,
    /// Size of today's export file.
    pub export_bytes: u64,
    /// Phones that matched a key of today's export.
    pub new_matched_phones: u32,
    /// Notifications today (primary risk configuration).
    pub new_notifications: u32,
    /// … of people who had a close contact with an uploader.
    pub new_notified_true: u32,
    /// … of people who had none.
    pub new_notified_false: u32,
    /// True notifications by the attenuation bucket of their closest scan.
    pub new_notified_true_by_bucket: [u32; 4],
    /// False notifications by bucket.
    pub new_notified_false_by_bucket: [u32; 4],
    /// People sent into quarantine today (or whose quarantine was extended).
    pub new_quarantined: u32,
    /// Totals since day 0.
    pub cum_infections: u64,
    /// Cumulative tests.
    pub cum_tests: u64,
    /// Cumulative diagnoses.
    pub cum_diagnoses: u64,
    /// Cumulative uploads.
    pub cum_uploads: u64,
    /// Cumulative notifications.
    pub cum_notifications: u64,
    /// Cumulative quarantines.
    pub cum_quarantined: u64,
    /// Effective reproduction number by infection date: the mean number of people
    /// infected by those infected on this day (NaN if nobody was). The last two weeks
    /// of a run are censored: their infections had not all happened when it ended.
    pub r_eff: f64,
}

impl Daily {
    /// Fills the `cum_` columns from the day before.
    pub fn accumulate(&mut self, previous: &Daily) {
        self.cum_infections = previous.cum_infections + u64::from(self.new_infections);
        self.cum_tests = previous.cum_tests + u64::from(self.new_tests);
        self.cum_diagnoses = previous.cum_diagnoses + u64::from(self.new_diagnoses);
        self.cum_uploads = previous.cum_uploads + u64::from(self.new_uploads);
        self.cum_notifications = previous.cum_notifications + u64::from(self.new_notifications);
        self.cum_quarantined = previous.cum_quarantined + u64::from(self.new_quarantined);
    }

    /// Column names and values, in file order.
    pub fn columns(&self) -> Vec<(String, f64)> {
        let mut c: Vec<(String, f64)> = [
            ("day", f64::from(self.day)),
            ("n_susceptible", f64::from(self.n_susceptible)),
            ("n_exposed", f64::from(self.n_exposed)),
            ("n_infectious", f64::from(self.n_infectious)),
            ("n_symptomatic", f64::from(self.n_symptomatic)),
            ("n_recovered", f64::from(self.n_recovered)),
            ("n_diagnosed", f64::from(self.n_diagnosed)),
            ("n_quarantined", f64::from(self.n_quarantined)),
            ("n_isolated", f64::from(self.n_isolated)),
            ("new_infections", f64::from(self.new_infections)),
            ("new_symptomatic", f64::from(self.new_symptomatic)),
            ("new_tests", f64::from(self.new_tests)),
            ("new_diagnoses", f64::from(self.new_diagnoses)),
            ("new_uploads", f64::from(self.new_uploads)),
            ("new_keys_published", f64::from(self.new_keys_published)),
            ("export_bytes", self.export_bytes as f64),
            ("new_matched_phones", f64::from(self.new_matched_phones)),
            ("new_notifications", f64::from(self.new_notifications)),
            ("new_notified_true", f64::from(self.new_notified_true)),
            ("new_notified_false", f64::from(self.new_notified_false)),
            ("new_quarantined", f64::from(self.new_quarantined)),
            ("cum_infections", self.cum_infections as f64),
            ("cum_tests", self.cum_tests as f64),
            ("cum_diagnoses", self.cum_diagnoses as f64),
            ("cum_uploads", self.cum_uploads as f64),
            ("cum_notifications", self.cum_notifications as f64),
            ("cum_quarantined", self.cum_quarantined as f64),
            ("r_eff", self.r_eff),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (b, name) in BUCKETS.iter().enumerate() {
            c.push((
                format!("new_notified_true_{name}"),
                f64::from(self.new_notified_true_by_bucket[b]),
            ));
            c.push((
                format!("new_notified_false_{name}"),
                f64::from(self.new_notified_false_by_bucket[b]),
            ));
        }
        c
    }
}

/// The effective reproduction number by infection date over `days` days: for each
/// day, the mean of `caused` over the people with that `infected` day (NaN if none).
pub fn r_eff_by_day(infected: &[u16], caused: &[u16], days: u32) -> Vec<f64> {
    let mut sums = vec![(0u64, 0u64); days as usize];
    for (&day, &n) in infected.iter().zip(caused) {
        if let Some(slot) = sums.get_mut(usize::from(day)) {
            slot.0 += 1;
            slot.1 += u64::from(n);
        }
    }
    sums.into_iter()
        .map(|(people, infections)| {
            if people == 0 {
                f64::NAN
            } else {
                infections as f64 / people as f64
            }
        })
        .collect()
}

/// GAEN's attenuation buckets, closest first.
pub const BUCKETS: [&str; 4] = ["immediate", "near", "medium", "other"];

/// One infection: who infected whom, where, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmission {
    /// The infector, or `u32::MAX` for a seeded infection.
    pub source: u32,
    /// The infected person.
    pub recipient: u32,
    /// Where it happened.
    pub setting: Setting,
    /// Sim day.
    pub day: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disease::NEVER;

    #[test]
    fn r_eff_is_the_mean_offspring_of_each_day_of_infection() {
        // Day 0: two people who infected 3 and 1; day 2: one who infected none;
        // day 1: nobody; never infected people and days past the run count nowhere.
        let infected = [0, 0, 2, NEVER, 5];
        let caused = [3, 1, 0, 0, 4];
        let r = r_eff_by_day(&infected, &caused, 3);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], 2.0);
        assert!(r[1].is_nan());
        assert_eq!(r[2], 0.0);
    }
}
