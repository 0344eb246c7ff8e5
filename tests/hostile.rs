//! Hostile input: request smuggling (CL+TE, duplicate Content-Length), invalid UTF-8 and GBK
//! bodies, gzip bombs, deeply nested JSON, evasion encodings (escapes, full-width digits,
//! split chunks, base64 field values), 10,000 headers, oversized heads, slowloris and the
//! connection cap. For each: the proxy does not crash (it answers the next request),
//! nothing carrying personal data reaches the foreign upstream, and the refusal is audited.
//! Raw sockets are used where a well-behaved client would refuse to send the attack.

// The config fuzz target (included below) uses cargo-fuzz's `fuzzing` cfg.
#![allow(unexpected_cfgs)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use support::{ids, start_proxy, upstream, TestProxy, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct World {
    proxy: TestProxy,
    de: Upstream,
    cn: Upstream,
}

impl World {
    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    fn de_url(&self, path: &str) -> String {
        format!("http://partner.test:{}{path}", self.de.addr.port())
    }

    /// Whether `needle` reached the foreign upstream in any form we know to look for.
    fn leaked(&self, needle: &str) -> bool {
        let bytes = self.de.all_bytes();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// The proxy still serves: a clean domestic request gets through.
    async fn still_serving(&self) {
        let url = format!("http://domestic.test:{}/alive", self.cn.addr.port());
        let r = raw(
            self.addr(),
            format!("GET {url} HTTP/1.1\r\nHost: domestic.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "proxy stopped serving: {r}");
    }

    /// Audit events with this HTTP status.
    fn audited_with_status(&self, status: u16) -> usize {
        self.proxy
            .audit()
            .iter()
            .filter(|e| e["http"]["response"]["status_code"] == status)
            .count()
    }

    /// Audit events with this status, waiting up to 5 s for the first: a limit that ends
    /// the connection (400, 408, 431) is audited by the connection's worker after the
    /// client has seen the response and the close.
    async fn eventually_audited_with_status(&self, status: u16) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.audited_with_status(status);
            if n > 0 || std::time::Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn world(extra: &str) -> World {
    let de = upstream("127.0.0.2").await;
    let cn = upstream("127.0.0.3").await;
    let config = format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
kind = "forward"

[resolve]
"partner.test" = ["127.0.0.2"]
"domestic.test" = ["127.0.0.3"]

{extra}
"#
    );
    World {
        proxy: start_proxy(&config).await,
        de,
        cn,
    }
}

/// Sends raw bytes, returns everything the proxy answered before closing (or 5 s).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status codes of every response in a raw HTTP/1.1 byte stream, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

fn post_head(url: &str, extra_headers: &str) -> String {
    format!("POST {url} HTTP/1.1\r\nHost: partner.test\r\n{extra_headers}")
}

#[tokio::test]
async fn smuggling_cl_te_never_lets_the_hidden_request_out_uninspected() {
    let w = world("").await;
    let id = ids::adult();
    // Front-end sees CL, back-end sees chunked (or vice versa): the "hidden" request
    // carries a resident ID to the foreign upstream.
    let hidden = format!(
        "POST {} HTTP/1.1\r\nHost: partner.test\r\nContent-Length: 30\r\n\r\n{{\"id\":\"{id}\"}}",
        w.de_url("/hidden")
    );
    let payload = format!(
        "{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
        post_head(&w.de_url("/front"), "")
    );
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert!(!out.is_empty(), "no answer at all");
    assert!(
        !w.leaked(&id),
        "smuggled personal data reached the upstream"
    );
    // Whatever hyper made of it, each response is a refusal or a clean forward, and the
    // hidden request (if parsed) was inspected and blocked.
    for status in statuses(&out) {
        assert!(matches!(status, 200 | 400 | 403), "{out}");
    }
    // RFC 9112 §6.1: Transfer-Encoding overrides Content-Length, and a server that gets both
    // must close the connection after the request. So either the front request (an empty
    // chunked body) is served and the connection closed, leaving the hidden bytes unread, or
    // the hidden request is parsed as one of its own and refused, or the connection is
    // rejected as malformed. Whatever was served or refused is on record.
    let got = statuses(&out);
    match got.as_slice() {
        [200] => assert!(out.contains("connection: close"), "kept alive: {out}"),
        [200, 403] | [400] => {}
        _ => panic!("unexpected answers {got:?}: {out}"),
    }
    let last = *got.last().unwrap();
    assert!(
        w.eventually_audited_with_status(last).await >= 1,
        "smuggling attempt not audited"
    );
    w.still_serving().await;
}

#[tokio::test]
async fn duplicate_content_length_is_rejected_and_audited() {
    let w = world("").await;
    let payload = format!(
        "{}Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello{{\"mobile\":\"{}\"}}",
        post_head(&w.de_url("/dup"), ""),
        ids::MOBILE
    );
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&400), "{out}");
    assert!(
        w.de.requests().is_empty(),
        "a request with conflicting lengths was forwarded"
    );
    assert!(
        w.eventually_audited_with_status(400).await >= 1,
        "malformed request not audited"
    );
    w.still_serving().await;
}

#[tokio::test]
async fn invalid_utf8_and_gbk_bodies_are_scanned_not_crashed_on() {
    let w = world("").await;
    let mobile = ids::MOBILE;
    // Invalid UTF-8 all around the identifier.
    let mut invalid = vec![0xFF, 0xFE, 0xC3, 0x28, 0xA0, 0xA1, 0xE2, 0x28, 0xA1];
    invalid.extend_from_slice(format!(" tel {mobile} ").as_bytes());
    invalid.extend_from_slice(&[0xF0, 0x28, 0x8C, 0xBC, 0xED, 0xA0, 0x80]);
    // GBK: "手机号：" then the number (digits are ASCII in GBK).
    let mut gbk = vec![0xCA, 0xD6, 0xBB, 0xFA, 0xBA, 0xC5, 0xA3, 0xBA];
    gbk.extend_from_slice(mobile.as_bytes());
    gbk.extend_from_slice(&[0xA3, 0xAC, 0xD0, 0xD5, 0xC3, 0xFB]);
    for (body, ctype) in [
        (invalid, "text/plain; charset=utf-8"),
        (gbk, "text/plain; charset=gbk"),
    ] {
        let mut payload = post_head(
            &w.de_url("/enc"),
            &format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
        )
        .into_bytes();
        payload.extend_from_slice(&body);
        let out = raw(w.addr(), &payload).await;
        assert_eq!(statuses(&out), vec![403], "{out}");
    }
    assert!(!w.leaked(mobile));
    w.still_serving().await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn gzip_bomb_is_uninspectable_and_blocked_not_expanded() {
    let w = world("").await;
    // 64 MiB of zeros → ~64 KiB compressed: ratio ~1000, far past the default 100.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 200 * 1024);
    let mut payload = post_head(
        &w.de_url("/bomb"),
        &format!(
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bomb.len()
        ),
    )
    .into_bytes();
    payload.extend_from_slice(&bomb);
    let out = raw(w.addr(), &payload).await;
    assert_eq!(statuses(&out), vec![403], "{out}");
    assert!(out.contains("uninspectable"), "{out}");
    let events = w.proxy.audit();
    let event = events
        .iter()
        .find(|e| e["chujing"]["uninspectable"].is_string())
        .expect("bomb audited as uninspectable");
    assert_eq!(event["chujing"]["uninspectable"], "decompression_bomb");
    assert!(w.de.requests().iter().all(|r| !r.complete));
    w.still_serving().await;
}

#[tokio::test]
async fn deeply_nested_json_does_not_overflow_and_is_still_scanned() {
    let w = world("").await;
    let depth = 100_000;
    let mut body = String::with_capacity(depth * 8);
    for _ in 0..depth {
        body.push_str("{\"a\":[");
    }
    body.push_str(&format!("\"{}\"", ids::MOBILE));
    for _ in 0..depth {
        body.push_str("]}");
    }
    let payload = format!(
        "{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        post_head(&w.de_url("/nested"), ""),
        body.len()
    );
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out), vec![403], "{out}");
    assert!(!w.leaked(ids::MOBILE));
    w.still_serving().await;
}

/// Each evasion encoding of a resident ID: all must be blocked before the digits leave.
#[tokio::test]
async fn evasion_encodings_are_blocked() {
    let w = world("").await;
    let id = ids::adult();
    let escaped: String = id.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let fullwidth: String = id
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0xFF10 + d).unwrap(),
            None => c,
        })
        .collect();
    let percent: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let cases = [
        (
            "json-escapes",
            "application/json",
            format!("{{\"v\":\"{escaped}\"}}"),
        ),
        (
            "full-width",
            "application/json",
            format!("{{\"身份证\":\"{fullwidth}\"}}"),
        ),
        (
            "percent-form",
            "application/x-www-form-urlencoded",
            format!("idno={percent}&x=1"),
        ),
        (
            "separators",
            "text/plain",
            format!("{} {} {}", &id[..6], &id[6..14], &id[14..]),
        ),
    ];
    for (name, ctype, body) in cases {
        let payload = format!(
            "{}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            post_head(&w.de_url(&format!("/{name}")), ""),
            body.len()
        );
        let out = raw(w.addr(), payload.as_bytes()).await;
        assert_eq!(statuses(&out), vec![403], "{name}: {out}");
    }
    assert!(
        w.de.requests().iter().all(|r| !r.complete),
        "an evasion encoding completed a request to the foreign upstream"
    );
    w.still_serving().await;
}

#[tokio::test]
async fn identifier_split_across_chunks_one_byte_at_a_time_is_blocked() {
    let w = world("").await;
    let id = ids::adult();
    let body = format!("{{\"note\":\"{}\",\"id\":\"{id}\"}}", "x".repeat(5000));
    let mut s = TcpStream::connect(w.addr()).await.unwrap();
    s.write_all(
        post_head(
            &w.de_url("/split"),
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The prefix in big chunks (so some of it may legitimately be forwarded), the ID one
    // byte per chunk with a flush between, so it arrives split at every position.
    let (prefix, rest) = body.split_at(body.find(&id).unwrap());
    for part in prefix.as_bytes().chunks(1000) {
        let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
        chunk.extend_from_slice(part);
        chunk.extend_from_slice(b"\r\n");
        s.write_all(&chunk).await.unwrap();
    }
    for b in rest.bytes() {
        if s.write_all(&[b'1', b'\r', b'\n', b, b'\r', b'\n'])
            .await
            .is_err()
        {
            break;
        }
        s.flush().await.ok();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert_eq!(statuses(&out), vec![403], "{out}");
    assert!(
        !w.leaked(&id[..12]),
        "the first half of the ID left before the verdict"
    );
    w.still_serving().await;
}

/// A base64-encoded field value hides the digits from every detector that reads text: the
/// classifier decodes base64 values and scans what they carry.
#[tokio::test]
async fn base64_field_value_is_blocked() {
    let w = world("").await;
    let id = ids::adult();
    let b64 = base64_encode(format!("{{\"idno\":\"{id}\"}}").as_bytes());
    let body = format!("{{\"payload\":\"{b64}\"}}");
    let payload = format!(
        "{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        post_head(&w.de_url("/b64"), ""),
        body.len()
    );
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out), vec![403], "{out}");
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn ten_thousand_headers_get_431_and_an_audit_event() {
    let w = world("").await;
    let mut payload = post_head(&w.de_url("/many"), "");
    for i in 0..10_000 {
        payload.push_str(&format!("X-H{i}: {}\r\n", ids::MOBILE));
    }
    payload.push_str("Content-Length: 0\r\n\r\n");
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&431), "{out}");
    assert!(w.de.requests().is_empty());
    assert!(w.eventually_audited_with_status(431).await >= 1);
    // Just over the count limit (default 100), each header small: also 431.
    let mut payload = post_head(&w.de_url("/count"), "");
    for i in 0..150 {
        payload.push_str(&format!("X-{i}: a\r\n"));
    }
    payload.push_str("Content-Length: 0\r\n\r\n");
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&431), "{out}");
    w.still_serving().await;
}

/// A head of `count` small headers (plus Host, Connection and Content-Length) to a clean
/// path; the connection closes after the answer.
fn head_with_headers(w: &World, count: usize) -> String {
    let mut payload = post_head(&w.de_url("/count"), "Connection: close\r\n");
    for i in 0..count {
        payload.push_str(&format!("X-{i}: a\r\n"));
    }
    payload.push_str("Content-Length: 0\r\n\r\n");
    payload
}

#[tokio::test]
async fn a_configured_header_count_is_the_limit_below_and_above_the_default() {
    // The default (100) is hyper's own; any other value is handed to hyper, and must hold
    // both ways.
    let w = world("[limits]\nmax_headers = 20\n").await;
    let out = raw(w.addr(), head_with_headers(&w, 15).as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&200), "{out}");
    let out = raw(w.addr(), head_with_headers(&w, 30).as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&431), "{out}");
    assert!(w.eventually_audited_with_status(431).await >= 1);

    let w = world("[limits]\nmax_headers = 300\n").await;
    let out = raw(w.addr(), head_with_headers(&w, 150).as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&200), "{out}");
    let out = raw(w.addr(), head_with_headers(&w, 400).as_bytes()).await;
    assert_eq!(statuses(&out).first(), Some(&431), "{out}");
}

#[tokio::test]
async fn personal_data_in_a_header_is_blocked() {
    let w = world("").await;
    let payload = format!(
        "GET {} HTTP/1.1\r\nHost: partner.test\r\nX-User: {}\r\nConnection: close\r\n\r\n",
        w.de_url("/h"),
        ids::adult()
    );
    let out = raw(w.addr(), payload.as_bytes()).await;
    assert_eq!(statuses(&out), vec![403], "{out}");
    assert!(w.de.requests().is_empty());
}

#[tokio::test]
async fn slowloris_head_is_cut_off_and_audited() {
    let w = world("[limits]\nheader_read_timeout_ms = 300\n").await;
    let mut s = TcpStream::connect(w.addr()).await.unwrap();
    s.write_all(b"GET http://partner.test/ HTTP/1.1\r\nHost: partner.test\r\n")
        .await
        .unwrap();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a drip-fed head held the connection for 3 s");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while w.audited_with_status(408) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "slowloris not audited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.still_serving().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_are_audited() {
    let w = world("[limits]\nmax_connections = 4\n").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(w.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = raw(
        w.addr(),
        b"GET http://domestic.test/ HTTP/1.1\r\nHost: domestic.test\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&out), vec![503], "{out}");
    let events = w.proxy.audit();
    assert!(events
        .iter()
        .any(|e| e["error"]["type"] == "connection_limit_reached"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.still_serving().await;
}

#[tokio::test]
async fn garbage_and_truncated_requests_do_not_crash() {
    let w = world("").await;
    let cases: [&[u8]; 6] = [
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET http://partner.test/ HTTP/9.9\r\n\r\n",
        b"POST http://partner.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST http://partner.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET http://partner.test/ HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
    ];
    for case in cases {
        let _ = raw(w.addr(), case).await;
    }
    assert!(w.eventually_audited_with_status(400).await >= 1);
    w.still_serving().await;
}

/// The config fuzz target's body, run on stable under proptest: random bytes, and random
/// mutations of the shipped configurations (which reach far deeper into validation).
#[path = "../fuzz/fuzz_targets/config.rs"]
mod fuzz_config;

mod fuzz_config_props {
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut out = vec![std::fs::read(root.join("chujing.toml")).unwrap()];
        if let Ok(dir) = std::fs::read_dir(root.join("examples")) {
            for entry in dir.flatten() {
                if entry.path().extension().is_some_and(|e| e == "toml") {
                    out.push(std::fs::read(entry.path()).unwrap());
                }
            }
        }
        out
    }

    /// Edits to apply: (position fraction, kind, byte).
    fn edits() -> impl Strategy<Value = Vec<(f64, u8, u8)>> {
        proptest::collection::vec((0.0f64..1.0, 0u8..4, any::<u8>()), 1..8)
    }

    fn mutate(mut data: Vec<u8>, edits: &[(f64, u8, u8)]) -> Vec<u8> {
        const TOKENS: [&[u8]; 8] = [b"\"", b"[[", b"]", b"=", b"\n", b"0", b"-1", b"\"\\u"];
        for &(at, kind, byte) in edits {
            let i = ((data.len() as f64) * at) as usize;
            let i = i.min(data.len());
            match kind {
                0 => {
                    if i < data.len() {
                        data[i] = byte;
                    }
                }
                1 => {
                    if i < data.len() {
                        data.remove(i);
                    }
                }
                2 => data.insert(i, byte),
                _ => {
                    let token = TOKENS[byte as usize % TOKENS.len()];
                    data.splice(i..i, token.iter().copied());
                }
            }
        }
        data
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn fuzz_config_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::fuzz_config::check(&data);
        }

        #[test]
        fn fuzz_config_mutated_shipped_configs(seed in 0usize..64, edits in edits()) {
            let seeds = seeds();
            let data = mutate(seeds[seed % seeds.len()].clone(), &edits);
            super::fuzz_config::check(&data);
        }
    }
}

#[tokio::test]
async fn body_over_the_inspection_limit_is_uninspectable_abroad_and_fine_at_home() {
    let w = world("[classification]\nmax_inspect_bytes = 4096\n").await;
    let body = format!("{{\"note\":\"{}\"}}", "z".repeat(64 * 1024));
    let send = |url: String, host: &'static str| {
        let body = body.clone();
        let addr = w.addr();
        async move {
            let payload = format!(
                "POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            raw(addr, payload.as_bytes()).await
        }
    };
    let out = send(w.de_url("/big"), "partner.test").await;
    assert_eq!(statuses(&out), vec![403], "{out}");
    assert!(out.contains("uninspectable"), "{out}");
    assert!(w
        .proxy
        .audit()
        .iter()
        .any(|e| e["chujing"]["uninspectable"] == "too_large"));
    assert!(w.de.requests().iter().all(|r| !r.complete));
    let out = send(
        format!("http://domestic.test:{}/big", w.cn.addr.port()),
        "domestic.test",
    )
    .await;
    assert_eq!(statuses(&out), vec![200], "{out}");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let w = world("[limits]\nidle_timeout_ms = 300\nheader_read_timeout_ms = 20000\n").await;
    let mut s = TcpStream::connect(w.addr()).await.unwrap();
    let req = format!(
        "GET http://domestic.test:{}/a HTTP/1.1\r\nHost: domestic.test\r\n\r\n",
        w.cn.addr.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Keep-alive, nothing more sent: the proxy closes within a few idle periods.
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(250));
}
