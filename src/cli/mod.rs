//! What the command line does, as library functions the binary calls: `run`, `check`,
//! `scan`, `explain`. Kept out of `main.rs` so that tests can call them too.

pub mod explain;
pub mod scan;

use std::path::Path;

use crate::classify::{Classifier, ClassifierOptions};
use crate::config::{self, ConfigError};
use crate::geo::GeoDb;

/// `chujing check`: every problem as `file:line: message` (or a file-level message).
pub fn check(path: &Path) -> Vec<String> {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e @ ConfigError::Read { .. }) => return vec![e.to_string()],
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    let config = &loaded.config;
    if let Err(e) = GeoDb::open(&config.geo) {
        problems.push(format!("{}: {e}", path.display()));
    }
    match ClassifierOptions::from_config(config).and_then(Classifier::new) {
        Ok(classifier) => {
            for message in classifier.verify_custom_examples() {
                problems.push(format!("{}: {message}", path.display()));
            }
        }
        Err(e) => problems.push(format!("{}: {e}", path.display())),
    }
    if let Err(e) = crate::policy::Policy::from_config(config) {
        problems.push(format!("{}: {e}", path.display()));
    }
    problems
}
