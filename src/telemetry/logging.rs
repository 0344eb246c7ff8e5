//! Tracing setup: human-readable or JSON lines on stderr (stdout belongs to `scan` and
//! `explain` output), `RUST_LOG`-style filters, and the canonical line emitted once per
//! blocked request (Smokescreen-style: one line a person can grep, with the reason).
//!
//! The canonical line names categories and counts, never values: the classifier already hides
//! raw identifiers, and this module only ever reads category names and counts from a report.

use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::str::FromStr;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::classify::{Finding, ScanReport};
use crate::geo::Destination;
use crate::policy::Decision;

/// Environment variable selecting the log format when no flag does (`human` or `json`).
pub const LOG_FORMAT_ENV: &str = "CHUJING_LOG_FORMAT";

/// Target of the canonical decision line, so it can be filtered on its own
/// (`RUST_LOG=warn,chujing::decision=info`).
pub const DECISION_TARGET: &str = "chujing::decision";

/// Filter used when neither an explicit filter nor `RUST_LOG` is given.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Compact text for a terminal.
    #[default]
    Human,
    /// One JSON object per line, fields flattened, for log shippers.
    Json,
}

impl LogFormat {
    /// The format named in [`LOG_FORMAT_ENV`], if set.
    pub fn from_env() -> Result<Option<LogFormat>, LoggingError> {
        match std::env::var(LOG_FORMAT_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<LogFormat, LoggingError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(LoggingError::Format(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("unknown log format {0:?}; use \"human\" or \"json\"")]
    Format(String),
    #[error("invalid log filter {filter:?}: {message}; use RUST_LOG syntax such as \"info,chujing=debug\"")]
    Filter { filter: String, message: String },
    #[error("a global tracing subscriber is already installed; call telemetry::logging::init once, at startup")]
    AlreadyInitialised,
}

/// Installs the global subscriber. `filter` is an explicit override (a CLI flag); with `None`
/// the `RUST_LOG` environment variable applies, and without that, [`DEFAULT_FILTER`].
pub fn init(format: LogFormat, filter: Option<&str>) -> Result<(), LoggingError> {
    let env_filter = resolve_filter(filter)?;
    let result = match format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            // Colours only for a terminal: escape codes would litter journald and files.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(env_filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInitialised)
}

/// A subscriber writing to `writer` (tests, or embedding chujing as a library).
pub fn subscriber<W>(
    format: LogFormat,
    filter: Option<&str>,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env_filter = resolve_filter(filter)?;
    Ok(match format {
        LogFormat::Human => Box::new(
            tracing_subscriber::fmt()
                .with_env_filter(env_filter)
                .with_ansi(false)
                .with_writer(writer)
                .finish(),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_env_filter(env_filter)
                .with_writer(writer)
                .finish(),
        ),
    })
}

fn resolve_filter(filter: Option<&str>) -> Result<EnvFilter, LoggingError> {
    let directives = match filter {
        Some(f) => f.to_string(),
        None => std::env::var(EnvFilter::DEFAULT_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_FILTER.to_string()),
    };
    EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| LoggingError::Filter {
            filter: directives.clone(),
            message: e.to_string(),
        })
}

/// Everything the canonical blocked-request line says. Borrowed: building one costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct BlockedRequest<'a> {
    pub request_id: &'a str,
    pub client: SocketAddr,
    pub destination: &'a Destination,
    pub decision: &'a Decision,
    pub report: &'a ScanReport,
    /// False in monitor mode: the request was forwarded although the decision is `block`.
    pub enforced: bool,
}

/// Emits the one canonical line for a blocked (or, in monitor mode, would-be-blocked)
/// request at `WARN` on target [`DECISION_TARGET`]. Category names and counts only.
pub fn log_blocked(line: &BlockedRequest<'_>) {
    let d = line.destination;
    let country = d.country.as_ref().map(|c| c.as_str()).unwrap_or("");
    let transfer = line.decision.transfer.as_deref().unwrap_or("");
    let categories = CategoryNames(&line.report.findings);
    let message = if line.enforced {
        "request blocked"
    } else {
        "request would be blocked (monitor mode)"
    };
    tracing::warn!(
        target: DECISION_TARGET,
        request_id = line.request_id,
        client = %line.client,
        host = d.host.as_str(),
        port = d.port,
        ip = %d.ip,
        country,
        region = d.region.as_str(),
        reason = line.decision.reason.as_str(),
        transfer,
        categories = %categories,
        subjects = line.report.subjects.len() as u64,
        action = line.decision.action.as_str(),
        enforced = line.enforced,
        "{message}"
    );
}

/// Comma-separated category names, written straight into the log line (no `Vec<String>`).
struct CategoryNames<'a>(&'a [Finding]);

impl fmt::Display for CategoryNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, finding) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(finding.category.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Category, DataClass, Subject};
    use crate::geo::{CountryCode, Region};
    use crate::policy::{Action, Reason};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn blocked_fixture() -> (Destination, Decision, ScanReport) {
        let destination = Destination {
            host: "api.partner.de".into(),
            port: 443,
            ip: "203.0.113.7".parse().unwrap(),
            country: CountryCode::parse("DE"),
            region: Region::Abroad,
        };
        let decision = Decision {
            action: Action::Block,
            reason: Reason::CategoryNotApproved,
            transfer: Some("SCC-2026-002".into()),
            explanation: ["category cn_resident_id not in transfer"]
                .into_iter()
                .collect(),
            volume_claim: None,
        };
        let report = ScanReport {
            bytes: 512,
            findings: vec![
                Finding {
                    category: Category::new(Category::CN_MOBILE),
                    class: DataClass::Personal,
                    count: 2,
                    samples: vec!["138****5678".into()],
                },
                Finding {
                    category: Category::new(Category::CN_RESIDENT_ID),
                    class: DataClass::Sensitive,
                    count: 1,
                    samples: vec!["110***********123X".into()],
                },
            ],
            subjects: vec![Subject {
                key: [0xab; 16],
                sensitive: true,
            }],
            uninspectable: None,
        };
        (destination, decision, report)
    }

    fn capture(format: LogFormat, filter: &str, enforced: bool) -> String {
        let buffer = Buffer::default();
        let sub = subscriber(format, Some(filter), buffer.clone()).unwrap();
        let (destination, decision, report) = blocked_fixture();
        tracing::subscriber::with_default(sub, || {
            log_blocked(&BlockedRequest {
                request_id: "req-42",
                client: "10.1.2.3:50123".parse().unwrap(),
                destination: &destination,
                decision: &decision,
                report: &report,
                enforced,
            });
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn canonical_line_is_one_json_object_with_names_not_values() {
        let out = capture(LogFormat::Json, "info", true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], DECISION_TARGET);
        assert_eq!(v["message"], "request blocked");
        assert_eq!(v["request_id"], "req-42");
        assert_eq!(v["client"], "10.1.2.3:50123");
        assert_eq!(v["host"], "api.partner.de");
        assert_eq!(v["ip"], "203.0.113.7");
        assert_eq!(v["country"], "DE");
        assert_eq!(v["region"], "abroad");
        assert_eq!(v["reason"], "category_not_approved");
        assert_eq!(v["transfer"], "SCC-2026-002");
        assert_eq!(v["categories"], "cn_mobile,cn_resident_id");
        assert_eq!(v["subjects"], 1);
        assert_eq!(v["action"], "block");
        assert_eq!(v["enforced"], true);
        // Neither masked samples nor subject hashes reach the log.
        assert!(!out.contains("138****5678"));
        assert!(!out.contains("123X"));
        assert!(!out.to_lowercase().contains("abababab"));
    }

    #[test]
    fn monitor_mode_says_would_be_blocked() {
        let out = capture(LogFormat::Human, "info", false);
        assert!(out.contains("would be blocked"), "{out}");
        assert!(
            out.contains("reason=\"category_not_approved\"")
                || out.contains("reason=category_not_approved"),
            "{out}"
        );
        assert!(out.contains("enforced=false"), "{out}");
    }

    #[test]
    fn filters_apply_to_the_decision_target() {
        assert_eq!(capture(LogFormat::Json, "error", true), "");
        assert_eq!(
            capture(LogFormat::Json, "info,chujing::decision=off", true),
            ""
        );
        assert!(!capture(LogFormat::Json, "off,chujing::decision=warn", true).is_empty());
    }

    #[test]
    fn bad_filter_and_format_are_typed_errors() {
        let err = subscriber(LogFormat::Json, Some("info,chujing=loud"), std::io::sink)
            .err()
            .unwrap();
        assert!(matches!(err, LoggingError::Filter { .. }), "{err}");
        assert!(err.to_string().contains("RUST_LOG syntax"));
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert!(matches!(
            "xml".parse::<LogFormat>(),
            Err(LoggingError::Format(_))
        ));
    }
}
