//! Classifier throughput (bytes/second) on realistic haystacks, next to `memchr` over the
//! same bytes as the ceiling: clean JSON, PI-dense JSON, Chinese prose, gzip JSON; and the
//! per-request cost of scanning the load harness's 1 KiB bodies (`request_1k`).
//!
//! Run: `cargo bench --bench classify` (criterion prints the throughput per group).

#[path = "../tests/corpus/gen.rs"]
mod gen;

use std::hint::black_box;
use std::sync::Arc;

use chrono::NaiveDate;
use chujing::classify::{Classifier, ClassifierOptions, ScanContext};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 1 << 20;
/// Typical body chunk size delivered by hyper.
const CHUNK: usize = 16 * 1024;

fn classifier() -> Arc<Classifier> {
    Arc::new(
        Classifier::new(ClassifierOptions {
            id_number_is_sensitive: true,
            max_inspect_bytes: 64 * 1024 * 1024,
            max_decompression_ratio: 100,
            hash_key: [3; 32],
            custom: Vec::new(),
        })
        .unwrap(),
    )
}

fn ctx(encoding: Option<&str>) -> ScanContext {
    ScanContext {
        content_type: Some("application/json".into()),
        content_encoding: encoding.map(str::to_owned),
        today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    }
}

/// `CLASSIFY_PROFILE=<case>`: classify that payload once and exit, so the classifier alone
/// can be run under `valgrind --tool=callgrind` (instruction counts are repeatable on a
/// shared machine; criterion's wall clock is not). Payload generation is outside the
/// counted region when `--toggle-collect=*classify_once*` is used. `request_1k_pi` scans the
/// harness's 1 KiB PI body 10,000 times instead: one request's cost is too small to read
/// from a single run.
fn profile(case: &str) {
    let clf = classifier();
    if case == "request_1k_pi" {
        let body = request_body(true);
        for _ in 0..10_000 {
            black_box(classify_once(&clf, &body, None));
        }
        return;
    }
    let clean = gen::clean_json(SIZE);
    let (data, enc) = match case {
        "clean_json" => (clean, None),
        "pi_dense_json" => (gen::pi_dense_json(SIZE), None),
        "chinese_prose" => (gen::chinese_prose(SIZE), None),
        "gzip_json" => (gen::gzip(&clean), Some("gzip")),
        other => panic!("unknown CLASSIFY_PROFILE case {other:?}: use clean_json, pi_dense_json, chinese_prose, gzip_json or request_1k_pi"),
    };
    black_box(classify_once(&clf, &data, enc));
}

#[inline(never)]
fn classify_once(clf: &Arc<Classifier>, data: &[u8], enc: Option<&str>) -> usize {
    let mut s = clf.scanner(ctx(enc));
    for chunk in data.chunks(CHUNK) {
        s.feed(chunk);
    }
    let r = s.finish();
    black_box(&r);
    data.len()
}

/// The load harness's 1 KiB request bodies (`benches/load/run.sh`): order-like JSON, and with
/// `pi` a mobile number and an e-mail address in every fourth record.
fn request_body(pi: bool) -> Vec<u8> {
    let record = |i: usize| {
        let contact = if pi && i % 4 == 0 {
            r#", "contact": {"mobile": "13812345678", "email": "zhang.wei@example.com"}"#
        } else {
            ""
        };
        format!(
            r#"{{"sku": "SKU-{i:06}", "qty": {}, "price": "19.90", "note": "colour blue, size M"{contact}}}"#,
            i % 7 + 1
        )
    };
    // Records are added while `{"items": [r, r, ...]}` (13 bytes of frame, 2 between records:
    // the length run.sh measures with `json.dumps`) is under 904 bytes.
    let dumped_len = |items: &[String]| {
        13 + items.iter().map(String::len).sum::<usize>() + 2 * items.len().saturating_sub(1)
    };
    let mut items: Vec<String> = Vec::new();
    while dumped_len(&items) < 1024 - 120 {
        items.push(record(items.len()));
    }
    format!(r#"{{"order": "A-1001", "items": [{}]}}"#, items.join(", ")).into_bytes()
}

fn bench(c: &mut Criterion) {
    if let Ok(case) = std::env::var("CLASSIFY_PROFILE") {
        profile(&case);
        std::process::exit(0);
    }
    let clf = classifier();
    let clean = gen::clean_json(SIZE);
    let dense = gen::pi_dense_json(SIZE);
    let prose = gen::chinese_prose(SIZE);
    let gz = gen::gzip(&clean);
    let cases: [(&str, &[u8], Option<&str>, usize); 4] = [
        ("clean_json", &clean, None, clean.len()),
        ("pi_dense_json", &dense, None, dense.len()),
        ("chinese_prose", &prose, None, prose.len()),
        // Throughput of the gzip case is counted in decoded bytes.
        ("gzip_json", &gz, Some("gzip"), clean.len()),
    ];
    for (name, data, enc, decoded_len) in cases {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(decoded_len as u64));
        g.sample_size(20);
        g.bench_function("classify", |b| {
            b.iter(|| {
                let mut s = clf.scanner(ctx(enc));
                for chunk in data.chunks(CHUNK) {
                    s.feed(chunk);
                }
                black_box(s.finish())
            })
        });
        // Ceiling: one SIMD pass looking for a byte over the same (decoded) bytes.
        let plain: &[u8] = if enc.is_some() { &clean } else { data };
        g.bench_function("memchr", |b| {
            b.iter(|| black_box(memchr::memchr_iter(b'@', black_box(plain)).count()))
        });
        g.finish();
    }
    // Per request, as the proxy scans a small body: a new scanner, one chunk, the report.
    let mut g = c.benchmark_group("request_1k");
    for (name, pi) in [("clean", false), ("pi", true)] {
        let body = request_body(pi);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| classify_once(&clf, black_box(&body), None))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
