//! TLS on both sides: the proxy's listener serves TLS (ALPN h2 and http/1.1), and HTTPS
//! upstreams are verified against a configured CA bundle and spoken to over HTTP/2 when they
//! offer it. An upstream whose certificate does not verify gets a 502 with the reason.

mod support;

use support::{curl, ids, start_proxy, test_pki, tls_upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_over_h2_through_a_tls_listener() {
    let upstream_pki = test_pki(&["secure.test"]);
    let listener_pki = test_pki(&["proxy.test", "localhost"]);
    let up = tls_upstream("127.0.0.2", &upstream_pki).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca = write("upstream-ca.pem", &upstream_pki.ca_pem);
    let cert = write("proxy.pem", &listener_pki.cert_pem);
    let key = write("proxy.key", &listener_pki.key_pem);
    let client_ca = write("proxy-ca.pem", &listener_pki.ca_pem);
    let proxy = start_proxy(&format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
kind = "reverse"
tls = {{ cert = {cert:?}, key = {key:?} }}

[[route]]
host = "proxy.test"
upstream = "https://secure.test:{port}"

[resolve]
"secure.test" = ["127.0.0.2"]

[upstream]
ca_bundle = {ca:?}
"#,
        port = up.addr.port()
    ))
    .await;
    let base = format!("https://proxy.test:{}", proxy.addr().port());
    let resolve = format!("proxy.test:{}:127.0.0.1", proxy.addr().port());
    for flag in ["--http1.1", "--http2"] {
        let r = curl(&[
            flag,
            "--cacert",
            &client_ca,
            "--resolve",
            &resolve,
            "--data-binary",
            "{\"fine\":1}",
            &format!("{base}/ok"),
        ])
        .await;
        assert_eq!(r.status, 200, "{flag}: {}", r.body);
        let r = curl(&[
            flag,
            "--cacert",
            &client_ca,
            "--resolve",
            &resolve,
            "--data-binary",
            &format!("{{\"card\":\"{}\"}}", ids::unionpay()),
            &format!("{base}/pay"),
        ])
        .await;
        assert_eq!(r.status, 403, "{flag}: {}", r.body);
        assert_eq!(r.json()["reason"], "no_approved_transfer");
    }
    let seen = up.requests();
    let complete: Vec<_> = seen.iter().filter(|s| s.complete).collect();
    assert_eq!(complete.len(), 2, "{seen:#?}");
    assert!(
        complete.iter().all(|s| s.version == "HTTP/2.0"),
        "upstream spoken to over h2: {seen:#?}"
    );
    assert!(!up
        .all_bytes()
        .windows(16)
        .any(|w| w == &ids::unionpay().as_bytes()[..16]));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificate_failure_is_a_502_with_reason() {
    let upstream_pki = test_pki(&["secure.test"]);
    let other_pki = test_pki(&["unrelated.test"]);
    let up = tls_upstream("127.0.0.2", &upstream_pki).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong_ca, &other_pki.ca_pem).unwrap();
    let proxy = start_proxy(&format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[resolve]
"secure.test" = ["127.0.0.2"]

[upstream]
ca_bundle = {:?}
"#,
        wrong_ca.display().to_string()
    ))
    .await;
    // An absolute-form https:// request makes the proxy open the upstream TLS itself.
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!(
            "GET https://secure.test:{}/x HTTP/1.1\r\nhost: secure.test\r\n\r\n",
            up.addr.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert!(text.contains("tls_certificate_error"), "{text}");
    assert!(
        up.requests().is_empty(),
        "nothing may be sent to an unverified upstream"
    );
    let events = proxy.audit();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["error"]["type"], "tls_certificate_error");
}
