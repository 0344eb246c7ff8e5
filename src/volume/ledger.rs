//! The check-and-add rule every backend applies (the memory and redb stores run this code;
//! the Redis Lua script mirrors it line for line): a claim is counted against its transfer's
//! ledger and, unless exempt, the entity-wide ledger, all or nothing.
//!
//! Only *new* individuals can exceed a cap: a request naming people already counted this year
//! is always admitted, which is what "an individual already counted does not count again"
//! requires even when a cap was lowered below the current count.

use super::{Admission, VolumeClaim, ENTITY_LEDGER};

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

/// Distinct subjects of a claim: by key, sensitive if any occurrence is.
pub(crate) fn distinct_subjects(claim: &VolumeClaim) -> Vec<(Key, bool)> {
    let mut v: Vec<(Key, bool)> = claim
        .subjects
        .iter()
        .map(|s| (s.key, s.sensitive))
        .collect();
    v.sort_unstable();
    // Sorted by (key, sensitive): the last of equal keys carries `true` if any does.
    let mut out: Vec<(Key, bool)> = Vec::with_capacity(v.len());
    for (k, s) in v {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 |= s,
            _ => out.push((k, s)),
        }
    }
    out
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
        for (key, sensitive) in &subjects {
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
        for (key, sensitive) in &subjects {
            // Insert is idempotent on the backends, but skipping known keys keeps the
            // transaction small when most individuals are repeats.
            if !store.contains(name, claim.year, false, key)? {
                store.insert(name, claim.year, false, key)?;
            }
            if *sensitive && !store.contains(name, claim.year, true, key)? {
                store.insert(name, claim.year, true, key)?;
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
        store.put_meta(name, claim.year, after)?;
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
