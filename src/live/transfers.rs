//! A ready [`TransferStatusSource`]: the policy's transfers (validity today, caps) joined with
//! the volume store's yearly report (per-transfer and entity-wide distinct individuals).
//!
//! The store answers asynchronously (redb, Redis) and the panel asks synchronously, so the
//! figures are kept in a small cache that [`ReportedTransfers::refresh`] replaces, typically
//! from a task started with [`ReportedTransfers::spawn_refresh`]. Reading the cache is a short
//! `std::sync::Mutex` section; no lock is held while the store is queried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::{StatutoryTotals, TransferStatus, TransferStatusSource};
use crate::config::LoadedConfig;
use crate::proxy::Proxy;
use crate::telemetry::Validity;
use crate::volume::{VolumeError, VolumeRow, ENTITY_LEDGER};

/// The transfers panel's figures, refreshed from the policy and the volume store.
#[derive(Debug, Default)]
pub struct ReportedTransfers {
    cache: Mutex<(Vec<TransferStatus>, StatutoryTotals)>,
}

impl ReportedTransfers {
    pub fn new() -> Arc<ReportedTransfers> {
        Arc::new(ReportedTransfers::default())
    }

    /// Replaces the figures: every transfer in `loaded` with its validity on `today` (the
    /// policy's local date) and its row of `rows` (the store's report for `today`'s year).
    /// A transfer without a row has counted nobody this year: 0, not "unknown".
    pub fn update(&self, loaded: &LoadedConfig, today: NaiveDate, rows: &[VolumeRow]) {
        let year = today.year();
        let row = |id: &str| rows.iter().find(|r| r.transfer == id && r.year == year);
        let transfers = loaded
            .config
            .transfers
            .iter()
            .map(|t| {
                let validity = Validity::of(t, today);
                let counted = row(&t.id);
                TransferStatus {
                    id: t.id.clone(),
                    legal_basis: t.legal_basis,
                    reference: t.reference.clone(),
                    recipient: t.recipient.clone(),
                    countries: t.countries.clone(),
                    valid_from: t.valid_from,
                    valid_until: t.valid_until,
                    validity,
                    // Inclusive of today, as `/policy` reports it.
                    days_left: match (validity, t.valid_until) {
                        (Validity::Expired, _) | (_, None) => None,
                        (_, Some(until)) => Some((until - today).num_days() + 1),
                    },
                    individuals: Some(counted.map_or(0, |r| r.individuals)),
                    sensitive_individuals: Some(counted.map_or(0, |r| r.sensitive_individuals)),
                    max_individuals_per_year: t.max_individuals_per_year,
                    max_sensitive_individuals_per_year: t.max_sensitive_individuals_per_year,
                }
            })
            .collect();
        let entity = row(ENTITY_LEDGER);
        let statutory = StatutoryTotals {
            year,
            individuals: entity.map_or(0, |r| r.individuals),
            sensitive_individuals: entity.map_or(0, |r| r.sensitive_individuals),
        };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = (transfers, statutory);
    }

    /// Asks the proxy's current volume store for this year's report and updates the figures.
    pub async fn refresh(&self, proxy: &Proxy, now: DateTime<Utc>) -> Result<(), VolumeError> {
        let rt = proxy.runtime();
        let today = rt.policy.local_date(now);
        let rows = rt.volume.report(Some(today.year())).await?;
        self.update(&rt.loaded, today, &rows);
        Ok(())
    }

    /// Refreshes now and then every `every` until the proxy is dropped; failures are logged
    /// (and the last figures kept) rather than ending the task.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        proxy: &Arc<Proxy>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        let proxy = Arc::downgrade(proxy);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(proxy) = proxy.upgrade() else { return };
                if let Err(e) = me.refresh(&proxy, Utc::now()).await {
                    tracing::warn!(error = %e, "live view: cannot read the volume report; the transfers panel keeps its last figures");
                }
            }
        })
    }
}

impl TransferStatusSource for ReportedTransfers {
    fn transfers(&self) -> Vec<TransferStatus> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    fn statutory(&self) -> StatutoryTotals {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const POLICY: &str = r#"
[[transfer]]
id = "SCC-2026-002"
legal_basis = "standard_contract"
countries = ["US"]
categories = ["cn_mobile", "email"]
valid_from = "2026-01-15"
valid_until = "2027-01-14"
max_individuals_per_year = 900000

[[transfer]]
id = "OLD"
legal_basis = "security_assessment"
countries = ["DE"]
categories = ["email"]
valid_until = "2025-12-31"
"#;

    fn row(transfer: &str, year: i32, individuals: u64, sensitive: u64) -> VolumeRow {
        VolumeRow {
            transfer: transfer.into(),
            year,
            individuals,
            sensitive_individuals: sensitive,
            max_individuals: None,
            max_sensitive_individuals: None,
            first_seen: None,
            last_seen: None,
        }
    }

    #[test]
    fn joins_policy_and_report() {
        let loaded = LoadedConfig {
            config: crate::config::parse(POLICY, Path::new("t.toml")).unwrap(),
            path: PathBuf::from("t.toml"),
            hash: "x".into(),
        };
        let source = ReportedTransfers::new();
        assert!(
            source.transfers().is_empty(),
            "nothing before the first refresh"
        );
        let today: NaiveDate = "2026-11-24".parse().unwrap();
        source.update(
            &loaded,
            today,
            &[
                row("SCC-2026-002", 2026, 1234, 5),
                row("SCC-2026-002", 2025, 999, 9),
                row(ENTITY_LEDGER, 2026, 1300, 7),
            ],
        );
        let t = source.transfers();
        assert_eq!(t[0].individuals, Some(1234));
        assert_eq!(t[0].sensitive_individuals, Some(5));
        assert_eq!(t[0].days_left, Some(52));
        assert_eq!(t[0].validity, Validity::Valid);
        assert_eq!(t[1].validity, Validity::Expired);
        assert_eq!(t[1].individuals, Some(0));
        assert_eq!(
            source.statutory(),
            StatutoryTotals {
                year: 2026,
                individuals: 1300,
                sensitive_individuals: 7
            }
        );
    }
}
