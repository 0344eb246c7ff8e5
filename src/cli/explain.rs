//! `chujing explain`: the decision the proxy would make for a request, as JSON, without
//! sending anything. It runs the same classifier and decision table as the proxy; volume is
//! not counted (the claim it would make is shown instead).

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::classify::{Classifier, ClassifierOptions, Finding, ScanContext};
use crate::config::LoadedConfig;
use crate::geo::{GeoDb, Region, Resolver};
use crate::policy::{Action, Policy, Reason};

/// A request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    pub url: String,
    pub method: String,
    pub ip: Option<IpAddr>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub action: Action,
    pub reason: Reason,
    pub transfer: Option<String>,
    pub destination: ExplainedDestination,
    pub findings: Vec<Finding>,
    pub subjects: usize,
    pub sensitive_subjects: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uninspectable: Option<&'static str>,
    pub mode: crate::config::Mode,
    /// Whether the proxy would refuse the request (block in enforce mode).
    pub enforced: bool,
    pub at: String,
    pub explanation: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ExplainedDestination {
    pub host: String,
    pub ip: IpAddr,
    pub country: Option<String>,
    pub region: Region,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("--url {0:?} is not an absolute http(s) URL; write it as https://host/path")]
    Url(String),
    #[error("--header {0:?} is not 'Name: value'")]
    Header(String),
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    #[error(transparent)]
    Classify(#[from] crate::classify::ClassifyError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// Parses `Name: value`.
pub fn parse_header(raw: &str) -> Result<(String, String), ExplainError> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| ExplainError::Header(raw.to_string()))?;
    if name.trim().is_empty() {
        return Err(ExplainError::Header(raw.to_string()));
    }
    Ok((name.trim().to_string(), value.trim().to_string()))
}

pub async fn explain(
    loaded: &LoadedConfig,
    req: &ExplainRequest,
) -> Result<Explanation, ExplainError> {
    let config = &loaded.config;
    let uri: http::Uri = req
        .url
        .parse()
        .map_err(|_| ExplainError::Url(req.url.clone()))?;
    let scheme = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(ExplainError::Url(req.url.clone())),
    };
    let host = uri
        .host()
        .ok_or_else(|| ExplainError::Url(req.url.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(scheme);
    let geo = GeoDb::open(&config.geo)?;
    let ip = match req.ip {
        Some(ip) => ip,
        None => Resolver::new(&config.resolve).resolve(&host, port).await?,
    };
    let destination = geo.locate(&host, port, ip);
    let policy = Policy::from_config(config)?;
    let classifier = Arc::new(Classifier::new(ClassifierOptions::from_config(config)?)?);
    let at = req.at.unwrap_or_else(Utc::now);
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut scanner = classifier.scanner(ScanContext {
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        today: policy.local_date(at),
    });
    if let Some(pq) = uri.path_and_query() {
        scanner.feed_fragment(pq.as_str().as_bytes());
    }
    for (name, value) in &req.headers {
        let skip = ["host", "content-length", "content-type", "content-encoding"];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            scanner.feed_fragment(value.as_bytes());
        }
    }
    if let Some(body) = &req.body {
        scanner.feed(body);
    }
    let report = scanner.finish();
    let decision = policy.decide(&crate::policy::DecisionInput {
        destination: &destination,
        report: &report,
        at,
    });
    let mut explanation = decision.explanation.to_vec();
    if let Some(claim) = &decision.volume_claim {
        explanation.push(format!(
            "would count {} individual(s) against {} for {} (not counted by explain)",
            claim.subjects.len(),
            claim.transfer,
            claim.year
        ));
    }
    Ok(Explanation {
        action: decision.action,
        reason: decision.reason,
        transfer: decision.transfer.clone(),
        destination: ExplainedDestination {
            host,
            ip,
            country: destination.country.map(|c| c.as_str().to_string()),
            region: destination.region,
        },
        findings: report.findings.clone(),
        subjects: report.subjects.len(),
        sensitive_subjects: report.subjects.iter().filter(|s| s.sensitive).count(),
        uninspectable: report.uninspectable.as_ref().map(|u| u.code()),
        mode: policy.mode(),
        enforced: decision.action == Action::Block && policy.mode() == crate::config::Mode::Enforce,
        at: at.to_rfc3339(),
        explanation,
    })
}
