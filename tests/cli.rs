//! The command-line contract of `policy.md`: `check`, `scan`, `explain`, and `run`'s start-up
//! errors, through the real binary.

mod support;

use std::path::Path;
use std::process::Command;

use support::ids;

fn chujing() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chujing"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn geo_db() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/geo/country.mmdb")
        .display()
        .to_string()
}

#[test]
fn check_accepts_the_shipped_config_and_every_example() {
    // Run from a scratch directory that has the repository's config/ and a freshly made
    // development CA made by `chujing ca init` in certs/ (examples that intercept TLS name
    // certs/chujing-ca.*; keys are never committed).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("config"), scratch.path().join("config")).unwrap();
    let init = chujing()
        .current_dir(scratch.path())
        .args(["ca", "init", "--out", "certs"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut files = vec![Path::new("config/chujing.toml").to_path_buf()];
    for entry in std::fs::read_dir(root.join("config/examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            files.push(Path::new("config/examples").join(p.file_name().unwrap()));
        }
    }
    assert!(
        files.len() >= 4,
        "shipped config plus one example per user type: {files:?}"
    );
    for f in files {
        let out = chujing()
            .current_dir(scratch.path())
            .arg("check")
            .arg("--config")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_reports_file_and_line_for_a_malformed_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "mode = \"enforce\"\n\n[classification]\nfail_mode = \"sometimes\"\n",
    )
    .unwrap();
    let out = chujing()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:", bad.display())), "{err}");
    assert!(
        err.contains("fail_mode") || err.contains("sometimes") || err.contains("closed"),
        "{err}"
    );
}

#[test]
fn missing_geo_database_is_a_clear_error_for_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[listener]]\nbind = \"127.0.0.1:0\"\nkind = \"forward\"\n[geo]\ndatabase = \"/nonexistent/country.mmdb\"\n",
    )
    .unwrap();
    let out = chujing()
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/country.mmdb"));
    let out = chujing()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/country.mmdb"), "{err}");
}

#[test]
fn scan_prints_one_json_object_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let pi = dir.path().join("users.json");
    std::fs::write(
        &pi,
        format!(
            "[{{\"idNo\":\"{}\",\"mobile\":\"{}\"}},{{\"idNo\":\"{}\",\"email\":\"{}\"}}]",
            ids::adult(),
            ids::MOBILE,
            ids::child(),
            ids::EMAIL
        ),
    )
    .unwrap();
    let clean = dir.path().join("orders.json");
    std::fs::write(
        &clean,
        format!(
            "{{\"orderNo\":\"{}\",\"ts\":1732406400123}}",
            ids::adult_bad_check()
        ),
    )
    .unwrap();
    let out = chujing().arg("scan").arg(&pi).arg(&clean).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["file"], pi.display().to_string());
    assert_eq!(lines[0]["subjects"], 2);
    let count = |cat: &str| {
        lines[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["category"] == cat)
            .map(|f| f["count"].as_u64().unwrap())
    };
    assert_eq!(count("cn_resident_id"), Some(2));
    assert_eq!(count("minor"), Some(1));
    assert_eq!(count("cn_mobile"), Some(1));
    assert_eq!(count("email"), Some(1));
    assert_eq!(
        lines[1]["findings"].as_array().unwrap().len(),
        0,
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["subjects"], 0);
    assert!(
        !stdout.contains(&ids::adult()),
        "scan output never echoes identifiers"
    );
}

#[test]
fn explain_prints_the_decision_without_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[geo]
database = {:?}
[[geo.override]]
cidr = "127.0.0.2/32"
country = "DE"

[[transfer]]
id = "SCC-2026-002"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["*.support-vendor.com"]
categories = ["cn_mobile", "email"]
valid_from = "2026-01-15"
valid_until = "2027-01-14"
"#,
            geo_db()
        ),
    )
    .unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, format!("{{\"mobile\":\"{}\"}}", ids::MOBILE)).unwrap();
    let run = |url: &str, at: &str| {
        let out = chujing()
            .args(["explain", "--config"])
            .arg(&cfg)
            .args([
                "--url",
                url,
                "--ip",
                "127.0.0.2",
                "--header",
                "content-type: application/json",
                "--at",
                at,
                "--body",
            ])
            .arg(&body)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let ok = run(
        "https://api.support-vendor.com/tickets",
        "2026-06-01T10:00:00+08:00",
    );
    assert_eq!(ok["action"], "allow");
    assert_eq!(ok["reason"], "approved_transfer");
    assert_eq!(ok["transfer"], "SCC-2026-002");
    assert_eq!(ok["destination"]["host"], "api.support-vendor.com");
    assert_eq!(ok["destination"]["ip"], "127.0.0.2");
    assert_eq!(ok["destination"]["country"], "DE");
    assert_eq!(ok["destination"]["region"], "abroad");
    assert_eq!(ok["findings"][0]["category"], "cn_mobile");
    // The day after valid_until, in Shanghai time (16:30 UTC on the 14th is 00:30 on the 15th).
    let late = run(
        "https://api.support-vendor.com/tickets",
        "2027-01-14T16:30:00Z",
    );
    assert_eq!(late["action"], "block");
    assert_eq!(late["reason"], "transfer_expired");
    let other = run("https://evil.example/x", "2026-06-01T10:00:00+08:00");
    assert_eq!(other["reason"], "no_approved_transfer");
    assert_eq!(other["transfer"], serde_json::Value::Null);
}
