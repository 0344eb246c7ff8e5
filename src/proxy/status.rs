//! What the running proxy reports about itself on the admin listener: readiness (geo
//! database loaded, policy valid, volume store reachable, audit log writable) and the
//! `/policy` document. The volume store is probed off the request path by a background task
//! that also refreshes the per-transfer volume gauges.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::Proxy;
use crate::telemetry::admin::{checks, ReadinessCheck, StatusSource};
use crate::telemetry::PolicyStatus;
use crate::volume::ENTITY_LEDGER;

/// Health facts gathered off the request path.
#[derive(Debug)]
pub struct Health {
    pub(super) audit_ok: AtomicBool,
    store_ok: AtomicBool,
    store_detail: Mutex<String>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            audit_ok: AtomicBool::new(true),
            // Unknown until the first probe: not ready yet.
            store_ok: AtomicBool::new(false),
            store_detail: Mutex::new("volume store not probed yet".into()),
        }
    }
}

impl StatusSource for Proxy {
    fn readiness(&self) -> Vec<ReadinessCheck> {
        // A runtime only exists once its geo database opened and its policy compiled, and a
        // reload that fails keeps the previous one: both are ready by construction.
        let mut out = vec![
            ReadinessCheck::ok(checks::GEO_DB),
            ReadinessCheck::ok(checks::POLICY),
        ];
        if self.health.store_ok.load(Ordering::Relaxed) {
            out.push(ReadinessCheck::ok(checks::VOLUME_STORE));
        } else {
            let detail = self
                .health
                .store_detail
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default();
            out.push(ReadinessCheck::failed(checks::VOLUME_STORE, detail));
        }
        if self.health.audit_ok.load(Ordering::Relaxed) {
            out.push(ReadinessCheck::ok(checks::AUDIT));
        } else {
            out.push(ReadinessCheck::failed(
                checks::AUDIT,
                "the last audit write failed; check the disk and [audit] path",
            ));
        }
        out
    }

    fn policy_status(&self) -> serde_json::Value {
        let rt = self.runtime();
        let now = Utc::now();
        PolicyStatus::new(
            &rt.loaded,
            rt.loaded_at,
            rt.policy.local_date(now),
            self.metrics(),
        )
        .to_json()
    }
}

/// Probes the volume store every `every` (a report for the current year), recording
/// reachability and refreshing the volume gauges. Runs until the task is dropped.
pub async fn probe_volume(proxy: Arc<Proxy>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        let rt = proxy.runtime();
        let year = rt.policy.local_year(Utc::now());
        let probe = tokio::time::timeout(every, rt.volume.report(Some(year))).await;
        match probe {
            Ok(Ok(rows)) => {
                proxy.health.store_ok.store(true, Ordering::Relaxed);
                for row in rows.iter().filter(|r| r.transfer != ENTITY_LEDGER) {
                    proxy.metrics().set_volume(
                        &row.transfer,
                        row.individuals,
                        row.sensitive_individuals,
                    );
                }
            }
            Ok(Err(e)) => record_store_failure(&proxy, e.to_string()),
            Err(_) => record_store_failure(
                &proxy,
                format!("volume store did not answer within {every:?}"),
            ),
        }
    }
}

fn record_store_failure(proxy: &Proxy, detail: String) {
    proxy.health.store_ok.store(false, Ordering::Relaxed);
    if let Ok(mut d) = proxy.health.store_detail.lock() {
        *d = detail;
    }
}
