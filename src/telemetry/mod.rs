//! Operating chujing: tracing setup (human or JSON output, `RUST_LOG` filters, the canonical
//! blocked-request line), Prometheus metrics, and the admin endpoints (`/healthz`, `/readyz`,
//! `/metrics`, `/policy`) on their own listener, never on a proxy listener.

pub mod admin;
pub mod logging;
pub mod metrics;
pub mod sharded;
pub mod status;

pub use admin::{route, serve_admin, AdminBody, AdminState, ReadinessCheck, StatusSource};
pub use logging::{log_blocked, BlockedRequest, LogFormat, LoggingError};
pub use metrics::{ConnectionGuard, Metrics};
pub use status::{PolicyStatus, TransferStatus, Validity};
