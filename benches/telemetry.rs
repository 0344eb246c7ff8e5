//! Cost of telemetry on the request path: what one request's metric updates cost, and what a
//! `/metrics` scrape costs to encode.
//!
//! cargo bench --bench telemetry

use std::time::Duration;

use chujing::classify::{Category, DataClass, Finding, ScanReport, Subject};
use chujing::geo::Region;
use chujing::policy::{Action, Decision, Reason};
use chujing::telemetry::Metrics;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn decision(action: Action, reason: Reason) -> Decision {
    Decision {
        action,
        reason,
        transfer: None,
        explanation: Default::default(),
        volume_claim: None,
    }
}

fn report() -> ScanReport {
    ScanReport {
        bytes: 4096,
        findings: vec![
            Finding {
                category: Category::new(Category::CN_MOBILE),
                class: DataClass::Personal,
                count: 3,
                samples: vec![],
            },
            Finding {
                category: Category::new(Category::CN_RESIDENT_ID),
                class: DataClass::Sensitive,
                count: 1,
                samples: vec![],
            },
        ],
        subjects: vec![Subject {
            key: [1; 16],
            sensitive: true,
        }],
        uninspectable: None,
    }
}

fn bench(c: &mut Criterion) {
    let metrics = Metrics::new();
    let blocked = decision(Action::Block, Reason::SensitiveNotApproved);
    let report = report();

    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(1));
    g.bench_function("record_decision", |b| {
        b.iter(|| metrics.record_decision(black_box(&blocked), Region::Abroad, true))
    });
    g.bench_function("record_findings_2_categories", |b| {
        b.iter(|| metrics.record_findings(black_box(&report)))
    });
    g.bench_function("one_request_all_updates", |b| {
        b.iter(|| {
            let _conn = metrics.connection_guard();
            metrics.observe_scan(Duration::from_micros(80), report.bytes);
            metrics.record_findings(black_box(&report));
            metrics.record_decision(black_box(&blocked), Region::Abroad, true);
            metrics.observe_upstream(Duration::from_millis(25));
            metrics.set_volume("SCC-2026-002", 1234, 5);
        })
    });
    g.finish();

    // A busy instance: every reason × region seen, every built-in category, 20 transfers.
    let busy = Metrics::new();
    for reason in Reason::ALL {
        for region in [
            Region::Mainland,
            Region::Hk,
            Region::Mo,
            Region::Tw,
            Region::Abroad,
            Region::Unknown,
        ] {
            busy.record_decision(&decision(Action::Allow, reason), region, true);
            busy.record_decision(&decision(Action::Block, reason), region, false);
        }
    }
    for name in Category::BUILTIN {
        for class in [DataClass::Personal, DataClass::Sensitive] {
            busy.record_findings(&ScanReport {
                findings: vec![Finding {
                    category: Category::new(name),
                    class,
                    count: 1,
                    samples: vec![],
                }],
                ..ScanReport::default()
            });
        }
    }
    for i in 0..20 {
        busy.set_volume(&format!("TRANSFER-{i}"), 1000 * i, i);
    }
    let size = busy.encode().len() as u64;
    let mut g = c.benchmark_group("scrape");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("encode_busy_instance", |b| {
        b.iter(|| black_box(busy.encode()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
