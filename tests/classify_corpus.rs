//! Labelled-corpus test for the classifier: per-category precision and recall ≥ 0.99 over
//! generated realistic payloads (JSON batches, forms, CSV exports, Chinese prose, gzip, base64
//! field values), and every sample split at every byte offset gives the same report.

#[path = "corpus/gen.rs"]
mod gen;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use chujing::classify::{Classifier, ClassifierOptions, ScanContext, ScanReport};

fn classifier() -> Arc<Classifier> {
    Arc::new(
        Classifier::new(ClassifierOptions {
            id_number_is_sensitive: true,
            max_inspect_bytes: 16 * 1024 * 1024,
            max_decompression_ratio: 100,
            hash_key: [9; 32],
            custom: Vec::new(),
        })
        .unwrap(),
    )
}

fn ctx(s: &gen::Sample) -> ScanContext {
    ScanContext {
        content_type: s.content_type.map(str::to_owned),
        content_encoding: s.content_encoding.map(str::to_owned),
        // The generator's minors are computed against this date.
        today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    }
}

#[derive(Default, Debug)]
struct Score {
    tp: u64,
    fp: u64,
    fn_: u64,
}

#[test]
fn precision_and_recall_per_category() {
    let c = classifier();
    let corpus = gen::corpus(20261124, 1500);
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut worst: BTreeMap<String, String> = BTreeMap::new();
    for s in &corpus {
        let r = c.scan_bytes(ctx(s), &s.body);
        assert!(
            r.uninspectable.is_none(),
            "{}: {:?}",
            s.name,
            r.uninspectable
        );
        let mut cats: Vec<String> = s.expected.keys().map(|k| k.to_string()).collect();
        cats.extend(r.findings.iter().map(|f| f.category.to_string()));
        cats.sort();
        cats.dedup();
        for cat in cats {
            let want = s.expected.get(cat.as_str()).copied().unwrap_or(0);
            let got = r
                .findings
                .iter()
                .find(|f| f.category.as_str() == cat)
                .map_or(0, |f| f.count);
            let e = scores.entry(cat.clone()).or_default();
            e.tp += want.min(got);
            e.fp += got.saturating_sub(want);
            e.fn_ += want.saturating_sub(got);
            if want != got {
                worst
                    .entry(cat)
                    .or_insert_with(|| format!("{} want {want} got {got}", s.name));
            }
        }
    }
    let mut report = String::new();
    let mut ok = true;
    for (cat, s) in &scores {
        let p = s.tp as f64 / (s.tp + s.fp).max(1) as f64;
        let rc = s.tp as f64 / (s.tp + s.fn_).max(1) as f64;
        report.push_str(&format!(
            "{cat:18} tp {:6} fp {:4} fn {:4} precision {p:.4} recall {rc:.4}\n",
            s.tp, s.fp, s.fn_
        ));
        if p < 0.99 || rc < 0.99 {
            ok = false;
            report.push_str(&format!(
                "   first mismatch: {}\n",
                worst.get(cat).map_or("", String::as_str)
            ));
        }
        assert!(s.tp > 20, "category {cat} is barely exercised: {s:?}");
    }
    println!("{report}");
    assert!(ok, "\n{report}");
    for cat in chujing::classify::Category::BUILTIN {
        assert!(scores.contains_key(*cat), "corpus lacks {cat}");
    }
}

#[test]
fn subjects_at_least_the_distinct_strong_ids() {
    let c = classifier();
    for s in gen::corpus(7, 200)
        .iter()
        .filter(|s| s.name.starts_with("csv"))
    {
        let r = c.scan_bytes(ctx(s), &s.body);
        // One CSV row per person, each with a distinct ID and mobile.
        let rows = s.expected.get("cn_resident_id").copied().unwrap_or(0);
        assert_eq!(r.subjects.len() as u64, rows, "{}", s.name);
    }
}

fn split_scan(c: &Arc<Classifier>, s: &gen::Sample, cut: usize) -> ScanReport {
    let mut sc = c.scanner(ctx(s));
    sc.feed(&s.body[..cut]);
    sc.feed(&s.body[cut..]);
    sc.finish()
}

#[test]
fn every_sample_split_at_every_offset() {
    let c = classifier();
    for s in gen::corpus(99, 25) {
        let whole = c.scan_bytes(ctx(&s), &s.body);
        for cut in 0..=s.body.len() {
            let r = split_scan(&c, &s, cut);
            assert_eq!(r, whole, "{} split at {cut}", s.name);
        }
    }
}

#[test]
fn byte_at_a_time() {
    let c = classifier();
    for s in gen::corpus(5, 10) {
        let whole = c.scan_bytes(ctx(&s), &s.body);
        let mut sc = c.scanner(ctx(&s));
        for b in s.body.chunks(1) {
            sc.feed(b);
        }
        assert_eq!(sc.finish(), whole, "{}", s.name);
    }
}
