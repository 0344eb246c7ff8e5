//! Entity-wide statutory guard. The 2024 Provisions on Promoting and Regulating Cross-Border
//! Data Flows count, per data handler and since 1 January: ≥100,000 individuals of
//! (non-sensitive) PI needs a standard contract or certification, ≥1,000,000 (or ≥10,000 with
//! sensitive PI) a CAC security assessment, and any sensitive PI needs at least a contract or
//! certification. "以上" includes the number, so a threshold is crossed when the count
//! *reaches* it.
//!
//! The guard keeps the entity-wide year-to-date totals (one extra ledger the stores update in
//! the same transaction as the transfer's), raises warn/critical watermark events as a share
//! of each threshold, exposes the totals for metrics, and — when `block_uncovered` is on —
//! turns the thresholds the company's legal bases do not cover into caps.
//!
//! Counting every individual (also those with sensitive PI) toward the non-sensitive
//! thresholds is deliberately conservative. Transfers under the contract, HR and emergency
//! exemptions are not counted: the Provisions exempt them from the volume tests.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::ledger::{Caps, EntityChange};
use crate::config::{Config, LegalBasis};

/// ≥ this many individuals of PI: standard contract or certification required.
pub const CONTRACT_THRESHOLD: u64 = 100_000;
/// ≥ this many individuals of PI: security assessment required.
pub const ASSESSMENT_THRESHOLD: u64 = 1_000_000;
/// ≥ this many individuals of sensitive PI: security assessment required.
pub const SENSITIVE_ASSESSMENT_THRESHOLD: u64 = 10_000;

/// How far past a threshold's share a count is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Watermark {
    Warn,
    Critical,
    /// The threshold itself was reached.
    Reached,
}

impl Watermark {
    pub fn as_str(self) -> &'static str {
        match self {
            Watermark::Warn => "warn",
            Watermark::Critical => "critical",
            Watermark::Reached => "reached",
        }
    }
}

/// An entity-wide count crossed a watermark. Counts only; no individual is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatermarkEvent {
    pub year: i32,
    /// "personal" (all individuals) or "sensitive".
    pub class: &'static str,
    pub threshold: u64,
    pub level: Watermark,
    pub count: u64,
    /// What the threshold requires, e.g. "security_assessment".
    pub requires: &'static str,
    /// Whether a legal basis on file covers the requirement.
    pub covered: bool,
}

type Sink = Arc<dyn Fn(&WatermarkEvent) + Send + Sync>;

/// Guard configuration.
#[derive(Clone)]
pub struct GuardOptions {
    /// Keep the entity ledger at all.
    pub enabled: bool,
    /// Refuse new individuals that would reach a threshold no legal basis covers.
    pub block_uncovered: bool,
    /// A `security_assessment` transfer is on file.
    pub has_assessment: bool,
    /// A `standard_contract` or `certification` transfer is on file.
    pub has_contract_or_certification: bool,
    /// Transfers not counted toward the entity totals (contract/HR/emergency exemptions).
    pub exempt_transfers: HashSet<String>,
    /// Watermarks as shares of each threshold (e.g. 0.8 and 0.95).
    pub warn: f64,
    pub critical: f64,
    /// Receives watermark events (the audit sink, in the proxy). Default: a `tracing` warning.
    pub sink: Option<Sink>,
}

impl fmt::Debug for GuardOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardOptions")
            .field("enabled", &self.enabled)
            .field("block_uncovered", &self.block_uncovered)
            .field("has_assessment", &self.has_assessment)
            .field(
                "has_contract_or_certification",
                &self.has_contract_or_certification,
            )
            .field("exempt_transfers", &self.exempt_transfers)
            .field("warn", &self.warn)
            .field("critical", &self.critical)
            .field("sink", &self.sink.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions {
            enabled: true,
            block_uncovered: false,
            has_assessment: false,
            has_contract_or_certification: false,
            exempt_transfers: HashSet::new(),
            warn: 0.8,
            critical: 0.95,
            sink: None,
        }
    }
}

impl GuardOptions {
    /// Coverage and exemptions from the `[[transfer]]` records on file.
    pub fn from_config(config: &Config) -> GuardOptions {
        let mut g = GuardOptions::default();
        for t in &config.transfers {
            match t.legal_basis {
                LegalBasis::SecurityAssessment => g.has_assessment = true,
                LegalBasis::StandardContract | LegalBasis::Certification => {
                    g.has_contract_or_certification = true
                }
                LegalBasis::ExemptionContract
                | LegalBasis::ExemptionHr
                | LegalBasis::ExemptionEmergency => {
                    g.exempt_transfers.insert(t.id.clone());
                }
                LegalBasis::ExemptionSmallVolume => {}
            }
        }
        g
    }

    /// Caps for the entity ledger: `Some` when `block_uncovered` is on, set one below each
    /// threshold the legal bases on file do not cover.
    pub(crate) fn entity_caps(&self) -> Caps {
        if !self.block_uncovered || self.has_assessment {
            return Caps::default();
        }
        if self.has_contract_or_certification {
            Caps {
                all: Some(ASSESSMENT_THRESHOLD - 1),
                sensitive: Some(SENSITIVE_ASSESSMENT_THRESHOLD - 1),
            }
        } else {
            // Only the small-volume exemption: below 100,000 and no sensitive PI at all.
            Caps {
                all: Some(CONTRACT_THRESHOLD - 1),
                sensitive: Some(0),
            }
        }
    }

    /// Entity caps to apply to a claim on `transfer`, or `None` when it is not counted.
    pub(crate) fn entity_for(&self, transfer: &str) -> Option<Caps> {
        (self.enabled && !self.exempt_transfers.contains(transfer)).then(|| self.entity_caps())
    }
}

/// Entity-wide totals for metrics (gauges) and the outage counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EntitySnapshot {
    pub year: i32,
    pub individuals: u64,
    pub sensitive_individuals: u64,
    /// Claims answered by the outage mode because the store was unreachable.
    pub store_unavailable_total: u64,
}

/// Runtime side of the guard, one per store: watermark detection and counters.
#[derive(Debug)]
pub struct EntityGuard {
    options: GuardOptions,
    year: AtomicI64,
    individuals: AtomicU64,
    sensitive: AtomicU64,
    unavailable: AtomicU64,
}

impl EntityGuard {
    pub fn new(options: GuardOptions) -> EntityGuard {
        EntityGuard {
            options,
            year: AtomicI64::new(0),
            individuals: AtomicU64::new(0),
            sensitive: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
        }
    }

    pub fn options(&self) -> &GuardOptions {
        &self.options
    }

    pub fn snapshot(&self) -> EntitySnapshot {
        EntitySnapshot {
            year: self.year.load(Ordering::Relaxed) as i32,
            individuals: self.individuals.load(Ordering::Relaxed),
            sensitive_individuals: self.sensitive.load(Ordering::Relaxed),
            store_unavailable_total: self.unavailable.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn record_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Updates the gauges and emits an event for each watermark the change crossed.
    pub(crate) fn observe(&self, change: &EntityChange) {
        let year = i64::from(change.year);
        // Keep the latest year only: a late claim for last year must not roll the gauge back.
        // Each maximum is read before it is raised: usually nothing grows, and a read leaves
        // the cache line shared where a read-modify-write would pull it from the other
        // workers on every counted request.
        let raise = |gauge: &AtomicU64, value: u64| {
            if gauge.load(Ordering::Relaxed) < value {
                gauge.fetch_max(value, Ordering::Relaxed);
            }
        };
        let latest = self.year.load(Ordering::Relaxed);
        if latest < year {
            self.year.fetch_max(year, Ordering::Relaxed);
        }
        if latest <= year {
            raise(&self.individuals, change.after.0);
            raise(&self.sensitive, change.after.1);
        }
        if change.after == change.before {
            // Only repeats: no count moved, so no watermark can have been crossed.
            return;
        }
        let thresholds: [(&'static str, u64, u64, u64, &'static str, bool); 3] = [
            (
                "personal",
                CONTRACT_THRESHOLD,
                change.before.0,
                change.after.0,
                "standard_contract_or_certification",
                self.options.has_contract_or_certification || self.options.has_assessment,
            ),
            (
                "personal",
                ASSESSMENT_THRESHOLD,
                change.before.0,
                change.after.0,
                "security_assessment",
                self.options.has_assessment,
            ),
            (
                "sensitive",
                SENSITIVE_ASSESSMENT_THRESHOLD,
                change.before.1,
                change.after.1,
                "security_assessment",
                self.options.has_assessment,
            ),
        ];
        for (class, threshold, before, after, requires, covered) in thresholds {
            for (level, share) in [
                (Watermark::Warn, self.options.warn),
                (Watermark::Critical, self.options.critical),
                (Watermark::Reached, 1.0),
            ] {
                let mark = ((threshold as f64) * share).ceil() as u64;
                if before < mark && after >= mark {
                    self.emit(&WatermarkEvent {
                        year: change.year,
                        class,
                        threshold,
                        level,
                        count: after,
                        requires,
                        covered,
                    });
                }
            }
        }
    }

    fn emit(&self, event: &WatermarkEvent) {
        match &self.options.sink {
            Some(sink) => sink(event),
            None => tracing::warn!(
                target: "chujing::volume",
                year = event.year,
                class = event.class,
                threshold = event.threshold,
                level = event.level.as_str(),
                count = event.count,
                requires = event.requires,
                covered = event.covered,
                "entity-wide cross-border volume watermark crossed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn crossings_fire_once_per_watermark() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink_events = Arc::clone(&events);
        let guard = EntityGuard::new(GuardOptions {
            sink: Some(Arc::new(move |e: &WatermarkEvent| {
                sink_events.lock().unwrap().push(e.clone())
            })),
            ..GuardOptions::default()
        });
        let step = |before: u64, after: u64| EntityChange {
            year: 2026,
            before: (before, 0),
            after: (after, 0),
        };
        guard.observe(&step(79_998, 79_999));
        assert!(events.lock().unwrap().is_empty());
        guard.observe(&step(79_999, 80_000));
        guard.observe(&step(80_000, 80_001));
        guard.observe(&step(94_000, 100_000));
        let got: Vec<_> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.threshold, e.level))
            .collect();
        assert_eq!(
            got,
            vec![
                (CONTRACT_THRESHOLD, Watermark::Warn),
                (CONTRACT_THRESHOLD, Watermark::Critical),
                (CONTRACT_THRESHOLD, Watermark::Reached),
            ]
        );
        assert_eq!(guard.snapshot().individuals, 100_000);
    }

    #[test]
    fn caps_follow_the_legal_bases_on_file() {
        let mut g = GuardOptions {
            block_uncovered: true,
            ..GuardOptions::default()
        };
        assert_eq!(g.entity_caps().all, Some(99_999));
        assert_eq!(g.entity_caps().sensitive, Some(0));
        g.has_contract_or_certification = true;
        assert_eq!(g.entity_caps().all, Some(999_999));
        assert_eq!(g.entity_caps().sensitive, Some(9_999));
        g.has_assessment = true;
        assert_eq!(g.entity_caps(), Caps::default());
        g.block_uncovered = false;
        g.has_assessment = false;
        assert_eq!(g.entity_caps(), Caps::default());
    }

    #[test]
    fn coverage_and_exemptions_come_from_the_transfers_on_file() {
        let config: Config = toml::from_str(
            r#"
[[transfer]]
id = "HR"
legal_basis = "exemption_hr"
countries = ["HK"]
categories = []
[[transfer]]
id = "SCC"
legal_basis = "standard_contract"
countries = ["US"]
categories = []
"#,
        )
        .unwrap();
        let g = GuardOptions::from_config(&config);
        assert!(g.has_contract_or_certification && !g.has_assessment);
        assert!(g.entity_for("HR").is_none());
        assert_eq!(g.entity_for("SCC"), Some(Caps::default()));
    }
}
