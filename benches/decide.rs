//! Nanoseconds per policy decision with 100 `[[transfer]]` records, for the three shapes the
//! proxy sees most: an approved transfer near the end of the list, a category refusal, and a
//! destination no transfer matches. Run: `cargo bench --bench decide`.

use std::hint::black_box;
use std::net::IpAddr;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

use chujing::classify::{Category, DataClass, Finding, ScanReport, Subject};
use chujing::config::Config;
use chujing::geo::{CountryCode, Destination, Region};
use chujing::policy::{DecisionInput, Policy};

const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "JP", "SG", "GB", "HK", "NL", "IE", "AU"];

fn config_with_100_transfers() -> Config {
    let mut text = String::from("timezone = \"Asia/Shanghai\"\n");
    for i in 0..100 {
        let cc = COUNTRIES[i % COUNTRIES.len()];
        text += &format!(
            "[[transfer]]\nid = \"T-{i:03}\"\nlegal_basis = \"standard_contract\"\ncountries = [\"{cc}\"]\n\
             hosts = [\"*.vendor{i}.com\", \"api.partner{i}.net\"]\n\
             categories = [\"cn_mobile\", \"email\", \"person_name\", \"cn_address\"]\n\
             allow_sensitive = {}\nvalid_from = \"2026-01-01\"\nvalid_until = \"2027-12-31\"\n\
             max_individuals_per_year = 900000\n",
            i % 3 == 0
        );
    }
    toml::from_str(&text).expect("bench config parses")
}

fn destination(host: &str, country: &str) -> Destination {
    let country = CountryCode::parse(country);
    Destination {
        host: host.to_string(),
        port: 443,
        ip: "198.51.100.7".parse::<IpAddr>().unwrap(),
        country,
        region: Region::of_country(country),
    }
}

fn report(categories: &[&str], subjects: u8) -> ScanReport {
    let mut findings: Vec<Finding> = categories
        .iter()
        .map(|c| Finding {
            category: Category::new(c),
            class: DataClass::Personal,
            count: 3,
            samples: Vec::new(),
        })
        .collect();
    findings.sort_by(|a, b| a.category.cmp(&b.category));
    ScanReport {
        bytes: 4096,
        findings,
        subjects: (0..subjects)
            .map(|i| Subject {
                key: [i; 16],
                sensitive: false,
            })
            .collect(),
        uninspectable: None,
    }
}

fn bench_decide(c: &mut Criterion) {
    let policy = Policy::from_config(&config_with_100_transfers()).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 4, 0, 0).unwrap();
    // T-098 is near the end of the list, so most records are examined before it matches.
    let approved_dest = destination("api.vendor98.com", COUNTRIES[98 % COUNTRIES.len()]);
    let approved = report(&["cn_mobile", "email"], 3);
    let refused = report(&["cn_mobile", "health"], 1);
    let nowhere = destination("api.unknown-vendor.io", "BR");
    let mut group = c.benchmark_group("decide_100_transfers");
    group.bench_function("approved_transfer", |b| {
        b.iter(|| {
            policy.decide(black_box(&DecisionInput {
                destination: &approved_dest,
                report: &approved,
                at,
            }))
        })
    });
    group.bench_function("category_not_approved", |b| {
        b.iter(|| {
            policy.decide(black_box(&DecisionInput {
                destination: &approved_dest,
                report: &refused,
                at,
            }))
        })
    });
    group.bench_function("no_approved_transfer", |b| {
        b.iter(|| {
            policy.decide(black_box(&DecisionInput {
                destination: &nowhere,
                report: &approved,
                at,
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
