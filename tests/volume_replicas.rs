//! Issue "Volume": two proxy processes share one Redis and race at a transfer's cap; together
//! they admit exactly the cap, then `chujing report` reads the same store. Redis is a real
//! `redis-server` on a loopback port, started by the test (`.ci/run` installs it).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{free_port, upstream, wait_port, KillOnDrop};

fn config(port: u16, admin: u16, redis_port: u16, audit: &Path) -> String {
    let geo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/geo/country.mmdb");
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:{port}"
kind = "forward"

[admin]
bind = "127.0.0.1:{admin}"

[resolve]
"capped.test" = ["127.0.0.2"]

[geo]
database = {geo:?}
[[geo.override]]
cidr = "127.0.0.2/32"
country = "DE"

[audit]
path = {audit:?}

[volume]
backend = "redis"
url = "redis://127.0.0.1:{redis_port}/"

[classification]
hash_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

[[transfer]]
id = "SCC-CAPPED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["capped.test"]
categories = ["cn_mobile"]
max_individuals_per_year = 5
"#,
        geo = geo.display().to_string(),
        audit = audit.display().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_never_admit_more_than_the_cap() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("redis-server is required for this test; install it (apt-get install redis-server) — .ci/run does");
    }
    let dir = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let _redis = KillOnDrop(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(redis_port, "redis").await;
    let up = upstream("127.0.0.2").await;

    let mut proxies = Vec::new();
    let mut ports = Vec::new();
    for i in 0..2 {
        let (port, admin) = (free_port(), free_port());
        let cfg = dir.path().join(format!("replica{i}.toml"));
        std::fs::write(
            &cfg,
            config(
                port,
                admin,
                redis_port,
                &dir.path().join(format!("audit{i}.jsonl")),
            ),
        )
        .unwrap();
        proxies.push(KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_chujing"))
                .args(["run", "--config"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        ports.push(port);
    }
    for &p in &ports {
        wait_port(p, "chujing").await;
    }

    // 40 distinct individuals, alternating between the replicas, all at once.
    let mut tasks = Vec::new();
    for n in 0..40u32 {
        let port = ports[(n % 2) as usize];
        let url = format!("http://capped.test:{}/ingest", up.addr.port());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{port}")).unwrap())
                .build()
                .unwrap();
            let body = format!("{{\"mobile\":\"139{:08}\"}}", 10_000_000 + n * 7);
            let resp = client.post(url).body(body).send().await.unwrap();
            let status = resp.status().as_u16();
            let json: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, json["reason"].as_str().map(str::to_string))
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => admitted += 1,
            (403, Some(reason)) => assert_eq!(reason, "volume_cap_exceeded"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(admitted, 5, "both replicas together admit exactly the cap");
    assert_eq!(up.requests().iter().filter(|r| r.complete).count(), 5);

    // An individual already counted this year passes on either replica.
    let again = up.requests()[0].body.clone();
    for &port in &ports {
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(format!("http://127.0.0.1:{port}")).unwrap())
            .build()
            .unwrap();
        let status = client
            .post(format!("http://capped.test:{}/ingest", up.addr.port()))
            .body(again.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "already-counted individual on replica {port}");
    }

    // `chujing report` reads the same count from Redis.
    let out = Command::new(env!("CARGO_BIN_EXE_chujing"))
        .args(["report", "--json", "--config"])
        .arg(dir.path().join("replica0.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    let row = report
        .as_array()
        .or_else(|| report["rows"].as_array())
        .unwrap_or_else(|| panic!("report shape: {text}"))
        .iter()
        .find(|r| r["transfer"] == "SCC-CAPPED")
        .unwrap_or_else(|| panic!("no SCC-CAPPED row: {text}"))
        .clone();
    assert_eq!(row["individuals"], 5, "{row}");
    let table = Command::new(env!("CARGO_BIN_EXE_chujing"))
        .args(["report", "--config"])
        .arg(dir.path().join("replica1.toml"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("SCC-CAPPED"), "{table}");
    assert!(
        !text.contains("13910000000"),
        "report never names an individual"
    );
}
