//! Custom detectors from policy (`[[detector]]`): a security team adds a category with a
//! regex and/or keywords and a class, plus must-match / must-not-match examples that
//! `chujing check` verifies. Semantics: regex and keywords → the regex must match within
//! [`KEYWORD_WINDOW`] bytes after a keyword; regex only → anywhere; keywords only → the
//! keyword itself (e.g. a project code name) is the finding.

use regex::bytes::Regex;

use super::{Category, ClassifyError, DataClass};
use crate::config::CustomDetectorConfig;

/// How far after a keyword a custom detector's regex may match.
pub const KEYWORD_WINDOW: usize = 128;
/// Longest regex match considered when scanning without keywords (bytes held back at a
/// window edge so a match split between chunks is still found whole).
pub const REGEX_HOLD: usize = 256;

#[derive(Debug)]
pub struct CustomDetector {
    pub category: Category,
    pub class: DataClass,
    pub regex: Option<Regex>,
    pub has_keywords: bool,
}

fn err(cfg: &CustomDetectorConfig, message: impl Into<String>) -> ClassifyError {
    ClassifyError::CustomDetector {
        category: cfg.category.clone(),
        message: message.into(),
    }
}

impl CustomDetector {
    pub fn compile(cfg: &CustomDetectorConfig) -> Result<CustomDetector, ClassifyError> {
        let name_ok = !cfg.category.is_empty()
            && cfg
                .category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(err(
                cfg,
                "category must be non-empty lowercase ASCII letters, digits and `_` (e.g. \"employee_id\")",
            ));
        }
        if Category::BUILTIN.contains(&cfg.category.as_str()) {
            return Err(err(
                cfg,
                "category is a built-in category; choose a new name for a custom detector",
            ));
        }
        let class = match cfg.class.as_str() {
            "personal" => DataClass::Personal,
            "sensitive" => DataClass::Sensitive,
            _ => return Err(err(cfg, "class must be \"personal\" or \"sensitive\"")),
        };
        let has_keywords = cfg.keywords.iter().any(|k| !k.is_empty());
        let regex = match &cfg.regex {
            Some(r) => Some(Regex::new(r).map_err(|e| {
                err(
                    cfg,
                    format!("regex does not compile ({e}); fix the pattern (Rust regex syntax)"),
                )
            })?),
            None => None,
        };
        if let Some(r) = &regex {
            if r.is_match(b"") {
                return Err(err(
                    cfg,
                    "regex matches the empty string; it would flag every payload",
                ));
            }
        }
        if regex.is_none() && !has_keywords {
            return Err(err(cfg, "needs a regex, keywords, or both"));
        }
        Ok(CustomDetector {
            category: Category::new(&cfg.category),
            class,
            regex,
            has_keywords,
        })
    }
}
