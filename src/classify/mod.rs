//! Detectors of Chinese personal information (pure: no I/O). A [`Classifier`] is compiled once
//! from configuration and shared; each request body gets a [`BodyScanner`] that is fed chunk
//! by chunk, keeps constant memory, finds values split across chunks, and produces a
//! [`ScanReport`]: categories with counts, masked samples, and keyed hashes of the individuals
//! named. Raw identifiers never leave this module.
//!
//! Pipeline per chunk (each stage streams, state survives chunk boundaries):
//! `decode` (Content-Encoding gzip/deflate/br, bomb and size limits) → `normalize` (JSON
//! `\u` escapes, percent-encoding, `+` in forms, full-width digits) → `scan` (a fixed window:
//! a keyword pass over one keyword set (packed Teddy search), then a candidate pass — `@` by
//! memchr, four-digit runs by a strided search — dispatching by run length and shape to
//! `validate`;
//! base64 field values found by `b64` are decoded in stream order into a nested window that
//! runs the same detectors) → `record` (counts, masked samples, records grouped into keyed-hash subjects). `custom`
//! compiles the security team's `[[detector]]` entries; `keywords` holds the keyword lists,
//! surnames and gazetteer.
//!
//! INTERFACE CONTRACT (used by policy, proxy, audit, CLI): the public items below keep their
//! names and signatures; internals are free to change.

mod b64;
mod custom;
mod decode;
mod keywords;
mod normalize;
mod record;
mod scan;
pub mod validate;

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{Config, CustomDetectorConfig};

use custom::CustomDetector;
use decode::{Decoding, Stop};
use keywords::Keywords;
use normalize::{Mode, Normalizer};
use record::Recorder;
use scan::Window;

/// Index of each built-in category in [`Category::BUILTIN`] (and in a scanner's accumulators;
/// custom detectors follow).
pub(crate) mod cat {
    pub const RESIDENT_ID: usize = 0;
    pub const MINOR: usize = 1;
    pub const MOBILE: usize = 2;
    pub const BANK_CARD: usize = 3;
    pub const PASSPORT: usize = 4;
    pub const PERMIT: usize = 5;
    pub const HK_ID: usize = 6;
    pub const TW_ID: usize = 7;
    pub const EMAIL: usize = 8;
    pub const PERSON_NAME: usize = 9;
    pub const ADDRESS: usize = 10;
    pub const LOCATION: usize = 11;
    pub const HEALTH: usize = 12;
    /// First custom detector.
    pub const CUSTOM_BASE: usize = 13;
}

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

/// One distinct individual named by a payload: a keyed hash (SipHash-2-4, 128-bit) of their
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
        self.findings
            .iter()
            .any(|f| f.class == DataClass::Sensitive)
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
    #[error(
        "no randomness available to generate the subject hash key; set classification.hash_key"
    )]
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

/// Compiled detectors: categories with their class, in accumulator order (built-ins, then
/// custom detectors), and the one keyword automaton.
#[derive(Debug)]
pub(crate) struct Detectors {
    categories: Vec<Category>,
    classes: Vec<DataClass>,
    pub(crate) keywords: Keywords,
    pub(crate) custom: Vec<CustomDetector>,
    /// Whether some custom detector has a regex and no keywords (scanned everywhere).
    pub(crate) custom_regex_only: bool,
}

impl Detectors {
    fn new(options: &ClassifierOptions) -> Result<Detectors, ClassifyError> {
        let mut custom = Vec::with_capacity(options.custom.len());
        for cfg in &options.custom {
            let d = CustomDetector::compile(cfg)?;
            if custom
                .iter()
                .any(|c: &CustomDetector| c.category == d.category)
            {
                return Err(ClassifyError::CustomDetector {
                    category: cfg.category.clone(),
                    message: "defined twice; merge the two [[detector]] entries".into(),
                });
            }
            custom.push(d);
        }
        let lists: Vec<Vec<String>> = options.custom.iter().map(|c| c.keywords.clone()).collect();
        let keywords = Keywords::new(&lists).map_err(|e| ClassifyError::CustomDetector {
            category: "(keywords)".into(),
            message: format!(
                "keyword automaton cannot be built ({e}); shorten or reduce the keyword lists"
            ),
        })?;
        let mut categories: Vec<Category> =
            Category::BUILTIN.iter().map(|c| Category::new(c)).collect();
        categories.extend(custom.iter().map(|c| c.category.clone()));
        let mut classes: Vec<DataClass> = Category::BUILTIN
            .iter()
            .map(|&c| match c {
                Category::CN_RESIDENT_ID if !options.id_number_is_sensitive => DataClass::Personal,
                Category::CN_MOBILE
                | Category::EMAIL
                | Category::PERSON_NAME
                | Category::CN_ADDRESS => DataClass::Personal,
                _ => DataClass::Sensitive,
            })
            .collect();
        classes.extend(custom.iter().map(|c| c.class));
        let custom_regex_only = custom.iter().any(|c| c.regex.is_some() && !c.has_keywords);
        Ok(Detectors {
            categories,
            classes,
            keywords,
            custom,
            custom_regex_only,
        })
    }

    /// Look-ahead a custom keyword needs before its regex can be decided.
    pub(crate) fn custom_window(&self) -> usize {
        custom::KEYWORD_WINDOW
    }

    /// Whether category `cat` (accumulator index) is sensitive PI.
    pub(crate) fn sensitive(&self, cat: usize) -> bool {
        self.classes[cat] == DataClass::Sensitive
    }
}

/// Compiled detectors; build once, share with `Arc`.
#[derive(Debug)]
pub struct Classifier {
    options: ClassifierOptions,
    detectors: Detectors,
}

impl Classifier {
    pub fn new(options: ClassifierOptions) -> Result<Classifier, ClassifyError> {
        let detectors = Detectors::new(&options)?;
        Ok(Classifier { options, detectors })
    }

    /// Checks every custom detector's `must_match` / `must_not_match` examples; one message
    /// per failing example naming the detector and the example's index (never the example:
    /// it may be real personal information). Empty when all pass. Used by `chujing check`.
    pub fn verify_custom_examples(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let classifier = match Classifier::new(self.options.clone()) {
            Ok(c) => Arc::new(c),
            Err(e) => return vec![e.to_string()],
        };
        let today = chrono::Utc::now().date_naive();
        for cfg in &self.options.custom {
            let found = |example: &str| {
                let ctx = ScanContext {
                    content_type: None,
                    content_encoding: None,
                    today,
                };
                let r = classifier.scan_bytes(ctx, example.as_bytes());
                r.findings
                    .iter()
                    .any(|f| f.category.as_str() == cfg.category)
            };
            for (i, ex) in cfg.must_match.iter().enumerate() {
                if !found(ex) {
                    failures.push(format!(
                        "custom detector {:?}: must_match example #{} (0-based) is not detected; widen the regex or add the keyword the example uses",
                        cfg.category, i
                    ));
                }
            }
            for (i, ex) in cfg.must_not_match.iter().enumerate() {
                if found(ex) {
                    failures.push(format!(
                        "custom detector {:?}: must_not_match example #{} (0-based) is detected; tighten the regex or keywords",
                        cfg.category, i
                    ));
                }
            }
        }
        failures
    }

    pub fn options(&self) -> &ClassifierOptions {
        &self.options
    }

    /// A streaming scanner for one payload.
    pub fn scanner(self: &Arc<Self>, ctx: ScanContext) -> BodyScanner {
        const FORM: &[u8] = b"x-www-form-urlencoded";
        const MULTIPART: &[u8] = b"multipart/";
        // Media types are case-insensitive (RFC 9110 §8.3.1): compared without a lowercase
        // copy, as every inspected request passes here.
        let ct = ctx.content_type.as_deref().unwrap_or_default().as_bytes();
        let mode = if ct.windows(FORM.len()).any(|w| w.eq_ignore_ascii_case(FORM)) {
            Mode::Form
        } else {
            Mode::Text
        };
        let multipart =
            ct.len() >= MULTIPART.len() && ct[..MULTIPART.len()].eq_ignore_ascii_case(MULTIPART);
        // A form (urlencoded or multipart) describes one individual unless it repeats an
        // identifier; its line breaks are part boundaries, not records.
        let lines_are_records = !(mode == Mode::Form || multipart);
        let (decoding, uninspectable) = match ctx.content_encoding.as_deref() {
            None => (None, None),
            Some(v) => match Decoding::from_header(v, self.options.max_decompression_ratio) {
                Ok(d) => (d, None),
                Err(u) => (None, Some(u)),
            },
        };
        let version = u64::from(uninspectable.is_some());
        let mut rec = Recorder::new(self.detectors.categories.len(), self.options.hash_key);
        rec.lines_are_records = lines_are_records;
        BodyScanner {
            classifier: Arc::clone(self),
            decoding,
            rec,
            norm: Normalizer::new(mode),
            win: Window::new(),
            frag: None,
            ctx,
            bytes: 0,
            uninspectable,
            version,
        }
    }

    /// Scan a whole in-memory payload (CLI `scan`, `explain`, tests).
    pub fn scan_bytes(self: &Arc<Self>, ctx: ScanContext, bytes: &[u8]) -> ScanReport {
        self.scanner(ctx).finish_with(bytes)
    }
}

/// Streaming scanner for one payload. Constant memory; values split between chunks are found.
#[derive(Debug)]
pub struct BodyScanner {
    classifier: Arc<Classifier>,
    ctx: ScanContext,
    rec: Recorder,
    /// Content-Encoding decoders, if the body is encoded.
    decoding: Option<Decoding>,
    norm: Normalizer,
    win: Window,
    /// Window for URL/header fragments, allocated on first use and reused.
    frag: Option<Window>,
    bytes: u64,
    uninspectable: Option<Uninspectable>,
    /// Version bumps not tracked by the recorder (uninspectable).
    version: u64,
}

impl BodyScanner {
    /// Feed the next chunk of the (possibly content-encoded) body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.uninspectable.is_some() {
            return;
        }
        match self.decoding.take() {
            None => self.ingest(chunk),
            Some(mut d) => {
                let r = d.feed(chunk, &mut |b: &[u8]| self.ingest_checked(b));
                self.decoding = Some(d);
                self.decode_result(r);
            }
        }
    }

    /// `ingest` for the decoder's sink: stops the decoder once the body is uninspectable.
    fn ingest_checked(&mut self, b: &[u8]) -> Result<(), Stop> {
        self.ingest(b);
        if self.uninspectable.is_some() {
            Err(Stop::Consumer)
        } else {
            Ok(())
        }
    }

    fn decode_result(&mut self, r: Result<(), Stop>) {
        if let Err(Stop::Uninspectable(u)) = r {
            self.mark_uninspectable(u);
        }
        if self.uninspectable.is_some() {
            // Free the decoder state (brotli windows can be large); nothing more is read.
            self.decoding = None;
        }
    }

    /// Decoded body bytes: enforce the inspection limit, normalize and scan.
    fn ingest(&mut self, data: &[u8]) {
        self.ingest_with(data, false);
    }

    /// [`BodyScanner::ingest`]; with `last`, what fits in the window is left for the final
    /// pass of [`BodyScanner::finish`] instead of being scanned here and its undecided tail
    /// again there (a pass has a fixed cost, which is most of the cost of a small body).
    fn ingest_with(&mut self, data: &[u8], last: bool) {
        let limit = self.classifier.options.max_inspect_bytes;
        let allowed = limit.saturating_sub(self.bytes);
        let over = data.len() as u64 > allowed;
        let data = if over {
            &data[..allowed as usize]
        } else {
            data
        };
        self.bytes += data.len() as u64;
        let det = &self.classifier.detectors;
        let today = self.ctx.today;
        normalize_into(&mut self.win, &mut self.norm, data, last, |win| {
            win.pass(det, today, &mut self.rec, false)
        });
        if over {
            self.mark_uninspectable(Uninspectable::TooLarge { limit });
        }
    }

    /// Scan a standalone fragment that is not part of the body stream: the request target's
    /// path and query (percent-decoded, `+` as space) or a header value.
    pub fn feed_fragment(&mut self, fragment: &[u8]) {
        let det = &self.classifier.detectors;
        let today = self.ctx.today;
        // A fragment is its own record and must not disturb the body's record structure.
        self.rec.close_record();
        let depth = self.rec.depth;
        let mut win = self.frag.take().unwrap_or_else(Window::new);
        let mut norm = Normalizer::new(Mode::Form);
        // A fragment that fits (a header value, a URL) is scanned once, by the final pass.
        normalize_into(&mut win, &mut norm, fragment, true, |win| {
            win.pass(det, today, &mut self.rec, false)
        });
        norm.finish(&mut win.buf);
        win.pass(det, today, &mut self.rec, true);
        self.rec.close_record();
        self.rec.depth = depth;
        self.frag = Some(win);
    }

    /// Increases whenever a new finding or subject was recorded; lets the caller re-decide
    /// only when something changed.
    pub fn version(&self) -> u64 {
        self.version + self.rec.version
    }

    /// Set once the body became uninspectable; feeding further chunks is then a no-op.
    pub fn uninspectable(&self) -> Option<&Uninspectable> {
        self.uninspectable.as_ref()
    }

    /// Mark the payload uninspectable from outside (e.g. TLS bypass).
    pub fn mark_uninspectable(&mut self, why: Uninspectable) {
        if self.uninspectable.is_none() {
            self.uninspectable = Some(why);
            self.version += 1;
        }
    }

    /// Findings so far, as a report (allocates; call when `version()` changed).
    /// Values that may still continue in the next chunk are not included yet.
    pub fn snapshot(&self) -> ScanReport {
        ScanReport {
            bytes: self.bytes,
            findings: self.rec.findings(
                &self.classifier.detectors.categories,
                &self.classifier.detectors.classes,
            ),
            subjects: self.rec.subjects(),
            uninspectable: self.uninspectable.clone(),
        }
    }

    /// [`BodyScanner::feed`] of the body's last chunk, then [`BodyScanner::finish`]: the same
    /// report, with the chunk scanned by the final pass alone.
    pub fn finish_with(mut self, last: &[u8]) -> ScanReport {
        if self.uninspectable.is_none() && !last.is_empty() {
            if self.decoding.is_some() {
                self.feed(last);
            } else {
                self.ingest_with(last, true);
            }
        }
        self.finish()
    }

    /// End of payload: flush any carried tail and produce the final report.
    pub fn finish(mut self) -> ScanReport {
        if self.uninspectable.is_none() {
            if let Some(mut d) = self.decoding.take() {
                let r = d.finish(&mut |b: &[u8]| self.ingest_checked(b));
                self.decode_result(r);
            }
        }
        let det = &self.classifier.detectors;
        self.norm.finish(&mut self.win.buf);
        self.win.pass(det, self.ctx.today, &mut self.rec, true);
        self.rec.close_record();
        // What `snapshot` reports, with the samples moved out of the consumed scanner.
        ScanReport {
            bytes: self.bytes,
            findings: self.rec.take_findings(&det.categories, &det.classes),
            subjects: self.rec.subjects(),
            uninspectable: self.uninspectable.take(),
        }
    }
}

/// Normalizes `data` into the window, calling `pass` whenever the window is full and, unless
/// `last`, once more after the final byte. With `last`, what is left is for the caller's final
/// pass (`eof`), which would otherwise re-read the undecided tail of this one.
fn normalize_into(
    win: &mut Window,
    norm: &mut Normalizer,
    data: &[u8],
    last: bool,
    mut pass: impl FnMut(&mut Window),
) {
    let mut rest = data;
    while !rest.is_empty() {
        let room = win.room();
        let used = norm.run(rest, &mut win.buf, room);
        rest = &rest[used..];
        if last && rest.is_empty() {
            break;
        }
        pass(win);
    }
}

#[cfg(test)]
mod tests;
