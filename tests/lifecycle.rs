//! The real binary under signals: hot reload (SIGHUP and file change) under load with zero
//! failed requests, an invalid new config keeping the old one, and graceful drain on SIGTERM.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, ids, upstream, wait_port, KillOnDrop};

thread_local! {
    static ADMIN_PORT: u16 = free_port();
}

fn config(port: u16, upstream_port: u16, audit: &Path, with_transfer: bool) -> String {
    let admin_port = ADMIN_PORT.with(|p| *p);
    let geo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/geo/country.mmdb");
    let transfer = if with_transfer {
        r#"
[[transfer]]
id = "SCC-LIVE"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["partner.test"]
categories = ["cn_mobile"]
"#
    } else {
        ""
    };
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:{port}"
kind = "forward"

[admin]
bind = "127.0.0.1:{admin_port}"

[resolve]
"partner.test" = ["127.0.0.2"]

[geo]
database = {geo:?}
[[geo.override]]
cidr = "127.0.0.2/32"
country = "DE"

[audit]
path = {audit:?}
{transfer}
# upstream port {upstream_port}
"#,
        geo = geo.display().to_string(),
        audit = audit.display().to_string(),
    )
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> u16 {
    match client.post(url).body(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request_and_sigterm_drains() {
    let up = upstream("127.0.0.2").await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let cfg = dir.path().join("chujing.toml");
    let port = free_port();
    std::fs::write(&cfg, config(port, up.addr.port(), &audit, true)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chujing"))
        .args(["run", "--drain-seconds", "10", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("chujing.log")).unwrap())
        .spawn()
        .unwrap();
    let mut proc = KillOnDrop(child);
    let log = || std::fs::read_to_string(dir.path().join("chujing.log")).unwrap_or_default();
    wait_port(port, "chujing").await;

    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{port}")).unwrap())
        .build()
        .unwrap();
    let url = format!("http://partner.test:{}/ingest", up.addr.port());
    let mobile_body = || format!("{{\"mobile\":\"{}\"}}", ids::MOBILE);
    assert_eq!(
        post(&client, &url, mobile_body()).await,
        200,
        "approved before reload"
    );

    // Load: clean requests from 4 workers while the policy is swapped twice.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, url, stop, failures, done) = (
            client.clone(),
            url.clone(),
            stop.clone(),
            failures.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 2_000 {
                if post(&client, &url, format!("{{\"worker\":{w},\"seq\":{i}}}")).await != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reload 1 (SIGHUP): the transfer is withdrawn.
    std::fs::write(&cfg, config(port, up.addr.port(), &audit, false)).unwrap();
    signal(&proc.0, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = post(&client, &url, mobile_body()).await;
        if s == 403 {
            break;
        }
        assert_eq!(s, 200);
        assert!(Instant::now() < deadline, "reload never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reload 2: an invalid file is refused and the running policy stays.
    std::fs::write(&cfg, "mode = \"sometimes\"\n").unwrap();
    signal(&proc.0, "-HUP");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        post(&client, &url, mobile_body()).await,
        403,
        "old policy kept after a bad reload"
    );
    // Reload 3 by file change alone (no signal): the transfer comes back.
    std::fs::write(&cfg, config(port, up.addr.port(), &audit, true)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while post(&client, &url, mobile_body()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "file-change reload never took effect; proxy log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 20, "load actually ran");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request may fail during reloads"
    );

    // Graceful drain: SIGTERM → exit 0, audit complete and parseable.
    signal(&proc.0, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let events = support::read_audit(&audit);
    assert!(events
        .iter()
        .any(|e| e["chujing"]["reason"] == "approved_transfer"));
    assert!(events
        .iter()
        .any(|e| e["chujing"]["reason"] == "no_approved_transfer"));
}
