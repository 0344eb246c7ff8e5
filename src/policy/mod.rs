//! The decision engine (pure: no I/O). Findings × destination × time × volume → [`Decision`],
//! exactly as the table in `shared/design/policy.md`: first rule that applies wins.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::classify::ScanReport;
use crate::config::{Config, Mode};
use crate::geo::Destination;
use crate::volume::{Admission, VolumeClaim};

/// What the policy says should happen to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Block => "block",
        }
    }
}

/// Reason codes: a promise to users' automation. Never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Domestic,
    NoPersonalInfo,
    Uninspectable,
    UnknownGeography,
    NoApprovedTransfer,
    TransferNotYetValid,
    TransferExpired,
    CategoryNotApproved,
    SensitiveNotApproved,
    VolumeCapExceeded,
    ApprovedTransfer,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Domestic,
        Reason::NoPersonalInfo,
        Reason::Uninspectable,
        Reason::UnknownGeography,
        Reason::NoApprovedTransfer,
        Reason::TransferNotYetValid,
        Reason::TransferExpired,
        Reason::CategoryNotApproved,
        Reason::SensitiveNotApproved,
        Reason::VolumeCapExceeded,
        Reason::ApprovedTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Domestic => "domestic",
            Reason::NoPersonalInfo => "no_personal_info",
            Reason::Uninspectable => "uninspectable",
            Reason::UnknownGeography => "unknown_geography",
            Reason::NoApprovedTransfer => "no_approved_transfer",
            Reason::TransferNotYetValid => "transfer_not_yet_valid",
            Reason::TransferExpired => "transfer_expired",
            Reason::CategoryNotApproved => "category_not_approved",
            Reason::SensitiveNotApproved => "sensitive_not_approved",
            Reason::VolumeCapExceeded => "volume_cap_exceeded",
            Reason::ApprovedTransfer => "approved_transfer",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of the decision table for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    /// The transfer that approved (or, for date/category/sensitive/volume reasons, the
    /// closest matching transfer that refused).
    pub transfer: Option<String>,
    /// Human-readable explanation, one line per check made (for `explain` and audit).
    /// Never contains personal data.
    pub explanation: Vec<String>,
    /// For `approved_transfer` with subjects: the individuals to count against the transfer.
    /// The caller asks the volume store to admit it, then calls [`Decision::apply_admission`].
    #[serde(skip)]
    pub volume_claim: Option<VolumeClaim>,
}

impl Decision {
    /// Folds the volume store's answer into the decision (`volume_cap_exceeded` on refusal).
    pub fn apply_admission(&mut self, admission: &Admission) {
        let _ = admission;
    }
}

/// Everything the decision depends on besides the policy itself.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub destination: &'a Destination,
    pub report: &'a ScanReport,
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown time zone {0:?}; use an IANA name such as \"Asia/Shanghai\"")]
    TimeZone(String),
    #[error("transfer {id:?}: {message}")]
    Transfer { id: String, message: String },
}

/// Compiled policy: transfers, mode, time zone, geography and fail-mode switches.
#[derive(Debug)]
pub struct Policy {
    mode: Mode,
}

impl Policy {
    pub fn from_config(config: &Config) -> Result<Policy, PolicyError> {
        Ok(Policy { mode: config.mode })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The time zone's local date at `at` (for validity dates and `minor` ages).
    pub fn local_date(&self, at: DateTime<Utc>) -> chrono::NaiveDate {
        at.date_naive()
    }

    /// Runs the decision table. Pure and cheap; never touches the volume store.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let _ = input;
        Decision {
            action: Action::Allow,
            reason: Reason::NoPersonalInfo,
            transfer: None,
            explanation: Vec::new(),
            volume_claim: None,
        }
    }
}
