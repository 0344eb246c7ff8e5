//! End to end through real sockets on loopback: curl and a hyper-based client talk to the
//! proxy, which talks to recording upstream servers on 127.0.0.2 (DE), 127.0.0.3 (CN) and
//! 127.0.0.4 (HK). Every reason code is reached; the audit log is checked line by line; no
//! test ever sends traffic beyond loopback.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{curl, ids, start_proxy, upstream, TestProxy, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    proxy: TestProxy,
    de: Upstream,
    cn: Upstream,
    hk: Upstream,
}

impl World {
    fn forward(&self) -> String {
        self.proxy.url(0)
    }
    fn reverse(&self) -> String {
        self.proxy.url(1)
    }
    /// URL of a host on the DE upstream, through the forward proxy's absolute form.
    fn de_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.de.addr.port())
    }
}

/// The policy every test runs against (plus per-test `extra` settings at the top level).
async fn world(mode: &str, extra_tables: &str) -> World {
    let de = upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    let hk = upstream("127.0.0.4").await;
    let config = format!(
        r#"
mode = "{mode}"

[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[[listener]]
bind = "127.0.0.1:0"
kind = "reverse"

[[route]]
host = "partner.test"
upstream = "http://partner.test:{de}"

[[route]]
host = "domestic.test"
upstream = "http://domestic.test:{cn}"

[[route]]
host = "approved.test"
upstream = "http://approved.test:{de}"

[resolve]
"partner.test" = ["127.0.0.2"]
"approved.test" = ["127.0.0.2"]
"nosens.test" = ["127.0.0.2"]
"expired.test" = ["127.0.0.2"]
"future.test" = ["127.0.0.2"]
"capped.test" = ["127.0.0.2"]
"domestic.test" = ["127.0.0.3"]
"hk.test" = ["127.0.0.4"]
"unknown.test" = ["127.0.0.5"]


{extra_tables}

[[transfer]]
id = "SCC-APPROVED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["approved.test"]
categories = ["cn_mobile", "email"]
allow_sensitive = false

[[transfer]]
id = "SCC-NOSENS"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["nosens.test"]
categories = ["cn_resident_id", "cn_mobile"]
allow_sensitive = false

[[transfer]]
id = "SCC-EXPIRED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["expired.test"]
categories = ["cn_mobile"]
valid_from = "2019-01-01"
valid_until = "2020-12-31"

[[transfer]]
id = "SCC-FUTURE"
legal_basis = "certification"
countries = ["DE"]
hosts = ["future.test"]
categories = ["cn_mobile"]
valid_from = "2099-01-01"

[[transfer]]
id = "SCC-CAPPED"
legal_basis = "standard_contract"
countries = ["DE"]
hosts = ["capped.test"]
categories = ["cn_mobile"]
max_individuals_per_year = 1
"#,
        de = de.addr.port(),
        cn = cn.addr.port(),
    );
    let proxy = start_proxy(&config).await;
    World { proxy, de, cn, hk }
}

fn json_body(field: &str, value: &str) -> String {
    format!("{{\"order\":\"A-20261124-0001\",\"{field}\":\"{value}\",\"note\":\"hello\"}}")
}

/// POST through the forward proxy with curl; returns (status, body JSON or Null, request id).
async fn post_forward(w: &World, url: &str, body: &str) -> (u16, Value, support::CurlResult) {
    post_via(&w.forward(), url, body).await
}

/// POST a JSON body to `url` through the forward proxy at `proxy` with curl.
async fn post_via(proxy: &str, url: &str, body: &str) -> (u16, Value, support::CurlResult) {
    let r = curl(&[
        "-x",
        proxy,
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
        url,
    ])
    .await;
    let json = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, json, r)
}

fn assert_blocked(status: u16, json: &Value, r: &support::CurlResult, reason: &str) -> String {
    assert_eq!(status, 403, "expected a block for {reason}: {json}");
    assert_eq!(json["error"], "data_exit_blocked");
    assert_eq!(json["reason"], reason, "{json}");
    let proxy_status = r
        .header("proxy-status")
        .expect("Proxy-Status header on a block");
    assert!(
        proxy_status.starts_with("chujing; error=http_request_denied"),
        "{proxy_status}"
    );
    assert!(proxy_status.contains(reason), "{proxy_status}");
    json["request_id"].as_str().expect("request_id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_request_to_abroad_is_forwarded_and_audited() {
    let w = world("enforce", "").await;
    let (status, json, r) = post_forward(
        &w,
        &w.de_url("partner.test", "/v1/ping?x=1"),
        "{\"hello\":\"world\"}",
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(r.header("x-upstream").as_deref(), Some("yes"));
    let seen = w.de.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/ping?x=1");
    assert_eq!(seen[0].body, b"{\"hello\":\"world\"}");
    assert!(seen[0].complete);
    assert!(seen[0].header("via").unwrap().contains("chujing"));
    assert!(seen[0].header("proxy-connection").is_none());
    let events = w.proxy.audit();
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["chujing"]["reason"], "no_personal_info");
    assert_eq!(e["chujing"]["action"], "allow");
    assert_eq!(e["destination"]["ip"], "127.0.0.2");
    assert_eq!(e["destination"]["geo"]["country_iso_code"], "DE");
    assert_eq!(e["chujing"]["region"], "abroad");
    assert_eq!(e["http"]["response"]["status_code"], 200);
    assert_eq!(e["source"]["ip"], "127.0.0.1");
    assert!(e["@timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(e["chujing"]["policy_hash"].as_str().unwrap().len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_id_to_abroad_without_transfer_is_blocked_and_never_reaches_upstream() {
    let w = world("enforce", "").await;
    let id = ids::adult();
    let (status, json, r) = post_forward(
        &w,
        &w.de_url("partner.test", "/users"),
        &json_body("idNo", &id),
    )
    .await;
    let request_id = assert_blocked(status, &json, &r, "no_approved_transfer");
    let upstream_bytes = w.de.all_bytes();
    assert!(
        !upstream_bytes
            .windows(10)
            .any(|win| win == &id.as_bytes()[..10]),
        "no part of the ID may reach the upstream"
    );
    let e = w.proxy.audit_for(&request_id);
    assert_eq!(e["chujing"]["action"], "block");
    assert_eq!(e["chujing"]["enforced"], true);
    assert_eq!(e["event"]["outcome"], "failure");
    assert_eq!(e["http"]["response"]["status_code"], 403);
    assert_eq!(e["chujing"]["subjects"], 1);
    let cats: Vec<&str> = e["chujing"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    assert!(cats.contains(&"cn_resident_id"), "{cats:?}");
    assert!(
        !w.proxy.audit_text().contains(&id),
        "raw ID must never be audited"
    );
}

/// A body that arrives whole with its head is decided before any connection is taken: a
/// block does not even open a TCP connection to the upstream. A clean request to the same
/// listener shows that the count sees the connections that are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_body_decided_as_a_block_opens_no_upstream_connection() {
    let w = world("enforce", "").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let url = format!("http://partner.test:{port}/users");

    let (status, json, r) = post_forward(&w, &url, &json_body("idNo", &ids::adult())).await;
    assert_blocked(status, &json, &r, "no_approved_transfer");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a request blocked on its whole body must not open an upstream connection"
    );

    let (status, _, _) = post_forward(&w, &url, &json_body("note", "nothing personal")).await;
    assert_eq!(status, 200);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A forward listener whose `partner.test` resolves abroad (DE), with no transfer: the audit
/// batching tests send refusals and clean forwarded requests through it.
const PARTNER_FORWARD: &str = r#"
mode = "enforce"
[[listener]]
bind = "127.0.0.1:0"
kind = "forward"
[resolve]
"partner.test" = ["127.0.0.2"]
"#;

/// With the default batching of audit lines, a refusal's line is in the file when its 403
/// arrives, and a forwarded request's line follows when the worker ends its turn: every
/// request is audited exactly once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_audit_writes_a_refusal_before_its_response_and_every_forwarded_line() {
    let de = upstream("127.0.0.2").await;
    let proxy = support::start_proxy_batching_audit(PARTNER_FORWARD).await;
    let url = format!("http://partner.test:{}/users", de.addr.port());

    // A refusal, then a forwarded request: the last forwarded line has no refusal after it
    // to carry it into the file, so only the worker's end-of-turn write can.
    for round in 0..3 {
        let (status, json, r) =
            post_via(&proxy.url(0), &url, &json_body("idNo", &ids::adult())).await;
        assert_eq!(status, 403, "{}", r.body);
        let id = json["request_id"].as_str().unwrap().to_string();
        // Read at once: a refusal is written before its response leaves.
        let e = proxy.audit_for(&id);
        assert_eq!(e["chujing"]["reason"], "no_approved_transfer");
        let note = json_body("note", &format!("round {round}"));
        let (status, _, r) = post_via(&proxy.url(0), &url, &note).await;
        assert_eq!(status, 200, "{}", r.body);
    }
    let events = proxy
        .wait_audit("three forwarded requests", |events| {
            events
                .iter()
                .filter(|e| e["chujing"]["reason"] == "no_personal_info")
                .count()
                == 3
        })
        .await;
    assert_eq!(events.len(), 6, "each request audited once: {events:#?}");
    assert_eq!(de.requests().len(), 3);
}

/// `batch_max_delay_ms`: a forwarded request's line waits in its worker's batch until the
/// delay has passed, is then written although no further request comes along, and a batch
/// still waiting when the proxy stops is written before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_lines_wait_for_their_delay_and_are_written_at_stop() {
    let de = upstream("127.0.0.2").await;
    let url = format!("http://partner.test:{}/users", de.addr.port());
    let delay = std::time::Duration::from_millis(400);

    let proxy = support::start_proxy_batching_audit_for(PARTNER_FORWARD, 400).await;
    let sent = std::time::Instant::now();
    let (status, _, r) = post_via(&proxy.url(0), &url, &json_body("note", "first")).await;
    assert_eq!(status, 200, "{}", r.body);
    if sent.elapsed() < delay {
        assert!(
            proxy.audit().is_empty(),
            "the line was written before its delay"
        );
    }
    let events = proxy
        .wait_audit("the forwarded request", |e| e.len() == 1)
        .await;
    assert_eq!(events[0]["chujing"]["reason"], "no_personal_info");
    assert!(
        sent.elapsed() >= delay,
        "written after {:?}, before the {delay:?} delay",
        sent.elapsed()
    );

    // Stopping with a line still in the batch (a delay far longer than the test) loses
    // nothing: the worker's last turn writes it.
    let proxy = support::start_proxy_batching_audit_for(PARTNER_FORWARD, 1000).await;
    let (status, _, r) = post_via(&proxy.url(0), &url, &json_body("note", "second")).await;
    assert_eq!(status, 200, "{}", r.body);
    let path = proxy.audit_path.clone();
    let _dir = proxy.stop().await;
    let events = support::read_audit(&path);
    assert_eq!(
        events.len(),
        1,
        "the pending line was lost at stop: {events:#?}"
    );
    assert_eq!(de.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_with_wrong_check_digit_is_not_personal_info() {
    let w = world("enforce", "").await;
    let bad = ids::adult_bad_check();
    let (status, json, _) = post_forward(
        &w,
        &w.de_url("partner.test", "/orders"),
        &json_body("orderNo", &bad),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(w.proxy.audit()[0]["chujing"]["reason"], "no_personal_info");
    assert_eq!(
        w.de.requests()[0].body,
        json_body("orderNo", &bad).as_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_code_is_reached() {
    let w = world(
        "enforce",
        "[classification]\nid_number_is_sensitive = true\nmax_inspect_bytes = 4096\n",
    )
    .await;
    let id = ids::adult();
    let mobile = ids::MOBILE;

    // domestic: personal data to the mainland is allowed.
    let (s, j, _) = post_forward(
        &w,
        &format!("http://domestic.test:{}/x", w.cn.addr.port()),
        &json_body("idNo", &id),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(w.cn.requests()[0].body, json_body("idNo", &id).as_bytes());

    // no_personal_info
    let (s, _, _) = post_forward(&w, &w.de_url("partner.test", "/x"), "{\"a\":1}").await;
    assert_eq!(s, 200);

    // uninspectable: body over max_inspect_bytes, fail closed.
    let big = format!("{{\"blob\":\"{}\"}}", "a".repeat(8000));
    let (s, j, r) = post_forward(&w, &w.de_url("partner.test", "/big"), &big).await;
    assert_blocked(s, &j, &r, "uninspectable");

    // unknown_geography: 127.0.0.5 has no country.
    let (s, j, r) = post_forward(&w, "http://unknown.test:9/x", &json_body("mobile", mobile)).await;
    assert_blocked(s, &j, &r, "unknown_geography");

    // no_approved_transfer, to Hong Kong: HK is outbound.
    let (s, j, r) = post_forward(
        &w,
        &format!("http://hk.test:{}/x", w.hk.addr.port()),
        &json_body("mobile", mobile),
    )
    .await;
    assert_blocked(s, &j, &r, "no_approved_transfer");
    assert!(w
        .hk
        .all_bytes()
        .windows(11)
        .all(|win| win != mobile.as_bytes()));

    // transfer_expired / transfer_not_yet_valid
    let (s, j, r) = post_forward(
        &w,
        &w.de_url("expired.test", "/x"),
        &json_body("mobile", mobile),
    )
    .await;
    assert_blocked(s, &j, &r, "transfer_expired");
    let (s, j, r) = post_forward(
        &w,
        &w.de_url("future.test", "/x"),
        &json_body("mobile", mobile),
    )
    .await;
    assert_blocked(s, &j, &r, "transfer_not_yet_valid");

    // category_not_approved: the ID is not among SCC-APPROVED's categories.
    let (s, j, r) = post_forward(
        &w,
        &w.de_url("approved.test", "/x"),
        &json_body("idNo", &id),
    )
    .await;
    assert_blocked(s, &j, &r, "category_not_approved");

    // sensitive_not_approved: category listed, but IDs are sensitive and allow_sensitive=false.
    let (s, j, r) = post_forward(&w, &w.de_url("nosens.test", "/x"), &json_body("idNo", &id)).await;
    assert_blocked(s, &j, &r, "sensitive_not_approved");

    // approved_transfer
    let (s, j, _) = post_forward(
        &w,
        &w.de_url("approved.test", "/x"),
        &json_body("mobile", mobile),
    )
    .await;
    assert_eq!(s, 200, "{j}");

    // volume_cap_exceeded: cap 1; the same individual again is fine, a new one is not.
    let (s, j, _) = post_forward(
        &w,
        &w.de_url("capped.test", "/x"),
        &json_body("mobile", "13900001111"),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    let (s, j, r) = post_forward(
        &w,
        &w.de_url("capped.test", "/x"),
        &json_body("mobile", "13700002222"),
    )
    .await;
    assert_blocked(s, &j, &r, "volume_cap_exceeded");
    let (s, j, _) = post_forward(
        &w,
        &w.de_url("capped.test", "/x"),
        &json_body("mobile", "13900001111"),
    )
    .await;
    assert_eq!(s, 200, "already counted this year: {j}");

    let reasons: Vec<String> = w
        .proxy
        .audit()
        .iter()
        .map(|e| e["chujing"]["reason"].as_str().unwrap_or("-").to_string())
        .collect();
    for code in chujing::policy::Reason::ALL {
        assert!(
            reasons.iter().any(|r| r == code.as_str()),
            "reason {code} not reached; audit reasons: {reasons:?}"
        );
    }
    let audit = w.proxy.audit_text();
    assert!(
        !audit.contains(&id) && !audit.contains(mobile),
        "no raw PI in the audit log"
    );
    let approved = w
        .proxy
        .audit()
        .into_iter()
        .find(|e| e["chujing"]["reason"] == "approved_transfer")
        .unwrap();
    assert_eq!(approved["chujing"]["transfer"], "SCC-APPROVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_mode_forwards_but_records_the_would_be_block() {
    let w = world("monitor", "").await;
    let id = ids::adult();
    let (s, j, _) =
        post_forward(&w, &w.de_url("partner.test", "/x"), &json_body("idNo", &id)).await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(w.de.requests()[0].body, json_body("idNo", &id).as_bytes());
    let e = &w.proxy.audit()[0];
    assert_eq!(e["chujing"]["action"], "block");
    assert_eq!(e["chujing"]["reason"], "no_approved_transfer");
    assert_eq!(e["chujing"]["enforced"], false);
    assert_eq!(e["chujing"]["mode"], "monitor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_route_http1_and_http2_prior_knowledge() {
    let w = world("enforce", "").await;
    for flag in ["--http1.1", "--http2-prior-knowledge"] {
        let r = curl(&[
            flag,
            "-H",
            "host: partner.test",
            "--data-binary",
            "{\"ok\":true}",
            &format!("{}/api/a?b=c", w.reverse()),
        ])
        .await;
        assert_eq!(r.status, 200, "{flag}: {}", r.body);
        let blocked = curl(&[
            flag,
            "-H",
            "host: partner.test",
            "--data-binary",
            &json_body("email", ids::EMAIL),
            &format!("{}/api/a", w.reverse()),
        ])
        .await;
        assert_eq!(blocked.status, 403, "{flag}: {}", blocked.body);
        assert_eq!(blocked.json()["reason"], "no_approved_transfer");
    }
    let seen = w.de.requests();
    assert_eq!(seen.iter().filter(|s| s.complete).count(), 2);
    assert!(seen
        .iter()
        .all(|s| s.header("host") == Some(&format!("partner.test:{}", w.de.addr.port())[..])));
    assert!(!w
        .de
        .all_bytes()
        .windows(ids::EMAIL.len())
        .any(|win| win == ids::EMAIL.as_bytes()));
    // hyper-based client (reqwest) over HTTP/2 prior knowledge, too.
    // HTTP/2 carries the host in :authority, so resolve the name to the proxy instead.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .resolve("partner.test", w.proxy.addrs[1])
        .build()
        .unwrap();
    let resp = client
        .post(format!(
            "http://partner.test:{}/api/h2",
            w.proxy.addrs[1].port()
        ))
        .body(json_body("mobile", ids::MOBILE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["proxy-status"].to_str().unwrap(),
        "chujing; error=http_request_denied; details=\"no_approved_transfer\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_split_across_chunks_is_caught_before_any_part_leaves() {
    let w = world("enforce", "").await;
    let id = ids::adult();
    let mut stream = tokio::net::TcpStream::connect(w.proxy.addrs[1])
        .await
        .unwrap();
    let head = "POST /split HTTP/1.1\r\nhost: partner.test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let first = format!("{{\"idNo\":\"{}", &id[..9]);
    stream
        .write_all(format!("{:x}\r\n{first}\r\n", first.len()).as_bytes())
        .await
        .unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = format!("{}\"}}", &id[9..]);
    stream
        .write_all(format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len()).as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("no_approved_transfer"), "{text}");
    let bytes = w.de.all_bytes();
    assert!(
        !bytes.windows(6).any(|win| win == &id.as_bytes()[..6]),
        "not even the first half of the ID may be forwarded; upstream saw {:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_clean_body_streams_intact_and_pi_at_the_end_is_still_blocked() {
    let w = world("enforce", "").await;
    let mut body = Vec::with_capacity(2 << 20);
    body.extend_from_slice(b"{\"rows\":[");
    for i in 0..40_000 {
        body.extend_from_slice(format!("{{\"sku\":\"SKU-{i:08}\",\"qty\":{}}},", i % 7).as_bytes());
    }
    body.extend_from_slice(b"{}]}");
    let path = w.proxy.dir.path().join("big.json");
    std::fs::write(&path, &body).unwrap();
    let r = curl(&[
        "-x",
        &w.forward(),
        "--data-binary",
        &format!("@{}", path.display()),
        &w.de_url("partner.test", "/bulk"),
    ])
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.de.requests()[0].body.len(), body.len());
    assert!(
        w.de.requests()[0].body == body,
        "body must arrive byte for byte"
    );

    let mut tainted = body[..body.len() - 4].to_vec();
    tainted.extend_from_slice(format!("{{\"mobile\":\"{}\"}}]}}", ids::MOBILE).as_bytes());
    std::fs::write(&path, &tainted).unwrap();
    let r = curl(&[
        "-x",
        &w.forward(),
        "--data-binary",
        &format!("@{}", path.display()),
        &w.de_url("partner.test", "/bulk"),
    ])
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let second = &w.de.requests()[1];
    assert!(!second.complete, "the upstream request must be aborted");
    assert!(second.body.len() < tainted.len());
    assert!(!second
        .body
        .windows(11)
        .any(|win| win == ids::MOBILE.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusing_connections_gives_502_with_reason_and_an_audit_event() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let w = world("enforce", "").await;
    let r = curl(&[
        "-x",
        &w.forward(),
        "--data-binary",
        "{\"a\":1}",
        &format!("http://partner.test:{closed}/x"),
    ])
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    let j = r.json();
    assert_eq!(j["error"], "upstream_unreachable");
    assert_eq!(j["reason"], "connection_refused");
    assert!(r
        .header("proxy-status")
        .unwrap()
        .contains("error=connection_refused"));
    let e = w.proxy.audit_for(j["request_id"].as_str().unwrap());
    assert_eq!(e["error"]["type"], "connection_refused");
    assert_eq!(e["http"]["response"]["status_code"], 502);
    assert_eq!(e["event"]["outcome"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unsupported_requests_get_proper_http_errors() {
    let w = world("enforce", "").await;
    // Not HTTP at all.
    let mut s = tokio::net::TcpStream::connect(w.proxy.addrs[0])
        .await
        .unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Origin-form request to a forward listener.
    let r = curl(&[&format!("{}/not-absolute", w.forward())]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");
    // Unknown route on the reverse listener.
    let r = curl(&["-H", "host: nowhere.test", &format!("{}/x", w.reverse())]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_route");
    // CONNECT is not implemented on plain listeners yet.
    let mut s = tokio::net::TcpStream::connect(w.proxy.addrs[0])
        .await
        .unwrap();
    s.write_all(b"CONNECT partner.test:443 HTTP/1.1\r\nhost: partner.test:443\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 501"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}
