//! Audit events: one JSON line per decision about an outbound request, field names following
//! the Elastic Common Schema (ECS) where one exists (`@timestamp`, `event.*`, `source.*`,
//! `destination.*`, `url.*`, `http.*`, `error.*`); chujing's own fields live under `chujing.*`.
//!
//! Never raw personal data: categories, counts, masked samples and the number of individuals
//! only. The URL path and query are left out on purpose, because they can carry identifiers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::classify::{Finding, ScanReport};
use crate::config::Mode;
use crate::geo::Destination;
use crate::policy::Decision;

/// Errors writing the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}; check [audit] path and that its directory is writable")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write audit log {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// One audit event. Built by the proxy (and `explain`), serialised as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub event: EventFields,
    pub source: Option<EndpointFields>,
    pub destination: DestinationFields,
    pub url: UrlFields,
    pub http: HttpFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorFields>,
    pub chujing: ChujingFields,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventFields {
    pub kind: &'static str,
    pub category: [&'static str; 1],
    pub action: &'static str,
    /// ECS: `success` (forwarded), `failure` (refused or not delivered).
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
    pub duration: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointFields {
    pub ip: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationFields {
    pub domain: String,
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub geo: GeoFields,
}

#[derive(Debug, Clone, Serialize)]
pub struct GeoFields {
    pub country_iso_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UrlFields {
    pub scheme: String,
    pub domain: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpFields {
    pub version: String,
    pub request: HttpRequestFields,
    pub response: HttpResponseFields,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpRequestFields {
    pub method: String,
    pub id: String,
    pub body: BodyFields,
}

#[derive(Debug, Clone, Serialize)]
pub struct BodyFields {
    /// Bytes inspected (after decoding).
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpResponseFields {
    pub status_code: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorFields {
    /// RFC 9209 error type (`connection_refused`, `destination_not_found`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// chujing's own fields: the decision and what it was based on.
#[derive(Debug, Clone, Serialize)]
pub struct ChujingFields {
    pub request_id: String,
    pub listener: &'static str,
    /// Policy verdict: `allow` | `block` (`None` when no decision could be made).
    pub action: Option<&'static str>,
    /// Whether the verdict was applied (`false` in monitor mode or for allows).
    pub enforced: bool,
    pub mode: Mode,
    pub reason: Option<&'static str>,
    pub transfer: Option<String>,
    pub region: Option<&'static str>,
    pub findings: Vec<Finding>,
    pub subjects: usize,
    pub sensitive_subjects: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uninspectable: Option<&'static str>,
    pub policy_hash: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<String>,
}

/// What the proxy knows about a request when it writes the event.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub request_id: &'a str,
    pub listener: &'static str,
    pub client: Option<std::net::SocketAddr>,
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub version: &'a str,
    pub started: DateTime<Utc>,
}

impl AuditEvent {
    /// The event for a decision (and, when known, the response status and delivery error).
    // TODO(integration): becomes an argument struct once the TLS and live-view branches,
    // which call this, have merged.
    #[allow(clippy::too_many_arguments)]
    pub fn for_decision(
        facts: &RequestFacts<'_>,
        destination: Option<&Destination>,
        decision: Option<&Decision>,
        report: Option<&ScanReport>,
        mode: Mode,
        enforced: bool,
        status: Option<u16>,
        error: Option<ErrorFields>,
        policy_hash: &str,
    ) -> AuditEvent {
        let now = Utc::now();
        let blocked =
            enforced && decision.is_some_and(|d| d.action == crate::policy::Action::Block);
        let outcome = if blocked || error.is_some() {
            "failure"
        } else {
            "success"
        };
        let subjects = report.map_or(0, |r| r.subjects.len());
        let sensitive_subjects =
            report.map_or(0, |r| r.subjects.iter().filter(|s| s.sensitive).count());
        AuditEvent {
            timestamp: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            event: EventFields {
                kind: "event",
                category: ["network"],
                action: "data_exit_decision",
                outcome,
                reason: decision.map(|d| d.reason.as_str()),
                duration: (now - facts.started).num_nanoseconds().unwrap_or(0).max(0) as u64,
            },
            source: facts.client.map(|c| EndpointFields {
                ip: c.ip(),
                port: c.port(),
            }),
            destination: DestinationFields {
                domain: facts.host.to_string(),
                ip: destination.map(|d| d.ip),
                port: destination.map_or(facts.port, |d| d.port),
                geo: GeoFields {
                    country_iso_code: destination
                        .and_then(|d| d.country)
                        .map(|c| c.as_str().to_string()),
                },
            },
            url: UrlFields {
                scheme: facts.scheme.to_string(),
                domain: facts.host.to_string(),
            },
            http: HttpFields {
                version: facts.version.to_string(),
                request: HttpRequestFields {
                    method: facts.method.to_string(),
                    id: facts.request_id.to_string(),
                    body: BodyFields {
                        bytes: report.map_or(0, |r| r.bytes),
                    },
                },
                response: HttpResponseFields {
                    status_code: status,
                },
            },
            error,
            chujing: ChujingFields {
                request_id: facts.request_id.to_string(),
                listener: facts.listener,
                action: decision.map(|d| d.action.as_str()),
                enforced,
                mode,
                reason: decision.map(|d| d.reason.as_str()),
                transfer: decision.and_then(|d| d.transfer.clone()),
                region: destination.map(|d| d.region.as_str()),
                findings: report.map(|r| r.findings.clone()).unwrap_or_default(),
                subjects,
                sensitive_subjects,
                uninspectable: report
                    .and_then(|r| r.uninspectable.as_ref())
                    .map(|u| u.code()),
                policy_hash: policy_hash.to_string(),
                explanation: decision.map(|d| d.explanation.clone()).unwrap_or_default(),
            },
        }
    }
}

/// Append-only JSON-lines audit log; each event is written and flushed before the call
/// returns, so a blocked request is on disk before its 403 leaves.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating parent directories and the file) for appending.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| AuditError::Open {
                    path: path.display().to_string(),
                    source,
                })?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event as one line. The line is built before the lock is taken so the
    /// critical section is a single `write` (appends of one buffer are not interleaved).
    pub fn write(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(event).expect("audit events always serialise");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)
            .and_then(|_| file.flush())
            .map_err(|source| AuditError::Write {
                path: self.path.display().to_string(),
                source,
            })
    }
}
