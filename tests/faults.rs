//! Fault suite: the world around the proxy breaks — upstream down, slow or resetting, DNS
//! failing, the geo database deleted or corrupted at reload, the audit disk full, the volume
//! store unreachable — and the proxy keeps serving domestic traffic, fails closed for
//! outbound traffic as configured, audits what happened, and recovers when the fault clears.
//! Everything stays on loopback; DNS failure uses a pins-only resolver (no real DNS query).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chujing::proxy::{Proxy, Runtime};
use chujing::telemetry::admin::{checks, StatusSource};
use serde_json::Value;
use support::{curl, ids, read_audit, upstream, GEO_OVERRIDES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An in-process proxy whose [`Proxy`] handle the test keeps (for reloads).
struct Harness {
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    audit_path: PathBuf,
    geo_path: PathBuf,
    proxy: Arc<Proxy>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    fn audit(&self) -> Vec<Value> {
        read_audit(&self.audit_path)
    }

    fn audit_for(&self, request_id: &str) -> Value {
        self.audit()
            .into_iter()
            .find(|e| e["chujing"]["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no audit event for {request_id}"))
    }

    /// `curl -x proxy url` with optional body.
    async fn get(&self, url: &str) -> support::CurlResult {
        curl(&["-x", &format!("http://{}", self.addr), url]).await
    }

    async fn post(&self, url: &str, body: &str) -> support::CurlResult {
        curl(&[
            "-x",
            &format!("http://{}", self.addr),
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
            url,
        ])
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Writes the config (`{dir}` replaced by the temp dir; the geo database is a private copy
/// the test may break), builds the runtime, lets `tweak` adjust it, and serves.
async fn start(body: &str, tweak: impl FnOnce(&mut Runtime)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let geo_path = dir.path().join("country.mmdb");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/geo/country.mmdb"),
        &geo_path,
    )
    .unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let text = format!(
        "{}\n[geo]\ndatabase = {:?}\nunknown_is_outbound = true\n{}\n[audit]\npath = {:?}\ninclude_domestic = true\n",
        body.replace("{dir}", &dir.path().display().to_string()),
        geo_path.display().to_string(),
        GEO_OVERRIDES,
        audit_path.display().to_string(),
    );
    let config_path = dir.path().join("chujing.toml");
    std::fs::write(&config_path, &text).unwrap();
    let loaded = chujing::config::load(&config_path).unwrap();
    let volume = chujing::volume::open_store(&loaded.config.volume).unwrap();
    let mut runtime = Runtime::build(loaded, volume).unwrap();
    tweak(&mut runtime);
    let listeners = chujing::proxy::bind(&runtime.loaded.config.listeners)
        .await
        .unwrap();
    let proxy = Proxy::new(runtime).unwrap();
    let addr = listeners[0].local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(chujing::proxy::serve(
        Arc::clone(&proxy),
        listeners,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(2),
    ));
    Harness {
        _dir: dir,
        config_path,
        audit_path,
        geo_path,
        proxy,
        addr,
        shutdown: Some(tx),
    }
}

const FORWARD: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[resolve]
"partner.test" = ["127.0.0.2"]
"domestic.test" = ["127.0.0.3"]
"#;

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pi_body() -> String {
    format!(r#"{{"name":"x","mobile":"{}"}}"#, ids::MOBILE)
}

#[tokio::test]
async fn upstream_down_is_502_audited_and_recovers_when_it_comes_back() {
    let h = start(FORWARD, |_| {}).await;
    let port = free_port("127.0.0.2");
    let url = format!("http://partner.test:{port}/orders");

    let r = h.get(&url).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let event = h.audit_for(&id);
    assert_eq!(event["error"]["type"], "connection_refused");
    assert_eq!(event["http"]["response"]["status_code"], 502);

    // Personal data to a dead foreign upstream is still a blocked exit, not a 502.
    let r = h.post(&url, &pi_body()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "no_approved_transfer");

    // The upstream comes up on the same port: served again, no restart.
    let served = answering_upstream(("127.0.0.2", port)).await;
    let r = h.get(&url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A minimal HTTP/1.1 server on a fixed address: answers `200 ok` and closes; counts requests.
async fn answering_upstream(addr: (&str, u16)) -> Arc<std::sync::atomic::AtomicUsize> {
    let listener = TcpListener::bind(addr).await.unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    count
}

/// A server that accepts and reads but never answers.
async fn silent_upstream(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A server that reads the request head and resets the connection (RST, not FIN).
async fn resetting_upstream(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // Zero linger sends RST on close without blocking (the deprecation is about
            // non-zero linger blocking the thread on drop).
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
    });
    addr
}

#[tokio::test]
async fn slow_upstream_times_out_with_504_and_domestic_keeps_flowing() {
    let body = format!("{FORWARD}\n[limits]\nupstream_response_timeout_ms = 400\n");
    let h = start(&body, |_| {}).await;
    let slow = silent_upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;

    let started = Instant::now();
    let r = h
        .get(&format!("http://partner.test:{}/slow", slow.port()))
        .await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    assert_eq!(h.audit_for(&id)["error"]["type"], "http_response_timeout");

    // While a slow upstream holds requests, other traffic is unaffected.
    let slow_url = format!("http://partner.test:{}/slow", slow.port());
    let pending = tokio::spawn({
        let addr = h.addr;
        async move { curl(&["-x", &format!("http://{addr}"), &slow_url]).await }
    });
    let r = h
        .get(&format!("http://domestic.test:{}/ok", cn.addr.port()))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(pending.await.unwrap().status, 504);
}

#[tokio::test]
async fn resetting_upstream_is_502_and_the_proxy_stays_up() {
    let h = start(FORWARD, |_| {}).await;
    let reset = resetting_upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    for _ in 0..3 {
        let r = h
            .post(
                &format!("http://partner.test:{}/x", reset.port()),
                r#"{"clean":true}"#,
            )
            .await;
        assert_eq!(r.status, 502, "{}", r.body);
        let id = r.json()["request_id"].as_str().unwrap().to_string();
        let event = h.audit_for(&id);
        assert_eq!(event["event"]["outcome"], "failure");
        assert!(event["error"]["type"].is_string());
    }
    let r = h
        .get(&format!("http://domestic.test:{}/", cn.addr.port()))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn dns_failure_is_502_destination_not_found_and_pinned_names_still_work() {
    let h = start(FORWARD, |rt| {
        rt.resolver = chujing::geo::Resolver::new(&rt.loaded.config.resolve).pins_only();
    })
    .await;
    let cn = upstream("127.0.0.3").await;
    let r = h.get("http://unresolvable.test/x").await;
    assert_eq!(r.status, 502, "{}", r.body);
    let json = r.json();
    assert_eq!(json["error"], "destination_not_found");
    let id = json["request_id"].as_str().unwrap().to_string();
    assert_eq!(h.audit_for(&id)["error"]["type"], "destination_not_found");
    // A body with personal data to a name we cannot resolve never leaves either.
    let r = h.post("http://unresolvable.test/x", &pi_body()).await;
    assert_eq!(r.status, 502);
    let r = h
        .get(&format!("http://domestic.test:{}/", cn.addr.port()))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn geo_database_deleted_or_corrupted_at_reload_keeps_the_running_one() {
    let h = start(FORWARD, |_| {}).await;
    let de = upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    let abroad = format!("http://partner.test:{}/p", de.addr.port());
    let domestic = format!("http://domestic.test:{}/p", cn.addr.port());
    let hash = h.proxy.runtime().loaded.hash.clone();
    let good = std::fs::read(&h.geo_path).unwrap();

    // Deleted.
    std::fs::remove_file(&h.geo_path).unwrap();
    assert!(
        h.proxy.reload(&h.config_path).is_err(),
        "reload accepted a missing geo db"
    );
    assert_eq!(h.proxy.runtime().loaded.hash, hash);
    assert_eq!(h.post(&domestic, &pi_body()).await.status, 200);
    assert_eq!(h.post(&abroad, &pi_body()).await.status, 403);

    // Corrupted: truncated, then garbage.
    std::fs::write(&h.geo_path, &good[..good.len() / 3]).unwrap();
    assert!(
        h.proxy.reload(&h.config_path).is_err(),
        "reload accepted a truncated geo db"
    );
    std::fs::write(&h.geo_path, vec![0xA5u8; 4096]).unwrap();
    assert!(
        h.proxy.reload(&h.config_path).is_err(),
        "reload accepted a garbage geo db"
    );
    assert_eq!(h.post(&domestic, &pi_body()).await.status, 200);
    assert_eq!(h.post(&abroad, &pi_body()).await.status, 403);
    assert!(
        !de.all_bytes()
            .windows(ids::MOBILE.len())
            .any(|w| w == ids::MOBILE.as_bytes()),
        "personal data reached the foreign upstream"
    );

    // Restored: the reload goes through.
    std::fs::write(&h.geo_path, &good).unwrap();
    assert!(h.proxy.reload(&h.config_path).is_ok());
    assert_eq!(h.get(&abroad).await.status, 200);
}

/// Whether the proxy's readiness reports the audit log writable.
fn audit_ready(proxy: &Proxy) -> bool {
    proxy
        .readiness()
        .iter()
        .any(|c| c.name == checks::AUDIT && c.ok)
}

#[tokio::test]
async fn audit_disk_full_blocks_outbound_keeps_domestic_and_recovers() {
    // The disk is full: every write to the audit log fails with ENOSPC (its path leads to
    // /dev/full, which the kernel answers exactly so).
    let h = start(FORWARD, |rt| {
        let path = &rt.loaded.config.audit.path;
        std::os::unix::fs::symlink("/dev/full", path).unwrap();
    })
    .await;
    let de = upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    let abroad = format!("http://partner.test:{}/clean", de.addr.port());
    let domestic = format!("http://domestic.test:{}/p", cn.addr.port());

    // The first outbound request is already on its way when its audit write fails. Its line
    // waits in the worker's batch (the default `batch_max_delay_ms`, 5 ms), so the failure
    // is known once that batch is written: wait for it (readiness reports it), or a request
    // sent inside the window would race the write.
    let _ = h.get(&abroad).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_ready(&h.proxy) {
        assert!(
            Instant::now() < deadline,
            "the failed audit write was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // From then on outbound traffic stops.
    let forwarded = de.requests().len();
    assert_eq!(forwarded, 1, "the first request was forwarded");
    for _ in 0..3 {
        let r = h.get(&abroad).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.json()["error"], "audit_unavailable");
    }
    assert_eq!(
        de.requests().len(),
        forwarded,
        "outbound requests left without an audit record"
    );
    // Domestic traffic is not a data exit: it keeps flowing.
    assert_eq!(h.post(&domestic, &pi_body()).await.status, 200);

    // Space again (the path leads to a real file): the proxy reopens the log on the next
    // write and outbound traffic resumes.
    std::fs::remove_file(&h.audit_path).unwrap();
    std::fs::write(&h.audit_path, b"").unwrap();
    let first = h.get(&abroad).await.status;
    assert!(first == 503 || first == 200, "{first}");
    assert_eq!(h.get(&abroad).await.status, 200, "did not recover");
    let events = h.audit();
    assert!(events.iter().any(|e| e["chujing"]["region"] == "abroad"));
}

#[tokio::test]
async fn volume_store_down_fails_closed_for_counted_transfers_and_recovers() {
    let port = free_port("127.0.0.1");
    let body = format!(
        r#"{FORWARD}
[volume]
backend = "redis"
url = "redis://127.0.0.1:{port}/"

[[transfer]]
id = "SCC-COUNTED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["partner.test"]
categories = ["cn_mobile"]
max_individuals_per_year = 1000
"#
    );
    let h = start(&body, |_| {}).await;
    let de = upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    let abroad = format!("http://partner.test:{}/p", de.addr.port());
    let domestic = format!("http://domestic.test:{}/p", cn.addr.port());

    let r = h.post(&abroad, &pi_body()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let id = r.json()["request_id"].as_str().unwrap().to_string();
    let event = h.audit_for(&id);
    assert!(
        event["chujing"]["explanation"]
            .to_string()
            .contains("store unavailable"),
        "{event}"
    );
    assert_eq!(h.post(&domestic, &pi_body()).await.status, 200);
    // Nothing personal to count: no store needed.
    assert_eq!(h.get(&abroad).await.status, 200);

    let Some(_redis) = start_redis(port) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = h.post(&abroad, &pi_body()).await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Redis(std::process::Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(port: u16) -> Option<Redis> {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("\n!!!!! SKIPPING recovery half: redis-server not installed !!!!!\n");
        return None;
    };
    let redis = Redis(child, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(redis)
}

#[tokio::test]
async fn slow_request_body_gets_408_and_the_upstream_request_is_aborted() {
    let body = format!("{FORWARD}\n[limits]\nbody_read_timeout_ms = 300\n");
    let h = start(&body, |_| {}).await;
    let de = upstream("127.0.0.2").await;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let head = format!(
        "POST http://partner.test:{}/slow HTTP/1.1\r\nHost: partner.test\r\nContent-Length: 100\r\n\r\n{{\"a\":",
        de.addr.port()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let events = h.audit();
    assert!(events
        .iter()
        .any(|e| e["http"]["response"]["status_code"] == 408));
    assert!(de.requests().iter().all(|r| !r.complete));
}
