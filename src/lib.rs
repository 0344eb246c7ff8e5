//! chujing (出境): an egress proxy that finds Chinese personal information in outbound HTTP
//! requests, works out where each request is really going, and enforces the cross-border
//! transfers a company has approved under PIPL Art. 38.
//!
//! The data flow is the module order: `config` → `geo` (destination → region) → `classify`
//! (streamed body → findings) → `policy` (findings × destination × time × volume → decision)
//! → `volume` (distinct individuals per transfer per year) → `proxy` (wires it to sockets)
//! → `audit` (one event per decision) and `telemetry` (logs, metrics).
//!
//! `classify` and `policy` are pure: no sockets, no files. They are tested with plain values.
//!
//! Using the classifier as a library (the same scanner the proxy streams bodies through):
//!
//! ```
//! use std::sync::Arc;
//! use chujing::classify::{Classifier, ClassifierOptions, DataClass, ScanContext};
//!
//! let config = chujing::config::parse("", std::path::Path::new("inline.toml")).unwrap();
//! let classifier = Arc::new(Classifier::new(ClassifierOptions::from_config(&config).unwrap()).unwrap());
//! let ctx = ScanContext {
//!     content_type: Some("application/json".into()),
//!     content_encoding: None,
//!     today: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
//! };
//! // A valid resident ID split across two chunks, and an order number that only looks like one.
//! let mut scanner = classifier.scanner(ctx);
//! scanner.feed(br#"{"idNo":"1101011990"#);
//! scanner.feed(br#"03071233","orderNo":"110101199003071234"}"#);
//! let report = scanner.finish();
//! let ids = report.findings.iter().find(|f| f.category.as_str() == "cn_resident_id").unwrap();
//! assert_eq!(ids.count, 1);
//! assert_eq!(ids.class, DataClass::Sensitive);
//! assert_eq!(report.subjects.len(), 1);
//! assert!(!format!("{report:?}").contains("110101199003071233"), "never the raw value");
//! ```

pub mod alloc;
pub mod audit;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod geo;
pub mod hash;
pub mod live;
pub mod policy;
pub mod proxy;
pub mod shard;
pub mod telemetry;
pub mod tls;
pub mod volume;
