//! Cost of the live view on the request path (`LiveHub::record` for an allowed and for a
//! blocked decision, with the ring full and a subscriber listening) and of what an admin
//! client asks for (`snapshot`: 15 minutes of series plus the latest 500 decisions).
//!
//! cargo bench --bench live

use std::time::Duration;

use chrono::Utc;
use chujing::audit::{AuditEvent, Outcome, RequestFacts};
use chujing::classify::{Category, DataClass, Finding, ScanReport};
use chujing::config::Mode;
use chujing::geo::{CountryCode, Destination, Region};
use chujing::live::{EventFilter, LiveHub};
use chujing::policy::{Action, Decision, Reason};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn event(action: Action, reason: Reason, enforced: bool) -> AuditEvent<'static> {
    let country = CountryCode::parse("DE");
    let destination = Destination {
        host: "api.partner.example".into(),
        port: 443,
        ip: "203.0.113.7".parse().unwrap(),
        country,
        region: Region::of_country(country),
    };
    let report = ScanReport {
        bytes: 4096,
        findings: vec![
            Finding {
                category: Category::new(Category::CN_MOBILE),
                class: DataClass::Personal,
                count: 3,
                samples: vec!["138****5678".into()],
            },
            Finding {
                category: Category::new(Category::CN_RESIDENT_ID),
                class: DataClass::Sensitive,
                count: 1,
                samples: vec!["110***********123X".into()],
            },
        ],
        subjects: Vec::new(),
        uninspectable: None,
    };
    let decision = Decision {
        action,
        reason,
        transfer: Some("SCC-2026-002".into()),
        explanation: ["transfer SCC-2026-002 matches"].into_iter().collect(),
        volume_claim: None,
    };
    let facts = RequestFacts {
        request_id: "4f1c2a9b000000000042",
        listener: "forward",
        client: Some("10.1.2.3:40000".parse().unwrap()),
        method: "POST",
        scheme: "https",
        host: "api.partner.example",
        port: 443,
        version: "HTTP/1.1",
        started: Utc::now(),
    };
    AuditEvent::new(
        &facts,
        Outcome {
            destination: Some(&destination),
            decision: Some(&decision),
            report: Some(&report),
            mode: Mode::Enforce,
            enforced,
            status: Some(200),
            error: None,
            policy_hash: "0123456789abcdef",
        },
    )
    .into_owned()
}

fn bench(c: &mut Criterion) {
    let allowed = event(Action::Allow, Reason::ApprovedTransfer, false);
    let blocked = event(Action::Block, Reason::CategoryNotApproved, true);
    let hub = LiveHub::default();
    for _ in 0..600 {
        hub.record(&blocked);
    }
    let _subscriber = hub.subscribe();

    let mut g = c.benchmark_group("live");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("record_allowed", |b| {
        b.iter(|| hub.record(black_box(&allowed)))
    });
    g.bench_function("record_blocked", |b| {
        b.iter(|| hub.record(black_box(&blocked)))
    });
    g.bench_function("snapshot_500", |b| {
        b.iter(|| black_box(hub.snapshot(&EventFilter::default())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
