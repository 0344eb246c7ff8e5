//! The decision engine (pure: no I/O). Findings × destination × time × volume → [`Decision`],
//! exactly as the table in `shared/design/policy.md`: first rule that applies wins.
//!
//! How the proxy uses it: call [`Policy::decide`] after each chunk that changed the scan —
//! the verdict is monotone in findings, so the first block is final. When the body is
//! complete and the decision carries a [`VolumeClaim`] (approved, or forwarded under
//! fail-open), ask the volume store once, then fold the answer in with
//! [`Decision::apply_admission`] (or [`Decision::apply_volume_unavailable`] on a store error).
//! Monitor mode never changes the verdict here; the proxy decides whether to enforce it.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

mod line;
mod transfer;

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::classify::ScanReport;
use crate::config::{Config, FailMode, LegalBasis, Mode};
use crate::geo::{Destination, Region};
use crate::volume::{Admission, VolumeClaim};

pub use line::ExplanationLines;
use transfer::{CompiledTransfer, Validity};

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
    pub explanation: ExplanationLines,
    /// For `approved_transfer` with subjects: the individuals to count against the transfer.
    /// The caller asks the volume store to admit it, then calls [`Decision::apply_admission`].
    #[serde(skip)]
    pub volume_claim: Option<VolumeClaim>,
}

impl Decision {
    /// Folds the volume store's answer into the decision (`volume_cap_exceeded` on refusal).
    ///
    /// Only a decision that carries a [`VolumeClaim`] and allows the request can be turned
    /// into a block: a block already decided stays what it is (first rule that applies wins).
    pub fn apply_admission(&mut self, admission: &Admission) {
        let Some(claim) = &self.volume_claim else {
            return;
        };
        match *admission {
            Admission::Admitted {
                new_individuals,
                total,
            } => {
                self.explanation
                    .line("volume: ")
                    .n(new_individuals)
                    .s(" new individual(s) counted against ")
                    .s(&claim.transfer)
                    .s(" for ")
                    .n(claim.year)
                    .s("; ")
                    .n(total)
                    .s(" this year")
                    .done();
            }
            Admission::CapExceeded {
                cap,
                current,
                new_individuals,
            } => {
                self.explanation.push(&format!(
                    "volume: {new_individuals} new individual(s) would exceed the cap of {cap} for {} in {} ({current} already counted)",
                    claim.transfer, claim.year
                ));
                if self.action == Action::Allow {
                    self.action = Action::Block;
                    self.reason = Reason::VolumeCapExceeded;
                }
            }
        }
    }
}

impl Decision {
    /// The volume store could not be asked (outage, fail-closed): a cap that cannot be
    /// verified is treated as exceeded, so an approval becomes `volume_cap_exceeded`. Blocks
    /// and claim-less decisions are unchanged.
    pub fn apply_volume_unavailable(&mut self) {
        if self.volume_claim.is_some() && self.action == Action::Allow {
            self.action = Action::Block;
            self.reason = Reason::VolumeCapExceeded;
            self.explanation
                .push("volume: store unavailable, cap cannot be verified (fail closed): block");
        }
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
    tz: Tz,
    unknown_is_outbound: bool,
    fail_mode: FailMode,
    transfers: Vec<CompiledTransfer>,
}

/// The outcome of matching the `[[transfer]]` records against a request that carries PI.
struct TransferOutcome {
    action: Action,
    reason: Reason,
    transfer: Option<usize>,
}

impl Policy {
    pub fn from_config(config: &Config) -> Result<Policy, PolicyError> {
        let tz: Tz = config
            .timezone
            .parse()
            .map_err(|_| PolicyError::TimeZone(config.timezone.clone()))?;
        let mut transfers = Vec::with_capacity(config.transfers.len());
        for t in &config.transfers {
            let compiled = CompiledTransfer::compile(t)?;
            // Volumes are counted per transfer id: two records with one id would share caps.
            if transfers
                .iter()
                .any(|c: &CompiledTransfer| c.id == compiled.id)
            {
                return Err(PolicyError::Transfer {
                    id: t.id.clone(),
                    message: "duplicate id; every [[transfer]] needs its own id".into(),
                });
            }
            transfers.push(compiled);
        }
        Ok(Policy {
            mode: config.mode,
            tz,
            unknown_is_outbound: config.geo.unknown_is_outbound,
            fail_mode: config.classification.fail_mode,
            transfers,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The time zone whose dates and calendar year the policy uses.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The time zone's local date at `at` (for validity dates and `minor` ages).
    pub fn local_date(&self, at: DateTime<Utc>) -> chrono::NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// Calendar year in the policy's time zone: volumes count "since 1 January" local time.
    pub fn local_year(&self, at: DateTime<Utc>) -> i32 {
        self.local_date(at).year()
    }

    /// Per-year caps of a transfer (`max_individuals_per_year`,
    /// `max_sensitive_individuals_per_year`), or `None` for an unknown id. For `report`.
    pub fn transfer_caps(&self, id: &str) -> Option<(Option<u64>, Option<u64>)> {
        self.transfers
            .iter()
            .find(|t| t.id == id)
            .map(|t| (t.max_individuals, t.max_sensitive_individuals))
    }

    /// Runs the decision table. Pure and cheap; never touches the volume store.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        self.decide_explained(input, true)
    }

    /// The same decision without its explanation lines (and without the formatting they
    /// cost): the proxy re-decides after every chunk that grows the findings and needs only
    /// the verdict then; a block is decided again with [`Policy::decide`] for its audit event.
    pub fn verdict(&self, input: &DecisionInput<'_>) -> Decision {
        self.decide_explained(input, false)
    }

    fn decide_explained(&self, input: &DecisionInput<'_>, explain: bool) -> Decision {
        let dest = input.destination;
        let report = input.report;
        let mut explanation = Explain {
            on: explain,
            lines: if explain {
                ExplanationLines::for_decision()
            } else {
                ExplanationLines::default()
            },
        };

        // Row `domestic`. Only ISO `CN` is the mainland; HK, MO and TW are outbound (PIPL
        // Art. 38 speaks of "outside the territory", which the CAC reads as the mainland).
        let region = Region::of_country(dest.country);
        match region {
            Region::Mainland => {
                explanation.say(|e| {
                    e.line("destination ")
                        .s(&dest.host)
                        .s(" (")
                        .ip(dest.ip)
                        .s(") is in CN: mainland, domestic")
                        .done()
                });
                return Decision::new(Action::Allow, Reason::Domestic, None, explanation.lines);
            }
            Region::Unknown if !self.unknown_is_outbound => {
                explanation.say(|e| e.push(&format!(
                    "destination {} ({}) has no known country; geo.unknown_is_outbound = false: treated as domestic",
                    dest.host, dest.ip
                )));
                return Decision::new(Action::Allow, Reason::Domestic, None, explanation.lines);
            }
            Region::Unknown => explanation.say(|e| e.push(&format!(
                "destination {} ({}) has no known country; geo.unknown_is_outbound = true: treated as outbound",
                dest.host, dest.ip
            ))),
            _ => explanation.say(|e| {
                e.line("destination ")
                    .s(&dest.host)
                    .s(" (")
                    .ip(dest.ip)
                    .s(") is in ")
                    .s(dest.country.as_ref().map_or("", |c| c.as_str()))
                    .s(" (")
                    .s(region.as_str())
                    .s("): outside the mainland")
                    .done()
            }),
        }

        let has_pi = report.has_personal_info();
        let sensitive = report.has_sensitive();
        explanation.say(|e| findings_line(e, report, sensitive));

        // Row `uninspectable`. Fail-closed blocks outright. Fail-open forwards what could not
        // be read, but PI already found in the part that was read is still judged below — a
        // block there wins, so fail-open never launders a visible violation.
        let mut fail_open_uninspectable = false;
        if let Some(why) = &report.uninspectable {
            match self.fail_mode {
                FailMode::Closed => {
                    explanation.say(|e| e.push(&format!(
                        "body not fully inspected ({}); classification.fail_mode = \"closed\": block",
                        why.code()
                    )));
                    return Decision::new(
                        Action::Block,
                        Reason::Uninspectable,
                        None,
                        explanation.lines,
                    );
                }
                FailMode::Open => {
                    explanation.say(|e| e.push(&format!(
                        "body not fully inspected ({}); classification.fail_mode = \"open\": forwarded unless the inspected part is refused",
                        why.code()
                    )));
                    if !has_pi {
                        return Decision::new(
                            Action::Allow,
                            Reason::Uninspectable,
                            None,
                            explanation.lines,
                        );
                    }
                    fail_open_uninspectable = true;
                }
            }
        } else if !has_pi {
            // Row `no_personal_info` (also for an unknown country: nothing to protect).
            return Decision::new(
                Action::Allow,
                Reason::NoPersonalInfo,
                None,
                explanation.lines,
            );
        }

        // Row `unknown_geography`: PI to a place we cannot name cannot match any transfer
        // record (records list countries), so it is refused with its own reason.
        if region == Region::Unknown {
            explanation.say(|e| e.push("personal information to an unknown country: block"));
            return Decision::new(
                Action::Block,
                Reason::UnknownGeography,
                None,
                explanation.lines,
            );
        }

        let today = self.local_date(input.at);
        let outcome = self.match_transfers(dest, report, sensitive, today, &mut explanation);
        let transfer = outcome.transfer.map(|i| &self.transfers[i]);
        let mut decision = Decision::new(
            outcome.action,
            outcome.reason,
            transfer.map(|t| t.id.clone()),
            explanation.lines,
        );
        if outcome.reason == Reason::ApprovedTransfer {
            let t = transfer.expect("an approval names its transfer");
            if !report.subjects.is_empty() {
                let year = today.year();
                if explain {
                    decision
                        .explanation
                        .line("")
                        .n(report.subjects.len())
                        .s(" individual(s) to count against ")
                        .s(&t.id)
                        .s(" for ")
                        .n(year)
                        .done();
                }
                decision.volume_claim = Some(VolumeClaim {
                    transfer: t.id.clone(),
                    year,
                    subjects: report.subjects.clone(),
                    max_individuals: t.max_individuals,
                    max_sensitive_individuals: t.max_sensitive_individuals,
                });
            }
            if fail_open_uninspectable {
                // First row that applies wins: the request is forwarded because of fail-open,
                // but the individuals seen in the inspected part are still counted.
                decision.reason = Reason::Uninspectable;
            }
        }
        decision
    }

    /// Rows `no_approved_transfer` … `approved_transfer`, in one pass over the transfers and
    /// without allocating (the engine runs again after every chunk that changes findings).
    fn match_transfers(
        &self,
        dest: &Destination,
        report: &ScanReport,
        sensitive: bool,
        today: NaiveDate,
        explanation: &mut Explain,
    ) -> TransferOutcome {
        let mut candidates = 0usize;
        let mut valid = 0usize;
        let mut closest_invalid: Option<(usize, Validity)> = None;
        // Valid candidate lacking the fewest categories (the closest refusal).
        let mut closest_category: Option<(usize, usize)> = None;
        // Valid candidate covering every category but refusing sensitive PI.
        let mut first_sensitive_refusal: Option<usize> = None;
        let mut approved: Option<usize> = None;

        for (i, t) in self.transfers.iter().enumerate() {
            if !t.matches_destination(dest) {
                continue;
            }
            candidates += 1;
            let validity = t.validity(today);
            if validity != Validity::Valid {
                if closest_invalid.is_none_or(|(_, v)| validity.distance() < v.distance()) {
                    closest_invalid = Some((i, validity));
                }
                continue;
            }
            valid += 1;
            let missing = report
                .findings
                .iter()
                .filter(|f| !t.allows_category(f.category.as_str()))
                .count();
            if missing > 0 {
                if closest_category.is_none_or(|(_, m)| missing < m) {
                    closest_category = Some((i, missing));
                }
                continue;
            }
            if sensitive && !t.allow_sensitive {
                first_sensitive_refusal.get_or_insert(i);
                continue;
            }
            approved = Some(i);
            break;
        }

        if candidates == 0 {
            explanation.say(|e| {
                e.push(&format!(
                    "no [[transfer]] covers country {} host {} ip {}: block",
                    dest.country.map(|c| c.to_string()).unwrap_or_default(),
                    dest.host,
                    dest.ip
                ));
            });
            return TransferOutcome {
                action: Action::Block,
                reason: Reason::NoApprovedTransfer,
                transfer: None,
            };
        }
        explanation.say(|e| {
            e.line("")
                .n(candidates)
                .s(" transfer(s) match the destination; ")
                .n(valid)
                .s(" valid on ")
                .date(today)
                .s(" (")
                .s(self.tz.name())
                .s(")")
                .done()
        });
        if valid == 0 {
            let (i, validity) = closest_invalid.expect("a candidate exists and none is valid");
            let t = &self.transfers[i];
            let reason = match validity {
                Validity::NotYet(days) => {
                    explanation.say(|e| {
                        e.push(&format!(
                            "closest transfer {} becomes valid in {days} day(s): block",
                            t.id
                        ));
                    });
                    Reason::TransferNotYetValid
                }
                _ => {
                    explanation.say(|e| {
                        e.push(&format!(
                            "closest transfer {} expired {} day(s) ago: block",
                            t.id,
                            validity.distance()
                        ));
                    });
                    Reason::TransferExpired
                }
            };
            return TransferOutcome {
                action: Action::Block,
                reason,
                transfer: Some(i),
            };
        }
        if let Some(i) = approved {
            let t = &self.transfers[i];
            explanation.say(|e| {
                e.line("transfer ")
                    .s(&t.id)
                    .s(" (")
                    .s(legal_basis_str(t.legal_basis))
                    .s(") covers every category found")
                    .s(if sensitive {
                        " and allows sensitive PI: allow"
                    } else {
                        ": allow"
                    })
                    .done()
            });
            return TransferOutcome {
                action: Action::Allow,
                reason: Reason::ApprovedTransfer,
                transfer: Some(i),
            };
        }
        if let Some(i) = first_sensitive_refusal {
            explanation.say(|e| e.push(&format!(
                "transfer {} covers every category found but allow_sensitive = false and sensitive PI was found: block",
                self.transfers[i].id
            )));
            return TransferOutcome {
                action: Action::Block,
                reason: Reason::SensitiveNotApproved,
                transfer: Some(i),
            };
        }
        let (i, _) = closest_category.expect("a valid candidate that was not approved");
        let t = &self.transfers[i];
        let mut line = format!("closest transfer {} does not list:", t.id);
        for f in report
            .findings
            .iter()
            .filter(|f| !t.allows_category(f.category.as_str()))
        {
            line.push(' ');
            line.push_str(f.category.as_str());
        }
        line.push_str(": block");
        explanation.say(|e| e.push(&line));
        TransferOutcome {
            action: Action::Block,
            reason: Reason::CategoryNotApproved,
            transfer: Some(i),
        }
    }
}

/// Explanation lines, built only when asked for.
struct Explain {
    on: bool,
    lines: ExplanationLines,
}

impl Explain {
    /// Adds what `line` writes, when explaining.
    fn say(&mut self, line: impl FnOnce(&mut ExplanationLines)) {
        if self.on {
            line(&mut self.lines);
        }
    }
}

impl Decision {
    fn new(
        action: Action,
        reason: Reason,
        transfer: Option<String>,
        explanation: ExplanationLines,
    ) -> Decision {
        Decision {
            action,
            reason,
            transfer,
            explanation,
            volume_claim: None,
        }
    }
}

/// "found: cn_mobile×3, email×1; sensitive: no; 4 individual(s)" — categories and counts only.
fn findings_line(lines: &mut ExplanationLines, report: &ScanReport, sensitive: bool) {
    if report.findings.is_empty() {
        lines.push("no personal information found");
        return;
    }
    let mut line = lines.line("found:");
    for (n, f) in report.findings.iter().enumerate() {
        line = line
            .s(if n > 0 { ", " } else { " " })
            .s(f.category.as_str())
            .s("×")
            .n(f.count);
    }
    line.s("; sensitive: ")
        .s(if sensitive { "yes" } else { "no" })
        .s("; ")
        .n(report.subjects.len())
        .s(" individual(s)")
        .done()
}

fn legal_basis_str(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::SecurityAssessment => "security_assessment",
        LegalBasis::StandardContract => "standard_contract",
        LegalBasis::Certification => "certification",
        LegalBasis::ExemptionContract => "exemption_contract",
        LegalBasis::ExemptionHr => "exemption_hr",
        LegalBasis::ExemptionEmergency => "exemption_emergency",
        LegalBasis::ExemptionSmallVolume => "exemption_small_volume",
    }
}

#[cfg(test)]
mod tests;
