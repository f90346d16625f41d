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
