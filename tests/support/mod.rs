//! Shared test harness: real upstream servers on loopback addresses (127.0.0.2 = "abroad",
//! 127.0.0.3 = "mainland", mapped by geo overrides), an in-process proxy started from a real
//! TOML file, a test CA for HTTPS upstreams, and readers for the audit log.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended cleanly (false when the proxy aborted it).
    pub complete: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An upstream HTTP server that records every request (also aborted ones).
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every byte any request delivered to this upstream, for "never reached" checks.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in self.requests() {
            out.extend_from_slice(s.path.as_bytes());
            for (_, v) in &s.headers {
                out.extend_from_slice(v.as_bytes());
            }
            out.extend_from_slice(&s.body);
        }
        out
    }
}

/// Test PKI: a CA and a leaf for the given names, PEM encoded.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn test_pki(names: &[&str]) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chujing test upstream CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

async fn record(seen: Arc<Mutex<Vec<Seen>>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
            complete: false,
        });
        seen.len() - 1
    };
    // Record bytes as they arrive, so an aborted body still shows what got through.
    loop {
        match body.frame().await {
            None => {
                seen.lock().unwrap()[index].complete = true;
                break;
            }
            Some(Err(_)) => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    seen.lock().unwrap()[index].body.extend_from_slice(data);
                }
            }
        }
    }
    let body = format!("{{\"upstream\":\"ok\",\"path\":{:?}}}", parts.uri.path());
    Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "yes")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Starts a recording upstream on `ip` (any free port), HTTP/1.1 and h2c.
pub async fn upstream(ip: &str) -> Upstream {
    upstream_inner(ip, None).await
}

/// Starts a recording HTTPS upstream (ALPN h2 + http/1.1) with the given PKI's leaf.
pub async fn tls_upstream(ip: &str, pki: &TestPki) -> Upstream {
    upstream_inner(ip, Some(pki)).await
}

async fn upstream_inner(ip: &str, pki: Option<&TestPki>) -> Upstream {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let acceptor = pki.map(|pki| {
        let certs = rustls_pemfile::certs(&mut pki.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    });
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen2);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let seen = Arc::clone(&seen);
                    async move { Ok::<_, Infallible>(record(seen, req).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // A recording device, not a limit under test: it takes heads the proxy
                // is configured to let through (hyper alone stops at 100 headers).
                builder.http1().max_headers(1000);
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    Upstream { addr, seen }
}

/// A running in-process proxy.
pub struct TestProxy {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub audit_path: PathBuf,
    /// Address of each configured listener, in config order.
    pub addrs: Vec<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestProxy {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.addrs[i])
    }

    /// Audit events so far, one JSON value per line (each line must parse).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        read_audit(&self.audit_path)
    }

    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit_path).unwrap_or_default()
    }

    /// The audit event for a request id (panics with the log if missing).
    pub fn audit_for(&self, request_id: &str) -> serde_json::Value {
        let events = self.audit();
        events
            .iter()
            .find(|e| e["chujing"]["request_id"] == request_id)
            .cloned()
            .unwrap_or_else(|| panic!("no audit event for {request_id}; log: {events:#?}"))
    }

    /// The audit events once `ready` accepts the log as a whole, waiting up to five seconds
    /// for the lines to be written (`what` names them in the failure message).
    pub async fn wait_audit(
        &self,
        what: &str,
        ready: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let events = self.audit();
            if ready(&events) {
                return events;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no audit events for {what} after 5 s; log: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops the proxy (graceful drain, then its workers end) and returns its directory,
    /// so what it wrote can still be read.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.dir
    }
}

pub fn read_audit(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Geo overrides every test config gets: .2 abroad (DE), .3 mainland (CN), .4 Hong Kong.
/// 127.0.0.5 has no override and is not in the database: unknown.
pub const GEO_OVERRIDES: &str = r#"
[[geo.override]]
cidr = "127.0.0.2/32"
country = "DE"
[[geo.override]]
cidr = "127.0.0.3/32"
country = "CN"
[[geo.override]]
cidr = "127.0.0.4/32"
country = "HK"
"#;

/// Writes `body` (the test-specific part of the config) plus the common parts, starts the
/// proxy in-process. Listener binds should use port 0. `{dir}` in `body` is replaced by the
/// temp dir path.
///
/// Every audit line is written before its response leaves (`batch_forwarded = false`), so a
/// test may read the log as soon as it has its answer; [`start_proxy_batching_audit`] keeps
/// the default batching of forwarded requests' lines.
pub async fn start_proxy(body: &str) -> TestProxy {
    start_proxy_with(body, "batch_forwarded = false").await
}

/// [`start_proxy`] with the default audit batching: a forwarded request's line may reach the
/// file just after its response (wait for it with [`TestProxy::wait_audit`]).
pub async fn start_proxy_batching_audit(body: &str) -> TestProxy {
    start_proxy_with(body, "batch_forwarded = true").await
}

/// [`start_proxy_batching_audit`] with `[audit] batch_max_delay_ms` set.
pub async fn start_proxy_batching_audit_for(body: &str, max_delay_ms: u64) -> TestProxy {
    start_proxy_with(
        body,
        &format!("batch_forwarded = true\nbatch_max_delay_ms = {max_delay_ms}"),
    )
    .await
}

/// `audit_batching`: the `[audit]` keys that say how forwarded requests' lines are written.
async fn start_proxy_with(body: &str, audit_batching: &str) -> TestProxy {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let geo_db = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/geo/country.mmdb");
    let text = format!(
        "{}\n[geo]\ndatabase = {:?}\nunknown_is_outbound = true\n{}\n[audit]\npath = {:?}\ninclude_domestic = true\n{audit_batching}\n",
        body.replace("{dir}", &dir.path().display().to_string()),
        geo_db.display().to_string(),
        GEO_OVERRIDES,
        audit_path.display().to_string()
    );
    let config_path = dir.path().join("chujing.toml");
    std::fs::write(&config_path, &text).unwrap();
    let loaded = chujing::config::load(&config_path)
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
    let volume = chujing::volume::open_store(&loaded.config.volume).unwrap();
    let (proxy, listeners) = chujing::proxy::start(loaded, volume)
        .await
        .unwrap_or_else(|e| panic!("proxy failed to start: {e}"));
    let addrs = listeners.iter().map(|l| l.local_addr()).collect();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(chujing::proxy::serve(
        proxy,
        listeners,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(5),
    ));
    TestProxy {
        dir,
        config_path,
        audit_path,
        addrs,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// Result of running curl.
#[derive(Debug)]
pub struct CurlResult {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl CurlResult {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Runs the real curl binary with `args` (plus `-s -D -` to capture headers).
pub async fn curl(args: &[&str]) -> CurlResult {
    let dir = tempfile::tempdir().unwrap();
    let headers_path = dir.path().join("headers");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-D"])
        .arg(&headers_path)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy");
    let out = cmd.output().await.expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    CurlResult {
        status: code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl gave no status: stdout={stdout:?} stderr={}",
                String::from_utf8_lossy(&out.stderr)
            )
        }),
        headers: std::fs::read_to_string(&headers_path).unwrap_or_default(),
        body: body.to_string(),
    }
}

/// Valid test identifiers (synthetic; computed check digits).
pub mod ids {
    /// Resident ID with a valid MOD 11-2 check digit: Beijing Dongcheng, born 1990-03-07.
    pub fn resident_id(area: &str, birth: &str, seq: &str) -> String {
        let body = format!("{area}{birth}{seq}");
        assert_eq!(body.len(), 17);
        const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .bytes()
            .zip(W)
            .map(|(b, w)| (b - b'0') as u32 * w)
            .sum();
        let check = b"10X98765432"[(sum % 11) as usize] as char;
        format!("{body}{check}")
    }

    pub fn adult() -> String {
        resident_id("110101", "19900307", "123")
    }

    /// Same digits with the check digit changed: not a valid ID.
    pub fn adult_bad_check() -> String {
        let id = adult();
        let last = id.chars().last().unwrap();
        let wrong = if last == '0' { '1' } else { '0' };
        format!("{}{}", &id[..17], wrong)
    }

    pub fn child() -> String {
        resident_id("310101", "20180512", "456")
    }

    pub const MOBILE: &str = "13812345678";
    pub const EMAIL: &str = "zhang.wei@example.com";
    /// UnionPay test card number passing Luhn.
    pub fn unionpay() -> String {
        luhn_complete("621700000000000000")
    }

    pub fn luhn_complete(prefix: &str) -> String {
        let digits: Vec<u32> = prefix.bytes().map(|b| (b - b'0') as u32).collect();
        let mut sum = 0;
        for (i, d) in digits.iter().rev().enumerate() {
            let mut v = *d;
            if i % 2 == 0 {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            sum += v;
        }
        format!("{prefix}{}", (10 - sum % 10) % 10)
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the process under test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port` (20 s at most).
pub async fn wait_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process that is killed and reaped when dropped, so a failing test leaves no
/// proxy or redis-server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
