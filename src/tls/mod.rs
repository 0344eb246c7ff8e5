//! TLS interception for CONNECT tunnels: the interception CA ([`ca`]: load, `ca init`),
//! leaf certificates minted per host and kept in a bounded cache ([`leaf`]), and the pure
//! rules that decide what a tunnel may do ([`rules`]: bypass globs, SNI vs CONNECT authority,
//! destinations a tunnel must never reach). The sockets live in `proxy::connect`; this module
//! never touches the network, so every rule is tested with plain values.
//!
//! Built once per runtime from `[tls_intercept]`: the CA key is read and parsed at start or
//! reload, never per connection.

pub mod ca;
pub mod leaf;
pub mod rules;

use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{FailMode, TlsInterceptConfig};

pub use ca::{CaFiles, CertificateAuthority};
pub use leaf::{LeafCache, DEFAULT_LEAF_CACHE_CAPACITY, LEAF_BACKDATE, LEAF_VALIDITY};
pub use rules::{sni_agrees, BypassList, Refusal};

/// Errors at the TLS-interception boundary. Messages name the file or host and the fix;
/// none carries request content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}; run `chujing ca init --out certs/` or fix [tls_intercept] {what}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} {path} is not usable: {message}")]
    Parse {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("{path} already exists; pass --force to replace it (certificates issued by the old CA stop being trusted)")]
    Exists { path: String },
    #[error("cannot write {path}: {source}; check that the directory is writable")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot issue a certificate for host {host:?}: {message}")]
    Mint { host: String, message: String },
    #[error("cannot generate a key: {0}")]
    KeyGen(String),
}

/// Everything a CONNECT tunnel needs from `[tls_intercept]`, compiled once per runtime.
#[derive(Debug)]
pub struct Interceptor {
    leaves: LeafCache,
    bypass: BypassList,
    allow: Vec<IpNet>,
    fail_mode: Option<FailMode>,
}

impl Interceptor {
    /// Loads the CA (cert and key files) and compiles the bypass list.
    pub fn from_config(config: &TlsInterceptConfig) -> Result<Interceptor, TlsError> {
        let ca = CertificateAuthority::load(&config.ca_cert, &config.ca_key)?;
        let capacity = config
            .leaf_cache_size
            .unwrap_or(DEFAULT_LEAF_CACHE_CAPACITY);
        Ok(Interceptor::new(
            Arc::new(ca),
            capacity,
            BypassList::new(&config.bypass),
            config.allow_destinations.clone(),
            config.fail_mode,
        ))
    }

    pub fn new(
        ca: Arc<CertificateAuthority>,
        leaf_cache_capacity: usize,
        bypass: BypassList,
        allow: Vec<IpNet>,
        fail_mode: Option<FailMode>,
    ) -> Interceptor {
        Interceptor {
            leaves: LeafCache::new(ca, leaf_cache_capacity),
            bypass,
            allow,
            fail_mode,
        }
    }

    /// Leaf certificates (and their rustls server configs), per host.
    pub fn leaves(&self) -> &LeafCache {
        &self.leaves
    }

    /// Whether `host` is tunnelled without interception.
    pub fn bypassed(&self, host: &str) -> bool {
        self.bypass.matches(host)
    }

    /// Networks a tunnel may reach even though they are link-local/metadata or our own.
    pub fn allowed_destinations(&self) -> &[IpNet] {
        &self.allow
    }

    /// Fail mode for tunnels whose content cannot be read (bypassed, or not TLS); `None`
    /// means `[classification] fail_mode` applies, as for any other uninspectable body.
    pub fn fail_mode(&self) -> Option<FailMode> {
        self.fail_mode
    }
}
