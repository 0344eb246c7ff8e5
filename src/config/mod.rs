//! Configuration: the TOML model ([`model`]), loading, and validation whose errors say
//! `file:line: message` with the fix. The schema is fixed by `shared/design/policy.md`.

pub mod model;

pub use model::*;

use std::path::{Path, PathBuf};

/// A configuration that parsed and validated, with what identifies it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    /// BLAKE3 of the file's bytes, hex, first 16 chars: the policy version in audit events.
    pub hash: String,
}

/// A configuration problem, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read configuration: {message}; pass --config PATH to a readable TOML file")]
    Read { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let config = parse(&text, path)?;
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
        hash: blake3::hash(text.as_bytes()).to_hex()[..16].to_string(),
    })
}

/// Parses and validates configuration text; `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: path.display().to_string(),
        line: e
            .span()
            .map(|s| line_of(text, s.start))
            .unwrap_or(1),
        message: e.message().to_string(),
    })?;
    Ok(config)
}

/// 1-based line number of byte offset `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
