//! Tracing setup (human or JSON output, `RUST_LOG` filters), Prometheus metrics and the admin
//! endpoints.
