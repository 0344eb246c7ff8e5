//! The live view: the hub without a browser (buckets roll, the ring is bounded, filters, the
//! HTTP routes and the event stream), then the whole thing in headless Chromium against a
//! running proxy and the real admin listener, with a screenshot in `target/live-view.png`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use chujing::audit::{AuditEvent, Outcome, RequestFacts};
use chujing::classify::{Category, DataClass, Finding, ScanReport};
use chujing::config::{LegalBasis, Mode};
use chujing::geo::{CountryCode, Destination, Region};
use chujing::live::{
    self, EventFilter, LiveAction, LiveHub, StatutoryTier, StatutoryTotals, TransferStatus,
    TransferStatusSource, WINDOW_SECS,
};
use chujing::policy::{Action, Decision, Reason};
use chujing::telemetry::admin::{serve_admin, AdminState, ReadinessCheck, StatusSource};
use chujing::telemetry::{AdminBody, Metrics, Validity};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{curl, ids, upstream};

/// Counts heap allocations made by the current thread while `COUNTING` is set, so a test can
/// prove that recording an allowed decision does not allocate.
struct CountingAllocator;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: defers every operation to the system allocator unchanged; the bookkeeping only
// touches const-initialised thread-locals, which never allocate.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        std::alloc::System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        std::alloc::System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|a| a.get())
}

// ---- building audit events the way the proxy does ----------------------------------------

struct Ev<'a> {
    id: &'a str,
    action: Option<Action>,
    reason: Reason,
    enforced: bool,
    country: Option<&'a str>,
    transfer: Option<&'a str>,
    categories: &'a [&'a str],
}

impl<'a> Ev<'a> {
    fn allow(id: &'a str, country: Option<&'a str>) -> Ev<'a> {
        Ev {
            id,
            action: Some(Action::Allow),
            reason: Reason::NoPersonalInfo,
            enforced: false,
            country,
            transfer: None,
            categories: &[],
        }
    }

    fn block(id: &'a str, reason: Reason, country: &'a str, transfer: Option<&'a str>) -> Ev<'a> {
        Ev {
            id,
            action: Some(Action::Block),
            reason,
            enforced: true,
            country: Some(country),
            transfer,
            categories: &["cn_resident_id", "cn_mobile"],
        }
    }

    fn monitored(mut self) -> Ev<'a> {
        self.enforced = false;
        self
    }

    fn event(&self) -> AuditEvent<'static> {
        let country = self.country.and_then(CountryCode::parse);
        let destination = Destination {
            host: "api.partner.example".into(),
            port: 443,
            ip: "127.0.0.2".parse().unwrap(),
            country,
            region: Region::of_country(country),
        };
        let report = ScanReport {
            bytes: 100,
            findings: self
                .categories
                .iter()
                .map(|c| Finding {
                    category: Category::new(c),
                    class: DataClass::Personal,
                    count: 1,
                    samples: vec!["110***********123X".into()],
                })
                .collect(),
            subjects: Vec::new(),
            uninspectable: None,
        };
        let decision = self.action.map(|action| Decision {
            action,
            reason: self.reason,
            transfer: self.transfer.map(str::to_string),
            explanation: ["test"].into_iter().collect(),
            volume_claim: None,
        });
        let facts = RequestFacts {
            request_id: self.id,
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
                destination: self.action.map(|_| &destination),
                decision: decision.as_ref(),
                report: Some(&report),
                mode: if self.enforced {
                    Mode::Enforce
                } else {
                    Mode::Monitor
                },
                enforced: self.enforced,
                status: Some(if self.enforced { 403 } else { 200 }),
                error: None,
                policy_hash: "0123456789abcdef",
            },
        )
        .into_owned()
    }
}

const T0: u64 = 1_795_000_000;

// ---- the hub, no browser ----------------------------------------------------------------

#[test]
fn actions_are_told_apart() {
    assert_eq!(
        LiveAction::of(&Ev::allow("a", Some("DE")).event()),
        LiveAction::Allowed
    );
    let b = Ev::block("b", Reason::NoApprovedTransfer, "DE", None);
    assert_eq!(LiveAction::of(&b.event()), LiveAction::Blocked);
    assert_eq!(
        LiveAction::of(&b.monitored().event()),
        LiveAction::Monitored
    );
    let mut f = Ev::allow("f", None);
    f.action = None;
    assert_eq!(LiveAction::of(&f.event()), LiveAction::Failed);
}

#[test]
fn counts_recorded_by_several_workers_add_up() {
    // Each thread writes its own shard of the counts; readers see the sum.
    let hub = LiveHub::new(10);
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                chujing::shard::pin(n);
                for _ in 0..=n {
                    hub.record_at(&Ev::allow("a", Some("DE")).event(), T0);
                }
                hub.record_at(
                    &Ev::block("b", Reason::NoApprovedTransfer, "US", None).event(),
                    T0 + 1,
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hub.second(T0).action(LiveAction::Allowed), 1 + 2 + 3 + 4);
    assert_eq!(hub.second(T0).region("abroad"), 10);
    assert_eq!(hub.second(T0 + 1).action(LiveAction::Blocked), 4);
    let series = hub.series(T0 + 1);
    assert_eq!(series.total(LiveAction::Allowed), 10);
    assert_eq!(series.total(LiveAction::Blocked), 4);
}

#[test]
fn buckets_count_per_second_and_roll_out_of_the_window() {
    let hub = LiveHub::new(10);
    hub.record_at(&Ev::allow("a1", Some("DE")).event(), T0);
    hub.record_at(&Ev::allow("a2", Some("CN")).event(), T0);
    hub.record_at(&Ev::allow("a3", Some("HK")).event(), T0 + 1);
    hub.record_at(
        &Ev::block("b1", Reason::NoApprovedTransfer, "US", None).event(),
        T0 + 1,
    );
    hub.record_at(
        &Ev::block("m1", Reason::CategoryNotApproved, "TW", None)
            .monitored()
            .event(),
        T0 + 2,
    );

    let s0 = hub.second(T0);
    assert_eq!(s0.action(LiveAction::Allowed), 2);
    assert_eq!(s0.region("abroad"), 1);
    assert_eq!(s0.region("mainland"), 1);
    let s1 = hub.second(T0 + 1);
    assert_eq!(s1.action(LiveAction::Allowed), 1);
    assert_eq!(s1.action(LiveAction::Blocked), 1);
    assert_eq!(s1.region("hk"), 1);
    assert_eq!(s1.region("abroad"), 1);
    assert_eq!(hub.second(T0 + 2).action(LiveAction::Monitored), 1);
    assert_eq!(hub.second(T0 + 2).region("tw"), 1);
    assert_eq!(hub.second(T0 + 3), Default::default());

    // A window ending at T0+2: 900 points, the last three carry the counts.
    let series = hub.series(T0 + 2);
    assert_eq!(series.end, T0 + 2);
    assert_eq!(series.start, T0 + 2 - (WINDOW_SECS - 1));
    let allowed = &series.actions["allowed"];
    assert_eq!(allowed.len(), WINDOW_SECS as usize);
    assert_eq!(&allowed[allowed.len() - 3..], &[2, 1, 0]);
    assert_eq!(series.total(LiveAction::Allowed), 3);
    assert_eq!(series.total(LiveAction::Blocked), 1);
    assert_eq!(series.total(LiveAction::Monitored), 1);
    assert_eq!(series.region_total("abroad"), 2);

    // 15 minutes later T0 is the first point; one second more and it is gone.
    let edge = hub.series(T0 + WINDOW_SECS - 1);
    assert_eq!(edge.actions["allowed"][0], 2);
    assert_eq!(edge.total(LiveAction::Allowed), 3);
    let later = hub.series(T0 + WINDOW_SECS);
    assert_eq!(later.total(LiveAction::Allowed), 1, "T0 rolled out");
    let much_later = hub.series(T0 + 10 * WINDOW_SECS);
    assert_eq!(much_later.total(LiveAction::Allowed), 0);
    assert_eq!(much_later.total(LiveAction::Blocked), 0);

    // A new second reusing an old slot starts from zero.
    hub.record_at(&Ev::allow("a4", Some("DE")).event(), T0 + WINDOW_SECS + 1);
    assert_eq!(
        hub.second(T0 + WINDOW_SECS + 1).action(LiveAction::Allowed),
        1
    );
    assert_eq!(hub.second(T0).action(LiveAction::Allowed), 0);
}

#[test]
fn recording_an_allowed_decision_does_not_allocate() {
    let hub = LiveHub::new(500);
    let allowed = Ev::allow("a", Some("DE")).event();
    let domestic = Ev::allow("d", Some("CN")).event();
    let blocked = Ev::block("b", Reason::NoApprovedTransfer, "DE", None).event();
    // Even with the ring full and a subscriber listening.
    for i in 0..600 {
        hub.record_at(&blocked, T0 + i);
    }
    let _subscriber = hub.subscribe();
    let n = allocations(|| {
        for i in 0..1000 {
            hub.record_at(&allowed, T0 + i);
            hub.record_at(&domestic, T0 + i);
        }
    });
    assert_eq!(n, 0, "{n} allocations recording 2000 allowed decisions");
    // A block allocates what the table keeps (summary strings, audit JSON, ring entry) and
    // the SSE frame; a small, fixed number, independent of the ring's size.
    let per_block = allocations(|| hub.record_at(&blocked, T0 + 700));
    eprintln!("recording one blocked decision: {per_block} allocations");
    assert!(
        (1..=16).contains(&per_block),
        "{per_block} allocations for one block"
    );
}

#[test]
fn ring_keeps_only_the_latest_blocks_with_their_audit_event() {
    let hub = LiveHub::new(3);
    // Allowed requests are counted, never listed.
    hub.record_at(&Ev::allow("allowed-1", Some("DE")).event(), T0);
    for i in 0..5 {
        let id = format!("block-{i}");
        hub.record_at(
            &Ev::block(&id, Reason::NoApprovedTransfer, "DE", None).event(),
            T0 + i,
        );
    }
    assert_eq!(hub.recent_len(), 3);
    let recent = hub.recent(&EventFilter::default(), usize::MAX);
    let ids: Vec<&str> = recent.iter().map(|s| s.request_id.as_str()).collect();
    assert_eq!(ids, ["block-4", "block-3", "block-2"], "newest first");
    assert_eq!(hub.recent(&EventFilter::default(), 1).len(), 1);
    assert!(hub.audit_event("block-0").is_none(), "rotated out");
    assert!(
        hub.audit_event("allowed-1").is_none(),
        "allows are not kept"
    );
    let full: Value = serde_json::from_slice(&hub.audit_event("block-3").unwrap()).unwrap();
    assert_eq!(full["chujing"]["request_id"], "block-3");
    assert_eq!(full["chujing"]["reason"], "no_approved_transfer");
    assert_eq!(full["destination"]["geo"]["country_iso_code"], "DE");
    assert_eq!(full["chujing"]["findings"][0]["category"], "cn_resident_id");

    let s = &recent[0];
    assert_eq!(s.action, LiveAction::Blocked);
    assert_eq!(s.client, Some("10.1.2.3".parse().unwrap()));
    assert_eq!(s.host, "api.partner.example");
    assert_eq!(s.country.as_deref(), Some("DE"));
    assert_eq!(s.region, "abroad");
    let cats: Vec<&str> = s.categories.iter().map(|c| c.as_str()).collect();
    assert_eq!(cats, ["cn_resident_id", "cn_mobile"]);
}

#[test]
fn summaries_never_carry_the_masked_samples() {
    let hub = LiveHub::new(3);
    hub.record_at(
        &Ev::block("b", Reason::NoApprovedTransfer, "DE", None).event(),
        T0,
    );
    let text = serde_json::to_string(&hub.recent(&EventFilter::default(), 10)).unwrap();
    assert!(!text.contains("123X"), "{text}");
}

#[test]
fn filters_by_reason_country_and_transfer() {
    let hub = LiveHub::new(50);
    let events = [
        Ev::block("1", Reason::NoApprovedTransfer, "DE", None),
        Ev::block("2", Reason::CategoryNotApproved, "US", Some("SCC-A")),
        Ev::block("3", Reason::CategoryNotApproved, "DE", Some("SCC-B")),
        Ev::block("4", Reason::TransferExpired, "US", Some("SCC-A")).monitored(),
    ];
    for (i, e) in events.iter().enumerate() {
        hub.record_at(&e.event(), T0 + i as u64);
    }
    let ids = |f: EventFilter| -> Vec<String> {
        hub.recent(&f, usize::MAX)
            .into_iter()
            .map(|s| s.request_id)
            .collect()
    };
    let f = |reason: Option<&str>, country: Option<&str>, transfer: Option<&str>| EventFilter {
        reason: reason.map(str::to_string),
        country: country.map(str::to_string),
        transfer: transfer.map(str::to_string),
    };
    assert_eq!(ids(f(None, None, None)), ["4", "3", "2", "1"]);
    assert_eq!(
        ids(f(Some("category_not_approved"), None, None)),
        ["3", "2"]
    );
    assert_eq!(
        ids(f(None, Some("us"), None)),
        ["4", "2"],
        "country ignores case"
    );
    assert_eq!(ids(f(None, None, Some("SCC-A"))), ["4", "2"]);
    assert_eq!(ids(f(None, None, Some(""))), ["1"], "empty = no transfer");
    assert_eq!(
        ids(f(Some("category_not_approved"), Some("DE"), Some("SCC-B"))),
        ["3"]
    );
    assert!(ids(f(Some("domestic"), None, None)).is_empty());
    // The same filter through the query string of /live/state.
    let q = live::http::filter_from_query("reason=category_not_approved&country=US&x=1");
    assert_eq!(q, f(Some("category_not_approved"), Some("US"), None));
}

// ---- HTTP routes, no browser -------------------------------------------------------------

async fn call(
    hub: &LiveHub,
    method: &str,
    uri: &str,
) -> Option<(StatusCode, http::HeaderMap, Bytes)> {
    let req = Request::builder().method(method).uri(uri).body(()).unwrap();
    let resp = live::handle(hub, &req).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Some((status, headers, body))
}

struct FixedTransfers;

impl TransferStatusSource for FixedTransfers {
    fn transfers(&self) -> Vec<TransferStatus> {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        vec![
            TransferStatus {
                id: "SCC-2026-002".into(),
                legal_basis: LegalBasis::StandardContract,
                reference: Some("filing no. 42".into()),
                recipient: Some("Support Vendor Inc".into()),
                countries: vec!["DE".into()],
                valid_from: Some(d("2026-01-15")),
                valid_until: Some(d("2027-01-14")),
                validity: Validity::Valid,
                days_left: Some(52),
                individuals: Some(723_456),
                sensitive_individuals: Some(0),
                max_individuals_per_year: Some(900_000),
                max_sensitive_individuals_per_year: None,
            },
            TransferStatus {
                id: "CAC-2023-OLD".into(),
                legal_basis: LegalBasis::SecurityAssessment,
                reference: None,
                recipient: None,
                countries: vec!["US".into()],
                valid_from: Some(d("2023-01-01")),
                valid_until: Some(d("2025-12-31")),
                validity: Validity::Expired,
                days_left: None,
                individuals: Some(12),
                sensitive_individuals: Some(3),
                max_individuals_per_year: Some(1_000),
                max_sensitive_individuals_per_year: Some(10),
            },
        ]
    }

    fn statutory(&self) -> StatutoryTotals {
        StatutoryTotals {
            year: 2026,
            individuals: 723_468,
            sensitive_individuals: 3,
        }
    }
}

#[tokio::test]
async fn routes_answer_and_refuse_as_documented() {
    let hub = LiveHub::new(10);
    assert!(call(&hub, "GET", "/metrics").await.is_none());
    assert!(call(&hub, "GET", "/livestock").await.is_none());

    let (status, headers, body) = call(&hub, "GET", "/").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("/live/assets/live.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );

    let (status, headers, _) = call(&hub, "GET", "/?token=s3cret%2F1").await.unwrap();
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("chujing_admin_token=s3cret%2F1;"),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    for (asset, ty) in [("live.js", "text/javascript"), ("live.css", "text/css")] {
        let (status, headers, body) = call(&hub, "GET", &format!("/live/assets/{asset}"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(headers["content-type"].to_str().unwrap().starts_with(ty));
        assert!(!body.is_empty());
    }
    let (status, _, _) = call(&hub, "GET", "/live/assets/../../etc/passwd")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, _) = call(&hub, "POST", "/live/state").await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");

    // Recorded two seconds ago, so the snapshot (which ends with the last complete second)
    // holds them whenever the clock ticks between here and the request.
    let recorded_at = Utc::now().timestamp() as u64 - 2;
    hub.record_at(&Ev::allow("a", Some("DE")).event(), recorded_at);
    hub.record_at(
        &Ev::block("0000abcd00000001", Reason::NoApprovedTransfer, "DE", None).event(),
        recorded_at,
    );
    hub.record_at(
        &Ev::block(
            "0000abcd00000002",
            Reason::TransferExpired,
            "US",
            Some("CAC-2023-OLD"),
        )
        .event(),
        recorded_at,
    );
    let (status, _, body) = call(&hub, "GET", "/live/state").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let state: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(state["window_secs"], 900);
    assert_eq!(state["recent"].as_array().unwrap().len(), 2);
    assert!(state["transfers"].is_null(), "no source attached yet");
    let series_total = |name: &str| -> u64 {
        state["series"]["actions"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(series_total("blocked"), 2);
    assert_eq!(series_total("allowed"), 1);

    let (_, _, body) = call(&hub, "GET", "/live/state?transfer=CAC-2023-OLD&limit=5")
        .await
        .unwrap();
    let state: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(state["recent"][0]["request_id"], "0000abcd00000002");
    assert_eq!(state["recent"].as_array().unwrap().len(), 1);
    let (status, _, body) = call(&hub, "GET", "/live/state?limit=x").await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("limit"));

    let (status, _, body) = call(&hub, "GET", "/live/event/0000abcd00000001")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let full: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(full["http"]["request"]["id"], "0000abcd00000001");
    let (status, _, body) = call(&hub, "GET", "/live/event/ffff").await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"], "event_not_found");
    assert!(err["message"].as_str().unwrap().contains("audit log"));
    let (status, _, _) = call(&hub, "GET", "/live/event/..%2Fx").await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    hub.set_transfer_source(Arc::new(FixedTransfers));
    let (_, _, body) = call(&hub, "GET", "/live/state").await.unwrap();
    let state: Value = serde_json::from_slice(&body).unwrap();
    let t = &state["transfers"];
    assert_eq!(t["transfers"][0]["id"], "SCC-2026-002");
    assert_eq!(t["transfers"][1]["validity"], "expired");
    assert_eq!(t["statutory"]["individuals"], 723_468);
    assert_eq!(t["tier"], "standard_contract_or_certification");
    assert_eq!(t["thresholds"]["assessment"], 1_000_000);
    assert_eq!(
        FixedTransfers.statutory().tier(),
        StatutoryTier::StandardContractOrCertification
    );
}

/// Reads SSE frames from a streaming body until `pred` holds for one (or the time is up).
async fn next_frame(
    body: &mut AdminBody,
    buf: &mut String,
    pred: impl Fn(&str, &Value) -> bool,
) -> (String, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_string();
                }
            }
            if data.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&data).unwrap();
            if pred(&name, &value) {
                return (name, value);
            }
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("an SSE frame within 5 s")
            .expect("stream open")
            .unwrap();
        if let Some(data) = frame.data_ref() {
            buf.push_str(std::str::from_utf8(data).unwrap());
        }
    }
}

#[tokio::test]
async fn event_stream_sends_snapshot_decisions_and_ticks() {
    let hub = LiveHub::new(10);
    hub.record(&Ev::block("before-1", Reason::NoApprovedTransfer, "DE", None).event());
    let req = Request::get("/live/events").body(()).unwrap();
    let resp = live::handle(&hub, &req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut buf = String::new();

    let (_, snap) = next_frame(&mut body, &mut buf, |n, _| n == "snapshot").await;
    assert_eq!(snap["recent"][0]["request_id"], "before-1");
    assert_eq!(hub.subscriber_count(), 1);

    hub.record(&Ev::block("live-1", Reason::SensitiveNotApproved, "US", Some("SCC-A")).event());
    hub.record(&Ev::allow("live-allowed", Some("DE")).event());
    let (_, d) = next_frame(&mut body, &mut buf, |n, _| n == "decision").await;
    assert_eq!(d["request_id"], "live-1");
    assert_eq!(d["reason"], "sensitive_not_approved");
    assert_eq!(d["transfer"], "SCC-A");
    assert_eq!(d["action"], "blocked");

    // Ticks carry one second each, by action and region; the two records above land in one
    // or two seconds, so wait until the ticks have covered them.
    let recorded_at = Utc::now().timestamp() as u64;
    let mut allowed = 0;
    let mut blocked = 0;
    loop {
        let (_, t) = next_frame(&mut body, &mut buf, |n, _| n == "tick").await;
        allowed += t["actions"]["allowed"].as_u64().unwrap();
        blocked += t["actions"]["blocked"].as_u64().unwrap();
        assert!(t["regions"]["abroad"].is_u64());
        if t["second"].as_u64().unwrap() >= recorded_at {
            break;
        }
    }
    assert_eq!(allowed, 1);
    assert!(
        (1..=2).contains(&blocked),
        "live-1 (and maybe before-1): {blocked}"
    );

    drop(body);
    // The stream's task notices the closed body and releases its slot.
    for _ in 0..50 {
        if hub.subscriber_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.subscriber_count(), 0);
}

#[tokio::test]
async fn too_many_streams_are_refused() {
    let hub = LiveHub::new(10);
    let mut open = Vec::new();
    for _ in 0..live::http::MAX_SUBSCRIBERS {
        let req = Request::get("/live/events").body(()).unwrap();
        let resp = live::handle(&hub, &req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        open.push(resp);
    }
    let req = Request::get("/live/events").body(()).unwrap();
    let resp = live::handle(&hub, &req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(open);
}

// ---- in a real browser -----------------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "live-view-test-token";

struct NoChecks;

impl StatusSource for NoChecks {
    fn readiness(&self) -> Vec<ReadinessCheck> {
        vec![ReadinessCheck::ok("policy")]
    }
    fn policy_status(&self) -> Value {
        serde_json::json!({})
    }
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// NUL-terminated JSON on the child's fds 3 and 4, mapped here to its stdin and stdout).
/// `--dump-dom` cannot be used: it waits for virtual time, which never advances while the
/// page's event stream is open, so it hangs.
struct Browser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    async fn launch(profile: &Path) -> Browser {
        use std::process::Stdio;
        let mut cmd = tokio::process::Command::new("/bin/sh");
        // fd 3 <- our pipe (commands), fd 4 -> our pipe (answers); Chromium's own stdout
        // and stderr are not needed.
        cmd.arg("-c")
            .arg(format!(
                "exec {CHROMIUM} --headless --no-sandbox --disable-gpu --disable-quic \
                 --no-first-run --disable-background-networking --disable-component-update \
                 --disable-sync --disable-dev-shm-usage --hide-scrollbars \
                 --window-size=1400,1000 --user-data-dir='{}' --remote-debugging-pipe \
                 about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null",
                profile.display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("chromium starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
            next_id: 0,
            session: None,
        }
    }

    /// Sends one command (to the attached page, if any) and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = Value::String(s.clone());
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.stdin.write_all(&bytes).await.unwrap();
        self.stdin.flush().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut buf = Vec::new();
            let n = tokio::time::timeout_at(deadline, self.stdout.read_until(0, &mut buf))
                .await
                .unwrap_or_else(|_| panic!("no DevTools answer to {method} within 30 s"))
                .unwrap();
            assert!(n > 0, "chromium closed the DevTools pipe during {method}");
            buf.pop();
            let answer: Value = serde_json::from_slice(&buf).unwrap();
            // Events (no id) and answers to other sessions are skipped.
            if answer["id"].as_u64() == Some(id) {
                assert!(answer["error"].is_null(), "{method} failed: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Attaches to the page target and opens `url`.
    async fn open(&mut self, url: &str) {
        let targets = self.call("Target.getTargets", serde_json::json!({})).await;
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["targetId"]
            .clone();
        let attached = self
            .call(
                "Target.attachToTarget",
                serde_json::json!({"targetId": page, "flatten": true}),
            )
            .await;
        self.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        self.call("Page.enable", serde_json::json!({})).await;
        self.call("Page.navigate", serde_json::json!({"url": url}))
            .await;
    }

    async fn dom(&mut self) -> String {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": "document.documentElement.outerHTML",
                    "returnByValue": true
                }),
            )
            .await;
        r["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls the DOM until `pred` holds; panics with the last DOM after `secs`.
    async fn wait_for(&mut self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let dom = self.dom().await;
            if pred(&dom) {
                return dom;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not on the page after {secs} s; DOM:\n{dom}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&mut self, path: &Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64_decode(r["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        std::fs::write(path, png).unwrap();
    }

    async fn close(mut self) {
        self.session = None;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.call("Browser.close", serde_json::json!({})),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decoder_is_right() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}

/// An in-process proxy (forward listener, `partner.test` and `approved.test` pinned to
/// 127.0.0.2 = DE) with its handle, so the test can reach its live hub.
struct LiveProxy {
    proxy: Arc<chujing::proxy::Proxy>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveProxy {
    async fn start(extra: &str) -> LiveProxy {
        let dir = tempfile::tempdir().unwrap();
        let geo_db = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/geo/country.mmdb");
        let config_path = dir.path().join("chujing.toml");
        std::fs::write(
            &config_path,
            format!(
                "mode = \"enforce\"\n[[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"forward\"\n\
                 [resolve]\n\"partner.test\" = [\"127.0.0.2\"]\n\"approved.test\" = [\"127.0.0.2\"]\n\
                 [geo]\ndatabase = {:?}\nunknown_is_outbound = true\n{}\n\
                 [audit]\npath = {:?}\n[volume]\nbackend = \"memory\"\n{extra}\n",
                geo_db.display().to_string(),
                support::GEO_OVERRIDES,
                dir.path().join("audit.jsonl").display().to_string(),
            ),
        )
        .unwrap();
        let loaded = chujing::config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let volume = chujing::volume::open_store(&loaded.config.volume).unwrap();
        let (proxy, listeners) = chujing::proxy::start(loaded, volume).await.unwrap();
        let addr = listeners[0].local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(chujing::proxy::serve(
            Arc::clone(&proxy),
            listeners,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(2),
        ));
        LiveProxy {
            proxy,
            addr,
            _dir: dir,
            stop,
            task,
        }
    }

    async fn post(&self, url: &str, body: &str) -> support::CurlResult {
        curl(&[
            "-x",
            &format!("http://{}", self.addr),
            "--data-binary",
            body,
            url,
        ])
        .await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_feeds_the_hub_and_the_volume_report_feeds_the_transfers_panel() {
    let de = upstream("127.0.0.2").await;
    let p = LiveProxy::start(
        r#"
[[transfer]]
id = "SCC-LIVE"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["approved.test"]
categories = ["cn_mobile"]
max_individuals_per_year = 1000

[[transfer]]
id = "SCC-EXPIRED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["old.test"]
categories = ["cn_mobile"]
valid_from = "2019-01-01"
valid_until = "2020-12-31"
"#,
    )
    .await;
    let hub = p.proxy.live().clone();
    let source = live::ReportedTransfers::new();
    hub.set_transfer_source(source.clone());

    let port = de.addr.port();
    let r = p
        .post(
            &format!("http://approved.test:{port}/sms"),
            &format!("{{\"to\":\"{}\"}}", ids::MOBILE),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = p
        .post(
            &format!("http://partner.test:{port}/sms"),
            &format!("{{\"to\":\"{}\"}}", ids::MOBILE),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Every audited decision reached the hub: both counted, the block listed.
    let now = Utc::now().timestamp() as u64;
    let series = hub.series(now);
    assert_eq!(series.total(LiveAction::Allowed), 1);
    assert_eq!(series.total(LiveAction::Blocked), 1);
    assert_eq!(series.region_total("abroad"), 2);
    let recent = hub.recent(&EventFilter::default(), 10);
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].reason, Some("no_approved_transfer"));
    assert_eq!(recent[0].host, "partner.test");

    // The panel shows the store's count for the approving transfer.
    source.refresh(&p.proxy, Utc::now()).await.unwrap();
    let view = hub.transfers().unwrap();
    let live_t = view.transfers.iter().find(|t| t.id == "SCC-LIVE").unwrap();
    assert_eq!(live_t.individuals, Some(1));
    assert_eq!(live_t.max_individuals_per_year, Some(1000));
    let old = view
        .transfers
        .iter()
        .find(|t| t.id == "SCC-EXPIRED")
        .unwrap();
    assert_eq!(old.validity, Validity::Expired);
    assert_eq!(view.statutory.individuals, 1);
    assert_eq!(view.tier, StatutoryTier::Exempt);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_allowed_and_blocked_requests() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "\n\n******** SKIPPED browser_shows_allowed_and_blocked_requests: {CHROMIUM} is \
             absent; install it with `apt-get install -y chromium` ********\n\n"
        );
        return;
    }

    // The proxy, in enforce mode, with a recording upstream "abroad" (127.0.0.2 = DE).
    let de = upstream("127.0.0.2").await;
    let p = LiveProxy::start("").await;
    let proxy_addr = p.addr;
    let hub = p.proxy.live().clone();
    hub.set_transfer_source(Arc::new(FixedTransfers));

    // The real admin listener, with the token and the live view attached.
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin: SocketAddr = admin_listener.local_addr().unwrap();
    let state = AdminState {
        metrics: Arc::new(Metrics::new()),
        status: Arc::new(NoChecks),
        token: Some(TOKEN.into()),
        live: Some(hub.clone()),
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(serve_admin(admin_listener, state, async move {
        let _ = admin_stopped.await;
    }));

    // The same token protects the live view; the cookie the page sets works.
    let r = curl(&[&format!("http://{admin}/live/state")]).await;
    assert_eq!(r.status, 401);
    let r = curl(&[&format!("http://{admin}/")]).await;
    assert_eq!(r.status, 401);
    let r = curl(&[&format!("http://{admin}/?token=wrong")]).await;
    assert_eq!(r.status, 401);
    let r = curl(&[&format!("http://{admin}/?token={TOKEN}")]).await;
    assert_eq!(r.status, 303);
    let r = curl(&[
        "-H",
        &format!("cookie: chujing_admin_token={TOKEN}"),
        &format!("http://{admin}/live/state"),
    ])
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Open the page first: what follows must arrive live, over the event stream.
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch(profile.path()).await;
    browser
        .open(&format!("http://{admin}/?token={TOKEN}"))
        .await;
    browser
        .wait_for("the event stream connected", 30, |dom| {
            dom.contains("class=\"conn conn-ok\"")
        })
        .await;
    browser
        .wait_for("transfers panel", 5, |dom| dom.contains("SCC-2026-002"))
        .await;

    // One allowed and one blocked request through the proxy.
    let url = format!("http://partner.test:{}/v1/orders", de.addr.port());
    let allowed = curl(&[
        "-x",
        &format!("http://{proxy_addr}"),
        "--data-binary",
        "{\"order\":\"A-1\",\"note\":\"nothing personal\"}",
        &url,
    ])
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let blocked = curl(&[
        "-x",
        &format!("http://{proxy_addr}"),
        "--data-binary",
        &format!("{{\"order\":\"A-2\",\"idNo\":\"{}\"}}", ids::adult()),
        &url,
    ])
    .await;
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    let blocked_id = blocked.json()["request_id"].as_str().unwrap().to_string();
    assert_eq!(hub.recent_len(), 1);

    // The blocked one arrives as a `decision` event; both are counted by the next ticks.
    let row = format!("data-request-id=\"{blocked_id}\"");
    let dom = browser
        .wait_for("the blocked request's row", 10, |dom| dom.contains(&row))
        .await;
    assert!(dom.contains("no_approved_transfer"), "{dom}");
    assert!(dom.contains("cn_resident_id"), "{dom}");
    let dom = browser
        .wait_for("both requests in the per-second counts", 10, |dom| {
            dom.contains("id=\"total-allowed\">1<")
                && dom.contains("id=\"total-blocked\">1<")
                && dom.contains("id=\"total-region-abroad\">2<")
        })
        .await;
    assert!(!dom.contains(&ids::adult()), "personal data on the page");
    assert!(
        dom.contains("class=\"expired\""),
        "expired transfer highlighted"
    );

    // A would-block (monitor mode) to the US arrives live too; the country filter then
    // shows it alone.
    hub.record(
        &Ev::block(
            "0000feed00000001",
            Reason::CategoryNotApproved,
            "US",
            Some("SCC-2026-002"),
        )
        .monitored()
        .event(),
    );
    browser
        .wait_for("the would-block row", 10, |dom| {
            dom.contains("data-request-id=\"0000feed00000001\"") && dom.contains("would block")
        })
        .await;
    browser
        .call(
            "Runtime.evaluate",
            serde_json::json!({"expression": "(() => { const s = document.getElementById('filter-country'); \
                s.value = 'US'; s.dispatchEvent(new Event('change')); })()"}),
        )
        .await;
    let dom = browser
        .wait_for("the country filter applied", 5, |dom| !dom.contains(&row))
        .await;
    assert!(
        dom.contains("data-request-id=\"0000feed00000001\""),
        "{dom}"
    );
    browser
        .call(
            "Runtime.evaluate",
            serde_json::json!({"expression": "(() => { const s = document.getElementById('filter-country'); \
                s.value = ''; s.dispatchEvent(new Event('change')); })()"}),
        )
        .await;
    browser
        .wait_for("the filter cleared", 5, |dom| dom.contains(&row))
        .await;

    // Click-through: the row opens the full audit event.
    browser
        .call(
            "Runtime.evaluate",
            serde_json::json!({"expression": format!(
                "document.querySelector('[{row}]').click()"
            )}),
        )
        .await;
    let dom = browser
        .wait_for("the audit event dialog", 10, |dom| {
            dom.contains("\"policy_hash\"") && dom.contains("<dialog id=\"detail\" open")
        })
        .await;
    assert!(
        !dom.contains(&ids::adult()),
        "personal data in the audit event"
    );
    browser
        .call(
            "Runtime.evaluate",
            serde_json::json!({"expression": "document.getElementById('detail').close()"}),
        )
        .await;

    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/live-view.png");
    browser.screenshot(&shot).await;
    eprintln!("live view screenshot: {}", shot.display());
    browser.close().await;

    let _ = stop_admin.send(());
    let _ = admin_task.await;
    p.stop().await;
}
