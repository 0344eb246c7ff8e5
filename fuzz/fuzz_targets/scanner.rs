//! Fuzz the streaming scanner: any bytes, any chunking, any text mode. Never panics, and
//! chunking never changes the report (the streaming contract).
//!
//! Run: `cargo +nightly fuzz run scanner` (from the repository root).
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
                max_inspect_bytes: 1 << 20,
                max_decompression_ratio: 100,
                hash_key: [1; 32],
                custom: Vec::new(),
            })
            .expect("classifier"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (ctl, body) = data.split_at(2);
    let content_type = match ctl[0] % 3 {
        0 => None,
        1 => Some("application/x-www-form-urlencoded".to_owned()),
        _ => Some("application/json".to_owned()),
    };
    let ctx = || ScanContext {
        content_type: content_type.clone(),
        content_encoding: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    };
    let c = classifier();
    let whole = c.scan_bytes(ctx(), body);
    let step = usize::from(ctl[1]).max(1);
    let mut s = c.scanner(ctx());
    for chunk in body.chunks(step) {
        s.feed(chunk);
    }
    assert_eq!(s.finish(), whole, "chunking changed the report");
    let mut f = c.scanner(ctx());
    f.feed_fragment(body);
    let _ = f.finish();
});
