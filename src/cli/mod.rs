//! What the command line does, as library functions the binary calls: `run`, `check`,
//! `scan`, `explain`. Kept out of `main.rs` so that tests can call them too.

pub mod explain;
pub mod scan;

use std::path::Path;

use crate::classify::{Classifier, ClassifierOptions};
use crate::config;

/// `chujing check`: every problem as `file:line: message` (or a file-level message): the
/// schema and semantics, the files it names (geo database, TLS material), and each custom
/// detector's must-match / must-not-match examples.
pub fn check(path: &Path) -> Vec<String> {
    let mut problems: Vec<String> = config::check_path(path)
        .into_iter()
        .map(|e| e.to_string())
        .collect();
    if !problems.is_empty() {
        return problems;
    }
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    match ClassifierOptions::from_config(&loaded.config).and_then(Classifier::new) {
        Ok(classifier) => {
            for message in classifier.verify_custom_examples() {
                problems.push(format!("{}: {message}", path.display()));
            }
        }
        Err(e) => problems.push(format!("{}: {e}", path.display())),
    }
    if let Err(e) = crate::policy::Policy::from_config(&loaded.config) {
        problems.push(format!("{}: {e}", path.display()));
    }
    problems
}
