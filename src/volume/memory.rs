//! In-process volume store: hash sets behind one mutex. Lost at restart, so it is for tests,
//! `explain` and single-run experiments; production uses redb or Redis.
//!
//! The lock is a `std::sync::Mutex` held only for the synchronous check-and-add, never across
//! an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::ledger::{check_and_add, Key, Ledgers, Meta};
use super::{
    EntityGuard, ReportFuture, VolumeClaim, VolumeFuture, VolumeOptions, VolumeRow, VolumeStore,
};

#[derive(Debug, Default)]
struct MemLedger {
    all: HashSet<Key, Fast>,
    sensitive: HashSet<Key, Fast>,
    meta: Meta,
}

/// year → ledger name → ledger. Names are `String`s padded to whole cache lines (see
/// [`ledger_mut`]).
type Years = HashMap<i32, HashMap<String, MemLedger, Fast>, Fast>;

/// Subject keys are outputs of a keyed PRF, ledger names and years come from the
/// configuration and the clock: nothing here is chosen by a client (see [`crate::hash`]).
/// SipHash cost about a third of every admission.
type Fast = crate::hash::Fast;

impl Ledgers for Years {
    type Error = std::convert::Infallible;

    fn meta(&mut self, name: &str, year: i32) -> Result<Option<Meta>, Self::Error> {
        Ok(self.get(&year).and_then(|y| y.get(name)).map(|l| l.meta))
    }

    fn contains(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<bool, Self::Error> {
        Ok(self.get(&year).and_then(|y| y.get(name)).is_some_and(|l| {
            if sensitive {
                l.sensitive.contains(key)
            } else {
                l.all.contains(key)
            }
        }))
    }

    fn insert(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<(), Self::Error> {
        let l = ledger_mut(self, name, year);
        if sensitive {
            l.sensitive.insert(*key);
        } else {
            l.all.insert(*key);
        }
        Ok(())
    }

    fn put_meta(&mut self, name: &str, year: i32, meta: Meta) -> Result<(), Self::Error> {
        ledger_mut(self, name, year).meta = meta;
        Ok(())
    }
}

fn ledger_mut<'a>(years: &'a mut Years, name: &str, year: i32) -> &'a mut MemLedger {
    let y = years.entry(year).or_default();
    if !y.contains_key(name) {
        // Every admission compares the name, from every worker. A short name in a block of
        // its own size shares its cache line with other small blocks that the inserting
        // thread keeps rewriting, and the other workers then miss on it at each lookup; a
        // capacity of whole cache lines puts it in a size class whose blocks are lines.
        let mut key = String::with_capacity(name.len().max(1).next_multiple_of(64));
        key.push_str(name);
        y.insert(key, MemLedger::default());
    }
    y.get_mut(name).expect("inserted above")
}

/// Volume store in memory.
#[derive(Debug)]
pub struct MemoryStore {
    years: Mutex<Years>,
    guard: EntityGuard,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_options(VolumeOptions::default())
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn with_options(options: VolumeOptions) -> MemoryStore {
        MemoryStore {
            years: Mutex::new(HashMap::default()),
            guard: EntityGuard::new(options.guard),
        }
    }

    /// Entity-wide totals and watermark state (for metrics).
    pub fn guard(&self) -> &EntityGuard {
        &self.guard
    }
}

impl VolumeStore for MemoryStore {
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a> {
        let entity = self.guard.options().entity_for(&claim.transfer);
        let now = super::unix_seconds();
        // A poisoned lock only means another request panicked mid-claim; check_and_add writes
        // nothing before every cap passed, so the sets are still consistent.
        let outcome = {
            let mut years = self.years.lock().unwrap_or_else(|p| p.into_inner());
            match check_and_add(&mut *years, claim, entity, now) {
                Ok(o) => o,
                Err(never) => match never {},
            }
        };
        if let Some(change) = &outcome.entity {
            self.guard.observe(change);
        }
        Box::pin(async move { Ok(outcome.admission) })
    }

    fn report(&self, year: Option<i32>) -> ReportFuture<'_> {
        let rows = {
            let years = self.years.lock().unwrap_or_else(|p| p.into_inner());
            let mut rows: Vec<VolumeRow> = years
                .iter()
                .filter(|(y, _)| year.is_none_or(|want| want == **y))
                .flat_map(|(y, ledgers)| {
                    ledgers.iter().map(move |(name, l)| row(name, *y, &l.meta))
                })
                .collect();
            rows.sort_by(|a, b| (a.year, &a.transfer).cmp(&(b.year, &b.transfer)));
            rows
        };
        Box::pin(async move { Ok(rows) })
    }
}

/// A report row from stored metadata.
pub(crate) fn row(name: &str, year: i32, meta: &Meta) -> VolumeRow {
    let ts = |s: i64| {
        (s != 0)
            .then(|| DateTime::<Utc>::from_timestamp(s, 0))
            .flatten()
    };
    VolumeRow {
        transfer: name.to_string(),
        year,
        individuals: meta.all,
        sensitive_individuals: meta.sensitive,
        max_individuals: meta.caps.all,
        max_sensitive_individuals: meta.caps.sensitive,
        first_seen: ts(meta.first_seen),
        last_seen: ts(meta.last_seen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Subject;
    use crate::volume::{Admission, GuardOptions};

    fn subj(n: u8, sensitive: bool) -> Subject {
        Subject {
            key: [n; 16],
            sensitive,
        }
    }

    fn claim(
        transfer: &str,
        year: i32,
        subjects: Vec<Subject>,
        cap: Option<u64>,
        scap: Option<u64>,
    ) -> VolumeClaim {
        VolumeClaim {
            transfer: transfer.into(),
            year,
            subjects,
            max_individuals: cap,
            max_sensitive_individuals: scap,
        }
    }

    async fn admit(s: &MemoryStore, c: VolumeClaim) -> Admission {
        s.admit(&c).await.unwrap()
    }

    #[tokio::test]
    async fn repeats_do_not_count_and_only_new_individuals_hit_the_cap() {
        let s = MemoryStore::new();
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, false), subj(2, false)],
                Some(3),
                None,
            ),
        )
        .await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 2,
                total: 2
            }
        );
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, false), subj(2, false)],
                Some(3),
                None,
            ),
        )
        .await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 0,
                total: 2
            }
        );
        // Two new would make 4 > 3: refused, and nothing is counted.
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(3, false), subj(4, false)],
                Some(3),
                None,
            ),
        )
        .await;
        assert_eq!(
            a,
            Admission::CapExceeded {
                cap: 3,
                current: 2,
                new_individuals: 2
            }
        );
        let a = admit(&s, claim("T", 2026, vec![subj(3, false)], Some(3), None)).await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 3
            }
        );
        // At the cap: people already counted still pass, new ones do not.
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, false), subj(3, false)],
                Some(3),
                None,
            ),
        )
        .await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 0,
                total: 3
            }
        );
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, false), subj(9, false)],
                Some(3),
                None,
            ),
        )
        .await;
        assert!(matches!(
            a,
            Admission::CapExceeded {
                cap: 3,
                current: 3,
                new_individuals: 1
            }
        ));
    }

    #[tokio::test]
    async fn years_and_transfers_are_separate_ledgers() {
        let s = MemoryStore::new();
        admit(&s, claim("T", 2026, vec![subj(1, false)], Some(1), None)).await;
        let a = admit(&s, claim("T", 2027, vec![subj(2, false)], Some(1), None)).await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 1
            }
        );
        let a = admit(&s, claim("U", 2026, vec![subj(2, false)], Some(1), None)).await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 1
            }
        );
    }

    #[tokio::test]
    async fn sensitive_cap_counts_sensitive_individuals_separately() {
        let s = MemoryStore::new();
        admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, true), subj(2, false)],
                None,
                Some(1),
            ),
        )
        .await;
        // Subject 2 was counted as non-sensitive; now sensitive PI about them is new.
        let a = admit(&s, claim("T", 2026, vec![subj(2, true)], None, Some(1))).await;
        assert_eq!(
            a,
            Admission::CapExceeded {
                cap: 1,
                current: 1,
                new_individuals: 1
            }
        );
        let a = admit(
            &s,
            claim(
                "T",
                2026,
                vec![subj(1, true), subj(3, false)],
                None,
                Some(1),
            ),
        )
        .await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 3
            }
        );
        let rows = s.report(Some(2026)).await.unwrap();
        let t = rows.iter().find(|r| r.transfer == "T").unwrap();
        assert_eq!((t.individuals, t.sensitive_individuals), (3, 1));
        assert_eq!(t.max_sensitive_individuals, Some(1));
        assert!(t.first_seen.is_some() && t.last_seen >= t.first_seen);
    }

    #[tokio::test]
    async fn entity_guard_blocks_uncovered_thresholds_across_transfers() {
        let options = VolumeOptions {
            guard: GuardOptions {
                block_uncovered: true,
                exempt_transfers: ["HR".to_string()].into_iter().collect(),
                ..GuardOptions::default()
            },
            ..VolumeOptions::default()
        };
        let s = MemoryStore::with_options(options);
        // No contract/certification/assessment on file: sensitive PI is not covered at all.
        let a = admit(&s, claim("A", 2026, vec![subj(1, true)], None, None)).await;
        assert_eq!(
            a,
            Admission::CapExceeded {
                cap: 0,
                current: 0,
                new_individuals: 1
            }
        );
        // The HR exemption is not counted toward the entity totals, so it passes.
        let a = admit(&s, claim("HR", 2026, vec![subj(1, true)], None, None)).await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 1
            }
        );
        let a = admit(&s, claim("A", 2026, vec![subj(2, false)], None, None)).await;
        assert_eq!(
            a,
            Admission::Admitted {
                new_individuals: 1,
                total: 1
            }
        );
        // Individual 2 sent again under another transfer: one person for the entity.
        admit(&s, claim("B", 2026, vec![subj(2, false)], None, None)).await;
        assert_eq!(s.guard().snapshot().individuals, 1);
    }

    proptest::proptest! {
        /// Against a model (plain sets): caps are never exceeded, repeats never count, a
        /// refusal counts nothing, and an admission counts exactly the unseen individuals.
        #[test]
        fn matches_a_set_model(
            claims in proptest::collection::vec(
                (proptest::collection::vec((0u8..24, proptest::bool::ANY), 1..5), 0u64..12, 0u64..6),
                1..40,
            )
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let store = MemoryStore::new();
            let mut all = std::collections::BTreeSet::new();
            let mut sensitive = std::collections::BTreeSet::new();
            for (subjects, cap, scap) in claims {
                let subjects: Vec<Subject> = subjects.iter().map(|&(n, s)| subj(n, s)).collect();
                let new_all: std::collections::BTreeSet<u8> =
                    subjects.iter().map(|s| s.key[0]).filter(|k| !all.contains(k)).collect();
                let new_sens: std::collections::BTreeSet<u8> = subjects
                    .iter()
                    .filter(|s| s.sensitive)
                    .map(|s| s.key[0])
                    .filter(|k| !sensitive.contains(k))
                    .collect();
                let fits = (new_all.is_empty() || all.len() as u64 + new_all.len() as u64 <= cap)
                    && (new_sens.is_empty() || sensitive.len() as u64 + new_sens.len() as u64 <= scap);
                let got = rt.block_on(admit(&store, claim("T", 2026, subjects.clone(), Some(cap), Some(scap))));
                if fits {
                    all.extend(new_all.iter().copied());
                    sensitive.extend(new_sens.iter().copied());
                    proptest::prop_assert_eq!(got, Admission::Admitted {
                        new_individuals: new_all.len() as u64,
                        total: all.len() as u64,
                    });
                } else {
                    proptest::prop_assert!(matches!(got, Admission::CapExceeded { .. }), "{:?}", got);
                }
            }
        }
    }
}
