//! Hot reload: a new configuration (policy, routes, geo database) is built in full off to the
//! side and swapped in atomically; if anything about it is invalid, the running one stays and
//! the reason is logged. Triggered by SIGHUP and by a change to the config file or the geo
//! database (polled, so it works on every filesystem and through ConfigMap symlink swaps).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Proxy, Runtime, StartError};
use crate::config::{self, ConfigError};

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Outcome of a reload attempt that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Swapped in; the new policy hash.
    Swapped(String),
}

impl Proxy {
    /// Loads `path`, builds a complete runtime and swaps it in. Listeners stay as they are.
    pub fn reload(&self, path: &Path) -> Result<Reloaded, ReloadError> {
        let loaded = config::load(path)?;
        let volume = Arc::clone(&self.runtime().volume);
        let runtime = Runtime::build(loaded, volume)?;
        let hash = runtime.loaded.hash.clone();
        self.swap_runtime(runtime);
        Ok(Reloaded::Swapped(hash))
    }

    /// Reload and log the outcome; returns whether it succeeded.
    pub fn reload_logged(&self, path: &Path, trigger: &str) -> bool {
        match self.reload(path) {
            Ok(Reloaded::Swapped(hash)) => {
                tracing::info!(trigger, policy_hash = %hash, "configuration reloaded");
                self.reload_outcome(true);
                true
            }
            Err(e) => {
                tracing::error!(trigger, error = %e, "reload refused; keeping the running configuration");
                self.reload_outcome(false);
                false
            }
        }
    }
}

/// Fingerprint of a file for change detection: modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches the config file and the geo database it names; reloads when either changes.
pub async fn watch_files(proxy: Arc<Proxy>, config_path: PathBuf, every: Duration) {
    let geo_path = |proxy: &Proxy| proxy.runtime().loaded.config.geo.database.clone();
    let mut last = (stamp(&config_path), stamp(&geo_path(&proxy)));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = (stamp(&config_path), stamp(&geo_path(&proxy)));
        if now != last {
            // Let a writer finish: reload only once the stamps are stable for one tick.
            tokio::time::sleep(every / 2).await;
            let settled = (stamp(&config_path), stamp(&geo_path(&proxy)));
            if settled != now {
                continue;
            }
            proxy.reload_logged(&config_path, "file_change");
            // Re-read: the geo path may have changed with the new config.
            last = (stamp(&config_path), stamp(&geo_path(&proxy)));
        }
    }
}
