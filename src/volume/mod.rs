//! Distinct individuals per approved transfer per calendar year (Asia/Shanghai), as the 2024
//! Provisions count them ("since 1 January"). Individuals are keyed hashes, never raw values;
//! one already counted this year does not count again. Check-and-add is atomic, so concurrent
//! requests at a cap never admit more than the cap.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

mod guard;
mod ledger;
mod memory;
mod redb_store;
mod redis_store;
pub mod report;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::classify::Subject;
use crate::config::{Config, FailMode, VolumeConfig};

pub use guard::{EntityGuard, EntitySnapshot, GuardOptions, Watermark, WatermarkEvent};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;
pub use redis_store::RedisStore;

/// A request to count `subjects` against a transfer's caps for one calendar year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeClaim {
    pub transfer: String,
    /// Calendar year in the policy's time zone.
    pub year: i32,
    pub subjects: Vec<Subject>,
    pub max_individuals: Option<u64>,
    pub max_sensitive_individuals: Option<u64>,
}

/// The store's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Counted; `new_individuals` were not seen before this year.
    Admitted { new_individuals: u64, total: u64 },
    /// Counting the new individuals would exceed a cap; nothing was counted.
    CapExceeded {
        cap: u64,
        current: u64,
        new_individuals: u64,
    },
}

/// Errors at the volume boundary. Messages name the store and the fix, never an individual.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume store unavailable: {0}")]
    Unavailable(String),
    #[error("[volume] backend {0:?} is not supported; use \"memory\", \"redb\" or \"redis\"")]
    UnknownBackend(String),
    #[error("[volume] backend \"redis\" needs url = \"redis://host:port/\"")]
    MissingUrl,
    #[error("cannot open volume database {path}: {message}; check the file's directory exists and is writable, or set [volume] path")]
    Open { path: String, message: String },
    #[error("invalid redis url {url:?}: {message}; write it as redis://host:port/db")]
    BadUrl { url: String, message: String },
    #[error("volume store {store} failed: {message}")]
    Storage {
        store: &'static str,
        message: String,
    },
    #[error("volume report is not supported by this store; use the redb or redis backend")]
    ReportUnsupported,
}

pub type VolumeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Admission, VolumeError>> + Send + 'a>>;

/// Future of [`VolumeStore::report`].
pub type ReportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<VolumeRow>, VolumeError>> + Send + 'a>>;

/// A counting backend (memory, embedded file, Redis).
pub trait VolumeStore: Send + Sync + std::fmt::Debug {
    /// Atomically: if adding the claim's unseen subjects keeps every cap, count them.
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a>;

    /// Per transfer and year (all years when `year` is `None`): distinct individuals, caps,
    /// first and last seen. Includes the entity-wide row ([`ENTITY_LEDGER`]). For
    /// `chujing report`; see [`report::render_table`] and [`report::render_json`].
    fn report(&self, year: Option<i32>) -> ReportFuture<'_> {
        let _ = year;
        Box::pin(async { Err(VolumeError::ReportUnsupported) })
    }
}

/// Ledger name of the entity-wide totals across all (non-exempt) transfers. Transfer ids
/// are never empty (the policy refuses them), so this cannot collide with one.
pub const ENTITY_LEDGER: &str = "";

/// One line of `chujing report`: one transfer (or the entity) in one calendar year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeRow {
    /// Transfer id; [`ENTITY_LEDGER`] (empty) for the entity-wide totals.
    pub transfer: String,
    pub year: i32,
    /// Distinct individuals whose PI went out under this transfer this year (any class).
    pub individuals: u64,
    /// Of those, individuals with sensitive PI (PIPL Art. 28).
    pub sensitive_individuals: u64,
    /// Caps as carried by the latest claim (entity row: the statutory guard's caps).
    pub max_individuals: Option<u64>,
    pub max_sensitive_individuals: Option<u64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// What the store does when its backend cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnavailableMode {
    /// `admit` returns [`VolumeError::Unavailable`]; the caller blocks
    /// ([`crate::policy::Decision::apply_volume_unavailable`]).
    Closed,
    /// `admit` answers `Admitted { new_individuals: 0, total: 0 }` (nothing counted) and the
    /// outage is logged and counted in [`EntitySnapshot::store_unavailable_total`].
    Open,
}

/// Backend tuning that `[volume]` does not (yet) carry. Defaults are the safe choice.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// How long an acknowledged claim may stay only in memory before a durable commit.
    /// Zero (default): `admit` returns only after the claim's transaction is on disk.
    pub flush_window: Duration,
    /// Most claims folded into one group commit.
    pub max_batch: usize,
    /// Redis: time allowed for one check-and-add round trip.
    pub redis_timeout: Duration,
    /// Redis: key prefix; the `{…}` hash tag keeps every key of one entity in one cluster slot
    /// so the Lua script may touch them together.
    pub redis_prefix: String,
    pub unavailable: UnavailableMode,
    /// Entity-wide statutory guard (2024 Provisions thresholds).
    pub guard: GuardOptions,
}

impl Default for VolumeOptions {
    fn default() -> Self {
        VolumeOptions {
            flush_window: Duration::ZERO,
            max_batch: 1024,
            redis_timeout: Duration::from_secs(2),
            redis_prefix: "chujing:{vol}".to_string(),
            unavailable: UnavailableMode::Closed,
            guard: GuardOptions::default(),
        }
    }
}

impl VolumeOptions {
    /// Defaults, plus what the whole configuration says: the legal bases on file decide which
    /// statutory thresholds are covered; the classification fail mode doubles as the
    /// volume-store outage mode until `[volume]` has its own switch.
    pub fn from_config(config: &Config) -> VolumeOptions {
        let v = &config.volume;
        let mut guard = GuardOptions::from_config(config);
        guard.enabled = v.guard.enabled;
        guard.block_uncovered = v.guard.block_uncovered;
        guard.warn = v.guard.warn;
        guard.critical = v.guard.critical;
        let defaults = VolumeOptions::default();
        VolumeOptions {
            flush_window: Duration::from_millis(v.flush_window_ms),
            redis_timeout: Duration::from_millis(v.redis_timeout_ms),
            redis_prefix: v.key_prefix.clone().unwrap_or(defaults.redis_prefix),
            guard,
            unavailable: match v.fail_mode.unwrap_or(config.classification.fail_mode) {
                FailMode::Closed => UnavailableMode::Closed,
                FailMode::Open => UnavailableMode::Open,
            },
            max_batch: defaults.max_batch,
        }
    }
}

/// Opens the configured backend with default [`VolumeOptions`].
pub fn open_store(config: &VolumeConfig) -> Result<Arc<dyn VolumeStore>, VolumeError> {
    open_store_with(config, VolumeOptions::default())
}

/// Opens the configured backend: `memory`, `redb` (file at `path`, default
/// `var/volume.redb`) or `redis` (at `url`). Redis connects lazily, so an unreachable server
/// does not stop start-up; the outage mode applies per claim.
pub fn open_store_with(
    config: &VolumeConfig,
    options: VolumeOptions,
) -> Result<Arc<dyn VolumeStore>, VolumeError> {
    match config.backend.as_str() {
        "memory" => Ok(Arc::new(MemoryStore::with_options(options))),
        "redb" => {
            let path = config
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("var/volume.redb"));
            Ok(Arc::new(RedbStore::open(&path, options)?))
        }
        "redis" => {
            let url = config.url.as_deref().ok_or(VolumeError::MissingUrl)?;
            Ok(Arc::new(RedisStore::open(url, options)?))
        }
        other => Err(VolumeError::UnknownBackend(other.to_string())),
    }
}

/// The outage mode applied to a backend failure: closed → an error the caller blocks on;
/// open → admitted without counting. Either way the outage is counted and logged (the message
/// names the store and the failure, never an individual).
pub(crate) fn on_unavailable(
    guard: &EntityGuard,
    mode: UnavailableMode,
    store: &'static str,
    message: String,
) -> Result<Admission, VolumeError> {
    guard.record_unavailable();
    tracing::error!(
        target: "chujing::volume",
        store,
        error = %message,
        fail_mode = if mode == UnavailableMode::Open { "open" } else { "closed" },
        "volume store unavailable"
    );
    match mode {
        UnavailableMode::Closed => Err(VolumeError::Unavailable(format!(
            "{store}: {message}; check the store is running and reachable"
        ))),
        UnavailableMode::Open => Ok(Admission::Admitted {
            new_individuals: 0,
            total: 0,
        }),
    }
}

/// Seconds since the Unix epoch for the ledgers' `first_seen` / `last_seen` (0 if the clock is
/// before 1970). Not chrono's `Utc::now`, which builds a calendar date and time first, at
/// more cost than the rest of a repeat admission's bookkeeping.
pub(crate) fn unix_seconds() -> i64 {
    i64::try_from(crate::clock::unix_seconds()).unwrap_or(i64::MAX)
}
