//! CONNECT on forward listeners (issue 4). Per tunnel, in order:
//! 1. **authority** — `host:port` from the request line; resolved and geolocated once, with
//!    the same `Resolver`/`GeoDb` as plain HTTP, and pinned for the tunnel's lifetime;
//! 2. **refusal** — the proxy's own listeners, its admin port, and link-local/metadata
//!    addresses are refused unless `[tls_intercept] allow_destinations` names them;
//! 3. **bypass** — hosts matching `[tls_intercept] bypass` are decided on destination alone
//!    (an empty report marked `not_decrypted`: domestic → allow, abroad → the fail mode),
//!    audited, and spliced byte for byte;
//! 4. **interception** — after `200`, the ClientHello is read: bytes that are not TLS are
//!    treated like a bypass; an SNI naming another host than the CONNECT (domain fronting)
//!    closes the tunnel and is audited; otherwise a leaf for the host is minted (or taken
//!    from the cache) and the decrypted stream is served by hyper (h2 or http/1.1), each
//!    request running the normal pipeline with target `https://<authority><path>` and the
//!    destination IP resolved for the CONNECT.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::pipeline::{self, ConnInfo};
use super::respond::{self, ProxyBody};
use super::target::{request_host, Target};
use super::upstream::{Scheme, UpstreamError};
use super::{Proxy, Runtime};
use crate::audit::{AuditEvent, ErrorFields, Outcome, RequestFacts};
use crate::classify::{ScanReport, Uninspectable};
use crate::config::{FailMode, Mode};
use crate::geo::Destination;
use crate::policy::{Action, Decision, DecisionInput, Reason};
use crate::tls::{rules, Interceptor};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes peeked to tell a TLS ClientHello from anything else.
const PEEK: usize = 8;

/// An intercepted tunnel: what the client asked to CONNECT to, and the IP it was resolved
/// and geolocated to. Every request decrypted inside goes there and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Lower case, IPv6 without brackets, no trailing dot.
    pub host: String,
    pub port: u16,
    pub ip: IpAddr,
}

impl Tunnel {
    /// The target of a request decrypted inside the tunnel: `https://<authority><path>`.
    /// `Err(host)` when the request names another host (URI authority or `Host`) than the
    /// CONNECT: fronting at the HTTP layer, answered with 421.
    pub fn target<B>(&self, req: &Request<B>) -> Result<Target, String> {
        if let Some(inner) = request_host(req) {
            if !inner.trim_end_matches('.').eq_ignore_ascii_case(&self.host) {
                return Err(inner);
            }
        }
        Ok(Target {
            scheme: Scheme::Https,
            host: self.host.clone(),
            port: self.port,
            path_and_query: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }

    /// `https://<authority>/`: the tunnel's own target, for requests refused before routing.
    pub fn root_target(&self) -> Target {
        Target {
            scheme: Scheme::Https,
            host: self.host.clone(),
            port: self.port,
            path_and_query: "/".to_string(),
        }
    }
}

/// `host:port` of a CONNECT request target (RFC 9110 §9.3.6: authority-form). A missing
/// port means 443.
pub fn connect_authority(uri: &http::Uri) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some((host, authority.port_u16().unwrap_or(443)))
}

/// Serves a CONNECT request on a forward listener.
pub(super) async fn handle(
    proxy: Arc<Proxy>,
    conn: ConnInfo,
    req: Request<Incoming>,
    request_id: String,
    started: DateTime<Utc>,
) -> Response<ProxyBody> {
    let rt = proxy.runtime();
    let Some(icpt) = rt.tls.clone() else {
        return respond::error(
            StatusCode::NOT_IMPLEMENTED,
            "connect_not_supported",
            "http_request_error",
            "CONNECT tunnelling is not enabled; configure [tls_intercept] with a CA (chujing ca init)",
            &request_id,
        );
    };
    let Some((host, port)) = connect_authority(req.uri()) else {
        return respond::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "http_request_error",
            "CONNECT needs an authority-form target such as example.com:443",
            &request_id,
        );
    };
    let facts = RequestFacts {
        request_id: &request_id,
        listener: "forward",
        client: Some(conn.client),
        method: "CONNECT",
        scheme: "https",
        host: &host,
        port,
        version: "1.1",
        started,
    };
    let error_event = |status: u16, kind: &str, message: String| {
        AuditEvent::new(
            &facts,
            Outcome {
                destination: None,
                decision: None,
                report: None,
                mode: rt.policy.mode(),
                enforced: false,
                status: Some(status),
                error: Some(ErrorFields {
                    kind: kind.to_string(),
                    message,
                }),
                policy_hash: &rt.loaded.hash,
            },
        )
    };

    // Phase 1: authority → the one IP, checked against the refusal rules.
    let ip = match rt.resolver.resolve(&host, port).await {
        Ok(ip) => ip,
        Err(e) => {
            proxy.audit(
                &rt,
                &error_event(502, "destination_not_found", e.to_string()),
            );
            return respond::error(
                StatusCode::BAD_GATEWAY,
                "destination_not_found",
                "destination_not_found",
                &e.to_string(),
                &request_id,
            );
        }
    };
    let own: Vec<SocketAddr> = proxy.own_addresses(&rt).collect();
    if let Some(refusal) = rules::refusal(ip, port, &own, conn.local, icpt.allowed_destinations()) {
        let message = refusal.to_string();
        tracing::warn!(request_id = %request_id, client = %conn.client, host = %host, %ip, port, refusal = refusal.code(), "CONNECT refused");
        proxy.audit(
            &rt,
            &error_event(403, "destination_ip_prohibited", message.clone()),
        );
        return respond::error(
            StatusCode::FORBIDDEN,
            "connect_refused",
            "destination_ip_prohibited",
            &message,
            &request_id,
        );
    }
    let destination = rt.geo.locate(&host, port, ip);

    // Phase 2: bypass — decided on the destination alone, before the tunnel opens.
    if icpt.bypassed(&host) {
        let (decision, report) = uninspected_decision(
            &rt,
            &icpt,
            &destination,
            "host matches [tls_intercept] bypass",
        );
        if enforced(&rt, &decision) {
            return proxy.refuse(&rt, &facts, &destination, &decision, &report);
        }
        let upstream = match connect_tcp(&rt, ip, port).await {
            Ok(tcp) => tcp,
            Err(e) => {
                return proxy.upstream_failed(&rt, &facts, &destination, &decision, &report, e)
            }
        };
        audit_tunnel(
            &proxy,
            &rt,
            &facts,
            &destination,
            &decision,
            &report,
            Some(200),
        );
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => splice(TokioIo::new(upgraded), upstream).await,
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        return established();
    }

    // Phase 3: interception, after the client got its 200. Registered for the drain before
    // the 200 leaves: the CONNECT's own connection ends with it.
    let tunnel = Arc::new(Tunnel { host, port, ip });
    let registered = proxy.tunnels.open();
    let intercepted = intercept_boxed(
        proxy,
        rt,
        icpt,
        conn,
        tunnel,
        destination,
        req,
        request_id,
        started,
    );
    tokio::spawn(async move {
        intercepted.await;
        drop(registered);
    });
    established()
}

fn established() -> Response<ProxyBody> {
    Response::new(respond::full(Bytes::new()))
}

/// The policy's verdict on a tunnel whose content will not be read: an empty report marked
/// `not_decrypted`, so the `uninspectable` row and its fail mode apply (domestic first).
fn uninspected_decision(
    rt: &Runtime,
    icpt: &Interceptor,
    destination: &Destination,
    why: &str,
) -> (Decision, ScanReport) {
    let report = ScanReport {
        uninspectable: Some(Uninspectable::NotDecrypted(why.to_string())),
        ..ScanReport::default()
    };
    let mut decision = rt.policy.decide(&DecisionInput {
        destination,
        report: &report,
        at: Utc::now(),
    });
    if let (Reason::Uninspectable, Some(mode)) = (decision.reason, icpt.fail_mode()) {
        decision.action = match mode {
            FailMode::Closed => Action::Block,
            FailMode::Open => Action::Allow,
        };
        decision.explanation.push(&format!(
            "tunnel content not decrypted; tls_intercept.fail_mode = {:?}: {}",
            mode,
            decision.action.as_str()
        ));
    }
    (decision, report)
}

fn enforced(rt: &Runtime, decision: &Decision) -> bool {
    decision.action == Action::Block && rt.policy.mode() == Mode::Enforce
}

/// Audits a tunnel that was let through (in monitor mode possibly a would-be block).
fn audit_tunnel(
    proxy: &Proxy,
    rt: &Runtime,
    facts: &RequestFacts<'_>,
    destination: &Destination,
    decision: &Decision,
    report: &ScanReport,
    status: Option<u16>,
) {
    let event = AuditEvent::new(
        facts,
        Outcome {
            enforced: false,
            status,
            ..rt.decided(destination, decision, report)
        },
    );
    proxy.audit(rt, &event);
    // Metrics, and the canonical block line for a monitor-mode would-be block.
    proxy.observe_decision(rt, facts, destination, decision, report);
}

async fn connect_tcp(rt: &Runtime, ip: IpAddr, port: u16) -> Result<TcpStream, UpstreamError> {
    let addr = SocketAddr::new(ip, port);
    let timeout = rt
        .loaded
        .config
        .upstream
        .connect_timeout_ms
        .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis);
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(UpstreamError {
            kind: "connection_timeout",
            message: format!("connecting to {addr} timed out"),
        }),
        Ok(Err(e)) => Err(UpstreamError {
            kind: match e.kind() {
                io::ErrorKind::ConnectionRefused => "connection_refused",
                io::ErrorKind::TimedOut => "connection_timeout",
                _ => "destination_unavailable",
            },
            message: format!("connecting to {addr}: {e}"),
        }),
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
    }
}

/// Copies bytes both ways until either side closes.
async fn splice<C>(mut client: C, mut upstream: TcpStream)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "tunnel closed with an error");
    }
}

/// [`intercept`] behind a type-erased future. Requests inside the tunnel run
/// `pipeline::handle`, which calls back into this module for CONNECT; erasing the type here
/// breaks that cycle so the compiler can prove the future `Send` without recursion.
#[allow(clippy::too_many_arguments)]
fn intercept_boxed(
    proxy: Arc<Proxy>,
    rt: Arc<Runtime>,
    icpt: Arc<Interceptor>,
    conn: ConnInfo,
    tunnel: Arc<Tunnel>,
    destination: Destination,
    req: Request<Incoming>,
    request_id: String,
    started: DateTime<Utc>,
) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(intercept(
        proxy,
        rt,
        icpt,
        conn,
        tunnel,
        destination,
        req,
        request_id,
        started,
    ))
}

/// Everything after the `200` of an intercepted CONNECT.
#[allow(clippy::too_many_arguments)]
async fn intercept(
    proxy: Arc<Proxy>,
    rt: Arc<Runtime>,
    icpt: Arc<Interceptor>,
    conn: ConnInfo,
    tunnel: Arc<Tunnel>,
    destination: Destination,
    req: Request<Incoming>,
    request_id: String,
    started: DateTime<Utc>,
) {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "CONNECT upgrade failed");
            return;
        }
    };
    let limits = rt.loaded.config.limits.clone();
    let read_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let mut io = TokioIo::new(upgraded);
    let mut head = [0u8; PEEK];
    let mut len = 0;
    // Two bytes tell a TLS handshake record (0x16 0x03) from anything else.
    while len < 2 {
        match tokio::time::timeout(read_timeout, io.read(&mut head[len..])).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => len += n,
            Ok(Err(_)) | Err(_) => return,
        }
    }
    if len == 0 {
        return; // the client opened a tunnel and sent nothing
    }
    let io = Prefixed {
        head,
        pos: 0,
        len,
        inner: io,
    };
    let facts = RequestFacts {
        request_id: &request_id,
        listener: "forward",
        client: Some(conn.client),
        method: "CONNECT",
        scheme: "https",
        host: &tunnel.host,
        port: tunnel.port,
        version: "1.1",
        started,
    };
    let is_tls = head[0] == 0x16 && (len < 2 || head[1] == 0x03);
    if !is_tls {
        opaque(&proxy, &rt, &icpt, &facts, &destination, io).await;
        return;
    }

    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(read_timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, host = %tunnel.host, "malformed ClientHello in CONNECT tunnel");
            return;
        }
        Err(_) => return,
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    if !rules::sni_agrees(sni.as_deref(), &tunnel.host) {
        let message = format!(
            "TLS server name {:?} does not match the CONNECT host {:?} (domain fronting); tunnel closed",
            sni.as_deref().unwrap_or(""),
            tunnel.host
        );
        tracing::warn!(request_id = %request_id, client = %conn.client, host = %tunnel.host, "SNI does not match CONNECT authority; tunnel closed");
        let event = AuditEvent::new(
            &facts,
            Outcome {
                destination: Some(&destination),
                decision: None,
                report: None,
                mode: rt.policy.mode(),
                enforced: true,
                status: None,
                error: Some(ErrorFields {
                    kind: "tls_sni_mismatch".into(),
                    message,
                }),
                policy_hash: &rt.loaded.hash,
            },
        );
        proxy.audit(&rt, &event);
        return;
    }
    let config = match icpt.leaves().server_config(&tunnel.host) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot mint a leaf certificate; tunnel closed");
            return;
        }
    };
    let tls = match start.into_stream(config).await {
        Ok(tls) => tls,
        Err(e) => {
            // Typically the client does not trust our CA, or pins its certificates: the
            // operator needs the host name to decide whether it belongs in the bypass list.
            tracing::info!(error = %e, host = %tunnel.host, "client refused the intercepted TLS handshake; if the app pins certificates, add the host to [tls_intercept] bypass");
            return;
        }
    };

    let inner = ConnInfo {
        tls: true,
        tunnel: Some(tunnel),
        ..conn
    };
    let mut draining = proxy.tunnels.draining();
    let service = service_fn(move |req| {
        let proxy = Arc::clone(&proxy);
        let conn = inner.clone();
        async move { Ok::<_, std::convert::Infallible>(pipeline::handle(proxy, conn, req).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder.http2().timer(TokioTimer::new());
    let served = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(served);
    let mut asked_to_close = false;
    let result = loop {
        tokio::select! {
            r = served.as_mut() => break r,
            _ = draining.wait_for(|d| *d), if !asked_to_close => {
                // The proxy drains: finish the request in flight, then close (HTTP/2: GOAWAY).
                served.as_mut().graceful_shutdown();
                asked_to_close = true;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "intercepted connection ended with an error");
    }
}

/// A tunnel whose first bytes are not TLS: its content is not read (it could be anything),
/// so it is decided like a bypass. A refused tunnel that looks like plain HTTP gets a 403
/// it can read; anything else is closed.
async fn opaque<C>(
    proxy: &Proxy,
    rt: &Runtime,
    icpt: &Interceptor,
    facts: &RequestFacts<'_>,
    destination: &Destination,
    mut client: Prefixed<C>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (decision, report) = uninspected_decision(
        rt,
        icpt,
        destination,
        "the CONNECT tunnel carries bytes that are not TLS",
    );
    if enforced(rt, &decision) {
        proxy.record_refusal(rt, facts, destination, &decision, &report);
        if looks_like_http(&client.head[..client.len]) {
            let body = serde_json::json!({
                "error": "data_exit_blocked",
                "reason": decision.reason.as_str(),
                "request_id": facts.request_id,
            })
            .to_string();
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nproxy-status: {}; error=http_request_denied; details=\"{}\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                respond::PROXY_NAME,
                decision.reason.as_str(),
                body.len()
            );
            let _ = client.inner.write_all(response.as_bytes()).await;
        }
        let _ = client.inner.shutdown().await;
        // Read (and drop) what the client still sends for a moment: closing a socket with
        // unread input makes the kernel send a reset, which can destroy the 403 in flight.
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while matches!(client.inner.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        return;
    }
    let upstream = match connect_tcp(rt, destination.ip, destination.port).await {
        Ok(tcp) => tcp,
        Err(e) => {
            let event = AuditEvent::new(
                facts,
                Outcome {
                    enforced: false,
                    error: Some(ErrorFields {
                        kind: e.kind.to_string(),
                        message: e.message,
                    }),
                    ..rt.decided(destination, &decision, &report)
                },
            );
            proxy.audit(rt, &event);
            return;
        }
    };
    audit_tunnel(proxy, rt, facts, destination, &decision, &report, None);
    splice(client, upstream).await;
}

/// Whether the first bytes of a tunnel look like an HTTP/1 request line (`METHOD `).
fn looks_like_http(head: &[u8]) -> bool {
    let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0 && (method == head.len() || head[method] == b' ')
}

/// 421 for a request inside a tunnel that names another host than the CONNECT did.
pub(super) fn misdirected(
    proxy: &Proxy,
    rt: &Runtime,
    facts: &RequestFacts<'_>,
    inner_host: &str,
) -> Response<ProxyBody> {
    let message = format!(
        "the request names host {inner_host:?} inside a tunnel to {:?}; open a tunnel to that host instead",
        facts.host
    );
    let event = AuditEvent::new(
        facts,
        Outcome {
            destination: None,
            decision: None,
            report: None,
            mode: rt.policy.mode(),
            enforced: true,
            status: Some(421),
            error: Some(ErrorFields {
                kind: "http_request_denied".into(),
                message: message.clone(),
            }),
            policy_hash: &rt.loaded.hash,
        },
    );
    proxy.audit(rt, &event);
    respond::error(
        StatusCode::MISDIRECTED_REQUEST,
        "misdirected_request",
        "http_request_denied",
        &message,
        facts.request_id,
    )
}

/// An I/O stream with bytes already read from it put back in front.
struct Prefixed<T> {
    head: [u8; PEEK],
    pos: usize,
    len: usize,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.len {
            let n = (this.len - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_are_recognised() {
        assert!(looks_like_http(b"POST /le"));
        assert!(looks_like_http(b"GET"));
        assert!(!looks_like_http(b"SSH-2.0-"));
        assert!(!looks_like_http(b"\x16\x03"));
        assert!(!looks_like_http(b""));
    }

    #[test]
    fn connect_authority_forms() {
        let uri: http::Uri = "Example.COM:8443".parse().unwrap();
        assert_eq!(connect_authority(&uri), Some(("example.com".into(), 8443)));
        let uri: http::Uri = "[::1]:443".parse().unwrap();
        assert_eq!(connect_authority(&uri), Some(("::1".into(), 443)));
        let uri: http::Uri = "/path".parse().unwrap();
        assert_eq!(connect_authority(&uri), None);
    }

    #[test]
    fn tunnel_target_pins_the_connect_host() {
        let t = Tunnel {
            host: "api.example.com".into(),
            port: 8443,
            ip: "127.0.0.2".parse().unwrap(),
        };
        let req = Request::builder()
            .uri("/v1/x?y=1")
            .header("host", "API.example.com:8443")
            .body(())
            .unwrap();
        let target = t.target(&req).unwrap();
        assert_eq!(target.scheme, Scheme::Https);
        assert_eq!(target.authority(), "api.example.com:8443");
        assert_eq!(target.path_and_query, "/v1/x?y=1");
        let h2 = Request::builder()
            .uri("https://api.example.com/a")
            .body(())
            .unwrap();
        assert_eq!(t.target(&h2).unwrap().path_and_query, "/a");
        let fronted = Request::builder()
            .uri("/")
            .header("host", "blocked.example.org")
            .body(())
            .unwrap();
        assert_eq!(t.target(&fronted), Err("blocked.example.org".to_string()));
    }
}
