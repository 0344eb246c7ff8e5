//! The admin listener end to end: `serve_admin` on a real loopback socket, hit with real
//! clients (reqwest, and curl as an operator would), checking probes, token enforcement,
//! the Prometheus exposition and graceful shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chujing::classify::{Category, DataClass, Finding, ScanReport, Subject};
use chujing::geo::Region;
use chujing::policy::{Action, Decision, Reason};
use chujing::telemetry::admin::{serve_admin, AdminState, ReadinessCheck, StatusSource};
use chujing::telemetry::Metrics;
use regex::Regex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "test-admin-token-0123";

/// Counts heap allocations made by the current thread while `COUNTING` is set, so the
/// hot-path test can prove that recording metrics does not allocate per request.
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

/// Readiness the test can flip: the volume store "goes away" when `store_up` is false.
struct TestStatus {
    store_up: AtomicBool,
}

impl StatusSource for TestStatus {
    fn readiness(&self) -> Vec<ReadinessCheck> {
        let store = if self.store_up.load(Ordering::SeqCst) {
            ReadinessCheck::ok("volume_store")
        } else {
            ReadinessCheck::failed(
                "volume_store",
                "redis at 127.0.0.1:6379 refused the connection; start it or fix [volume] url",
            )
        };
        vec![
            ReadinessCheck::ok("geo_db"),
            ReadinessCheck::ok("policy"),
            store,
        ]
    }

    fn policy_status(&self) -> serde_json::Value {
        serde_json::json!({
            "version": "0123456789abcdef",
            "transfers": [{"id": "SCC-2026-002", "validity": "valid", "individuals": 3}],
        })
    }
}

struct Admin {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    status: Arc<TestStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Admin {
    async fn start(token: Option<&str>) -> Admin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let status = Arc::new(TestStatus {
            store_up: AtomicBool::new(true),
        });
        let state = AdminState {
            metrics: Arc::clone(&metrics),
            status: status.clone(),
            token: token.map(str::to_string),
            live: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_admin(listener, state, async {
            let _ = stopped.await;
        }));
        Admin {
            addr,
            metrics,
            status,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve_admin returns promptly after shutdown")
            .unwrap();
    }
}

fn client() -> reqwest::Client {
    // No proxy: the test must talk to the admin socket itself.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn record_traffic(m: &Metrics) {
    let blocked = Decision {
        action: Action::Block,
        reason: Reason::NoApprovedTransfer,
        transfer: None,
        explanation: Default::default(),
        volume_claim: None,
    };
    m.record_decision(&blocked, Region::Abroad, true);
    m.record_decision(&blocked, Region::Hk, false);
    m.record_findings(&ScanReport {
        bytes: 2048,
        findings: vec![
            Finding {
                category: Category::new(Category::CN_RESIDENT_ID),
                class: DataClass::Sensitive,
                count: 2,
                samples: vec!["110***********123X".into()],
            },
            Finding {
                category: Category::new(Category::EMAIL),
                class: DataClass::Personal,
                count: 1,
                samples: vec![],
            },
        ],
        subjects: vec![Subject {
            key: [7; 16],
            sensitive: true,
        }],
        uninspectable: None,
    });
    m.observe_scan(Duration::from_micros(180), 2048);
    m.observe_upstream(Duration::from_millis(35));
    m.connection_opened();
    m.reload(true);
    m.reload(false);
    m.audit_write_error();
    m.set_volume("SCC-2026-002", 3, 1);
    m.set_transfer_caps("SCC-2026-002", Some(900_000), Some(9_999));
}

/// One metric family as declared by `# TYPE`, with its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    /// (full sample name, labels, value)
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Validates OpenMetrics/Prometheus text strictly enough to catch a broken exposition:
/// metadata syntax, metric and label names, label value escaping, numeric values, every
/// sample inside a declared family, histogram buckets cumulative and ending at `+Inf`, and
/// `# EOF` last. Returns the families by name.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let meta = Regex::new(r"^# (TYPE|HELP|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$").unwrap();
    let sample = Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$"#,
    )
    .unwrap();
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)""#).unwrap();
    let types = [
        "counter",
        "gauge",
        "histogram",
        "summary",
        "info",
        "unknown",
        "stateset",
    ];
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "exposition must end with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(c) = meta.captures(line) {
            let name = c[2].to_string();
            if &c[1] == "TYPE" {
                let kind = c.get(3).map(|m| m.as_str()).unwrap_or_default();
                assert!(types.contains(&kind), "unknown type in {line:?}");
                let previous = families.insert(
                    name.clone(),
                    Family {
                        kind: kind.to_string(),
                        ..Family::default()
                    },
                );
                assert!(previous.is_none(), "family {name} declared twice");
            }
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let c = sample
            .captures(line)
            .unwrap_or_else(|| panic!("not a valid sample line: {line:?}"));
        let name = c[1].to_string();
        let labels: BTreeMap<String, String> = c
            .get(2)
            .map(|m| {
                label
                    .captures_iter(m.as_str())
                    .map(|l| (l[1].to_string(), l[2].to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let value: f64 = match &c[3] {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let family = [
            "_total", "_bucket", "_count", "_sum", "_created", "_info", "",
        ]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| families.contains_key(*base))
        .unwrap_or_else(|| panic!("sample {name} outside any declared family"))
        .to_string();
        families
            .get_mut(&family)
            .unwrap()
            .samples
            .push((name, labels, value));
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            let buckets: Vec<(f64, f64)> = family
                .samples
                .iter()
                .filter(|(n, _, _)| n.ends_with("_bucket"))
                .map(|(_, l, v)| {
                    let le = &l["le"];
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    (le, *v)
                })
                .collect();
            assert!(!buckets.is_empty(), "{name} has no buckets");
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{name} buckets not cumulative: {buckets:?}"
            );
            assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
            let count = family
                .samples
                .iter()
                .find(|(n, _, _)| n.ends_with("_count"))
                .unwrap()
                .2;
            assert_eq!(
                buckets.last().unwrap().1,
                count,
                "{name}: +Inf bucket != count"
            );
        }
    }
    families
}

fn value(families: &BTreeMap<String, Family>, family: &str, labels: &[(&str, &str)]) -> f64 {
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("family {family} missing"));
    f.samples
        .iter()
        .find(|(n, l, _)| {
            !n.ends_with("_created")
                && labels.len() == l.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("{family}{labels:?} missing: {:?}", f.samples))
        .2
}

#[tokio::test]
async fn probes_answer_and_readyz_follows_the_checks() {
    let admin = Admin::start(Some(TOKEN)).await;
    let http = client();

    let resp = http.get(admin.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.text().await.unwrap(), "ok\n");

    let resp = http.get(admin.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["checks"].as_array().unwrap().len(), 3);

    admin.status.store_up.store(false, Ordering::SeqCst);
    let resp = http.get(admin.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let failed: Vec<&serde_json::Value> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "volume_store");
    assert!(failed[0]["detail"]
        .as_str()
        .unwrap()
        .contains("[volume] url"));

    admin.status.store_up.store(true, Ordering::SeqCst);
    let resp = http.head(admin.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 0, "HEAD has no body");

    admin.shutdown().await;
}

#[tokio::test]
async fn token_is_enforced_on_metrics_and_policy() {
    let admin = Admin::start(Some(TOKEN)).await;
    let http = client();
    for path in ["/metrics", "/policy"] {
        let resp = http.get(admin.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path} without token");
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains(TOKEN),
            "the token never appears in a response"
        );

        let resp = http
            .get(admin.url(path))
            .bearer_auth("test-admin-token-0124")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path} with a wrong token");

        let resp = http
            .get(admin.url(path))
            .header("authorization", format!("Basic {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path} with the wrong scheme");

        let resp = http
            .get(admin.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path} with the token");
    }

    let resp = http
        .get(admin.url("/policy"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["version"], "0123456789abcdef");
    assert_eq!(body["transfers"][0]["id"], "SCC-2026-002");

    let resp = http
        .post(admin.url("/policy"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = http
        .get(admin.url("/admin/../etc"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    admin.shutdown().await;
}

#[tokio::test]
async fn open_without_a_token() {
    let admin = Admin::start(None).await;
    let resp = client().get(admin.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    admin.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_and_contain_every_family_after_traffic() {
    let admin = Admin::start(Some(TOKEN)).await;
    record_traffic(&admin.metrics);
    let resp = client()
        .get(admin.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let families = parse_exposition(&text);

    let expect = [
        ("chujing_requests", "counter"),
        ("chujing_findings", "counter"),
        ("chujing_subjects", "counter"),
        ("chujing_uninspectable", "counter"),
        ("chujing_inspected_bytes", "counter"),
        ("chujing_scan_duration_seconds", "histogram"),
        ("chujing_upstream_duration_seconds", "histogram"),
        ("chujing_active_connections", "gauge"),
        ("chujing_connections", "counter"),
        ("chujing_policy_reloads", "counter"),
        (
            "chujing_policy_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("chujing_audit_write_errors", "counter"),
        ("chujing_transfer_individuals", "gauge"),
        ("chujing_transfer_individuals_cap", "gauge"),
        ("chujing_build", "info"),
    ];
    for (name, kind) in expect {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("family {name} missing from:\n{text}"));
        assert_eq!(family.kind, kind, "{name}");
    }
    for name in families.keys() {
        assert!(name.starts_with("chujing_"), "{name} lacks the prefix");
    }

    let requests = |enforced, region| {
        value(
            &families,
            "chujing_requests",
            &[
                ("action", "block"),
                ("enforced", enforced),
                ("reason", "no_approved_transfer"),
                ("region", region),
            ],
        )
    };
    assert_eq!(requests("true", "abroad"), 1.0);
    assert_eq!(requests("false", "hk"), 1.0);
    assert_eq!(
        value(
            &families,
            "chujing_findings",
            &[("category", "cn_resident_id"), ("class", "sensitive")]
        ),
        2.0
    );
    assert_eq!(value(&families, "chujing_inspected_bytes", &[]), 2048.0);
    assert_eq!(value(&families, "chujing_active_connections", &[]), 1.0);
    assert_eq!(
        value(&families, "chujing_policy_reloads", &[("result", "failed")]),
        1.0
    );
    assert_eq!(value(&families, "chujing_audit_write_errors", &[]), 1.0);
    assert_eq!(
        value(
            &families,
            "chujing_transfer_individuals",
            &[("transfer", "SCC-2026-002"), ("class", "sensitive")]
        ),
        1.0
    );

    // Bounded label values only, and nothing from the payload.
    assert!(!text.contains("123X"));
    for family in families.values() {
        for (_, labels, _) in &family.samples {
            for (k, v) in labels {
                assert!(v.len() <= 64, "label {k}={v} looks unbounded");
            }
        }
    }

    admin.shutdown().await;
}

#[tokio::test]
async fn curl_sees_the_same_endpoints() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed; skipping the curl half of the admin test");
        return;
    }
    let admin = Admin::start(Some(TOKEN)).await;
    record_traffic(&admin.metrics);
    let curl = |path: String, token: Option<&'static str>| async move {
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "--noproxy", "*", "--max-time", "10"])
                .args(["-w", "\n%{http_code}"]);
            if let Some(t) = token {
                cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
            }
            let out = cmd.arg(&path).output().unwrap();
            assert!(out.status.success(), "curl {path} failed: {out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            let (body, code) = text.rsplit_once('\n').unwrap();
            (code.parse::<u16>().unwrap(), body.to_string())
        })
        .await
        .unwrap()
    };
    assert_eq!(
        curl(admin.url("/healthz"), None).await,
        (200, "ok\n".into())
    );
    assert_eq!(curl(admin.url("/readyz"), None).await.0, 200);
    assert_eq!(curl(admin.url("/metrics"), None).await.0, 401);
    let (code, body) = curl(admin.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(code, 200);
    let families = parse_exposition(&body);
    assert!(families.contains_key("chujing_requests"));
    let (code, body) = curl(admin.url("/policy"), Some(TOKEN)).await;
    assert_eq!(code, 200);
    let policy: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(policy["version"], "0123456789abcdef");
    admin.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let admin = Admin::start(None).await;
    let addr = admin.addr;
    // A kept-alive connection must not hold shutdown up past the grace period.
    let http = client();
    assert_eq!(
        http.get(admin.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    admin.shutdown().await;
    let refused =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect attempt finishes");
    assert!(refused.is_err(), "listener closed after shutdown");
}

// ---- The deploy files are built on the code: keep them from drifting apart. ----

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The TOML embedded under `chujing.toml: |` in the ConfigMap (a YAML block scalar).
fn configmap_toml() -> String {
    let yaml = repo_file("deploy/kubernetes/configmap.yaml");
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("chujing.toml: |"));
    let header = lines.next().expect("configmap has a chujing.toml key");
    let key_indent = header.len() - header.trim_start().len();
    let mut out = String::new();
    let mut block_indent = None;
    for line in lines {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= key_indent {
            break;
        }
        let strip = *block_indent.get_or_insert(indent);
        out.push_str(&line[strip.min(indent)..]);
        out.push('\n');
    }
    out
}

#[test]
fn shipped_deploy_configs_parse() {
    let configs = [
        (
            "deploy/systemd/chujing.toml",
            repo_file("deploy/systemd/chujing.toml"),
        ),
        (
            "deploy/docker/chujing.toml",
            repo_file("deploy/docker/chujing.toml"),
        ),
        ("deploy/kubernetes/configmap.yaml", configmap_toml()),
    ];
    for (name, text) in configs {
        let config = chujing::config::parse(&text, std::path::Path::new(name))
            .unwrap_or_else(|e| panic!("{e}"));
        let admin = config.admin.unwrap_or_else(|| panic!("{name}: no [admin]"));
        assert_eq!(admin.bind.port(), 9901, "{name}");
        assert!(
            admin.token.is_none(),
            "{name}: tokens belong in the environment, not git"
        );
        assert!(!config.listeners.is_empty(), "{name}: no listener");
        for l in &config.listeners {
            assert_ne!(
                l.bind.port(),
                admin.bind.port(),
                "{name}: admin shares a proxy port"
            );
        }
        assert!(
            config.geo.database.is_absolute(),
            "{name}: geo database path"
        );
        assert!(config.audit.path.is_absolute(), "{name}: audit path");
    }
    let deployment = repo_file("deploy/kubernetes/deployment.yaml");
    for needle in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9901",
        "CHUJING_LOG_FORMAT",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle:?}"
        );
    }
    let unit = repo_file("deploy/systemd/chujing.service");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

#[test]
fn dashboard_and_alerts_query_only_exported_series() {
    let metrics = Metrics::new();
    record_traffic(&metrics);
    // Every family once, including the ones the traffic above does not touch.
    metrics.record_findings(&ScanReport {
        uninspectable: Some(chujing::classify::Uninspectable::DecompressionBomb),
        ..ScanReport::default()
    });
    let exposition = metrics.encode();
    let families = parse_exposition(&exposition);
    let exported: std::collections::BTreeSet<&str> = families
        .values()
        .flat_map(|f| f.samples.iter().map(|(n, _, _)| n.as_str()))
        .collect();
    let name = Regex::new(r"chujing_[a-z_]+").unwrap();
    let dashboard = repo_file("deploy/grafana/chujing-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() > 10);
    let alerts = repo_file("deploy/prometheus/alerts.yaml");
    let mut checked = 0;
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        for m in name.find_iter(text) {
            let used = m.as_str();
            // Grafana uids, alert names and the like are not series.
            if used == "chujing_" || !text[m.end()..].starts_with(['{', '[', ')', ' ', '\n', ',']) {
                continue;
            }
            assert!(
                exported.contains(used),
                "{file} queries {used}, which chujing does not export"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} series references found");
}

#[test]
fn recording_on_the_hot_path_does_not_allocate() {
    let metrics = Metrics::new();
    let decision = Decision {
        action: Action::Allow,
        reason: Reason::ApprovedTransfer,
        transfer: Some("SCC-2026-002".into()),
        explanation: Default::default(),
        volume_claim: None,
    };
    let report = ScanReport {
        bytes: 4096,
        findings: vec![
            Finding {
                category: Category::new(Category::CN_MOBILE),
                class: DataClass::Personal,
                count: 3,
                samples: vec![],
            },
            Finding {
                category: Category::new("not_configured"),
                class: DataClass::Personal,
                count: 1,
                samples: vec![],
            },
        ],
        subjects: vec![Subject {
            key: [1; 16],
            sensitive: false,
        }],
        uninspectable: None,
    };
    let per_request = |i: u64| {
        metrics.record_decision(&decision, Region::Abroad, true);
        metrics.record_findings(&report);
        metrics.observe_scan(Duration::from_micros(50 + i), report.bytes);
        metrics.observe_upstream(Duration::from_millis(20));
        let guard = metrics.connection_guard();
        metrics.set_volume("SCC-2026-002", 100 + i, 0);
        drop(guard);
    };
    // The first request of each label set resolves it (allocates once, by design).
    per_request(0);
    COUNTING.with(|c| c.set(true));
    for i in 1..=1000 {
        per_request(i);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.with(|a| a.get());
    assert_eq!(allocations, 0, "{allocations} allocations in 1000 requests");
    let text = metrics.encode();
    assert!(text.contains(
        "chujing_requests_total{action=\"allow\",enforced=\"true\",reason=\"approved_transfer\",region=\"abroad\"} 1001"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_clients_than_connection_slots_are_all_served() {
    let admin = Admin::start(Some(TOKEN)).await;
    let mut tasks = Vec::new();
    // More than the admin listener's 64 connection slots: the rest queue, none fail.
    for _ in 0..100 {
        let url = admin.url("/metrics");
        tasks.push(tokio::spawn(async move {
            // A client per task: one TCP connection each, held for the whole request.
            client()
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for task in tasks {
        let status = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("served within 30 s")
            .unwrap()
            .expect("request succeeds");
        assert_eq!(status, 200);
    }
    admin.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_bounded_by_a_stalled_client() {
    use tokio::io::AsyncWriteExt;
    let admin = Admin::start(None).await;
    // Half a request head, then silence: must not hold shutdown hostage.
    let mut stalled = tokio::net::TcpStream::connect(admin.addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    admin.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
}
