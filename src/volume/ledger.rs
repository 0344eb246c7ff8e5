//! The check-and-add rule every backend applies (the memory and redb stores run this code;
//! the Redis Lua script mirrors it line for line): a claim is counted against its transfer's
//! ledger and, unless exempt, the entity-wide ledger, all or nothing.
//!
//! Only *new* individuals can exceed a cap: a request naming people already counted this year
//! is always admitted, which is what "an individual already counted does not count again"
//! requires even when a cap was lowered below the current count.

use std::borrow::Cow;

use super::{Admission, VolumeClaim, ENTITY_LEDGER};
use crate::classify::Subject;

pub(crate) type Key = [u8; 16];

/// Caps of one ledger; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) all: Option<u64>,
    pub(crate) sensitive: Option<u64>,
}

/// Counters and timestamps of one ledger (transfer × year). Seconds since the Unix epoch;
/// zero = never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) all: u64,
    pub(crate) sensitive: u64,
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) caps: Caps,
}

/// Storage a backend exposes to [`check_and_add`], inside one transaction or lock.
pub(crate) trait Ledgers {
    type Error;
    fn meta(&mut self, name: &str, year: i32) -> Result<Option<Meta>, Self::Error>;
    fn contains(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<bool, Self::Error>;
    fn insert(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<(), Self::Error>;
    fn put_meta(&mut self, name: &str, year: i32, meta: Meta) -> Result<(), Self::Error>;
}

/// Entity-wide totals before and after a claim (for watermark crossings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityChange {
    pub(crate) year: i32,
    pub(crate) before: (u64, u64),
    pub(crate) after: (u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) admission: Admission,
    pub(crate) entity: Option<EntityChange>,
}

/// Distinct subjects of a claim: by key, sensitive if any occurrence is. Borrowed when they
/// already are (a scanner's report lists them sorted by key, one entry each, the usual
/// case); otherwise a sorted, merged copy.
pub(crate) fn distinct_subjects(claim: &VolumeClaim) -> Cow<'_, [Subject]> {
    if claim.subjects.windows(2).all(|w| w[0].key < w[1].key) {
        return Cow::Borrowed(&claim.subjects);
    }
    let mut v = claim.subjects.clone();
    v.sort_unstable();
    // Sorted by (key, sensitive): the last of equal keys carries `true` if any does.
    let mut out: Vec<Subject> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(last) if last.key == s.key => last.sensitive |= s.sensitive,
            _ => out.push(s),
        }
    }
    Cow::Owned(out)
}

/// Atomically (the caller holds the transaction): count the claim's unseen subjects against
/// the transfer ledger and, with `entity`, the entity ledger — or nothing, if any cap would be
/// exceeded by new individuals.
pub(crate) fn check_and_add<L: Ledgers>(
    store: &mut L,
    claim: &VolumeClaim,
    entity: Option<Caps>,
    now: i64,
) -> Result<Outcome, L::Error> {
    let subjects = distinct_subjects(claim);
    let transfer_caps = Caps {
        all: claim.max_individuals,
        sensitive: claim.max_sensitive_individuals,
    };
    let mut ledgers: [(&str, Caps, Meta, u64, u64); 2] = [
        (
            claim.transfer.as_str(),
            transfer_caps,
            Meta::default(),
            0,
            0,
        ),
        (
            ENTITY_LEDGER,
            entity.unwrap_or_default(),
            Meta::default(),
            0,
            0,
        ),
    ];
    let used = if entity.is_some() { 2 } else { 1 };
    for (name, caps, meta, new_all, new_sensitive) in ledgers[..used].iter_mut() {
        *meta = store.meta(name, claim.year)?.unwrap_or_default();
        for Subject { key, sensitive } in subjects.iter() {
            if !store.contains(name, claim.year, false, key)? {
                *new_all += 1;
            }
            if *sensitive && !store.contains(name, claim.year, true, key)? {
                *new_sensitive += 1;
            }
        }
        if let Some(cap) = caps.all {
            if *new_all > 0 && meta.all + *new_all > cap {
                return Ok(refusal(cap, meta.all, *new_all));
            }
        }
        if let Some(cap) = caps.sensitive {
            if *new_sensitive > 0 && meta.sensitive + *new_sensitive > cap {
                return Ok(refusal(cap, meta.sensitive, *new_sensitive));
            }
        }
    }
    let mut entity_change = None;
    for (i, (name, caps, meta, new_all, new_sensitive)) in ledgers[..used].iter().enumerate() {
        // Most claims name only individuals counted before: then there is nothing to insert
        // and, within the same second, nothing to write at all.
        if *new_all > 0 || *new_sensitive > 0 {
            for Subject { key, sensitive } in subjects.iter() {
                // Insert is idempotent on the backends, but skipping known keys keeps the
                // transaction small when most individuals are repeats.
                if !store.contains(name, claim.year, false, key)? {
                    store.insert(name, claim.year, false, key)?;
                }
                if *sensitive && !store.contains(name, claim.year, true, key)? {
                    store.insert(name, claim.year, true, key)?;
                }
            }
        }
        let after = Meta {
            all: meta.all + new_all,
            sensitive: meta.sensitive + new_sensitive,
            first_seen: if meta.first_seen == 0 {
                now
            } else {
                meta.first_seen
            },
            last_seen: now,
            caps: *caps,
        };
        if after != *meta {
            store.put_meta(name, claim.year, after)?;
        }
        if i == 1 {
            entity_change = Some(EntityChange {
                year: claim.year,
                before: (meta.all, meta.sensitive),
                after: (after.all, after.sensitive),
            });
        }
    }
    let (_, _, meta, new_all, _) = ledgers[0];
    Ok(Outcome {
        admission: Admission::Admitted {
            new_individuals: new_all,
            total: meta.all + new_all,
        },
        entity: entity_change,
    })
}

fn refusal(cap: u64, current: u64, new_individuals: u64) -> Outcome {
    Outcome {
        admission: Admission::CapExceeded {
            cap,
            current,
            new_individuals,
        },
        entity: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Ledgers in plain maps that count the writes made to them.
    #[derive(Default)]
    struct Recording {
        metas: HashMap<(String, i32), Meta>,
        keys: HashSet<(String, i32, bool, Key)>,
        inserts: usize,
        meta_writes: usize,
    }

    impl Ledgers for Recording {
        type Error = std::convert::Infallible;
        fn meta(&mut self, name: &str, year: i32) -> Result<Option<Meta>, Self::Error> {
            Ok(self.metas.get(&(name.to_owned(), year)).copied())
        }
        fn contains(
            &mut self,
            name: &str,
            year: i32,
            s: bool,
            key: &Key,
        ) -> Result<bool, Self::Error> {
            Ok(self.keys.contains(&(name.to_owned(), year, s, *key)))
        }
        fn insert(&mut self, name: &str, year: i32, s: bool, key: &Key) -> Result<(), Self::Error> {
            self.inserts += 1;
            self.keys.insert((name.to_owned(), year, s, *key));
            Ok(())
        }
        fn put_meta(&mut self, name: &str, year: i32, meta: Meta) -> Result<(), Self::Error> {
            self.meta_writes += 1;
            self.metas.insert((name.to_owned(), year), meta);
            Ok(())
        }
    }

    fn claim(subjects: &[(u8, bool)]) -> VolumeClaim {
        VolumeClaim {
            transfer: "T".into(),
            year: 2026,
            subjects: subjects
                .iter()
                .map(|&(n, sensitive)| Subject {
                    key: [n; 16],
                    sensitive,
                })
                .collect(),
            max_individuals: Some(10),
            max_sensitive_individuals: None,
        }
    }

    fn admitted(o: &Outcome) -> (u64, u64) {
        match o.admission {
            Admission::Admitted {
                new_individuals,
                total,
            } => (new_individuals, total),
            ref other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn a_repeat_within_the_second_writes_nothing_and_a_later_one_only_the_time() {
        let mut store = Recording::default();
        let entity = Some(Caps::default());
        let first =
            check_and_add(&mut store, &claim(&[(1, false), (2, true)]), entity, 100).unwrap();
        assert_eq!(admitted(&first), (2, 2));
        // Two ledgers (transfer, entity): 2 + 1 sensitive keys each, one meta each.
        assert_eq!((store.inserts, store.meta_writes), (6, 2));

        let again =
            check_and_add(&mut store, &claim(&[(1, false), (2, true)]), entity, 100).unwrap();
        assert_eq!(admitted(&again), (0, 2));
        assert_eq!((store.inserts, store.meta_writes), (6, 2), "a repeat wrote");
        assert_eq!(again.entity.unwrap().after, (2, 1));

        let later = check_and_add(&mut store, &claim(&[(2, true)]), entity, 101).unwrap();
        assert_eq!(admitted(&later), (0, 2));
        assert_eq!((store.inserts, store.meta_writes), (6, 4));
        let meta = store.metas[&("T".to_owned(), 2026)];
        assert_eq!(
            (meta.first_seen, meta.last_seen, meta.all, meta.sensitive),
            (100, 101, 2, 1)
        );

        // A new individual among known ones: only its keys are inserted.
        let mixed =
            check_and_add(&mut store, &claim(&[(1, false), (3, false)]), entity, 101).unwrap();
        assert_eq!(admitted(&mixed), (1, 3));
        assert_eq!((store.inserts, store.meta_writes), (8, 6));

        // A repeat under a changed cap: only the transfer's metadata follows the cap.
        let mut recapped = claim(&[(1, false)]);
        recapped.max_individuals = Some(20);
        check_and_add(&mut store, &recapped, entity, 101).unwrap();
        assert_eq!((store.inserts, store.meta_writes), (8, 7));
        assert_eq!(store.metas[&("T".to_owned(), 2026)].caps.all, Some(20));
    }

    #[test]
    fn unsorted_and_repeated_subjects_count_as_their_distinct_set() {
        let mut sorted = Recording::default();
        let mut messy = Recording::default();
        let a = check_and_add(
            &mut sorted,
            &claim(&[(1, false), (2, true), (3, false)]),
            None,
            5,
        )
        .unwrap();
        // Out of order, 2 twice (sensitive in one occurrence only), 3 twice.
        let b = check_and_add(
            &mut messy,
            &claim(&[(3, false), (2, false), (1, false), (2, true), (3, false)]),
            None,
            5,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(admitted(&b), (3, 3));
        assert_eq!(sorted.keys, messy.keys);
        assert_eq!(messy.metas[&("T".to_owned(), 2026)].sensitive, 1);
    }

    #[test]
    fn a_cap_refuses_new_individuals_and_writes_nothing() {
        let mut store = Recording::default();
        let mut c = claim(&[(1, false), (2, false)]);
        c.max_individuals = Some(2);
        check_and_add(&mut store, &c, None, 1).unwrap();
        let writes = (store.inserts, store.meta_writes);
        let mut more = claim(&[(2, false), (3, false)]);
        more.max_individuals = Some(2);
        let over = check_and_add(&mut store, &more, None, 2).unwrap();
        assert_eq!(
            over.admission,
            Admission::CapExceeded {
                cap: 2,
                current: 2,
                new_individuals: 1
            }
        );
        assert_eq!((store.inserts, store.meta_writes), writes);
    }
}
