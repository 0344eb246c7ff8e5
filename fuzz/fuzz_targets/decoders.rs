//! Fuzz the Content-Encoding decoders (gzip, deflate, br and chains) through the scanner:
//! arbitrary compressed bytes never panic and never grow memory past the limits.
//!
//! Run: `cargo +nightly fuzz run decoders` (from the repository root).
#![no_main]

use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use chujing::classify::{Classifier, ClassifierOptions, ScanContext};
use libfuzzer_sys::fuzz_target;

fn classifier() -> &'static Arc<Classifier> {
    static C: OnceLock<Arc<Classifier>> = OnceLock::new();
    C.get_or_init(|| {
        Arc::new(
            Classifier::new(ClassifierOptions {
                id_number_is_sensitive: true,
                max_inspect_bytes: 4 << 20,
                max_decompression_ratio: 100,
                hash_key: [1; 32],
                custom: Vec::new(),
            })
            .expect("classifier"),
        )
    })
}

const ENCODINGS: [&str; 6] = ["gzip", "deflate", "br", "gzip, br", "x-gzip", "deflate, gzip"];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let ctx = ScanContext {
        content_type: None,
        content_encoding: Some(ENCODINGS[usize::from(ctl) % ENCODINGS.len()].to_owned()),
        today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    };
    let c = classifier();
    let mut s = c.scanner(ctx);
    for chunk in body.chunks(usize::from(ctl >> 3).max(1)) {
        s.feed(chunk);
    }
    let r = s.finish();
    assert!(r.bytes <= 4 << 20);
});
