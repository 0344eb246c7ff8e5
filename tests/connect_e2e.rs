//! HTTPS egress through CONNECT, end to end on loopback: curl (and raw sockets where curl
//! cannot misbehave on purpose) talk to the proxy with `--proxy` and `--cacert` = the
//! interception CA; upstreams are HTTPS servers with their own test CA on 127.0.0.2 (DE) and
//! 127.0.0.3 (CN). Covers interception over HTTP/1.1 and HTTP/2 (allowed and blocked),
//! bypass, non-TLS bytes in a tunnel, SNI vs CONNECT authority, refused destinations, an
//! upstream certificate failure, and `chujing ca init`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{curl, ids, start_proxy, test_pki, tls_upstream, upstream, TestProxy, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct World {
    proxy: TestProxy,
    /// HTTPS upstream on 127.0.0.2 (DE).
    de: Upstream,
    /// HTTPS upstream on 127.0.0.3 (CN).
    cn: Upstream,
    /// Plain-HTTP upstreams (for non-TLS bytes inside a tunnel).
    de_plain: Upstream,
    cn_plain: Upstream,
    /// The interception CA certificate clients trust.
    intercept_ca: PathBuf,
    /// The upstreams' own CA (what a client sees when the proxy does not intercept).
    upstream_ca: PathBuf,
    _certs: tempfile::TempDir,
}

impl World {
    fn proxy_url(&self) -> String {
        self.proxy.url(0)
    }

    async fn curl_https(
        &self,
        flag: &str,
        ca: &Path,
        url: &str,
        body: &str,
    ) -> support::CurlResult {
        curl(&[
            flag,
            "--proxy",
            &self.proxy_url(),
            "--cacert",
            ca.to_str().unwrap(),
            "--data-binary",
            body,
            url,
        ])
        .await
    }
}

const NAMES: &[&str] = &[
    "secure.test",
    "bypass.test",
    "cn-bypass.test",
    "app.pinned.test",
];

/// Starts the upstreams and a proxy with `[tls_intercept]`; `ca_bundle_ok = false` makes
/// the proxy trust the wrong CA for upstreams; `intercept_extra` goes into the table.
async fn world(ca_bundle_ok: bool, intercept_extra: &str) -> World {
    world_with("", ca_bundle_ok, intercept_extra).await
}

/// [`world`] with top-level settings (`mode = ...`) first.
async fn world_with(top: &str, ca_bundle_ok: bool, intercept_extra: &str) -> World {
    let pki = test_pki(NAMES);
    let de = tls_upstream("127.0.0.2", &pki).await;
    let cn = tls_upstream("127.0.0.3", &pki).await;
    let de_plain = upstream("127.0.0.2").await;
    let cn_plain = upstream("127.0.0.3").await;
    let certs = tempfile::tempdir().unwrap();
    let files = chujing::tls::ca::init(certs.path(), "chujing e2e CA", false).unwrap();
    let upstream_ca = certs.path().join("upstream-ca.pem");
    let bundle = if ca_bundle_ok {
        pki.ca_pem.clone()
    } else {
        test_pki(&["unrelated.test"]).ca_pem
    };
    std::fs::write(&upstream_ca, &pki.ca_pem).unwrap();
    let bundle_path = certs.path().join("bundle.pem");
    std::fs::write(&bundle_path, bundle).unwrap();
    let proxy = start_proxy(&format!(
        r#"
{top}

[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[resolve]
"secure.test" = ["127.0.0.2"]
"bypass.test" = ["127.0.0.2"]
"app.pinned.test" = ["127.0.0.2"]
"cn-bypass.test" = ["127.0.0.3"]
"plain.test" = ["127.0.0.2"]
"cn-plain.test" = ["127.0.0.3"]
"metadata.test" = ["169.254.169.254"]
"myself.test" = ["127.0.0.1"]

[upstream]
ca_bundle = {bundle:?}

[tls_intercept]
ca_cert = {cert:?}
ca_key = {key:?}
bypass = ["bypass.test", "cn-bypass.test", "*.pinned.test"]
{intercept_extra}
"#,
        bundle = bundle_path.display().to_string(),
        cert = files.cert.display().to_string(),
        key = files.key.display().to_string(),
    ))
    .await;
    World {
        proxy,
        de,
        cn,
        de_plain,
        cn_plain,
        intercept_ca: files.cert,
        upstream_ca,
        _certs: certs,
    }
}

/// Sends a CONNECT and returns the stream and the response head.
async fn connect(proxy: &TestProxy, authority: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("CONNECT answered in time")
            .unwrap();
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Reads the body of a response whose head was read, by its `content-length`.
async fn read_body(s: &mut TcpStream, head: &str) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    let mut body = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

/// Reads until the peer closes.
async fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn events_for_host(proxy: &TestProxy, host: &str) -> Vec<Value> {
    proxy
        .audit()
        .into_iter()
        .filter(|e| e["destination"]["domain"] == host)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_https_runs_the_pipeline_over_http1_and_http2() {
    let w = world(true, "").await;
    let base = format!("https://secure.test:{}", w.de.addr.port());
    for (flag, wire) in [("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")] {
        // The client trusts only the interception CA: a 200 proves the proxy terminated TLS
        // with a leaf it minted, and then verified the real upstream itself.
        let r = w
            .curl_https(flag, &w.intercept_ca, &format!("{base}/ok"), "{\"fine\":1}")
            .await;
        assert_eq!(r.status, 200, "{flag}: {} {}", r.headers, r.body);
        assert_eq!(r.header("x-upstream").as_deref(), Some("yes"));
        assert!(
            r.headers
                .lines()
                .any(|l| l.starts_with(&format!("{wire} 200"))),
            "{flag}: client spoke {wire} inside the tunnel: {}",
            r.headers
        );
        let card = ids::unionpay();
        let r = w
            .curl_https(
                flag,
                &w.intercept_ca,
                &format!("{base}/pay"),
                &format!("{{\"card\":\"{card}\"}}"),
            )
            .await;
        assert_eq!(r.status, 403, "{flag}: {}", r.body);
        let body = r.json();
        assert_eq!(body["error"], "data_exit_blocked");
        assert_eq!(body["reason"], "no_approved_transfer");
        let event = w.proxy.audit_for(body["request_id"].as_str().unwrap());
        assert_eq!(event["url"]["scheme"], "https");
        assert_eq!(event["destination"]["domain"], "secure.test");
        assert_eq!(event["destination"]["ip"], "127.0.0.2");
        assert_eq!(event["destination"]["geo"]["country_iso_code"], "DE");
        assert_eq!(event["chujing"]["findings"][0]["category"], "bank_card");
        assert!(!w.proxy.audit_text().contains(&card), "no raw PI in audit");
    }
    let seen = w.de.requests();
    let complete: Vec<_> = seen.iter().filter(|s| s.complete).collect();
    assert_eq!(
        complete.len(),
        2,
        "only the allowed requests arrived: {seen:#?}"
    );
    assert!(complete.iter().all(|s| s.path == "/ok"));
    assert!(
        !w.de
            .all_bytes()
            .windows(16)
            .any(|win| win == &ids::unionpay().as_bytes()[..16]),
        "the card never reached the upstream"
    );
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypassed_hosts_are_decided_on_destination_alone() {
    let w = world(true, "").await;
    // Abroad + bypass: uninspectable, fail mode closed (default) → CONNECT refused.
    for host in ["bypass.test", "app.pinned.test"] {
        let (mut s, head) = connect(&w.proxy, &format!("{host}:{}", w.de.addr.port())).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{host}: {head}");
        let rest = read_body(&mut s, &head).await;
        assert!(rest.contains("\"reason\":\"uninspectable\""), "{rest}");
        let events = events_for_host(&w.proxy, host);
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(events[0]["chujing"]["reason"], "uninspectable");
        assert_eq!(events[0]["chujing"]["uninspectable"], "not_decrypted");
        assert_eq!(events[0]["chujing"]["enforced"], true);
        assert_eq!(events[0]["http"]["request"]["method"], "CONNECT");
    }
    assert!(w.de.requests().is_empty());

    // Domestic + bypass: allowed and tunnelled untouched — the client sees the upstream's
    // own certificate (verified against the upstream CA, not ours).
    let url = format!("https://cn-bypass.test:{}/direct", w.cn.addr.port());
    let r = w.curl_https("--http2", &w.upstream_ca, &url, "{}").await;
    assert_eq!(r.status, 200, "{} {}", r.headers, r.body);
    let r = w.curl_https("--http1.1", &w.intercept_ca, &url, "{}").await;
    assert_ne!(
        r.status, 200,
        "our CA did not sign what a bypassed client sees"
    );
    let events = events_for_host(&w.proxy, "cn-bypass.test");
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["chujing"]["reason"] == "domestic"
        && e["chujing"]["uninspectable"] == "not_decrypted"
        && e["chujing"]["action"] == "allow"));
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_fail_mode_open_tunnels_abroad_and_audits_it() {
    let w = world(true, "fail_mode = \"open\"").await;
    let url = format!("https://bypass.test:{}/x", w.de.addr.port());
    let r = w.curl_https("--http1.1", &w.upstream_ca, &url, "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.de.requests().len(), 1);
    let events = events_for_host(&w.proxy, "bypass.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["chujing"]["reason"], "uninspectable");
    assert_eq!(events[0]["chujing"]["action"], "allow");
    assert_eq!(events[0]["chujing"]["uninspectable"], "not_decrypted");
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_tls_bytes_in_a_tunnel_are_treated_as_uninspectable() {
    let w = world(true, "").await;
    // Abroad: plain HTTP inside CONNECT is refused with a readable 403, nothing forwarded.
    let (mut s, head) = connect(&w.proxy, &format!("plain.test:{}", w.de_plain.addr.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"POST /leak HTTP/1.1\r\nhost: plain.test\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let reply = read_all(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("\"reason\":\"uninspectable\""), "{reply}");
    assert!(w.de_plain.requests().is_empty());
    let events = events_for_host(&w.proxy, "plain.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["chujing"]["uninspectable"], "not_decrypted");
    assert_eq!(events[0]["chujing"]["enforced"], true);

    // Domestic: spliced as is.
    let (mut s, head) = connect(
        &w.proxy,
        &format!("cn-plain.test:{}", w.cn_plain.addr.port()),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"GET /home HTTP/1.1\r\nhost: cn-plain.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_all(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"path\":\"/home\""), "{reply}");
    assert_eq!(w.cn_plain.requests().len(), 1);
    w.proxy.stop().await;
}

/// A rustls client that trusts `ca`, with ALPN http/1.1.
fn tls_client(ca: &Path) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_and_host_must_match_the_connect_authority() {
    let w = world(true, "").await;
    let port = w.de.addr.port();
    let client = tls_client(&w.intercept_ca);

    // Domain fronting at the TLS layer: CONNECT to one host, SNI for another.
    let (s, head) = connect(&w.proxy, &format!("secure.test:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let name = rustls::pki_types::ServerName::try_from("fronted.test").unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), client.connect(name, s))
        .await
        .unwrap();
    assert!(result.is_err(), "the handshake must not complete");
    let events = events_for_host(&w.proxy, "secure.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["error"]["type"], "tls_sni_mismatch");
    assert_eq!(events[0]["event"]["outcome"], "failure");

    // Matching SNI, but the HTTP request inside names another host: 421, audited.
    let (s, _) = connect(&w.proxy, &format!("secure.test:{port}")).await;
    let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();
    let mut tls = client
        .connect(name, s)
        .await
        .expect("handshake with our leaf");
    tls.write_all(b"GET /x HTTP/1.1\r\nhost: other.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 421"), "{reply}");
    let events = events_for_host(&w.proxy, "secure.test");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1]["http"]["response"]["status_code"], 421);
    assert!(w.de.requests().is_empty(), "nothing reached the upstream");
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_metadata_link_local_and_the_proxy_itself_is_refused() {
    let w = world(true, "").await;
    let own = w.proxy.addr();
    for (authority, domain) in [
        ("metadata.test:80".to_string(), "metadata.test"),
        ("169.254.169.254:80".to_string(), "169.254.169.254"),
        ("[fe80::1]:443".to_string(), "fe80::1"),
        (format!("myself.test:{}", own.port()), "myself.test"),
        (format!("127.0.0.1:{}", own.port()), "127.0.0.1"),
    ] {
        let (mut s, head) = connect(&w.proxy, &authority).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{authority}: {head}");
        let rest = read_body(&mut s, &head).await;
        assert!(rest.contains("destination_ip_prohibited"), "{rest}");
        let events = events_for_host(&w.proxy, domain);
        assert_eq!(events.len(), 1, "{authority}: {events:#?}");
        assert_eq!(events[0]["error"]["type"], "destination_ip_prohibited");
    }
    w.proxy.stop().await;

    // Explicitly allowed: the refusal no longer applies and the tunnel opens.
    let w = world(true, "allow_destinations = [\"169.254.0.0/16\"]").await;
    let (_s, head) = connect(&w.proxy, "169.254.169.254:80").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificate_failure_inside_a_tunnel_is_a_502_with_reason() {
    let w = world(false, "").await;
    let url = format!("https://secure.test:{}/x", w.de.addr.port());
    for flag in ["--http1.1", "--http2"] {
        // No request body: with one, curl over h2 may see the stream reset (the proxy answers
        // before reading it) before it reports the status, which is a client-side race.
        let r = curl(&[
            flag,
            "--proxy",
            &w.proxy_url(),
            "--cacert",
            w.intercept_ca.to_str().unwrap(),
            &url,
        ])
        .await;
        assert_eq!(r.status, 502, "{flag}: {}", r.body);
        assert_eq!(r.json()["reason"], "tls_certificate_error", "{}", r.body);
        assert!(r
            .header("proxy-status")
            .is_some_and(|v| v.contains("tls_certificate_error")));
    }
    assert!(w.de.requests().is_empty());
    let events = events_for_host(&w.proxy, "secure.test");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events
        .iter()
        .all(|e| e["error"]["type"] == "tls_certificate_error"));
    w.proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_init_writes_a_private_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let run = |force: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chujing"));
        cmd.args(["ca", "init", "--out"]).arg(&out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let first = run(false);
    assert!(first.status.success(), "{first:?}");
    let text = String::from_utf8_lossy(&first.stdout);
    for needle in [
        "--cacert",
        "update-ca-certificates",
        "keytool",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
    ] {
        assert!(
            text.contains(needle),
            "instructions mention {needle}: {text}"
        );
    }
    let key = out.join("chujing-ca.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&key).unwrap();
    let second = run(false);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let third = run(true);
    assert!(third.status.success());
    assert_ne!(std::fs::read(&key).unwrap(), before);
    chujing::tls::CertificateAuthority::load(&out.join("chujing-ca.pem"), &key).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_tls_intercept_is_not_implemented() {
    let proxy = start_proxy(
        r#"
[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[resolve]
"secure.test" = ["127.0.0.2"]
"#,
    )
    .await;
    let (mut s, head) = connect(&proxy, "secure.test:443").await;
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    let body = read_body(&mut s, &head).await;
    assert!(
        body.contains("tls_intercept"),
        "the message names the fix: {body}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_tunnels_a_bypass_abroad_but_records_the_would_be_block() {
    let w = world_with("mode = \"monitor\"", true, "").await;
    let url = format!("https://bypass.test:{}/m", w.de.addr.port());
    let r = w.curl_https("--http1.1", &w.upstream_ca, &url, "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.de.requests().len(), 1);
    let events = events_for_host(&w.proxy, "bypass.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["chujing"]["action"], "block");
    assert_eq!(events[0]["chujing"]["enforced"], false);
    assert_eq!(events[0]["chujing"]["reason"], "uninspectable");
    w.proxy.stop().await;
}

/// The drain waits for a request in flight inside an intercepted tunnel: the tunnel's
/// CONNECT connection ended with its `200`, so only the tunnel registry keeps the proxy
/// from cutting it. The request completes, the tunnel then closes, and the proxy stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_a_request_inside_an_intercepted_tunnel() {
    let w = world(true, "").await;
    let port = w.de.addr.port();
    let (s, head) = connect(&w.proxy, &format!("secure.test:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();
    let mut tls = tls_client(&w.intercept_ca)
        .connect(name, s)
        .await
        .expect("handshake with our leaf");
    // Half the body now, the rest once the drain has started.
    let body = b"{\"order\":\"A-1001\"}";
    tls.write_all(
        format!(
            "POST /drain HTTP/1.1\r\nhost: secure.test:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tls.write_all(&body[..8]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = tokio::spawn(w.proxy.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stopping.is_finished(),
        "the proxy must not stop while a tunnel's request is in flight"
    );
    tls.write_all(&body[8..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{read:?}: {reply}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the proxy stops once the tunnel has closed")
        .unwrap();
    assert_eq!(w.de.requests().len(), 1, "the request reached the upstream");
}
