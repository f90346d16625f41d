//! The contacts of the last days, indexed by person: what manual tracing asks about,
//! and what app users' phones heard (their sightings are regenerated from it).
//!
//! All contacts are kept for the days tracing looks back; after that only contacts
//! between two app users, for the 14 days GAEN keeps sightings.

use std::collections::VecDeque;

use crate::contacts::Contact;

/// One day of contacts, with an index by person.
#[derive(Debug)]
pub struct DayContacts {
    /// The sim day.
    pub day: u32,
    contacts: Vec<Contact>,
    /// `entries[offsets[a]..offsets[a + 1]]` are the contacts of agent `a`.
    offsets: Vec<u32>,
    entries: Vec<u32>,
}

impl DayContacts {
    fn new(day: u32, contacts: Vec<Contact>, people: usize) -> Self {
        let mut offsets = vec![0u32; people + 1];
        for c in &contacts {
            offsets[c.a as usize + 1] += 1;
            offsets[c.b as usize + 1] += 1;
        }
        for a in 0..people {
            offsets[a + 1] += offsets[a];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; 2 * contacts.len()];
        for (k, c) in contacts.iter().enumerate() {
            for person in [c.a, c.b] {
                let slot = &mut fill[person as usize];
                entries[*slot as usize] = k as u32;
                *slot += 1;
            }
        }
        Self {
            day,
            contacts,
            offsets,
            entries,
        }
    }

    /// The contacts of `agent` on this day.
    pub fn of(&self, agent: u32) -> impl Iterator<Item = &Contact> + '_ {
        let (lo, hi) = (
            self.offsets[agent as usize],
            self.offsets[agent as usize + 1],
        );
        self.entries[lo as usize..hi as usize]
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
        }
    }

    /// Adds the contacts of `day` and forgets what is no longer needed; `is_app_user`
    /// says who runs the app.
    pub fn push(&mut self, day: u32, contacts: Vec<Contact>, is_app_user: impl Fn(u32) -> bool) {
        if self.keep_app == 0 {
            return;
        }
        let app_only = |contacts: &[Contact]| -> Vec<Contact> {
            contacts
                .iter()
                .filter(|c| is_app_user(c.a) && is_app_user(c.b))
                .copied()
                .collect()
        };
        let contacts = if self.keep_all == 0 {
            app_only(&contacts)
        } else {
            contacts
        };
        self.days
            .push_back(DayContacts::new(day, contacts, self.people));
        while self
            .days
            .front()
            .is_some_and(|d| d.day + self.keep_app <= day)
        {
            self.days.pop_front();
        }
        if self.keep_app > self.keep_all && self.keep_all > 0 && day >= self.keep_all {
            let thin = day - self.keep_all;
            if let Some(slot) = self.days.iter().position(|d| d.day == thin) {
                let kept = app_only(&self.days[slot].contacts);
                self.days[slot] = DayContacts::new(thin, kept, self.people);
            }
        }
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
            diary.push(day, vec![contact(0, 1), contact(1, 2), contact(2, 3)], app);
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
        app_only.push(0, vec![contact(0, 1), contact(1, 2)], app);
        assert_eq!(app_only.day(0).unwrap().all(), &[contact(0, 1)]);
        let mut nothing = Diary::new(4, 0, 0);
        nothing.push(0, vec![contact(0, 1)], app);
        assert!(nothing.day(0).is_none());
    }
}
