//! `chujing scan FILE...`: one JSON object per file, as `policy.md` specifies.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::{Classifier, DataClass, ScanContext};

#[derive(Debug, Serialize)]
pub struct ScanLine<'a> {
    pub file: &'a str,
    pub bytes: u64,
    pub findings: Vec<ScanFinding<'a>>,
    pub subjects: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uninspectable: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ScanFinding<'a> {
    pub category: &'a str,
    pub class: DataClass,
    pub count: u64,
}

/// Content type and encoding guessed from the file name (`.json`, `.csv`, `.gz`, `.br`…).
pub fn context_for(path: &Path, today: chrono::NaiveDate) -> ScanContext {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, content_encoding) = if let Some(s) = name.strip_suffix(".gz") {
        (s.to_string(), Some("gzip".to_string()))
    } else if let Some(s) = name.strip_suffix(".br") {
        (s.to_string(), Some("br".to_string()))
    } else if let Some(s) = name.strip_suffix(".zz") {
        (s.to_string(), Some("deflate".to_string()))
    } else {
        (name, None)
    };
    let content_type = if stem.ends_with(".json") || stem.ends_with(".jsonl") {
        Some("application/json".to_string())
    } else if stem.ends_with(".csv") {
        Some("text/csv".to_string())
    } else if stem.ends_with(".form") || stem.ends_with(".urlencoded") {
        Some("application/x-www-form-urlencoded".to_string())
    } else {
        None
    };
    ScanContext {
        content_type,
        content_encoding,
        today,
    }
}

/// Scans one file's bytes, streaming it in 64 KiB chunks as the proxy would.
pub fn scan_file(
    classifier: &Arc<Classifier>,
    path: &Path,
    today: chrono::NaiveDate,
) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut scanner = classifier.scanner(context_for(path, today));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]);
    }
    let report = scanner.finish();
    let file_name = path.display().to_string();
    let line = ScanLine {
        file: &file_name,
        bytes: report.bytes,
        findings: report
            .findings
            .iter()
            .map(|f| ScanFinding {
                category: f.category.as_str(),
                class: f.class,
                count: f.count,
            })
            .collect(),
        subjects: report.subjects.len(),
        uninspectable: report.uninspectable.as_ref().map(|u| u.code()),
    };
    Ok(serde_json::to_string(&line).expect("scan lines serialise"))
}
