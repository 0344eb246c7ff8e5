//! Decision-table tests: every reason code, dates and year boundaries in Asia/Shanghai, host
//! globs, CIDRs, HK/MO/TW as outbound, fail modes, and monotonicity in findings (proptest).

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::classify::{Category, DataClass, Finding, Subject, Uninspectable};
use crate::geo::CountryCode;

const BASE: &str = r#"
timezone = "Asia/Shanghai"
[geo]
unknown_is_outbound = true
[classification]
fail_mode = "closed"

[[transfer]]
id = "SCC-US"
legal_basis = "standard_contract"
countries = ["US"]
hosts = ["*.support-vendor.com", "api.partner.com"]
categories = ["cn_mobile", "email", "person_name"]
valid_from = "2026-01-15"
valid_until = "2027-01-14"
max_individuals_per_year = 900000

[[transfer]]
id = "SA-DE"
legal_basis = "security_assessment"
countries = ["DE"]
cidrs = ["203.0.113.0/24"]
categories = ["cn_mobile", "cn_resident_id", "health"]
allow_sensitive = true
max_sensitive_individuals_per_year = 5000

[[transfer]]
id = "HK-HR"
legal_basis = "exemption_hr"
countries = ["HK"]
categories = ["person_name", "email"]
"#;

fn policy(extra: &str) -> Policy {
    let text = format!("{BASE}\n{extra}");
    let config: Config = toml::from_str(&text).expect("test config parses");
    Policy::from_config(&config).expect("test config compiles")
}

fn policy_from(text: &str) -> Policy {
    let config: Config = toml::from_str(text).expect("test config parses");
    Policy::from_config(&config).expect("test config compiles")
}

fn dest(host: &str, ip: &str, country: Option<&str>) -> Destination {
    let country = country.map(|c| CountryCode::parse(c).unwrap());
    Destination {
        host: host.to_string(),
        port: 443,
        ip: ip.parse::<IpAddr>().unwrap(),
        country,
        region: Region::of_country(country),
    }
}

fn finding(category: &str, class: DataClass) -> Finding {
    Finding {
        category: Category::new(category),
        class,
        count: 1,
        samples: vec!["138****5678".to_string()],
    }
}

fn report(cats: &[(&str, DataClass)], subjects: usize) -> ScanReport {
    let mut findings: Vec<Finding> = cats.iter().map(|(c, k)| finding(c, *k)).collect();
    findings.sort_by(|a, b| a.category.cmp(&b.category));
    let sensitive = cats.iter().any(|(_, k)| *k == DataClass::Sensitive);
    ScanReport {
        bytes: 100,
        findings,
        subjects: (0..subjects)
            .map(|i| Subject {
                key: [i as u8; 16],
                sensitive,
            })
            .collect(),
        uninspectable: None,
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Noon Shanghai time on 2026-06-01: inside every test transfer's window.
fn mid_year() -> DateTime<Utc> {
    at("2026-06-01T04:00:00Z")
}

fn decide_at(p: &Policy, d: &Destination, r: &ScanReport, when: DateTime<Utc>) -> Decision {
    let input = DecisionInput {
        destination: d,
        report: r,
        at: when,
    };
    let decision = p.decide(&input);
    // Every decision in these tests also checks the explanation-free verdict the proxy uses
    // mid-body: the same decision, minus the lines.
    let verdict = p.verdict(&input);
    assert!(verdict.explanation.is_empty(), "{verdict:?}");
    assert_eq!(
        Decision {
            explanation: Default::default(),
            ..decision.clone()
        },
        verdict
    );
    decision
}

fn decide(p: &Policy, d: &Destination, r: &ScanReport) -> Decision {
    decide_at(p, d, r, mid_year())
}

const P: DataClass = DataClass::Personal;
const S: DataClass = DataClass::Sensitive;

fn vendor() -> Destination {
    dest("api.support-vendor.com", "198.51.100.7", Some("US"))
}

#[test]
fn domestic_allows_even_sensitive_pi() {
    let p = policy("");
    let d = decide(
        &p,
        &dest("api.example.cn", "1.2.3.4", Some("CN")),
        &report(&[("cn_resident_id", S)], 3),
    );
    assert_eq!((d.action, d.reason), (Action::Allow, Reason::Domestic));
    assert!(d.volume_claim.is_none());
}

#[test]
fn abroad_without_pi_is_allowed() {
    let d = decide(&policy(""), &vendor(), &report(&[], 0));
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::NoPersonalInfo)
    );
}

#[test]
fn hk_mo_tw_are_outbound() {
    let p = policy("");
    for cc in ["HK", "MO", "TW"] {
        let d = decide(
            &p,
            &dest("x.example", "10.0.0.1", Some(cc)),
            &report(&[("cn_mobile", P)], 1),
        );
        // HK has an HR transfer that does not list cn_mobile; MO and TW have none.
        let expected = if cc == "HK" {
            Reason::CategoryNotApproved
        } else {
            Reason::NoApprovedTransfer
        };
        assert_eq!(
            (d.action, d.reason),
            (Action::Block, expected),
            "{cc} must be treated as outside the mainland"
        );
    }
    // HK is abroad but a transfer for HK approves it.
    let d = decide(
        &p,
        &dest("hr.example.hk", "10.0.0.1", Some("HK")),
        &report(&[("email", P)], 1),
    );
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::ApprovedTransfer)
    );
    assert_eq!(d.transfer.as_deref(), Some("HK-HR"));
}

#[test]
fn unknown_country_follows_unknown_is_outbound() {
    let p = policy("");
    let unknown = dest("mystery.example", "192.0.2.1", None);
    let d = decide(&p, &unknown, &report(&[("email", P)], 1));
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::UnknownGeography)
    );
    let d = decide(&p, &unknown, &report(&[], 0));
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::NoPersonalInfo)
    );

    let lenient =
        policy_from(&BASE.replace("unknown_is_outbound = true", "unknown_is_outbound = false"));
    let d = decide(&lenient, &unknown, &report(&[("email", P)], 1));
    assert_eq!((d.action, d.reason), (Action::Allow, Reason::Domestic));
}

#[test]
fn uninspectable_fail_closed_blocks() {
    let p = policy("");
    let mut r = report(&[], 0);
    r.uninspectable = Some(Uninspectable::TooLarge { limit: 10 });
    let d = decide(&p, &vendor(), &r);
    assert_eq!((d.action, d.reason), (Action::Block, Reason::Uninspectable));
    // Unknown geography: the uninspectable row comes first.
    let d = decide(&p, &dest("m", "192.0.2.1", None), &r);
    assert_eq!((d.action, d.reason), (Action::Block, Reason::Uninspectable));
}

#[test]
fn uninspectable_fail_open_still_judges_the_inspected_part() {
    let p = policy_from(&BASE.replace("fail_mode = \"closed\"", "fail_mode = \"open\""));
    let mut r = report(&[], 0);
    r.uninspectable = Some(Uninspectable::NotDecrypted("bypass".into()));
    let d = decide(&p, &vendor(), &r);
    assert_eq!((d.action, d.reason), (Action::Allow, Reason::Uninspectable));

    // PI found before the body became unreadable, and no transfer allows it: block wins.
    let mut r = report(&[("health", S)], 1);
    r.uninspectable = Some(Uninspectable::DecompressionBomb);
    let d = decide(&p, &vendor(), &r);
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::CategoryNotApproved)
    );

    // Approved PI in the inspected part: forwarded under fail-open, individuals still counted.
    let mut r = report(&[("email", P)], 2);
    r.uninspectable = Some(Uninspectable::TooLarge { limit: 10 });
    let d = decide(&p, &vendor(), &r);
    assert_eq!((d.action, d.reason), (Action::Allow, Reason::Uninspectable));
    assert_eq!(d.volume_claim.as_ref().map(|c| c.subjects.len()), Some(2));
}

#[test]
fn no_matching_transfer_blocks() {
    let d = decide(
        &policy(""),
        &dest("api.other.com", "198.51.100.7", Some("US")),
        &report(&[("email", P)], 1),
    );
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::NoApprovedTransfer)
    );
    assert_eq!(d.transfer, None);
}

#[test]
fn host_globs_match_subdomains_exact_names_and_case() {
    let p = policy("");
    let r = report(&[("email", P)], 1);
    for (host, ok) in [
        ("api.support-vendor.com", true),
        ("a.b.SUPPORT-VENDOR.com", true),
        ("support-vendor.com", false),
        ("evil-support-vendor.com", false),
        ("API.Partner.com", true),
        ("x.api.partner.com", false),
    ] {
        let d = decide(&p, &dest(host, "198.51.100.7", Some("US")), &r);
        assert_eq!(d.action == Action::Allow, ok, "host {host}");
    }
}

#[test]
fn cidrs_restrict_the_destination_ip() {
    let p = policy("");
    let r = report(&[("cn_mobile", P)], 1);
    let inside = decide(&p, &dest("de.example", "203.0.113.9", Some("DE")), &r);
    assert_eq!(inside.reason, Reason::ApprovedTransfer);
    assert_eq!(inside.transfer.as_deref(), Some("SA-DE"));
    let outside = decide(&p, &dest("de.example", "203.0.114.9", Some("DE")), &r);
    assert_eq!(outside.reason, Reason::NoApprovedTransfer);
    // Right network, wrong country (the database says the IP moved): no match.
    let moved = decide(&p, &dest("de.example", "203.0.113.9", Some("FR")), &r);
    assert_eq!(moved.reason, Reason::NoApprovedTransfer);
}

#[test]
fn validity_dates_are_inclusive_local_dates() {
    let p = policy("");
    let r = report(&[("email", P)], 1);
    let v = vendor();
    // valid_from = 2026-01-15: 00:00 Shanghai is 2026-01-14T16:00Z.
    let d = decide_at(&p, &v, &r, at("2026-01-14T15:59:00Z"));
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::TransferNotYetValid)
    );
    assert_eq!(d.transfer.as_deref(), Some("SCC-US"));
    let d = decide_at(&p, &v, &r, at("2026-01-14T16:00:00Z"));
    assert_eq!(d.reason, Reason::ApprovedTransfer);
    // valid_until = 2027-01-14: still valid at 23:59 local, expired at 00:00 the next day.
    let d = decide_at(&p, &v, &r, at("2027-01-14T15:59:00Z"));
    assert_eq!(d.reason, Reason::ApprovedTransfer);
    let d = decide_at(&p, &v, &r, at("2027-01-14T16:00:00Z"));
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::TransferExpired)
    );
    assert_eq!(d.transfer.as_deref(), Some("SCC-US"));
}

#[test]
fn closest_invalid_transfer_decides_between_not_yet_and_expired() {
    let p = policy(
        r#"
[[transfer]]
id = "JP-OLD"
legal_basis = "standard_contract"
countries = ["JP"]
categories = ["email"]
valid_until = "2026-05-01"

[[transfer]]
id = "JP-NEW"
legal_basis = "standard_contract"
countries = ["JP"]
categories = ["email"]
valid_from = "2026-06-10"
"#,
    );
    let r = report(&[("email", P)], 1);
    let jp = dest("jp.example", "10.1.1.1", Some("JP"));
    // 2026-06-01: expired 31 days ago vs valid in 9 days → the future one is closest.
    let d = decide(&p, &jp, &r);
    assert_eq!(
        (d.reason, d.transfer.as_deref()),
        (Reason::TransferNotYetValid, Some("JP-NEW"))
    );
    // 2026-05-03: expired 2 days ago vs 38 days ahead → expired.
    let d = decide_at(&p, &jp, &r, at("2026-05-03T04:00:00Z"));
    assert_eq!(
        (d.reason, d.transfer.as_deref()),
        (Reason::TransferExpired, Some("JP-OLD"))
    );
}

#[test]
fn category_not_approved_names_the_closest_transfer() {
    let d = decide(
        &policy(""),
        &vendor(),
        &report(&[("email", P), ("cn_address", P)], 1),
    );
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::CategoryNotApproved)
    );
    assert_eq!(d.transfer.as_deref(), Some("SCC-US"));
    assert!(d.explanation.iter().any(|l| l.contains("cn_address")));
}

#[test]
fn sensitive_needs_allow_sensitive() {
    let p = policy(
        r#"
[[transfer]]
id = "US-ID"
legal_basis = "standard_contract"
countries = ["US"]
categories = ["cn_resident_id"]
"#,
    );
    let r = report(&[("cn_resident_id", S)], 1);
    let d = decide(&p, &dest("any.example", "198.51.100.1", Some("US")), &r);
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::SensitiveNotApproved)
    );
    assert_eq!(d.transfer.as_deref(), Some("US-ID"));
    // The DE assessment allows sensitive PI.
    let d = decide(&p, &dest("de", "203.0.113.1", Some("DE")), &r);
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::ApprovedTransfer)
    );
}

#[test]
fn approval_carries_a_volume_claim_with_caps() {
    let r = report(&[("email", P), ("cn_mobile", P)], 3);
    let d = decide(&policy(""), &vendor(), &r);
    assert_eq!(
        (d.action, d.reason),
        (Action::Allow, Reason::ApprovedTransfer)
    );
    let claim = d.volume_claim.expect("approved with subjects → claim");
    assert_eq!(claim.transfer, "SCC-US");
    assert_eq!(claim.year, 2026);
    assert_eq!(claim.subjects, r.subjects);
    assert_eq!(claim.max_individuals, Some(900_000));
    assert_eq!(claim.max_sensitive_individuals, None);
    // No subjects (e.g. a bare category hit) → nothing to count.
    let d = decide(&policy(""), &vendor(), &report(&[("email", P)], 0));
    assert_eq!(d.reason, Reason::ApprovedTransfer);
    assert!(d.volume_claim.is_none());
}

#[test]
fn year_boundary_is_midnight_in_shanghai() {
    let p = policy(
        r#"
[[transfer]]
id = "SG"
legal_basis = "standard_contract"
countries = ["SG"]
categories = ["email"]
"#,
    );
    let sg = dest("sg.example", "10.2.2.2", Some("SG"));
    let r = report(&[("email", P)], 1);
    // 23:59 on 31 December in Shanghai is 15:59 UTC: still 2026.
    let before = decide_at(&p, &sg, &r, at("2026-12-31T15:59:00Z"));
    assert_eq!(before.volume_claim.unwrap().year, 2026);
    // 00:01 on 1 January in Shanghai is 16:01 UTC on 31 December: already 2027.
    let after = decide_at(&p, &sg, &r, at("2026-12-31T16:01:00Z"));
    assert_eq!(after.volume_claim.unwrap().year, 2027);
    assert_eq!(p.local_year(at("2026-12-31T16:01:00Z")), 2027);
    assert_eq!(
        p.local_date(at("2026-12-31T16:01:00Z")),
        NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
    );
}

#[test]
fn cap_refusal_turns_approval_into_volume_cap_exceeded() {
    let mut d = decide(&policy(""), &vendor(), &report(&[("email", P)], 2));
    d.apply_admission(&Admission::CapExceeded {
        cap: 900_000,
        current: 899_999,
        new_individuals: 2,
    });
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::VolumeCapExceeded)
    );
    assert_eq!(d.transfer.as_deref(), Some("SCC-US"));

    let mut ok = decide(&policy(""), &vendor(), &report(&[("email", P)], 2));
    ok.apply_admission(&Admission::Admitted {
        new_individuals: 2,
        total: 10,
    });
    assert_eq!(
        (ok.action, ok.reason),
        (Action::Allow, Reason::ApprovedTransfer)
    );

    // A block without a claim is never touched.
    let mut blocked = decide(&policy(""), &vendor(), &report(&[("health", S)], 1));
    let before = blocked.clone();
    blocked.apply_admission(&Admission::CapExceeded {
        cap: 1,
        current: 1,
        new_individuals: 1,
    });
    assert_eq!(blocked, before);
}

#[test]
fn monitor_mode_does_not_change_the_verdict() {
    let p = policy_from(&format!("mode = \"monitor\"\n{BASE}"));
    assert_eq!(p.mode(), Mode::Monitor);
    let d = decide(&p, &vendor(), &report(&[("health", S)], 1));
    assert_eq!(d.action, Action::Block);
}

#[test]
fn every_reason_code_is_reachable() {
    let p = policy("");
    let open = policy_from(&BASE.replace("fail_mode = \"closed\"", "fail_mode = \"open\""));
    let mut seen = BTreeSet::new();
    let mut record = |d: Decision| {
        seen.insert(d.reason.as_str());
    };
    record(decide(
        &p,
        &dest("a.cn", "1.1.1.1", Some("CN")),
        &report(&[], 0),
    ));
    record(decide(&p, &vendor(), &report(&[], 0)));
    let mut r = report(&[], 0);
    r.uninspectable = Some(Uninspectable::UnsupportedEncoding("zstd".into()));
    record(decide(&open, &vendor(), &r));
    record(decide(
        &p,
        &dest("u", "192.0.2.1", None),
        &report(&[("email", P)], 1),
    ));
    record(decide(
        &p,
        &dest("o.com", "192.0.2.1", Some("US")),
        &report(&[("email", P)], 1),
    ));
    let r = report(&[("email", P)], 1);
    record(decide_at(&p, &vendor(), &r, at("2025-06-01T00:00:00Z")));
    record(decide_at(&p, &vendor(), &r, at("2028-06-01T00:00:00Z")));
    record(decide(&p, &vendor(), &report(&[("bank_card", S)], 1)));
    record(decide(
        &p,
        &dest("de", "203.0.113.1", Some("DE")),
        &report(&[("cn_mobile", P)], 1),
    ));
    let p2 = policy(
        r#"
[[transfer]]
id = "US-ALL"
legal_basis = "standard_contract"
countries = ["US"]
categories = ["bank_card"]
"#,
    );
    record(decide(
        &p2,
        &dest("z.example", "10.9.9.9", Some("US")),
        &report(&[("bank_card", S)], 1),
    ));
    let mut capped = decide(&p, &vendor(), &report(&[("email", P)], 1));
    capped.apply_admission(&Admission::CapExceeded {
        cap: 1,
        current: 1,
        new_individuals: 1,
    });
    record(capped);
    let all: BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(seen, all);
}

#[test]
fn explanation_never_contains_samples() {
    let p = policy("");
    let mut r = report(&[("email", P), ("health", S)], 2);
    for f in &mut r.findings {
        f.samples = vec!["zhang***@example.com".into()];
    }
    for d in [
        decide(&p, &vendor(), &r),
        decide(&p, &dest("de", "203.0.113.1", Some("DE")), &r),
    ] {
        assert!(!d.explanation.is_empty());
        for line in &d.explanation {
            assert!(
                !line.contains("zhang"),
                "explanation leaks a sample: {line}"
            );
        }
    }
}

#[test]
fn bad_config_is_refused_with_the_transfer_named() {
    for (text, needle) in [
        (r#"timezone = "Mars/Olympus""#, "time zone"),
        (
            "[[transfer]]\nid = \"X\"\nlegal_basis = \"certification\"\ncountries = [\"USA\"]\ncategories = []",
            "ISO 3166-1",
        ),
        (
            "[[transfer]]\nid = \"X\"\nlegal_basis = \"certification\"\ncountries = [\"US\"]\nhosts = [\"a.*.com\"]\ncategories = []",
            "not supported",
        ),
        (
            "[[transfer]]\nid = \"X\"\nlegal_basis = \"certification\"\ncountries = [\"US\"]\ncategories = []\nvalid_from = \"2027-01-01\"\nvalid_until = \"2026-01-01\"",
            "after valid_until",
        ),
        (
            "[[transfer]]\nid = \"X\"\nlegal_basis = \"certification\"\ncountries = [\"US\"]\ncategories = []\n[[transfer]]\nid = \"X\"\nlegal_basis = \"certification\"\ncountries = [\"US\"]\ncategories = []",
            "duplicate",
        ),
    ] {
        let config: Config = toml::from_str(text).unwrap();
        let err = Policy::from_config(&config).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
}

// ---- monotonicity -------------------------------------------------------------------------

const CATS: [(&str, DataClass); 6] = [
    ("cn_mobile", P),
    ("email", P),
    ("person_name", P),
    ("cn_resident_id", S),
    ("health", S),
    ("bank_card", S),
];
const COUNTRIES: [&str; 4] = ["US", "DE", "HK", "CN"];

fn arb_transfer(i: usize) -> impl Strategy<Value = String> {
    (
        proptest::sample::subsequence(COUNTRIES.to_vec(), 1..=2),
        proptest::sample::subsequence(CATS.iter().map(|c| c.0).collect::<Vec<_>>(), 0..=6),
        any::<bool>(),
        proptest::option::of(-3i64..3),
        proptest::option::of(-3i64..3),
        any::<bool>(),
    )
        .prop_map(move |(countries, cats, sensitive, from, until, host)| {
            let base = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
            let mut t = format!(
                "[[transfer]]\nid = \"T{i}\"\nlegal_basis = \"standard_contract\"\ncountries = {countries:?}\ncategories = {cats:?}\nallow_sensitive = {sensitive}\n"
            );
            let (from, until) = match (from, until) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                x => x,
            };
            if let Some(f) = from {
                t += &format!("valid_from = \"{}\"\n", base + chrono::Duration::days(f));
            }
            if let Some(u) = until {
                t += &format!("valid_until = \"{}\"\n", base + chrono::Duration::days(u));
            }
            if host {
                t += "hosts = [\"*.vendor.com\"]\n";
            }
            t
        })
}

fn arb_policy() -> impl Strategy<Value = (String, bool, bool)> {
    (
        proptest::collection::vec(any::<u8>(), 0..5).prop_flat_map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, _)| arb_transfer(i))
                .collect::<Vec<_>>()
        }),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ts, outbound, open)| (ts.join("\n"), outbound, open))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The proxy re-decides after each chunk and blocks as soon as a block is certain: more
    /// findings (and a body that becomes uninspectable later) never turn a block into an allow.
    #[test]
    fn more_findings_never_unblock(
        (transfers, outbound, open) in arb_policy(),
        small in proptest::sample::subsequence((0..CATS.len()).collect::<Vec<_>>(), 0..=6),
        extra in proptest::sample::subsequence((0..CATS.len()).collect::<Vec<_>>(), 0..=6),
        country in proptest::option::of(proptest::sample::select(COUNTRIES.to_vec())),
        vendor_host in any::<bool>(),
        uninspectable_small in any::<bool>(),
        uninspectable_big in any::<bool>(),
        day in -4i64..4,
    ) {
        let text = format!(
            "[geo]\nunknown_is_outbound = {outbound}\n[classification]\nfail_mode = \"{}\"\n{transfers}",
            if open { "open" } else { "closed" }
        );
        let p = policy_from(&text);
        let host = if vendor_host { "api.vendor.com" } else { "api.other.com" };
        let d = dest(host, "198.51.100.1", country);
        let small_cats: Vec<_> = small.iter().map(|&i| CATS[i]).collect();
        let big_idx: BTreeSet<usize> = small.iter().chain(extra.iter()).copied().collect();
        let big_cats: Vec<_> = big_idx.iter().map(|&i| CATS[i]).collect();
        let mut a = report(&small_cats, small_cats.len());
        let mut b = report(&big_cats, big_cats.len());
        if uninspectable_small {
            a.uninspectable = Some(Uninspectable::TooLarge { limit: 1 });
        }
        if uninspectable_small || uninspectable_big {
            b.uninspectable = Some(Uninspectable::TooLarge { limit: 1 });
        }
        let when = Utc.with_ymd_and_hms(2026, 6, 1, 4, 0, 0).unwrap() + chrono::Duration::days(day);
        let da = decide_at(&p, &d, &a, when);
        let db = decide_at(&p, &d, &b, when);
        if da.action == Action::Block {
            prop_assert_eq!(db.action, Action::Block, "{:?} then {:?}", da.reason, db.reason);
        }
    }
}

#[test]
fn unavailable_volume_store_blocks_only_claims() {
    let mut d = decide(&policy(""), &vendor(), &report(&[("email", P)], 1));
    d.apply_volume_unavailable();
    assert_eq!(
        (d.action, d.reason),
        (Action::Block, Reason::VolumeCapExceeded)
    );
    let mut no_claim = decide(&policy(""), &vendor(), &report(&[], 0));
    no_claim.apply_volume_unavailable();
    assert_eq!(no_claim.action, Action::Allow);
}

/// The explanation lines word for word (they are built without `format!`; the CLI's
/// `explain`, the audit trail and users' log searches read them).
#[test]
fn explanation_lines_read_exactly() {
    let p = policy("");
    let us = dest("api.partner.com", "198.51.100.7", Some("US"));
    let mut r = report(
        &[
            ("cn_mobile", DataClass::Personal),
            ("email", DataClass::Personal),
        ],
        2,
    );
    r.findings[0].count = 3;
    let mut d = decide_at(&p, &us, &r, mid_year());
    d.apply_admission(&Admission::Admitted {
        new_individuals: 2,
        total: 41,
    });
    assert_eq!(
        d.explanation,
        [
            "destination api.partner.com (198.51.100.7) is in US (abroad): outside the mainland",
            "found: cn_mobile×3, email×1; sensitive: no; 2 individual(s)",
            "1 transfer(s) match the destination; 1 valid on 2026-06-01 (Asia/Shanghai)",
            "transfer SCC-US (standard_contract) covers every category found: allow",
            "2 individual(s) to count against SCC-US for 2026",
            "volume: 2 new individual(s) counted against SCC-US for 2026; 41 this year",
        ]
    );

    let de = dest("files.example.de", "203.0.113.9", Some("DE"));
    let r = report(&[("health", DataClass::Sensitive)], 1);
    let d = decide_at(&p, &de, &r, mid_year());
    assert_eq!(
        d.explanation.iter().take(4).collect::<Vec<_>>(),
        [
            "destination files.example.de (203.0.113.9) is in DE (abroad): outside the mainland",
            "found: health×1; sensitive: yes; 1 individual(s)",
            "1 transfer(s) match the destination; 1 valid on 2026-06-01 (Asia/Shanghai)",
            "transfer SA-DE (security_assessment) covers every category found and allows sensitive PI: allow",
        ]
    );

    let cn = dest("pay.example.cn", "2001:db8::7", Some("CN"));
    let d = decide_at(&p, &cn, &r, mid_year());
    assert_eq!(
        d.explanation,
        ["destination pay.example.cn (2001:db8::7) is in CN: mainland, domestic"]
    );
}
