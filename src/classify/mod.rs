//! Detectors of Chinese personal information (pure: no I/O). A [`Classifier`] is compiled once
//! from configuration and shared; each request body gets a [`BodyScanner`] that is fed chunk
//! by chunk, keeps constant memory, finds values split across chunks, and produces a
//! [`ScanReport`]: categories with counts, masked samples, and keyed hashes of the individuals
//! named. Raw identifiers never leave this module.
//!
//! INTERFACE CONTRACT (used by policy, proxy, audit, CLI): the public items below keep their
//! names and signatures; internals are free to change.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{Config, CustomDetectorConfig};

/// PIPL class of a category (Art. 28: sensitive personal information).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataClass {
    Personal,
    Sensitive,
}

/// Stable category identifier as used in config, findings, audit and metrics
/// (`cn_resident_id`, `cn_mobile`, … or a custom detector's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(Arc<str>);

impl Category {
    pub const CN_RESIDENT_ID: &'static str = "cn_resident_id";
    pub const MINOR: &'static str = "minor";
    pub const CN_MOBILE: &'static str = "cn_mobile";
    pub const BANK_CARD: &'static str = "bank_card";
    pub const CN_PASSPORT: &'static str = "cn_passport";
    pub const HK_MACAU_PERMIT: &'static str = "hk_macau_permit";
    pub const HK_ID: &'static str = "hk_id";
    pub const TW_ID: &'static str = "tw_id";
    pub const EMAIL: &'static str = "email";
    pub const PERSON_NAME: &'static str = "person_name";
    pub const CN_ADDRESS: &'static str = "cn_address";
    pub const PRECISE_LOCATION: &'static str = "precise_location";
    pub const HEALTH: &'static str = "health";

    /// Every built-in category identifier.
    pub const BUILTIN: &'static [&'static str] = &[
        Self::CN_RESIDENT_ID,
        Self::MINOR,
        Self::CN_MOBILE,
        Self::BANK_CARD,
        Self::CN_PASSPORT,
        Self::HK_MACAU_PERMIT,
        Self::HK_ID,
        Self::TW_ID,
        Self::EMAIL,
        Self::PERSON_NAME,
        Self::CN_ADDRESS,
        Self::PRECISE_LOCATION,
        Self::HEALTH,
    ];

    pub fn new(name: &str) -> Category {
        Category(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// All occurrences of one category in one payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub category: Category,
    pub class: DataClass,
    /// Number of validated occurrences.
    pub count: u64,
    /// Up to three masked samples (`110***********123X`), never the raw value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<String>,
}

/// One distinct individual named by a payload: a keyed hash (BLAKE3, keyed) of their
/// strongest identifier, and whether sensitive PI about them was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub key: [u8; 16],
    pub sensitive: bool,
}

/// Why a body could not be inspected (the policy's fail mode then applies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uninspectable {
    #[error("body exceeds the inspection limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("content-encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    #[error("compressed body expands beyond the decompression limit (possible bomb)")]
    DecompressionBomb,
    #[error("body encoding is corrupt: {0}")]
    CorruptEncoding(String),
    #[error("traffic was not decrypted: {0}")]
    NotDecrypted(String),
}

impl Uninspectable {
    /// Short stable code for audit and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Uninspectable::TooLarge { .. } => "too_large",
            Uninspectable::UnsupportedEncoding(_) => "unsupported_encoding",
            Uninspectable::DecompressionBomb => "decompression_bomb",
            Uninspectable::CorruptEncoding(_) => "corrupt_encoding",
            Uninspectable::NotDecrypted(_) => "not_decrypted",
        }
    }
}

/// The result of scanning one payload (body, plus URL and header values when fed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Bytes inspected (after decoding).
    pub bytes: u64,
    /// One entry per category found, sorted by category.
    pub findings: Vec<Finding>,
    /// Distinct individuals, sorted and deduplicated by key.
    pub subjects: Vec<Subject>,
    pub uninspectable: Option<Uninspectable>,
}

impl ScanReport {
    pub fn has_personal_info(&self) -> bool {
        !self.findings.is_empty()
    }

    pub fn has_sensitive(&self) -> bool {
        self.findings.iter().any(|f| f.class == DataClass::Sensitive)
    }
}

/// Options a classifier is compiled with.
#[derive(Debug, Clone)]
pub struct ClassifierOptions {
    pub id_number_is_sensitive: bool,
    /// Decoded bytes beyond this make the body uninspectable.
    pub max_inspect_bytes: u64,
    /// Decoded/encoded ratio beyond this (with more than 1 MiB decoded) is a bomb.
    pub max_decompression_ratio: u64,
    /// Key of the keyed hash for subjects.
    pub hash_key: [u8; 32],
    pub custom: Vec<CustomDetectorConfig>,
}

impl ClassifierOptions {
    /// Options from configuration; a missing `hash_key` gets a random per-process key.
    pub fn from_config(config: &Config) -> Result<ClassifierOptions, ClassifyError> {
        let c = &config.classification;
        let hash_key = match &c.hash_key {
            Some(hex_key) => {
                let bytes = hex::decode(hex_key).map_err(|_| ClassifyError::BadHashKey)?;
                bytes.try_into().map_err(|_| ClassifyError::BadHashKey)?
            }
            None => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(|_| ClassifyError::NoRandomness)?;
                key
            }
        };
        Ok(ClassifierOptions {
            id_number_is_sensitive: c.id_number_is_sensitive,
            max_inspect_bytes: c.max_inspect_bytes,
            max_decompression_ratio: c.max_decompression_ratio,
            hash_key,
            custom: config.detectors.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("classification.hash_key must be 64 hex characters (32 bytes); generate one with `openssl rand -hex 32`")]
    BadHashKey,
    #[error("no randomness available to generate the subject hash key; set classification.hash_key")]
    NoRandomness,
    #[error("custom detector {category:?}: {message}")]
    CustomDetector { category: String, message: String },
}

/// What a scanner needs to know about the payload it scans.
#[derive(Debug, Clone)]
pub struct ScanContext {
    /// `Content-Type` header value, if any (selects form/multipart/JSON decoding).
    pub content_type: Option<String>,
    /// `Content-Encoding` header value, if any (gzip, deflate, br, identity; comma lists).
    pub content_encoding: Option<String>,
    /// Local date of the scan (Asia/Shanghai by default): ages for `minor` are computed at it.
    pub today: NaiveDate,
}

/// Compiled detectors; build once, share with `Arc`.
#[derive(Debug)]
pub struct Classifier {
    options: ClassifierOptions,
}

impl Classifier {
    pub fn new(options: ClassifierOptions) -> Result<Classifier, ClassifyError> {
        Ok(Classifier { options })
    }

    pub fn options(&self) -> &ClassifierOptions {
        &self.options
    }

    /// A streaming scanner for one payload.
    pub fn scanner(self: &Arc<Self>, ctx: ScanContext) -> BodyScanner {
        BodyScanner {
            classifier: Arc::clone(self),
            ctx,
            report: ScanReport::default(),
            version: 0,
        }
    }

    /// Scan a whole in-memory payload (CLI `scan`, `explain`, tests).
    pub fn scan_bytes(self: &Arc<Self>, ctx: ScanContext, bytes: &[u8]) -> ScanReport {
        let mut scanner = self.scanner(ctx);
        scanner.feed(bytes);
        scanner.finish()
    }
}

/// Streaming scanner for one payload. Constant memory; values split between chunks are found.
#[derive(Debug)]
pub struct BodyScanner {
    #[allow(dead_code)]
    classifier: Arc<Classifier>,
    #[allow(dead_code)]
    ctx: ScanContext,
    report: ScanReport,
    version: u64,
}

impl BodyScanner {
    /// Feed the next chunk of the (possibly content-encoded) body.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.report.bytes += chunk.len() as u64;
    }

    /// Scan a standalone fragment that is not part of the body stream: the request target's
    /// path and query (percent-decoded, `+` as space) or a header value.
    pub fn feed_fragment(&mut self, fragment: &[u8]) {
        let _ = fragment;
    }

    /// Increases whenever a new finding or subject was recorded; lets the caller re-decide
    /// only when something changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Set once the body became uninspectable; feeding further chunks is then a no-op.
    pub fn uninspectable(&self) -> Option<&Uninspectable> {
        self.report.uninspectable.as_ref()
    }

    /// Mark the payload uninspectable from outside (e.g. TLS bypass).
    pub fn mark_uninspectable(&mut self, why: Uninspectable) {
        if self.report.uninspectable.is_none() {
            self.report.uninspectable = Some(why);
            self.version += 1;
        }
    }

    /// Findings so far, as a report (allocates; call when `version()` changed).
    /// Values that may still continue in the next chunk are not included yet.
    pub fn snapshot(&self) -> ScanReport {
        self.report.clone()
    }

    /// End of payload: flush any carried tail and produce the final report.
    pub fn finish(self) -> ScanReport {
        self.report
    }
}
