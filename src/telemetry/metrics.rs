//! Prometheus metrics (prometheus-client registry, OpenMetrics text encoding).
//!
//! Every family has the `chujing_` prefix, counters end in `_total` and values are in base
//! units (seconds, bytes). Label values come only from closed sets — action, enforced, reason
//! code, region, category (built-ins plus at most [`MAX_CUSTOM_CATEGORIES`] configured ones,
//! anything else is `other`), transfer id (at most [`MAX_TRANSFERS`] configured ones) — so a
//! request can never create a new series from its own content, and no label ever carries
//! personal data.
//!
//! The hot path (one decision, one scan, one upstream call per request) does not allocate
//! and shares no cache line between workers: label sets are resolved once into cached
//! handles of per-worker counters and histograms ([`super::sharded`]), so recording is an
//! index computation plus an atomic add on the worker's own cell, without taking the
//! family's lock; a scrape adds the cells up.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::sharded::{ShardedCounter, ShardedHistogram};
use crate::classify::{Category, DataClass, ScanReport};
use crate::geo::Region;
use crate::policy::{Action, Decision, Reason};

/// Most custom detector categories that get their own `category` label value; further ones
/// are counted as `other` so a large detector list cannot blow up the series count.
pub const MAX_CUSTOM_CATEGORIES: usize = 32;

/// Most transfers whose volume is exported; a policy with more is unusual enough that
/// refusing extra series (and saying so in the log) beats an unbounded label.
pub const MAX_TRANSFERS: usize = 256;

/// Label value for categories beyond the cap (or never configured).
pub const OTHER_CATEGORY: &str = "other";

/// Content type of [`Metrics::encode`]'s output. prometheus-client writes OpenMetrics text
/// (counters declared without `_total`, `# EOF` at the end), which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every [`crate::classify::Uninspectable::code`]. Created at zero up front so dashboards and
/// `increase()` see the series before the first occurrence.
const UNINSPECTABLE_CODES: [&str; 5] = [
    "too_large",
    "unsupported_encoding",
    "decompression_bomb",
    "corrupt_encoding",
    "not_decrypted",
];

const ACTIONS: usize = 2;
const ENFORCED: usize = 2;
const REASONS: usize = Reason::ALL.len();
const REGIONS: usize = 6;
const REQUEST_CELLS: usize = ACTIONS * ENFORCED * REASONS * REGIONS;
/// Built-ins, custom ones, and `other`.
const CATEGORY_SLOTS: usize = Category::BUILTIN.len() + MAX_CUSTOM_CATEGORIES + 1;
const CLASSES: usize = 2;

/// Seconds; scans of typical API bodies take microseconds, 16 MiB bodies tens of ms.
const SCAN_BUCKETS: [f64; 15] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
];
/// Seconds; the time to the upstream's response head, from LAN to intercontinental.
const UPSTREAM_BUCKETS: [f64; 13] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    enforced: bool,
    reason: &'static str,
    region: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    category: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    /// `all` or `sensitive`.
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatermarkLabels {
    /// `personal` or `sensitive` (which statutory count crossed).
    class: &'static str,
    /// `warn`, `critical` or `reached`.
    level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhyLabels {
    why: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    transfer: String,
    /// `all` (every distinct individual) or `sensitive` (those with sensitive PI).
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Category name → slot in the finding cells. Replaced as a whole (copy on write) when the
/// configured custom categories change, so readers never lock.
#[derive(Debug, Default)]
struct CategoryIndex {
    /// The names are the built-in ones and those the configuration defines, never request
    /// data (see [`crate::hash`]).
    slots: HashMap<Box<str>, usize, crate::hash::Fast>,
    /// Label value of each slot; `names[CATEGORY_SLOTS - 1]` is `other`.
    names: Vec<Arc<str>>,
}

/// Gauges of one transfer's yearly volume (and its caps).
#[derive(Debug, Clone, Default)]
struct TransferGauges {
    individuals: Gauge,
    sensitive: Gauge,
    cap: Gauge,
    sensitive_cap: Gauge,
}

/// All of chujing's metric families in one registry. Build once, share with `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    // What every request records is sharded per worker (see `super::sharded`).
    requests: Family<RequestLabels, ShardedCounter>,
    request_cells: Box<[OnceLock<ShardedCounter>]>,
    findings: Family<FindingLabels, ShardedCounter>,
    finding_cells: Box<[OnceLock<ShardedCounter>]>,
    categories: ArcSwap<CategoryIndex>,
    /// Serialises writers of `categories` and `transfers` (readers use the `ArcSwap`s).
    writer: Mutex<()>,
    subjects: ShardedCounter,
    uninspectable: Family<WhyLabels, Counter>,
    bytes_inspected: ShardedCounter,
    scan_duration: ShardedHistogram,
    upstream_duration: ShardedHistogram,
    active_connections: Gauge,
    connections: Counter,
    reload_ok: Counter,
    reload_failed: Counter,
    last_reload: Gauge<f64, AtomicU64>,
    audit_write_errors: Counter,
    transfer_individuals: Family<TransferLabels, Gauge>,
    transfer_caps: Family<TransferLabels, Gauge>,
    transfers: ArcSwap<HashMap<Box<str>, TransferGauges>>,
    entity_individuals: Family<ClassLabels, Gauge>,
    watermarks: Family<WatermarkLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every family and the built-in categories.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("chujing");
        let requests = Family::<RequestLabels, ShardedCounter>::default();
        registry.register(
            "requests",
            "Outbound requests decided, by action, whether the policy was enforced (false in \
             monitor mode), reason code and destination region",
            requests.clone(),
        );
        let findings = Family::<FindingLabels, ShardedCounter>::default();
        registry.register(
            "findings",
            "Validated occurrences of personal information, by category and PIPL class",
            findings.clone(),
        );
        let subjects = ShardedCounter::default();
        registry.register(
            "subjects",
            "Distinct individuals identified per request, summed over requests",
            subjects.clone(),
        );
        let uninspectable = Family::<WhyLabels, Counter>::default();
        registry.register(
            "uninspectable",
            "Request bodies that could not be inspected, by cause",
            uninspectable.clone(),
        );
        for why in UNINSPECTABLE_CODES {
            drop(uninspectable.get_or_create_owned(&WhyLabels { why }));
        }
        let bytes_inspected = ShardedCounter::default();
        registry.register_with_unit(
            "inspected",
            "Decoded bytes run through the detectors",
            Unit::Bytes,
            bytes_inspected.clone(),
        );
        let scan_duration = ShardedHistogram::new(SCAN_BUCKETS);
        registry.register_with_unit(
            "scan_duration",
            "Time spent in the detectors per request",
            Unit::Seconds,
            scan_duration.clone(),
        );
        let upstream_duration = ShardedHistogram::new(UPSTREAM_BUCKETS);
        registry.register_with_unit(
            "upstream_duration",
            "Time from sending a request upstream to its response head",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let active_connections = Gauge::default();
        registry.register(
            "active_connections",
            "Client connections currently open on the proxy listeners",
            active_connections.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "connections",
            "Client connections accepted on the proxy listeners",
            connections.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Configuration reloads (SIGHUP), by result (ok or failed)",
            reloads.clone(),
        );
        let reload_ok = reloads.get_or_create_owned(&ResultLabels { result: "ok" });
        let reload_failed = reloads.get_or_create_owned(&ResultLabels { result: "failed" });
        let last_reload = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "policy_last_reload_success_timestamp",
            "Unix time of the last successful configuration load",
            Unit::Seconds,
            last_reload.clone(),
        );
        let audit_write_errors = Counter::default();
        registry.register(
            "audit_write_errors",
            "Audit events that could not be written",
            audit_write_errors.clone(),
        );
        let transfer_individuals = Family::<TransferLabels, Gauge>::default();
        registry.register(
            "transfer_individuals",
            "Distinct individuals sent under an approved transfer this calendar year, by \
             transfer id and class (all or sensitive)",
            transfer_individuals.clone(),
        );
        let transfer_caps = Family::<TransferLabels, Gauge>::default();
        registry.register(
            "transfer_individuals_cap",
            "Configured yearly cap of distinct individuals per transfer and class",
            transfer_caps.clone(),
        );
        let entity_individuals = Family::<ClassLabels, Gauge>::default();
        registry.register(
            "entity_individuals",
            "Distinct individuals sent abroad this calendar year across all non-exempt transfers \
             (the 2024 Provisions' count), by class (all or sensitive)",
            entity_individuals.clone(),
        );
        let watermarks = Family::<WatermarkLabels, Counter>::default();
        registry.register(
            "volume_watermarks",
            "Entity-wide statutory watermarks crossed (10,000 sensitive / 100,000 / 1,000,000), \
             by class and level",
            watermarks.clone(),
        );
        registry.register(
            "build",
            "Version of the running chujing binary",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        let mut index = CategoryIndex::default();
        for name in Category::BUILTIN {
            index.slots.insert((*name).into(), index.names.len());
            index.names.push(Arc::from(*name));
        }
        Metrics {
            registry,
            requests,
            request_cells: (0..REQUEST_CELLS).map(|_| OnceLock::new()).collect(),
            findings,
            finding_cells: (0..CATEGORY_SLOTS * CLASSES)
                .map(|_| OnceLock::new())
                .collect(),
            categories: ArcSwap::from_pointee(index),
            writer: Mutex::new(()),
            subjects,
            uninspectable,
            bytes_inspected,
            scan_duration,
            upstream_duration,
            active_connections,
            connections,
            reload_ok,
            reload_failed,
            last_reload,
            audit_write_errors,
            transfer_individuals,
            transfer_caps,
            transfers: ArcSwap::from_pointee(HashMap::new()),
            entity_individuals,
            watermarks,
        }
    }

    /// Year-to-date entity-wide totals (from the volume store's entity row).
    pub fn set_entity(&self, individuals: u64, sensitive: u64) {
        self.entity_individuals
            .get_or_create(&ClassLabels { class: "all" })
            .set(clamp_i64(individuals));
        self.entity_individuals
            .get_or_create(&ClassLabels { class: "sensitive" })
            .set(clamp_i64(sensitive));
    }

    /// An entity-wide watermark was crossed.
    pub fn watermark(&self, event: &crate::volume::WatermarkEvent) {
        self.watermarks
            .get_or_create(&WatermarkLabels {
                class: event.class,
                level: event.level.as_str(),
            })
            .inc();
    }

    /// Gives configured custom detector categories their own label value. Categories are only
    /// ever added (their series must not vanish on reload); once [`MAX_CUSTOM_CATEGORIES`]
    /// are known, further ones count as `other`. Returns how many were refused for the cap.
    pub fn register_categories<S: AsRef<str>>(&self, names: &[S]) -> usize {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.categories.load();
        let mut slots = current.slots.clone();
        let mut names_out = current.names.clone();
        let mut refused = 0;
        for name in names {
            let name = name.as_ref();
            if slots.contains_key(name) || name == OTHER_CATEGORY {
                continue;
            }
            if names_out.len() >= CATEGORY_SLOTS - 1 {
                refused += 1;
                continue;
            }
            slots.insert(name.into(), names_out.len());
            names_out.push(Arc::from(name));
        }
        self.categories.store(Arc::new(CategoryIndex {
            slots,
            names: names_out,
        }));
        refused
    }

    /// Counts one decision. `enforced` is false in monitor mode (the request went through
    /// whatever the action says).
    pub fn record_decision(&self, decision: &Decision, region: Region, enforced: bool) {
        let (a, e, r, g) = (
            action_index(decision.action),
            usize::from(enforced),
            reason_index(decision.reason),
            region_index(region),
        );
        let cell = ((a * ENFORCED + e) * REASONS + r) * REGIONS + g;
        self.request_cells[cell]
            .get_or_init(|| {
                self.requests.get_or_create_owned(&RequestLabels {
                    action: decision.action.as_str(),
                    enforced,
                    reason: decision.reason.as_str(),
                    region: region.as_str(),
                })
            })
            .inc();
    }

    /// Counts the findings, individuals and uninspectable cause of one scan.
    pub fn record_findings(&self, report: &ScanReport) {
        if !report.findings.is_empty() {
            let index = self.categories.load();
            for finding in &report.findings {
                let slot = index
                    .slots
                    .get(finding.category.as_str())
                    .copied()
                    .unwrap_or(CATEGORY_SLOTS - 1);
                let class = match finding.class {
                    DataClass::Personal => 0,
                    DataClass::Sensitive => 1,
                };
                self.finding_cells[slot * CLASSES + class]
                    .get_or_init(|| {
                        let category = match index.names.get(slot) {
                            Some(name) => name.to_string(),
                            None => OTHER_CATEGORY.to_string(),
                        };
                        self.findings.get_or_create_owned(&FindingLabels {
                            category,
                            class: class_str(finding.class),
                        })
                    })
                    .inc_by(finding.count);
            }
        }
        if !report.subjects.is_empty() {
            self.subjects.inc_by(report.subjects.len() as u64);
        }
        if let Some(why) = &report.uninspectable {
            // Five fixed codes: the family's own lookup is cheap and rare enough.
            self.uninspectable
                .get_or_create(&WhyLabels { why: why.code() })
                .inc();
        }
    }

    /// One body scan: time spent in the detectors and decoded bytes inspected.
    pub fn observe_scan(&self, elapsed: Duration, bytes: u64) {
        self.scan_duration.observe(elapsed.as_secs_f64());
        self.bytes_inspected.inc_by(bytes);
    }

    /// One upstream exchange, up to the response head.
    pub fn observe_upstream(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }

    /// A client connection was accepted. Pair with [`Metrics::connection_closed`], or use
    /// [`Metrics::connection_guard`] so an early return or panic cannot skip the decrement.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.active_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.active_connections.dec();
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection_guard(&self) -> ConnectionGuard {
        self.connection_opened();
        ConnectionGuard {
            active: self.active_connections.clone(),
        }
    }

    /// A configuration (re)load finished; `ok = false` means the old policy stays in force.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reload_ok.inc();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_reload.set(now.as_secs_f64());
        } else {
            self.reload_failed.inc();
        }
    }

    /// An audit event could not be written.
    pub fn audit_write_error(&self) {
        self.audit_write_errors.inc();
    }

    /// This year's distinct individuals (all, and those with sensitive PI) for a transfer.
    /// Returns false (and exports nothing) if the transfer would exceed [`MAX_TRANSFERS`].
    pub fn set_volume(&self, transfer: &str, individuals: u64, sensitive: u64) -> bool {
        match self.transfer_gauges(transfer) {
            Some(g) => {
                g.individuals.set(clamp_i64(individuals));
                g.sensitive.set(clamp_i64(sensitive));
                true
            }
            None => false,
        }
    }

    /// The transfer's configured yearly caps (`None`: no cap, exported as -1 so dashboards
    /// can tell "no cap" from a cap of 0).
    pub fn set_transfer_caps(
        &self,
        transfer: &str,
        max_individuals: Option<u64>,
        max_sensitive: Option<u64>,
    ) -> bool {
        match self.transfer_gauges(transfer) {
            Some(g) => {
                g.cap.set(max_individuals.map_or(-1, clamp_i64));
                g.sensitive_cap.set(max_sensitive.map_or(-1, clamp_i64));
                true
            }
            None => false,
        }
    }

    /// Last values given to [`Metrics::set_volume`]: (individuals, sensitive individuals).
    pub fn volume(&self, transfer: &str) -> Option<(u64, u64)> {
        let map = self.transfers.load();
        let g = map.get(transfer)?;
        Some((
            u64::try_from(g.individuals.get()).unwrap_or(0),
            u64::try_from(g.sensitive.get()).unwrap_or(0),
        ))
    }

    /// After a reload: drops the series of transfers no longer configured.
    pub fn retain_transfers<S: AsRef<str>>(&self, ids: &[S]) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.transfers.load();
        let mut next = HashMap::with_capacity(current.len());
        for (id, gauges) in current.iter() {
            if ids.iter().any(|keep| keep.as_ref() == &**id) {
                next.insert(id.clone(), gauges.clone());
            } else {
                for (family, classes) in [
                    (&self.transfer_individuals, ["all", "sensitive"]),
                    (&self.transfer_caps, ["all", "sensitive"]),
                ] {
                    for class in classes {
                        family.remove(&TransferLabels {
                            transfer: id.to_string(),
                            class,
                        });
                    }
                }
            }
        }
        self.transfers.store(Arc::new(next));
    }

    /// The registry, for callers that want to add their own families before sharing.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// All families in OpenMetrics text format (serve with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; an Err here would only come from a label
        // encoder bug, and a partial scrape is still better than none.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn transfer_gauges(&self, transfer: &str) -> Option<TransferGauges> {
        if let Some(g) = self.transfers.load().get(transfer) {
            return Some(g.clone());
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.transfers.load();
        if let Some(g) = current.get(transfer) {
            return Some(g.clone());
        }
        if current.len() >= MAX_TRANSFERS {
            tracing::warn!(
                limit = MAX_TRANSFERS,
                "more transfers than the metrics limit; volume of further transfers is not exported"
            );
            return None;
        }
        let labels = |class| TransferLabels {
            transfer: transfer.to_string(),
            class,
        };
        let gauges = TransferGauges {
            individuals: self
                .transfer_individuals
                .get_or_create_owned(&labels("all")),
            sensitive: self
                .transfer_individuals
                .get_or_create_owned(&labels("sensitive")),
            cap: self.transfer_caps.get_or_create_owned(&labels("all")),
            sensitive_cap: self.transfer_caps.get_or_create_owned(&labels("sensitive")),
        };
        // Until `set_transfer_caps` says otherwise, "no cap" (-1), never a cap of 0.
        gauges.cap.set(-1);
        gauges.sensitive_cap.set(-1);
        let mut next = (**current).clone();
        next.insert(transfer.into(), gauges.clone());
        self.transfers.store(Arc::new(next));
        Some(gauges)
    }
}

/// Keeps one connection counted in `chujing_active_connections` until dropped.
#[derive(Debug)]
#[must_use = "the connection counts as closed as soon as the guard is dropped"]
pub struct ConnectionGuard {
    active: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn class_str(class: DataClass) -> &'static str {
    match class {
        DataClass::Personal => "personal",
        DataClass::Sensitive => "sensitive",
    }
}

// Exhaustive matches (not `as usize`): a new variant fails to compile here instead of
// silently indexing out of the cell table.
fn action_index(action: Action) -> usize {
    match action {
        Action::Allow => 0,
        Action::Block => 1,
    }
}

fn reason_index(reason: Reason) -> usize {
    match reason {
        Reason::Domestic => 0,
        Reason::NoPersonalInfo => 1,
        Reason::Uninspectable => 2,
        Reason::UnknownGeography => 3,
        Reason::NoApprovedTransfer => 4,
        Reason::TransferNotYetValid => 5,
        Reason::TransferExpired => 6,
        Reason::CategoryNotApproved => 7,
        Reason::SensitiveNotApproved => 8,
        Reason::VolumeCapExceeded => 9,
        Reason::ApprovedTransfer => 10,
    }
}

fn region_index(region: Region) -> usize {
    match region {
        Region::Mainland => 0,
        Region::Hk => 1,
        Region::Mo => 2,
        Region::Tw => 3,
        Region::Abroad => 4,
        Region::Unknown => 5,
    }
}

#[cfg(test)]
mod entity_tests {
    use super::*;

    #[test]
    fn entity_totals_and_watermarks_are_exported() {
        let m = Metrics::new();
        m.set_entity(81_000, 120);
        m.watermark(&crate::volume::WatermarkEvent {
            year: 2026,
            class: "personal",
            threshold: 100_000,
            level: crate::volume::Watermark::Warn,
            count: 80_000,
            requires: "standard_contract",
            covered: true,
        });
        let text = m.encode();
        assert!(
            text.contains("chujing_entity_individuals{class=\"all\"} 81000"),
            "{text}"
        );
        assert!(
            text.contains("chujing_entity_individuals{class=\"sensitive\"} 120"),
            "{text}"
        );
        assert!(
            text.contains("chujing_volume_watermarks_total{class=\"personal\",level=\"warn\"} 1"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Finding, Subject, Uninspectable};

    fn decision(action: Action, reason: Reason) -> Decision {
        Decision {
            action,
            reason,
            transfer: None,
            explanation: Default::default(),
            volume_claim: None,
        }
    }

    fn finding(category: &str, class: DataClass, count: u64) -> Finding {
        Finding {
            category: Category::new(category),
            class,
            count,
            samples: vec!["138****5678".into()],
        }
    }

    /// Value of the sample line whose name and labels are exactly `series`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn every_uninspectable_code_is_preregistered() {
        for why in [
            Uninspectable::TooLarge { limit: 1 },
            Uninspectable::UnsupportedEncoding("zstd".into()),
            Uninspectable::DecompressionBomb,
            Uninspectable::CorruptEncoding("x".into()),
            Uninspectable::NotDecrypted("x".into()),
        ] {
            assert!(UNINSPECTABLE_CODES.contains(&why.code()), "{}", why.code());
        }
        let text = Metrics::new().encode();
        for why in UNINSPECTABLE_CODES {
            let series = format!("chujing_uninspectable_total{{why=\"{why}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{text}");
        }
    }

    #[test]
    fn indices_are_distinct_and_in_range() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason_index(*r), i);
        }
        for a in [Action::Allow, Action::Block] {
            for e in [false, true] {
                for r in Reason::ALL {
                    for g in [
                        Region::Mainland,
                        Region::Hk,
                        Region::Mo,
                        Region::Tw,
                        Region::Abroad,
                        Region::Unknown,
                    ] {
                        let cell = ((action_index(a) * ENFORCED + usize::from(e)) * REASONS
                            + reason_index(r))
                            * REGIONS
                            + region_index(g);
                        assert!(cell < REQUEST_CELLS);
                        assert!(seen.insert(cell));
                    }
                }
            }
        }
        assert_eq!(seen.len(), REQUEST_CELLS);
    }

    #[test]
    fn decisions_are_counted_per_label_set() {
        let m = Metrics::new();
        m.record_decision(
            &decision(Action::Block, Reason::NoApprovedTransfer),
            Region::Hk,
            true,
        );
        m.record_decision(
            &decision(Action::Block, Reason::NoApprovedTransfer),
            Region::Hk,
            true,
        );
        m.record_decision(
            &decision(Action::Block, Reason::NoApprovedTransfer),
            Region::Hk,
            false,
        );
        m.record_decision(
            &decision(Action::Allow, Reason::Domestic),
            Region::Mainland,
            true,
        );
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"chujing_requests_total{action="block",enforced="true",reason="no_approved_transfer",region="hk"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"chujing_requests_total{action="block",enforced="false",reason="no_approved_transfer",region="hk"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"chujing_requests_total{action="allow",enforced="true",reason="domestic",region="mainland"}"#
            ),
            Some(1.0)
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn findings_map_unknown_categories_to_other_and_never_export_samples() {
        let m = Metrics::new();
        assert_eq!(m.register_categories(&["employee_id"]), 0);
        let report = ScanReport {
            bytes: 100,
            findings: vec![
                finding(Category::CN_MOBILE, DataClass::Personal, 3),
                finding("employee_id", DataClass::Personal, 2),
                finding("made_up_by_request", DataClass::Sensitive, 5),
            ],
            subjects: vec![
                Subject {
                    key: [1; 16],
                    sensitive: false,
                },
                Subject {
                    key: [2; 16],
                    sensitive: true,
                },
            ],
            uninspectable: Some(Uninspectable::TooLarge { limit: 10 }),
        };
        m.record_findings(&report);
        m.record_findings(&report);
        let text = m.encode();
        let count = |series: &str| sample(&text, series);
        assert_eq!(
            count(r#"chujing_findings_total{category="cn_mobile",class="personal"}"#),
            Some(6.0)
        );
        assert_eq!(
            count(r#"chujing_findings_total{category="employee_id",class="personal"}"#),
            Some(4.0)
        );
        assert_eq!(
            count(r#"chujing_findings_total{category="other",class="sensitive"}"#),
            Some(10.0)
        );
        assert_eq!(count("chujing_subjects_total"), Some(4.0));
        assert_eq!(
            count(r#"chujing_uninspectable_total{why="too_large"}"#),
            Some(2.0)
        );
        assert!(!text.contains("made_up_by_request"));
        assert!(!text.contains("138****5678"));
    }

    #[test]
    fn custom_categories_are_capped() {
        let m = Metrics::new();
        let names: Vec<String> = (0..MAX_CUSTOM_CATEGORIES + 5)
            .map(|i| format!("custom_{i}"))
            .collect();
        assert_eq!(m.register_categories(&names), 5);
        // Re-registering known names is free and refuses nothing new.
        assert_eq!(m.register_categories(&names[..3]), 0);
        let last = &names[MAX_CUSTOM_CATEGORIES + 4];
        m.record_findings(&ScanReport {
            findings: vec![finding(last, DataClass::Personal, 1)],
            ..ScanReport::default()
        });
        let text = m.encode();
        assert!(!text.contains(last.as_str()));
        assert_eq!(
            sample(
                &text,
                r#"chujing_findings_total{category="other",class="personal"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn scan_upstream_connections_reloads_and_audit() {
        let m = Metrics::new();
        m.observe_scan(Duration::from_micros(30), 4096);
        m.observe_scan(Duration::from_millis(3), 1000);
        m.observe_upstream(Duration::from_millis(40));
        {
            let _a = m.connection_guard();
            let _b = m.connection_guard();
            assert!(m.encode().contains("chujing_active_connections 2\n"));
        }
        m.connection_opened();
        m.reload(true);
        m.reload(false);
        m.reload(false);
        m.audit_write_error();
        let text = m.encode();
        assert_eq!(sample(&text, "chujing_inspected_bytes_total"), Some(5096.0));
        assert_eq!(
            sample(&text, "chujing_scan_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"chujing_scan_duration_seconds_bucket{le="5e-5"}"#).or_else(|| sample(
                &text,
                r#"chujing_scan_duration_seconds_bucket{le="0.00005"}"#
            )),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "chujing_upstream_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "chujing_active_connections"), Some(1.0));
        assert_eq!(sample(&text, "chujing_connections_total"), Some(3.0));
        assert_eq!(
            sample(&text, r#"chujing_policy_reloads_total{result="ok"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"chujing_policy_reloads_total{result="failed"}"#),
            Some(2.0)
        );
        assert!(
            sample(
                &text,
                "chujing_policy_last_reload_success_timestamp_seconds"
            )
            .unwrap()
                > 1.7e9
        );
        assert_eq!(sample(&text, "chujing_audit_write_errors_total"), Some(1.0));
    }

    #[test]
    fn transfer_volume_is_exported_and_pruned() {
        let m = Metrics::new();
        assert!(m.set_volume("SCC-2026-002", 1200, 7));
        assert!(m.set_transfer_caps("SCC-2026-002", Some(900_000), None));
        assert!(m.set_volume("OLD-1", 5, 0));
        assert_eq!(m.volume("SCC-2026-002"), Some((1200, 7)));
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"chujing_transfer_individuals{transfer="SCC-2026-002",class="all"}"#
            ),
            Some(1200.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"chujing_transfer_individuals_cap{transfer="SCC-2026-002",class="sensitive"}"#
            ),
            Some(-1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"chujing_transfer_individuals_cap{transfer="OLD-1",class="all"}"#
            ),
            Some(-1.0),
            "a transfer whose caps were never set shows no cap, not a cap of 0"
        );
        m.retain_transfers(&["SCC-2026-002"]);
        let text = m.encode();
        assert!(!text.contains("OLD-1"));
        assert_eq!(m.volume("OLD-1"), None);
        assert!(text.contains("SCC-2026-002"));
    }

    #[test]
    fn transfers_beyond_the_cap_are_refused() {
        let m = Metrics::new();
        for i in 0..MAX_TRANSFERS {
            assert!(m.set_volume(&format!("T-{i}"), 1, 0));
        }
        assert!(!m.set_volume("one-too-many", 1, 0));
        assert!(m.set_volume("T-0", 2, 0), "known transfers still update");
        assert_eq!(m.volume("T-0"), Some((2, 0)));
    }
}
