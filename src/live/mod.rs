//! The live view for SREs and security teams: what the proxy is deciding right now, served as a
//! small web page on the admin listener (see [`http`]).
//!
//! This module owns the in-memory state behind that page, fed by [`LiveHub::record`] for every
//! audited decision:
//! - per-second counters for the last 15 minutes, by action (allowed / blocked / monitored =
//!   would-block in monitor mode / failed = no decision) and by destination region;
//! - a bounded ring of the latest blocked and would-block decisions, each kept as its full
//!   audit JSON for the click-through;
//! - a broadcast channel that pushes those decisions to server-sent-event subscribers.
//!
//! It only ever sees [`AuditEvent`]s, which already carry masked and aggregate data (categories,
//! counts, reason, transfer, region) and never raw personal information, so nothing here can
//! leak PI to the page.
//!
//! `record` is on the request path: it takes a `std::sync::Mutex` for a few counter updates and
//! never awaits, so no lock is ever held across an `.await`. Only block/would-block events
//! allocate (their summary and audit JSON), because those are what the page lists.

pub mod http;
pub mod transfers;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::audit::AuditEvent;
use crate::classify::Category;
use crate::clock::unix_seconds;
use crate::shard::{self, Padded};

pub use crate::telemetry::TransferStatus;
pub use http::{handle, presented_token, TOKEN_COOKIE};
pub use transfers::ReportedTransfers;

/// Seconds of history the charts show (15 minutes).
pub const WINDOW_SECS: u64 = 900;
/// One slot more than the window: the second being filled never overwrites the oldest second
/// still shown.
const SLOTS: usize = WINDOW_SECS as usize + 1;
/// Default number of blocked/would-block decisions kept for the table and the click-through.
pub const DEFAULT_RECENT_CAPACITY: usize = 500;
/// SSE messages buffered per hub before slow subscribers start missing some (they then get a
/// fresh snapshot, see [`http`]).
const BROADCAST_CAPACITY: usize = 256;
/// Initial buffer for a block event's audit JSON.
const AUDIT_JSON_CAPACITY: usize = 2048;

/// 2024 Provisions on Promoting and Regulating Cross-Border Data Flows, Art. 7-8: individuals
/// since 1 January. "以上" includes the number, so each threshold is reached *at* the value.
pub const SENSITIVE_ASSESSMENT_THRESHOLD: u64 = 10_000;
/// Non-sensitive PI of this many individuals or more needs a standard contract or
/// certification (below it, the small-volume exemption applies).
pub const CONTRACT_THRESHOLD: u64 = 100_000;
/// Non-sensitive PI of this many individuals or more needs a CAC security assessment.
pub const ASSESSMENT_THRESHOLD: u64 = 1_000_000;

/// What happened to a request, as the live view groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveAction {
    /// Policy verdict `allow` (forwarded, whatever the upstream then answered).
    Allowed,
    /// Policy verdict `block`, applied (enforce mode).
    Blocked,
    /// Policy verdict `block` not applied: monitor mode, a would-block.
    Monitored,
    /// No decision could be made (e.g. the destination did not resolve).
    Failed,
}

impl LiveAction {
    pub const ALL: [LiveAction; 4] = [
        LiveAction::Allowed,
        LiveAction::Blocked,
        LiveAction::Monitored,
        LiveAction::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LiveAction::Allowed => "allowed",
            LiveAction::Blocked => "blocked",
            LiveAction::Monitored => "monitored",
            LiveAction::Failed => "failed",
        }
    }

    /// How an audit event counts. `enforced` tells a block from a monitor-mode would-block.
    pub fn of(event: &AuditEvent) -> LiveAction {
        match (event.chujing.action, event.chujing.enforced) {
            (Some("block"), true) => LiveAction::Blocked,
            (Some("block"), false) => LiveAction::Monitored,
            (Some(_), _) => LiveAction::Allowed,
            (None, _) => LiveAction::Failed,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Destination regions in chart order; the strings are `geo::Region::as_str` values.
pub const REGIONS: [&str; 6] = ["mainland", "hk", "mo", "tw", "abroad", "unknown"];

/// Index into [`REGIONS`]; an event without a destination (it did not resolve) is `unknown`.
fn region_index(region: Option<&str>) -> usize {
    match region {
        Some("mainland") => 0,
        Some("hk") => 1,
        Some("mo") => 2,
        Some("tw") => 3,
        Some("abroad") => 4,
        _ => 5,
    }
}

const ACTIONS: usize = LiveAction::ALL.len();
const COUNTERS: usize = ACTIONS + REGIONS.len();

/// The per-second ring: slot `s % SLOTS` holds second `s` if `second[slot] == s`, else it is
/// stale (nothing was recorded that second) and reads as zero. Allocated once.
struct Buckets {
    second: Box<[u64]>,
    counts: Box<[[u32; COUNTERS]]>,
}

impl Buckets {
    fn new() -> Buckets {
        Buckets {
            second: vec![u64::MAX; SLOTS].into_boxed_slice(),
            counts: vec![[0; COUNTERS]; SLOTS].into_boxed_slice(),
        }
    }

    fn add(&mut self, at: u64, action: usize, region: usize) {
        let slot = (at % SLOTS as u64) as usize;
        if self.second[slot] != at {
            // A newer second reuses the slot; an older one (a clock step back) must not
            // clobber newer data, so it is dropped.
            if self.second[slot] != u64::MAX && self.second[slot] > at {
                return;
            }
            self.second[slot] = at;
            self.counts[slot] = [0; COUNTERS];
        }
        let c = &mut self.counts[slot];
        c[action] = c[action].saturating_add(1);
        c[ACTIONS + region] = c[ACTIONS + region].saturating_add(1);
    }

    fn get(&self, at: u64) -> [u32; COUNTERS] {
        let slot = (at % SLOTS as u64) as usize;
        if self.second[slot] == at {
            self.counts[slot]
        } else {
            [0; COUNTERS]
        }
    }
}

/// One blocked or would-block decision as the table lists it. Names, codes and counts only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockSummary {
    /// Audit `@timestamp` (RFC 3339, UTC).
    pub time: String,
    /// The request id; `/live/event/{request_id}` returns the full audit event.
    pub request_id: String,
    pub action: LiveAction,
    /// Client address (the internal host that sent the request).
    pub client: Option<IpAddr>,
    pub host: String,
    pub country: Option<String>,
    pub region: &'static str,
    pub reason: Option<&'static str>,
    pub categories: Vec<Category>,
    pub subjects: usize,
    pub sensitive_subjects: usize,
    pub transfer: Option<String>,
}

impl BlockSummary {
    fn of(event: &AuditEvent, action: LiveAction) -> BlockSummary {
        BlockSummary {
            time: event.timestamp.clone(),
            request_id: event.chujing.request_id.to_string(),
            action,
            client: event.source.as_ref().map(|s| s.ip),
            host: event.destination.domain.to_string(),
            country: event
                .destination
                .geo
                .country_iso_code
                .as_deref()
                .map(str::to_string),
            region: REGIONS[region_index(event.chujing.region)],
            reason: event.chujing.reason,
            categories: event
                .chujing
                .findings
                .iter()
                .map(|f| f.category.clone())
                .collect(),
            subjects: event.chujing.subjects,
            sensitive_subjects: event.chujing.sensitive_subjects,
            transfer: event.chujing.transfer.as_deref().map(str::to_string),
        }
    }
}

/// A ring entry: the summary plus the full audit event as JSON.
#[derive(Debug)]
struct BlockRecord {
    summary: BlockSummary,
    audit_json: Bytes,
}

/// Which recent decisions to list. Every set field must match exactly (`country` ignores
/// ASCII case); `None` matches anything. The empty string matches a missing value (e.g.
/// `country=` lists decisions whose destination had no known country).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub reason: Option<String>,
    pub country: Option<String>,
    pub transfer: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, s: &BlockSummary) -> bool {
        fn field(want: &Option<String>, have: Option<&str>, fold_case: bool) -> bool {
            match want {
                None => true,
                Some(w) if w.is_empty() => have.is_none(),
                Some(w) if fold_case => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
                Some(w) => have == Some(w.as_str()),
            }
        }
        field(&self.reason, s.reason, false)
            && field(&self.country, s.country.as_deref(), true)
            && field(&self.transfer, s.transfer.as_deref(), false)
    }
}

/// Counts of one second (or of the whole window), by action and by region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub actions: [u32; ACTIONS],
    pub regions: [u32; REGIONS.len()],
}

impl Counts {
    fn from_raw(raw: &[u32; COUNTERS]) -> Counts {
        let mut c = Counts::default();
        c.actions.copy_from_slice(&raw[..ACTIONS]);
        c.regions.copy_from_slice(&raw[ACTIONS..]);
        c
    }

    pub fn action(&self, action: LiveAction) -> u32 {
        self.actions[action.index()]
    }

    /// Count for a region name from [`REGIONS`] (0 for an unknown name).
    pub fn region(&self, region: &str) -> u32 {
        REGIONS
            .iter()
            .position(|r| *r == region)
            .map_or(0, |i| self.regions[i])
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Named<'a, const N: usize>(&'a [&'static str; N], &'a [u32; N]);
        impl<const N: usize> Serialize for Named<'_, N> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(N))?;
                for (k, v) in self.0.iter().zip(self.1) {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        const ACTION_NAMES: [&str; ACTIONS] = ["allowed", "blocked", "monitored", "failed"];
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("actions", &Named(&ACTION_NAMES, &self.actions))?;
        m.serialize_entry("regions", &Named(&REGIONS, &self.regions))?;
        m.end()
    }
}

/// The window as chart series: `actions["blocked"][i]` is the count in second `start + i`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Series {
    /// Unix second of the first point.
    pub start: u64,
    /// Unix second of the last point (the last complete second).
    pub end: u64,
    pub actions: std::collections::BTreeMap<&'static str, Vec<u32>>,
    pub regions: std::collections::BTreeMap<&'static str, Vec<u32>>,
}

impl Series {
    /// Sum of one action over the window.
    pub fn total(&self, action: LiveAction) -> u64 {
        self.actions
            .get(action.as_str())
            .map_or(0, |v| v.iter().map(|&n| u64::from(n)).sum())
    }

    /// Sum of one region over the window.
    pub fn region_total(&self, region: &str) -> u64 {
        self.regions
            .get(region)
            .map_or(0, |v| v.iter().map(|&n| u64::from(n)).sum())
    }
}

/// Entity-wide distinct individuals whose PI left the mainland since 1 January (policy time
/// zone), across all transfers: what the 2024 Provisions' thresholds are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct StatutoryTotals {
    /// Calendar year counted.
    pub year: i32,
    /// Distinct individuals with (any) PI transferred.
    pub individuals: u64,
    /// Of those, individuals with sensitive PI transferred (Art. 28 PIPL).
    pub sensitive_individuals: u64,
}

/// Which mechanism the entity-wide totals call for (2024 Provisions, Art. 7-8), for a
/// non-CIIO operator. The page highlights it; the legal judgement stays with the legal team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatutoryTier {
    /// Below 100,000 individuals and no sensitive PI: exempt from the three mechanisms.
    Exempt,
    /// 100,000–999,999 individuals, or sensitive PI of fewer than 10,000.
    StandardContractOrCertification,
    /// 1,000,000 individuals or more, or sensitive PI of 10,000 or more.
    SecurityAssessment,
}

impl StatutoryTotals {
    pub fn tier(&self) -> StatutoryTier {
        if self.individuals >= ASSESSMENT_THRESHOLD
            || self.sensitive_individuals >= SENSITIVE_ASSESSMENT_THRESHOLD
        {
            StatutoryTier::SecurityAssessment
        } else if self.individuals >= CONTRACT_THRESHOLD || self.sensitive_individuals > 0 {
            StatutoryTier::StandardContractOrCertification
        } else {
            StatutoryTier::Exempt
        }
    }
}

/// Where the transfers panel gets its figures; the integrator implements it from the policy
/// (validity, caps: `telemetry::PolicyStatus` already computes them) and the volume store.
/// Called from admin requests only, never on the proxy's request path.
pub trait TransferStatusSource: Send + Sync {
    fn transfers(&self) -> Vec<TransferStatus>;
    fn statutory(&self) -> StatutoryTotals;
}

/// The transfers panel as the page receives it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransfersView {
    pub transfers: Vec<TransferStatus>,
    pub statutory: StatutoryTotals,
    pub tier: StatutoryTier,
    pub thresholds: Thresholds,
}

/// The statutory thresholds, sent along so the page hard-codes none of them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Thresholds {
    pub sensitive_assessment: u64,
    pub contract: u64,
    pub assessment: u64,
}

const THRESHOLDS: Thresholds = Thresholds {
    sensitive_assessment: SENSITIVE_ASSESSMENT_THRESHOLD,
    contract: CONTRACT_THRESHOLD,
    assessment: ASSESSMENT_THRESHOLD,
};

/// Everything the page needs on load (and after a reconnect).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub window_secs: u64,
    pub series: Series,
    /// Newest first, after the filter.
    pub recent: Vec<BlockSummary>,
    pub recent_capacity: usize,
    /// `None` until the integrator attaches a [`TransferStatusSource`].
    pub transfers: Option<TransfersView>,
}

/// One second of counts, pushed to subscribers every second.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Tick {
    pub second: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

struct Inner {
    /// Per-second counts, one copy per [`crate::shard`] (every decision adds to its
    /// thread's copy; readers add the copies up).
    buckets: Box<[Padded<Mutex<Buckets>>]>,
    recent: Mutex<VecDeque<Arc<BlockRecord>>>,
    capacity: usize,
    events: broadcast::Sender<Bytes>,
    transfers: RwLock<Option<Arc<dyn TransferStatusSource>>>,
    subscribers: AtomicUsize,
}

/// The live view's state. Cheap to clone (one `Arc`); every clone sees the same data.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub")
            .field("capacity", &self.inner.capacity)
            .field("subscribers", &self.subscriber_count())
            .finish_non_exhaustive()
    }
}

impl Default for LiveHub {
    fn default() -> LiveHub {
        LiveHub::new(DEFAULT_RECENT_CAPACITY)
    }
}

/// Locks even if a panicking thread poisoned the mutex: the guarded data are counters and a
/// list of immutable records, valid after any partial update.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveHub {
    /// A hub keeping the latest `recent_capacity` blocked/would-block decisions (at least 1).
    pub fn new(recent_capacity: usize) -> LiveHub {
        let capacity = recent_capacity.max(1);
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        LiveHub {
            inner: Arc::new(Inner {
                buckets: (0..shard::SHARDS)
                    .map(|_| Padded(Mutex::new(Buckets::new())))
                    .collect(),
                recent: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                events,
                transfers: RwLock::new(None),
                subscribers: AtomicUsize::new(0),
            }),
        }
    }

    /// Records one audited decision now. Called by the proxy for every decision.
    pub fn record(&self, event: &AuditEvent) {
        self.record_at(event, unix_seconds());
    }

    /// Records one audited decision as happening in unix second `at` (tests, replays).
    pub fn record_at(&self, event: &AuditEvent, at: u64) {
        let action = LiveAction::of(event);
        let region = region_index(event.chujing.region);
        lock(&self.inner.buckets[shard::index()].0).add(at, action.index(), region);
        if !matches!(action, LiveAction::Blocked | LiveAction::Monitored) {
            return;
        }
        // Built outside any lock: serialising is the slow part.
        let summary = BlockSummary::of(event, action);
        // Sized for a typical event (~1.2 KB) so serialising does not regrow the buffer.
        let mut audit_json = Vec::with_capacity(AUDIT_JSON_CAPACITY);
        let audit_json = match serde_json::to_writer(&mut audit_json, event) {
            Ok(()) => Bytes::from(audit_json),
            Err(e) => {
                tracing::error!(error = %e, request_id = %event.chujing.request_id, "live view: cannot serialise an audit event; it is counted but not listed");
                return;
            }
        };
        let frame =
            (self.inner.events.receiver_count() > 0).then(|| http::sse_frame("decision", &summary));
        let record = Arc::new(BlockRecord {
            summary,
            audit_json,
        });
        {
            let mut recent = lock(&self.inner.recent);
            if recent.len() == self.inner.capacity {
                recent.pop_front();
            }
            recent.push_back(record);
        }
        if let Some(frame) = frame {
            // No receiver left in between is fine: nobody is watching.
            let _ = self.inner.events.send(frame);
        }
    }

    /// The raw counters of second `at`, summed over the shards.
    fn counts_at(&self, at: u64) -> [u32; COUNTERS] {
        let mut sum = [0u32; COUNTERS];
        for shard in self.inner.buckets.iter() {
            for (total, n) in sum.iter_mut().zip(lock(&shard.0).get(at)) {
                *total = total.saturating_add(n);
            }
        }
        sum
    }

    /// Counts of one second (zero if nothing was recorded then or it left the window).
    pub fn second(&self, at: u64) -> Counts {
        Counts::from_raw(&self.counts_at(at))
    }

    /// The [`WINDOW_SECS`] seconds ending with `end` (inclusive), as chart series.
    pub fn series(&self, end: u64) -> Series {
        let start = end.saturating_sub(WINDOW_SECS - 1);
        let len = (end - start + 1) as usize;
        let mut actions: [Vec<u32>; ACTIONS] = std::array::from_fn(|_| Vec::with_capacity(len));
        let mut regions: [Vec<u32>; REGIONS.len()] =
            std::array::from_fn(|_| Vec::with_capacity(len));
        {
            for s in start..=end {
                let raw = self.counts_at(s);
                for (i, v) in actions.iter_mut().enumerate() {
                    v.push(raw[i]);
                }
                for (i, v) in regions.iter_mut().enumerate() {
                    v.push(raw[ACTIONS + i]);
                }
            }
        }
        Series {
            start,
            end,
            actions: LiveAction::ALL
                .iter()
                .map(|a| a.as_str())
                .zip(actions)
                .collect(),
            regions: REGIONS.iter().copied().zip(regions).collect(),
        }
    }

    /// The latest blocked/would-block decisions matching `filter`, newest first, at most
    /// `limit`.
    pub fn recent(&self, filter: &EventFilter, limit: usize) -> Vec<BlockSummary> {
        let records: Vec<Arc<BlockRecord>> = {
            let recent = lock(&self.inner.recent);
            recent
                .iter()
                .rev()
                .filter(|r| filter.matches(&r.summary))
                .take(limit)
                .cloned()
                .collect()
        };
        records.iter().map(|r| r.summary.clone()).collect()
    }

    /// Number of decisions held for the table (never more than the capacity).
    pub fn recent_len(&self) -> usize {
        lock(&self.inner.recent).len()
    }

    pub fn recent_capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The full audit event (JSON) of a listed decision, if it is still in the ring.
    pub fn audit_event(&self, request_id: &str) -> Option<Bytes> {
        let recent = lock(&self.inner.recent);
        recent
            .iter()
            .rev()
            .find(|r| r.summary.request_id == request_id)
            .map(|r| r.audit_json.clone())
    }

    /// Attaches (or replaces) the source of the transfers panel.
    pub fn set_transfer_source(&self, source: Arc<dyn TransferStatusSource>) {
        *self
            .inner
            .transfers
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// The transfers panel now, if a source is attached.
    pub fn transfers(&self) -> Option<TransfersView> {
        // Clone the Arc and release the lock before calling out: the source may be slow.
        let source = self
            .inner
            .transfers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let statutory = source.statutory();
        Some(TransfersView {
            transfers: source.transfers(),
            tier: statutory.tier(),
            statutory,
            thresholds: THRESHOLDS,
        })
    }

    /// Everything the page shows, for the window ending with the last complete second.
    pub fn snapshot(&self, filter: &EventFilter) -> Snapshot {
        self.snapshot_at(unix_seconds().saturating_sub(1), filter)
    }

    /// [`LiveHub::snapshot`] for a window ending with second `end`.
    pub fn snapshot_at(&self, end: u64, filter: &EventFilter) -> Snapshot {
        Snapshot {
            window_secs: WINDOW_SECS,
            series: self.series(end),
            recent: self.recent(filter, self.inner.capacity),
            recent_capacity: self.inner.capacity,
            transfers: self.transfers(),
        }
    }

    /// A receiver of pre-formatted SSE frames for each blocked/would-block decision.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.inner.events.subscribe()
    }

    /// Open `/live/events` streams.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::Region;

    #[test]
    fn regions_match_geo() {
        for r in [
            Region::Mainland,
            Region::Hk,
            Region::Mo,
            Region::Tw,
            Region::Abroad,
            Region::Unknown,
        ] {
            assert_eq!(REGIONS[region_index(Some(r.as_str()))], r.as_str());
        }
    }

    #[test]
    fn statutory_tiers_include_the_threshold() {
        let t = |individuals, sensitive_individuals| {
            StatutoryTotals {
                year: 2026,
                individuals,
                sensitive_individuals,
            }
            .tier()
        };
        assert_eq!(t(0, 0), StatutoryTier::Exempt);
        assert_eq!(t(99_999, 0), StatutoryTier::Exempt);
        assert_eq!(
            t(100_000, 0),
            StatutoryTier::StandardContractOrCertification
        );
        assert_eq!(t(5, 1), StatutoryTier::StandardContractOrCertification);
        assert_eq!(
            t(999_999, 9_999),
            StatutoryTier::StandardContractOrCertification
        );
        assert_eq!(t(1_000_000, 0), StatutoryTier::SecurityAssessment);
        assert_eq!(t(10_000, 10_000), StatutoryTier::SecurityAssessment);
    }

    #[test]
    fn stale_seconds_read_as_zero_and_old_writes_do_not_clobber() {
        let mut b = Buckets::new();
        b.add(1_000, 0, 4);
        b.add(1_000 + SLOTS as u64, 1, 4);
        assert_eq!(b.get(1_000), [0; COUNTERS]);
        assert_eq!(b.get(1_000 + SLOTS as u64)[1], 1);
        b.add(1_000, 0, 4);
        assert_eq!(b.get(1_000 + SLOTS as u64)[0], 0, "older second dropped");
    }
}
