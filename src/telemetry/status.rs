//! The `/policy` document: which configuration is in force (version hash, path, load time,
//! mode) and each approved transfer with its validity today and its usage this year.
//!
//! Built from the loaded configuration and the volume gauges in [`Metrics`]; an integrator's
//! [`crate::telemetry::StatusSource::policy_status`] can return it as is
//! (`serde_json::to_value(PolicyStatus::new(..))`). Transfers carry ids, legal bases,
//! recipients and filing references (company records), never personal data.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::config::{LegalBasis, LoadedConfig, Mode, TransferConfig};
use crate::telemetry::Metrics;

/// Whether a transfer's dates cover a given local date (bounds inclusive, as in the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    NotYetValid,
    Expired,
}

impl Validity {
    pub fn of(transfer: &TransferConfig, today: NaiveDate) -> Validity {
        match (transfer.valid_from, transfer.valid_until) {
            (Some(from), _) if today < from => Validity::NotYetValid,
            (_, Some(until)) if today > until => Validity::Expired,
            _ => Validity::Valid,
        }
    }
}

/// One approved transfer as `/policy` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferStatus {
    pub id: String,
    pub legal_basis: LegalBasis,
    pub reference: Option<String>,
    pub recipient: Option<String>,
    pub countries: Vec<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub validity: Validity,
    /// Days left until `valid_until` (inclusive of today), when it has one and is not expired.
    pub days_left: Option<i64>,
    /// Distinct individuals this calendar year (`None`: not reported by the volume store yet).
    pub individuals: Option<u64>,
    pub sensitive_individuals: Option<u64>,
    pub max_individuals_per_year: Option<u64>,
    pub max_sensitive_individuals_per_year: Option<u64>,
}

/// The whole `/policy` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyStatus {
    /// BLAKE3 prefix of the configuration file (the `policy.version` of audit events).
    pub version: String,
    pub path: String,
    pub loaded_at: DateTime<Utc>,
    pub mode: Mode,
    pub timezone: String,
    /// The policy's local date the validities were computed for.
    pub today: NaiveDate,
    pub transfers: Vec<TransferStatus>,
}

impl PolicyStatus {
    /// `today` is the policy's local date (`Policy::local_date(now)`), so validity matches
    /// what the decision engine applies.
    pub fn new(
        loaded: &LoadedConfig,
        loaded_at: DateTime<Utc>,
        today: NaiveDate,
        metrics: &Metrics,
    ) -> PolicyStatus {
        let config = &loaded.config;
        let transfers = config
            .transfers
            .iter()
            .map(|t| {
                let validity = Validity::of(t, today);
                let usage = metrics.volume(&t.id);
                TransferStatus {
                    id: t.id.clone(),
                    legal_basis: t.legal_basis,
                    reference: t.reference.clone(),
                    recipient: t.recipient.clone(),
                    countries: t.countries.clone(),
                    valid_from: t.valid_from,
                    valid_until: t.valid_until,
                    validity,
                    days_left: match (validity, t.valid_until) {
                        (Validity::Expired, _) | (_, None) => None,
                        (_, Some(until)) => Some((until - today).num_days() + 1),
                    },
                    individuals: usage.map(|u| u.0),
                    sensitive_individuals: usage.map(|u| u.1),
                    max_individuals_per_year: t.max_individuals_per_year,
                    max_sensitive_individuals_per_year: t.max_sensitive_individuals_per_year,
                }
            })
            .collect();
        PolicyStatus {
            version: loaded.hash.clone(),
            path: loaded.path.display().to_string(),
            loaded_at,
            mode: config.mode,
            timezone: config.timezone.clone(),
            today,
            transfers,
        }
    }

    /// As JSON, for [`crate::telemetry::StatusSource::policy_status`].
    pub fn to_json(&self) -> serde_json::Value {
        // Only plain strings, numbers, dates and enums: serialisation cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const POLICY: &str = r#"
mode = "monitor"
[[transfer]]
id = "SCC-2026-002"
legal_basis = "standard_contract"
reference = "filing no. 42"
recipient = "Support Vendor Inc"
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

[[transfer]]
id = "NEXT"
legal_basis = "certification"
countries = ["SG"]
categories = ["email"]
valid_from = "2027-01-01"
"#;

    fn loaded() -> LoadedConfig {
        LoadedConfig {
            config: crate::config::parse(POLICY, Path::new("test.toml")).unwrap(),
            path: PathBuf::from("test.toml"),
            hash: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn validity_bounds_are_inclusive() {
        let config = loaded().config;
        let t = &config.transfers[0];
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(Validity::of(t, d("2026-01-14")), Validity::NotYetValid);
        assert_eq!(Validity::of(t, d("2026-01-15")), Validity::Valid);
        assert_eq!(Validity::of(t, d("2027-01-14")), Validity::Valid);
        assert_eq!(Validity::of(t, d("2027-01-15")), Validity::Expired);
    }

    #[test]
    fn status_lists_transfers_with_validity_and_usage() {
        let metrics = Metrics::new();
        metrics.set_volume("SCC-2026-002", 1234, 5);
        let today = "2026-11-24".parse().unwrap();
        let at = "2026-11-24T09:00:00Z".parse().unwrap();
        let status = PolicyStatus::new(&loaded(), at, today, &metrics);
        let v = status.to_json();
        assert_eq!(v["version"], "0123456789abcdef");
        assert_eq!(v["mode"], "monitor");
        assert_eq!(v["loaded_at"], "2026-11-24T09:00:00Z");
        let t = &v["transfers"];
        assert_eq!(t[0]["id"], "SCC-2026-002");
        assert_eq!(t[0]["legal_basis"], "standard_contract");
        assert_eq!(t[0]["validity"], "valid");
        assert_eq!(t[0]["days_left"], 52);
        assert_eq!(t[0]["individuals"], 1234);
        assert_eq!(t[0]["sensitive_individuals"], 5);
        assert_eq!(t[0]["max_individuals_per_year"], 900000);
        assert_eq!(t[1]["validity"], "expired");
        assert!(t[1]["days_left"].is_null());
        assert!(t[1]["individuals"].is_null());
        assert_eq!(t[2]["validity"], "not_yet_valid");
    }
}
