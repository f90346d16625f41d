//! The contacts of the last days, indexed by person: what manual tracing asks about,
//! and what app users' phones heard (their sightings are regenerated from it).
//!
//! All contacts are kept for the days tracing looks back; after that only contacts
//! between two app users, for the 14 days GAEN keeps sightings.

use std::collections::VecDeque;

use rayon::prelude::*;

use crate::contacts::Contact;
use crate::parallel::{Grouping, fill_parts};
use crate::scenario::Setting;

/// Contacts filtered or copied per parallel task.
const CONTACT_CHUNK: usize = 65_536;

/// One day of contacts, by person.
#[derive(Debug, Default)]
pub struct DayContacts {
    /// The sim day.
    pub day: u32,
    /// Each person's contacts as they hold them, in the order of the day (on a
    /// thinned day, in the order of their `a`s). Held inline
    /// rather than as indices into the day's contacts: a phone reading its holder's
    /// contacts then reads one run of memory, not one cache line per contact.
    index: Grouping<Held>,
}

/// A contact as one of its two people holds it.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    other: u32,
    salt: u32,
    setting: u8,
    /// Whether the holder is the contact's `a`.
    holder_is_a: bool,
}

impl DayContacts {
    /// Sets `self` to `day`, with `contacts` indexed for `people`; `cursor` is
    /// scratch. The vectors are refilled in place, in parallel, so a day's storage is
    /// reused rather than faulted in anew.
    fn refill(&mut self, day: u32, contacts: &[Contact], people: usize, cursor: &mut Vec<u32>) {
        self.day = day;
        self.index.sort(
            contacts,
            people,
            |c| [c.a, c.b],
            |k, side| {
                let c = &contacts[k];
                Held {
                    other: if side == 0 { c.b } else { c.a },
                    salt: c.salt,
                    setting: c.setting as u8,
                    holder_is_a: side == 0,
                }
            },
            cursor,
        );
    }

    /// The contacts of `agent` on this day.
    pub fn of(&self, agent: u32) -> impl Iterator<Item = Contact> + '_ {
        let offsets = &self.index.offsets;
        let (lo, hi) = (offsets[agent as usize], offsets[agent as usize + 1]);
        self.index.values[lo as usize..hi as usize]
            .iter()
            .map(move |held| held.contact(agent))
    }

    /// The contacts of the day that `keep` accepts, each once, grouped by its `a`
    /// (not in the order of the day), written to `out` in parallel.
    fn contacts_into(&self, keep: impl Fn(&Contact) -> bool + Sync, out: &mut Vec<Contact>) {
        let people = self.index.offsets.len().saturating_sub(1);
        let per_chunk = people.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let chunks = people.div_ceil(per_chunk);
        // The contacts each person holds as its `a`.
        let of_chunk = |chunk: usize| {
            (chunk * per_chunk..((chunk + 1) * per_chunk).min(people)).flat_map(|agent| {
                let (lo, hi) = (self.index.offsets[agent], self.index.offsets[agent + 1]);
                self.index.values[lo as usize..hi as usize]
                    .iter()
                    .filter(|held| held.holder_is_a)
                    .map(move |held| held.contact(agent as u32))
                    .filter(|c| keep(c))
            })
        };
        let lens: Vec<usize> = (0..chunks)
            .into_par_iter()
            .map(|chunk| of_chunk(chunk).count())
            .collect();
        fill_parts(out, &lens, |chunk, part| {
            for (slot, c) in part.iter_mut().zip(of_chunk(chunk)) {
                *slot = c;
            }
        });
    }
}

impl Held {
    /// The contact, held by `holder`.
    fn contact(&self, holder: u32) -> Contact {
        let (a, b) = if self.holder_is_a {
            (holder, self.other)
        } else {
            (self.other, holder)
        };
        Contact {
            a,
            b,
            salt: self.salt,
            setting: Setting::ALL[self.setting as usize],
        }
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
    /// Scratch: contacts on their way into a day.
    kept: Vec<Contact>,
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
            kept: Vec::new(),
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
                self.days[slot].contacts_into(app_only, &mut self.kept);
                let mut kept = self.spare.pop().unwrap_or_default();
                kept.refill(thin, &self.kept, self.people, &mut self.cursor);
                let full = std::mem::replace(&mut self.days[slot], kept);
                self.spare.push(full);
            }
        }
        let mut today = self.spare.pop().unwrap_or_default();
        if self.keep_all == 0 {
            let kept = &mut self.kept;
            let lens: Vec<usize> = contacts
                .par_chunks(CONTACT_CHUNK)
                .map(|chunk| chunk.iter().filter(|c| app_only(c)).count())
                .collect();
            fill_parts(kept, &lens, |part, out| {
                let chunk = contacts[part * CONTACT_CHUNK..].iter().take(CONTACT_CHUNK);
                for (slot, c) in out.iter_mut().zip(chunk.filter(|c| app_only(c))) {
                    *slot = *c;
                }
            });
            today.refill(day, kept, self.people, &mut self.cursor);
        } else {
            today.refill(day, contacts, self.people, &mut self.cursor);
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

    fn all(day: &DayContacts) -> Vec<Contact> {
        let mut out = Vec::new();
        day.contacts_into(|_| true, &mut out);
        out
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
            all(diary.day(1).unwrap()).len(),
            1,
            "only the app pair (0, 1)"
        );
        assert_eq!(all(diary.day(3).unwrap()).len(), 3);
        let of_two: Vec<u32> = diary.day(3).unwrap().of(2).map(|c| c.other(2)).collect();
        assert_eq!(of_two, vec![1, 3]);

        // A thinned day gives back each contact as it was: both ends, salt, setting.
        let mut diary = Diary::new(5, 1, 3);
        let app_user = |a: u32| a != 4;
        let work = Contact {
            a: 3,
            b: 0,
            salt: 7,
            setting: Setting::Work,
        };
        let day = [contact(0, 1), work, contact(2, 4), contact(1, 3)];
        for d in 0..2 {
            diary.push(d, &day, app_user);
        }
        let held =
            |d: u32, agent: u32| -> Vec<Contact> { diary.day(d).unwrap().of(agent).collect() };
        assert_eq!(held(1, 4), [contact(2, 4)], "today is kept whole");
        assert_eq!(held(0, 4), [], "yesterday only between app users");
        let mut of_three = held(0, 3);
        of_three.sort_by_key(|c| (c.a, c.b));
        assert_eq!(of_three, [contact(1, 3), work]);
        assert_eq!(held(0, 0), [contact(0, 1), work]);

        let mut app_only = Diary::new(4, 0, 2);
        app_only.push(0, &[contact(0, 1), contact(1, 2)], app);
        assert_eq!(all(app_only.day(0).unwrap()), [contact(0, 1)]);
        let mut nothing = Diary::new(4, 0, 0);
        nothing.push(0, &[contact(0, 1)], app);
        assert!(nothing.day(0).is_none());
    }
}
