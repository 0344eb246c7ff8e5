//! Configuration: the TOML model ([`model`]), loading, and validation whose errors say
//! `file:line: message` with the fix. The schema is fixed by `shared/design/policy.md`.

pub mod model;
mod validate;

pub use model::*;
pub use validate::{check_files, validate};

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
    #[error(
        "{path}: cannot read configuration: {message}; pass --config PATH to a readable TOML file"
    )]
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
    let text = read(path)?;
    let config = parse(&text, path)?;
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
        hash: blake3::hash(text.as_bytes()).to_hex()[..16].to_string(),
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Parses and validates configuration text; `path` is used in messages only. Returns the
/// first problem; [`check_all`] returns every one.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let config = deserialize(text, path)?;
    match in_file_order(validate(&config, text, path))
        .into_iter()
        .next()
    {
        Some(e) => Err(e),
        None => Ok(config),
    }
}

/// Problems sorted by line (stable: same-line problems keep the order they were found in),
/// so `parse`'s one error is the first `check_all` prints.
fn in_file_order(mut all: Vec<ConfigError>) -> Vec<ConfigError> {
    all.sort_by_key(|e| match e {
        ConfigError::Invalid { line, .. } => *line,
        ConfigError::Read { .. } => 0,
    });
    all
}

/// Every problem in configuration text, in file order: a syntax or type error (serde stops
/// at the first), or else every semantic problem. Empty means valid. Used by `chujing check`.
pub fn check_all(text: &str, path: &Path) -> Vec<ConfigError> {
    match deserialize(text, path) {
        Err(e) => vec![e],
        Ok(config) => in_file_order(validate(&config, text, path)),
    }
}

/// Everything `chujing check --config PATH` reports: the file is read, every problem in it
/// ([`check_all`]), and, if it is otherwise valid, the files it names ([`check_files`]: the
/// geo database opened for real, TLS and CA files). Empty means `run` can start.
pub fn check_path(path: &Path) -> Vec<ConfigError> {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let problems = check_all(&text, path);
    if !problems.is_empty() {
        return problems;
    }
    match deserialize(&text, path) {
        Ok(config) => check_files(&config, &text, path),
        Err(e) => vec![e],
    }
}

/// serde's view: syntax, unknown fields, wrong types, enum typos; located by toml's span.
fn deserialize(text: &str, path: &Path) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().replace('\n', " ");
        ConfigError::Invalid {
            path: path.display().to_string(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: format!("{message}{}", serde_hint(&message)),
        }
    })
}

/// The fix for serde's most common complaints, which name the problem but not the cure.
fn serde_hint(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "; remove it or fix the spelling (the schema is documented in config/chujing.toml)"
    } else if message.starts_with("unknown variant") {
        "; use one of the listed values"
    } else if message.starts_with("missing field") {
        "; add it to this table"
    } else if message.starts_with("invalid type") {
        "; check the quoting and type of the value"
    } else {
        ""
    }
}

/// 1-based line number of byte offset `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
