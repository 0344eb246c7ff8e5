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

pub mod audit;
pub mod classify;
pub mod cli;
pub mod config;
pub mod geo;
pub mod live;
pub mod policy;
pub mod proxy;
pub mod telemetry;
pub mod tls;
pub mod volume;
