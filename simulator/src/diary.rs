//! The contacts of the last days, indexed by person: what manual tracing asks about,
//! and what app users' phones heard (their sightings are regenerated from it).
//!
//! All contacts are kept for the days tracing looks back; after that only contacts
//! between two app users, for the 14 days GAEN keeps sightings.

use std::collections::VecDeque;

use rayon::prelude::*;

use crate::contacts::Contact;
use crate::parallel::{Grouping, fill_parts};

/// Contacts filtered or copied per parallel task.
const CONTACT_CHUNK: usize = 65_536;

/// One day of contacts, with an index by person.
#[derive(Debug, Default)]
pub struct DayContacts {
    /// The sim day.
    pub day: u32,
    contacts: Vec<Contact>,
    /// The contacts of each agent (indices into `contacts`), in the order of the day.
    index: Grouping,
}

impl DayContacts {
    /// Sets `self` to `day`, with the contacts of `source` that `keep` accepts,
    /// indexed for `people`; `cursor` is scratch. The vectors are refilled in place,
    /// in parallel, so a day's storage is reused rather than faulted in anew.
    fn refill(
        &mut self,
        day: u32,
        source: &[Contact],
        keep: impl Fn(&Contact) -> bool + Sync,
        people: usize,
        cursor: &mut Vec<u32>,
    ) {
        self.day = day;
        let lens: Vec<usize> = source
            .par_chunks(CONTACT_CHUNK)
            .map(|chunk| chunk.iter().filter(|c| keep(c)).count())
            .collect();
        fill_parts(&mut self.contacts, &lens, |part, out| {
            let chunk = &source[part * CONTACT_CHUNK..];
            let kept = chunk.iter().take(CONTACT_CHUNK).filter(|c| keep(c));
            for (slot, c) in out.iter_mut().zip(kept) {
                *slot = *c;
            }
        });
        let contacts = &self.contacts;
        self.index
            .sort(contacts, people, |c| [c.a, c.b], |k| k as u32, cursor);
    }

    /// The contacts of `agent` on this day.
    pub fn of(&self, agent: u32) -> impl Iterator<Item = &Contact> + '_ {
        let offsets = &self.index.offsets;
        let (lo, hi) = (offsets[agent as usize], offsets[agent as usize + 1]);
        self.index.values[lo as usize..hi as usize]
            .iter()
            .map(|&k| &self.contacts[k as usize])
    }

    /// Every contact of the day.
    pub fn all(&self) -> &[Contact] {
        &self.contacts
    }
}

/// The last days of contacts.
#[derive(Debug)]
pub struct Diary {
    days: VecDeque<DayContacts>,
    people: usize,
    /// Days (counting today) of which all contacts are kept.
    keep_all: u32,
    /// Days (counting today) of which app users' contacts are kept.
    keep_app: u32,
    /// Storage of forgotten and thinned days, for the next ones.
    spare: Vec<DayContacts>,
    /// Scratch of the index by person.
    cursor: Vec<u32>,
}

impl Diary {
    /// A diary for `people`, keeping every contact for `keep_all` days and contacts
    /// between app users for `keep_app` days (counting the day added; 0 keeps none).
    pub fn new(people: usize, keep_all: u32, keep_app: u32) -> Self {
        Self {
            days: VecDeque::new(),
            people,
            keep_all,
            keep_app: keep_app.max(keep_all),
            spare: Vec::new(),
            cursor: Vec::new(),
        }
    }

    /// Adds the contacts of `day` and forgets what is no longer needed; `is_app_user`
    /// says who runs the app.
    pub fn push(
        &mut self,
        day: u32,
        contacts: &[Contact],
        is_app_user: impl Fn(u32) -> bool + Sync,
    ) {
        if self.keep_app == 0 {
            return;
        }
        let app_only = |c: &Contact| is_app_user(c.a) && is_app_user(c.b);
        while self
            .days
            .front()
            .is_some_and(|d| d.day + self.keep_app <= day)
        {
            let forgotten = self.days.pop_front().expect("a front day");
            self.spare.push(forgotten);
        }
        if self.keep_app > self.keep_all && self.keep_all > 0 && day >= self.keep_all {
            let thin = day - self.keep_all;
            if let Some(slot) = self.days.iter().position(|d| d.day == thin) {
                let mut kept = self.spare.pop().unwrap_or_default();
                kept.refill(
                    thin,
                    &self.days[slot].contacts,
                    app_only,
                    self.people,
                    &mut self.cursor,
                );
                let full = std::mem::replace(&mut self.days[slot], kept);
                self.spare.push(full);
            }
        }
        let mut today = self.spare.pop().unwrap_or_default();
        if self.keep_all == 0 {
            today.refill(day, contacts, app_only, self.people, &mut self.cursor);
        } else {
            today.refill(day, contacts, |_| true, self.people, &mut self.cursor);
        }
        self.days.push_back(today);
    }
    /// The contacts of `day`, if still kept.
    pub fn day(&self, day: u32) -> Option<&DayContacts> {
        let first = self.days.front()?.day;
        let d = self.days.get(day.checked_sub(first)? as usize)?;
        (d.day == day).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Setting;

    fn contact(a: u32, b: u32) -> Contact {
        Contact {
            a,
            b,
            salt: 0,
            setting: Setting::Community,
        }
    }

    #[test]
    fn keeps_all_contacts_then_app_users_only_then_nothing() {
        let mut diary = Diary::new(4, 2, 3);
        let app = |a: u32| a < 2;
        for day in 0..4 {
            diary.push(day, &[contact(0, 1), contact(1, 2), contact(2, 3)], app);
        }
        assert!(diary.day(0).is_none());
        assert_eq!(
            diary.day(1).unwrap().all().len(),
            1,
            "only the app pair (0, 1)"
        );
        assert_eq!(diary.day(3).unwrap().all().len(), 3);
        let of_two: Vec<u32> = diary.day(3).unwrap().of(2).map(|c| c.other(2)).collect();
        assert_eq!(of_two, vec![1, 3]);

        let mut app_only = Diary::new(4, 0, 2);
        app_only.push(0, &[contact(0, 1), contact(1, 2)], app);
        assert_eq!(app_only.day(0).unwrap().all(), &[contact(0, 1)]);
        let mut nothing = Diary::new(4, 0, 0);
        nothing.push(0, &[contact(0, 1)], app);
        assert!(nothing.day(0).is_none());
    }
}
