//! One request's life, as named phases (the pingora way):
//! 1. **target** — where the request wants to go (absolute-form or reverse route);
//! 2. **destination** — resolve the host once, geolocate the IP we will connect to;
//! 3. **request filter** — scan the URL and header values, decide; a block ends here;
//! 4. **upstream** — connect, stream the body through the classifier (a chunk leaves only
//!    after it and the bytes behind it were scanned), re-deciding as findings grow. A body
//!    that is already here whole (none, or one frame read with the head) is decided first,
//!    and a connection is taken only for a request that may leave;
//! 5. **final decision** — at the end of the body: decide, count individuals, release the
//!    held-back tail or abort the upstream request;
//! 6. **response** — stream the upstream's response back, or refuse; then one audit event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::connect::{self, Tunnel};
use super::inspect::{BodySender, Holdback, UpstreamBody, HOLDBACK_ENCODED, HOLDBACK_IDENTITY};
use super::respond::{self, ProxyBody};
use super::target::{forward_target, reverse_target, Target, TargetError};
use super::upstream::{PoolKey, Protocol, UpstreamError};
use super::{headers, Proxy, Runtime};
use crate::audit::{AuditEvent, ErrorFields, Outcome, RequestFacts};
use crate::classify::{BodyScanner, ScanContext, ScanReport};
use crate::config::{FailMode, ListenerKind, Mode};
use crate::geo::{Destination, Region};
use crate::policy::{Action, Decision, DecisionInput};

/// What the accept loop knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub kind: ListenerKind,
    pub client: SocketAddr,
    /// The address the client connected to, when known.
    pub local: Option<SocketAddr>,
    pub tls: bool,
    /// Set for requests decrypted inside an intercepted CONNECT tunnel: the tunnel's
    /// authority is the target and its resolved IP the destination.
    pub tunnel: Option<Arc<Tunnel>>,
}

/// Header values never scanned: they describe framing, not people.
static UNSCANNED_HEADERS: [header::HeaderName; 6] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONNECTION,
    header::ACCEPT_ENCODING,
];

/// Serves one request. Never fails: every problem becomes a response (and an audit event).
pub async fn handle(
    proxy: Arc<Proxy>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    // In-flight requests finish under the runtime (policy, geo) they started with.
    let rt = proxy.runtime();
    let request_id = proxy.next_request_id();
    let started = crate::clock::utc_now();
    let method = req.method().clone();
    let version = version_str(req.version());
    let listener = match conn.kind {
        ListenerKind::Forward => "forward",
        ListenerKind::Reverse => "reverse",
    };

    // Phase 1: target.
    if method == Method::CONNECT {
        if conn.kind == ListenerKind::Forward && conn.tunnel.is_none() {
            return connect::handle(proxy, conn, req, request_id, started).await;
        }
        return respond::error(
            StatusCode::NOT_IMPLEMENTED,
            "connect_not_supported",
            "http_request_error",
            "CONNECT tunnelling is not enabled on this listener",
            &request_id,
        );
    }
    let mut misdirected = None;
    let target = match (&conn.tunnel, conn.kind) {
        (Some(tunnel), _) => Ok(tunnel.target(&req).unwrap_or_else(|inner_host| {
            // Refused below, once the facts exist to audit it.
            misdirected = Some(inner_host);
            tunnel.root_target()
        })),
        (None, ListenerKind::Forward) => forward_target(&req),
        (None, ListenerKind::Reverse) => reverse_target(&rt.routes, &req),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return target_error(e, &request_id),
    };
    let facts = RequestFacts {
        request_id: &request_id,
        listener,
        client: Some(conn.client),
        method: method.as_str(),
        scheme: target.scheme.as_str(),
        host: &target.host,
        port: target.port,
        version,
        started,
    };

    if let Some(inner_host) = misdirected {
        return connect::misdirected(&proxy, &rt, &facts, &inner_host);
    }

    // Phase 2: destination. Inside a tunnel the IP was resolved (and checked) at CONNECT.
    let resolved = match &conn.tunnel {
        Some(tunnel) => Ok(tunnel.ip),
        None => rt.resolver.resolve(&target.host, target.port).await,
    };
    let ip = match resolved {
        Ok(ip) => ip,
        Err(e) => {
            let error = ErrorFields {
                kind: "destination_not_found".into(),
                message: e.to_string(),
            };
            proxy.audit(
                &rt,
                &AuditEvent::new(
                    &facts,
                    Outcome {
                        destination: None,
                        decision: None,
                        report: None,
                        mode: rt.policy.mode(),
                        enforced: false,
                        status: Some(502),
                        error: Some(error),
                        policy_hash: &rt.loaded.hash,
                    },
                ),
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
    if proxy.is_own_address(&rt, ip, target.port) {
        return respond::error(
            StatusCode::FORBIDDEN,
            "destination_forbidden",
            "destination_ip_prohibited",
            "requests to the proxy's own listeners or admin endpoint are refused",
            &request_id,
        );
    }
    let destination = rt.geo.locate(&target.host, target.port, ip);
    let mut inspection = Inspection::new(&rt, proxy.metrics(), &destination, &req, started);
    if inspection.active() && audit_must_block(&proxy, &rt) {
        return audit_unavailable(&proxy, &rt, &facts, &destination);
    }

    // Phase 3: request filter (URL and header values, before anything is sent).
    if inspection.active() {
        if let Some(pq) = req.uri().path_and_query() {
            inspection.feed_fragment(pq.as_str().as_bytes());
        }
        for (name, value) in req.headers() {
            if !UNSCANNED_HEADERS.contains(name) {
                inspection.feed_fragment(value.as_bytes());
            }
        }
        if let Some(decision) = inspection.blocking_verdict() {
            let report = inspection.snapshot();
            return proxy.refuse(&rt, &facts, &destination, &decision, &report);
        }
    }

    let (parts, mut body) = req.into_parts();
    let key = PoolKey {
        scheme: target.scheme,
        host: target.host.clone(),
        ip,
        port: target.port,
    };

    // A body that is already here whole is scanned and decided in full before a connection
    // is taken, then sent in one piece (no pump, no holdback queue, no channel to the
    // upstream connection): a request without one, and the usual small API call, whose whole
    // body hyper read with the head as one frame.
    let (whole, first) = if body.is_end_stream() {
        (Some(None), None)
    } else {
        match frame_now(&mut body).await {
            Some(Some(Ok(frame))) if frame.is_data() && body.is_end_stream() => {
                (Some(Some(frame.into_data().unwrap_or_default())), None)
            }
            // Anything else (a first chunk of more, trailers, an error, nothing yet) is
            // handed to the streaming path below, which takes it before reading on.
            polled => (
                None,
                polled.map(|frame| frame.map(|f| f.map_err(BodyRead::Failed))),
            ),
        }
    };
    if let Some(whole) = whole {
        return forward_whole(
            &proxy,
            &rt,
            &facts,
            &destination,
            &mut inspection,
            Outgoing {
                parts,
                target: &target,
                key,
            },
            whole,
        )
        .await;
    }

    // Phase 4: upstream, with the body streamed through the classifier.
    let checkout = match proxy.upstream.checkout(key).await {
        Ok(c) => c,
        Err(e) => {
            // Nothing can leave, but the decision still matters: an attempt to send personal
            // data abroad is a block (and audited as one) even when the upstream is down.
            let body_timeout = Duration::from_millis(rt.loaded.config.limits.body_read_timeout_ms);
            return match scan_only(body, first, &mut inspection, body_timeout).await {
                PumpEnd::Blocked(decision, report) => {
                    proxy.refuse(&rt, &facts, &destination, &decision, &report)
                }
                PumpEnd::Complete(decision, report)
                | PumpEnd::ClientFailed(decision, report, _) => {
                    proxy.upstream_failed(&rt, &facts, &destination, &decision, &report, e)
                }
            };
        }
    };
    let body_timeout = Duration::from_millis(rt.loaded.config.limits.body_read_timeout_ms);
    let (sender, up_body) = UpstreamBody::channel(body.size_hint());
    let up_req = upstream_request(parts, &target, checkout.protocol(), up_body);
    let sent_at = std::time::Instant::now();
    let (sent, pumped) = tokio::join!(
        async {
            let sent = send_bounded(&proxy, &rt, checkout, up_req).await;
            proxy.metrics().observe_upstream(sent_at.elapsed());
            sent
        },
        pump(body, first, sender, &mut inspection, body_timeout)
    );

    // Phase 5 happened inside the pump; phase 6: respond.
    match pumped {
        PumpEnd::Blocked(decision, report) => {
            proxy.refuse(&rt, &facts, &destination, &decision, &report)
        }
        PumpEnd::ClientFailed(decision, report, message) => {
            let timed_out = message == BODY_TIMEOUT;
            let status = if timed_out {
                StatusCode::REQUEST_TIMEOUT
            } else {
                StatusCode::BAD_REQUEST
            };
            let error = ErrorFields {
                kind: "http_request_error".into(),
                message,
            };
            proxy.audit(
                &rt,
                &AuditEvent::new(
                    &facts,
                    Outcome {
                        enforced: false,
                        status: Some(status.as_u16()),
                        error: Some(error),
                        ..rt.decided(&destination, &decision, &report)
                    },
                ),
            );
            if timed_out {
                respond::error(
                    status,
                    "request_timeout",
                    "http_request_error",
                    BODY_TIMEOUT,
                    &request_id,
                )
            } else {
                respond::error(
                    status,
                    "bad_request",
                    "http_request_error",
                    "the request body could not be read",
                    &request_id,
                )
            }
        }
        PumpEnd::Complete(decision, report) => match sent {
            Ok(resp) => proxy.deliver(&rt, &facts, &destination, &decision, &report, resp),
            Err(e) => proxy.upstream_failed(&rt, &facts, &destination, &decision, &report, e),
        },
    }
}

/// The request line and headers as they go upstream, and the pool key of their connection.
struct Outgoing<'t> {
    parts: http::request::Parts,
    target: &'t Target,
    key: PoolKey,
}

/// Sends a request whose body is already here in full (`None`: it has none; else the one
/// frame hyper read with the head): scanned and decided before a connection is taken;
/// individuals counted only once one is, since nothing leaves otherwise; then sent and
/// answered.
async fn forward_whole(
    proxy: &Proxy,
    rt: &Runtime,
    facts: &RequestFacts<'_>,
    destination: &Destination,
    inspection: &mut Inspection<'_>,
    outgoing: Outgoing<'_>,
    body: Option<Bytes>,
) -> Response<ProxyBody> {
    let (mut decision, report) = inspection.conclude_with(body.as_deref().unwrap_or_default());
    if inspection.enforced(&decision) {
        return proxy.refuse(rt, facts, destination, &decision, &report);
    }
    let body = body.map_or_else(UpstreamBody::empty, UpstreamBody::full);
    let Outgoing { parts, target, key } = outgoing;
    let checkout = match proxy.upstream.checkout(key).await {
        Ok(c) => c,
        Err(e) => return proxy.upstream_failed(rt, facts, destination, &decision, &report, e),
    };
    inspection.count(&mut decision).await;
    if inspection.enforced(&decision) {
        // Over the transfer's volume cap (or its store unavailable, failing closed).
        return proxy.refuse(rt, facts, destination, &decision, &report);
    }
    let up_req = upstream_request(parts, target, checkout.protocol(), body);
    let sent_at = std::time::Instant::now();
    let sent = send_bounded(proxy, rt, checkout, up_req).await;
    proxy.metrics().observe_upstream(sent_at.elapsed());
    match sent {
        Ok(resp) => proxy.deliver(rt, facts, destination, &decision, &report, resp),
        Err(e) => proxy.upstream_failed(rt, facts, destination, &decision, &report, e),
    }
}

/// How the body pump ended.
enum PumpEnd {
    /// Body fully forwarded under this (allowing, or monitor-mode) decision.
    Complete(Decision, ScanReport),
    /// Enforced block: the upstream request was aborted before the held bytes left.
    Blocked(Decision, ScanReport),
    /// The client's body failed (reset, malformed chunking); upstream aborted.
    ClientFailed(Decision, ScanReport, String),
}

/// Reads the client's body through the classifier only (no upstream): for requests whose
/// upstream could not be reached. Individuals are not counted, since nothing left. `first` is
/// a frame already taken from `body`, if any.
async fn scan_only(
    mut body: Incoming,
    mut first: Prefetched,
    inspection: &mut Inspection<'_>,
    timeout: Duration,
) -> PumpEnd {
    while let Some(frame) = next_frame_after(&mut first, &mut body, timeout).await {
        let Ok(frame) = frame else {
            let (decision, report) = (inspection.current_decision(), inspection.snapshot());
            let message = match frame {
                Err(BodyRead::TimedOut) => BODY_TIMEOUT.to_string(),
                _ => "client body failed".to_string(),
            };
            return PumpEnd::ClientFailed(decision, report, message);
        };
        if let Some(data) = frame.data_ref() {
            inspection.feed(data);
            // At the end of the body the final decision follows at once.
            if !body.is_end_stream() {
                if let Some(decision) = inspection.blocking_verdict() {
                    return PumpEnd::Blocked(decision, inspection.snapshot());
                }
            }
        }
    }
    let (decision, report) = inspection.finish(false).await;
    if inspection.enforced(&decision) {
        PumpEnd::Blocked(decision, report)
    } else {
        PumpEnd::Complete(decision, report)
    }
}

/// Moves the client's body to the upstream through the classifier and the holdback queue.
async fn pump(
    mut body: Incoming,
    mut first: Prefetched,
    tx: BodySender,
    inspection: &mut Inspection<'_>,
    timeout: Duration,
) -> PumpEnd {
    let mut held = Holdback::new(inspection.holdback_limit());
    let mut trailers = None;
    let mut upstream_gone = false;
    while let Some(frame) = next_frame_after(&mut first, &mut body, timeout).await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tx.abort("client body failed").await;
                let (decision, report) = (inspection.current_decision(), inspection.snapshot());
                return PumpEnd::ClientFailed(decision, report, e.to_string());
            }
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    for value in t.values() {
                        inspection.feed_fragment(value.as_bytes());
                    }
                    trailers = Some(t);
                }
                continue;
            }
        };
        inspection.feed(&data);
        // The last chunk of the body: the final decision (below) follows at once, so a
        // mid-body verdict would only repeat it, and nothing more is released before it.
        let last = body.is_end_stream();
        if !last {
            if let Some(decision) = inspection.blocking_verdict() {
                tx.abort("data exit blocked").await;
                return PumpEnd::Blocked(decision, inspection.snapshot());
            }
        }
        if upstream_gone {
            continue;
        }
        if !inspection.active() {
            upstream_gone = tx.send(Frame::data(data)).await.is_err();
            continue;
        }
        held.push(data);
        if last {
            continue;
        }
        while let Some(chunk) = held.pop_released() {
            if tx.send(Frame::data(chunk)).await.is_err() {
                upstream_gone = true;
                break;
            }
        }
    }
    let (decision, report) = inspection.finish(true).await;
    if inspection.enforced(&decision) {
        tx.abort("data exit blocked").await;
        return PumpEnd::Blocked(decision, report);
    }
    let chunks: Vec<Bytes> = held.drain().collect();
    for chunk in chunks {
        if upstream_gone || tx.send(Frame::data(chunk)).await.is_err() {
            upstream_gone = true;
        }
    }
    if let (Some(t), false) = (trailers, upstream_gone) {
        let _ = tx.send(Frame::trailers(t)).await;
    }
    PumpEnd::Complete(decision, report)
}

/// Error message (and audit text) of a body that stalled past `limits.body_read_timeout_ms`.
const BODY_TIMEOUT: &str =
    "request body stalled longer than limits.body_read_timeout_ms; upstream request aborted";

/// Why the next body frame could not be read.
#[derive(Debug)]
enum BodyRead {
    Failed(hyper::Error),
    TimedOut,
}

impl std::fmt::Display for BodyRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // hyper's messages describe framing only, never body content.
            BodyRead::Failed(e) => write!(f, "client body failed: {e}"),
            BodyRead::TimedOut => f.write_str(BODY_TIMEOUT),
        }
    }
}

/// A frame taken from the body ahead of the loop that reads it: `Some(next)` where `next` is
/// what [`next_frame`] would have returned.
type Prefetched = Option<Option<Result<Frame<Bytes>, BodyRead>>>;

/// The frame taken ahead, if any (once), else the body's next one.
async fn next_frame_after(
    first: &mut Prefetched,
    body: &mut Incoming,
    timeout: Duration,
) -> Option<Result<Frame<Bytes>, BodyRead>> {
    match first.take() {
        Some(polled) => polled,
        None => next_frame(body, timeout).await,
    }
}

/// The body's next frame if hyper already holds it (`Some`), without waiting for the client.
async fn frame_now(body: &mut Incoming) -> Option<Option<Result<Frame<Bytes>, hyper::Error>>> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *body).poll_frame(cx) {
            std::task::Poll::Ready(frame) => Some(frame),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// The next body frame, or a timeout when the client stalls (slow-body attacks hold a
/// connection, an upstream connection and a scanner each).
async fn next_frame(
    body: &mut Incoming,
    timeout: Duration,
) -> Option<Result<Frame<Bytes>, BodyRead>> {
    match tokio::time::timeout(timeout, body.frame()).await {
        Ok(frame) => frame.map(|f| f.map_err(BodyRead::Failed)),
        Err(_) => Some(Err(BodyRead::TimedOut)),
    }
}

/// Sends upstream and waits for the response head at most `upstream_response_timeout_ms`.
async fn send_bounded(
    proxy: &Proxy,
    rt: &Runtime,
    checkout: super::upstream::Checkout,
    request: Request<UpstreamBody>,
) -> Result<Response<Incoming>, UpstreamError> {
    let limit = Duration::from_millis(rt.loaded.config.limits.upstream_response_timeout_ms);
    match tokio::time::timeout(limit, proxy.upstream.send(checkout, request)).await {
        Ok(sent) => sent,
        Err(_) => Err(UpstreamError {
            kind: "http_response_timeout",
            message: format!(
                "upstream sent no response within {} ms (limits.upstream_response_timeout_ms)",
                limit.as_millis()
            ),
        }),
    }
}

/// Whether outbound traffic must stop because it could not be audited: the last audit
/// write failed, and the configuration fails closed in enforce mode. A data exit that
/// leaves no record cannot be shown to the regulator, so it is treated like one that could
/// not be inspected.
fn audit_must_block(proxy: &Proxy, rt: &Runtime) -> bool {
    !proxy
        .health
        .audit_ok
        .load(std::sync::atomic::Ordering::Relaxed)
        && rt.loaded.config.classification.fail_mode == FailMode::Closed
        && rt.policy.mode() == Mode::Enforce
}

/// `503 audit_unavailable` for outbound traffic while the audit log cannot be written. The
/// refusal itself is audited: when that write succeeds the log is healthy again and the
/// next request passes.
fn audit_unavailable(
    proxy: &Proxy,
    rt: &Runtime,
    facts: &RequestFacts<'_>,
    destination: &Destination,
) -> Response<ProxyBody> {
    let message = "the audit log cannot be written; outbound traffic is blocked until it can (fail_mode = closed)";
    proxy.metrics().audit_write_error();
    proxy.audit(
        rt,
        &AuditEvent::new(
            facts,
            Outcome {
                destination: Some(destination),
                decision: None,
                report: None,
                mode: rt.policy.mode(),
                enforced: true,
                status: Some(503),
                error: Some(ErrorFields {
                    kind: "audit_unavailable".into(),
                    message: message.into(),
                }),
                policy_hash: &rt.loaded.hash,
            },
        ),
    );
    respond::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "proxy_internal_error",
        message,
        facts.request_id,
    )
}

/// The classifier and policy applied to one request.
struct Inspection<'a> {
    rt: &'a Runtime,
    metrics: &'a crate::telemetry::Metrics,
    destination: &'a Destination,
    /// `None` when the destination is domestic: rule 1 allows whatever the body holds.
    scanner: Option<BodyScanner>,
    seen_version: u64,
    encoded: bool,
    /// Time spent in the classifier, for the scan latency histogram.
    scan_time: std::time::Duration,
    /// The scan was concluded (the scanner consumed).
    finished: bool,
}

impl<'a> Inspection<'a> {
    fn new<B>(
        rt: &'a Runtime,
        metrics: &'a crate::telemetry::Metrics,
        destination: &'a Destination,
        req: &Request<B>,
        started: chrono::DateTime<Utc>,
    ) -> Inspection<'a> {
        let outbound = match destination.region {
            Region::Mainland => false,
            Region::Unknown => rt.geo.unknown_is_outbound(),
            _ => true,
        };
        let header_str = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_encoding = header_str(header::CONTENT_ENCODING);
        let encoded = content_encoding
            .as_deref()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let scanner = outbound.then(|| {
            rt.classifier.scanner(ScanContext {
                content_type: header_str(header::CONTENT_TYPE),
                content_encoding,
                // The day the request arrived (one clock read per request, not two).
                today: rt.policy.local_date(started),
            })
        });
        Inspection {
            rt,
            metrics,
            destination,
            scanner,
            seen_version: 0,
            encoded,
            scan_time: std::time::Duration::ZERO,
            finished: false,
        }
    }

    fn active(&self) -> bool {
        self.scanner.is_some()
    }

    fn holdback_limit(&self) -> usize {
        if self.encoded {
            HOLDBACK_ENCODED
        } else {
            HOLDBACK_IDENTITY
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if let Some(s) = self.scanner.as_mut() {
            let started = std::time::Instant::now();
            s.feed(chunk);
            self.scan_time += started.elapsed();
        }
    }

    fn feed_fragment(&mut self, fragment: &[u8]) {
        if let Some(s) = self.scanner.as_mut() {
            s.feed_fragment(fragment);
        }
    }

    /// The findings so far (before [`Inspection::conclude`]; nothing scanned: empty).
    fn snapshot(&self) -> ScanReport {
        debug_assert!(!self.finished, "snapshot after the scan was concluded");
        match &self.scanner {
            Some(s) => s.snapshot(),
            None => ScanReport::default(),
        }
    }

    fn decide(&self, report: &ScanReport) -> Decision {
        self.rt.policy.decide(&DecisionInput {
            destination: self.destination,
            report,
            at: crate::clock::utc_now(),
        })
    }

    fn current_decision(&self) -> Decision {
        self.decide(&self.snapshot())
    }

    /// Whether this decision is applied: a block in enforce mode.
    fn enforced(&self, decision: &Decision) -> bool {
        decision.action == Action::Block && self.rt.policy.mode() == Mode::Enforce
    }

    /// Re-decides when the findings grew; `Some` when the request must be blocked now.
    /// The policy is monotone in findings, so a block seen mid-body is final.
    fn blocking_verdict(&mut self) -> Option<Decision> {
        let scanner = self.scanner.as_ref()?;
        if scanner.version() == self.seen_version {
            return None;
        }
        self.seen_version = scanner.version();
        // The verdict alone (no explanation lines to format) on every growth of the findings;
        // the full decision only when it blocks.
        let report = scanner.snapshot();
        let verdict = self.rt.policy.verdict(&DecisionInput {
            destination: self.destination,
            report: &report,
            at: crate::clock::utc_now(),
        });
        if !self.enforced(&verdict) {
            return None;
        }
        Some(self.decide(&report))
    }

    /// End of the request: the final report and decision, with individuals counted against
    /// the approving transfer when `count` (which may turn it into `volume_cap_exceeded`).
    async fn finish(&mut self, count: bool) -> (Decision, ScanReport) {
        let (mut decision, report) = self.conclude();
        if count {
            self.count(&mut decision).await;
        }
        (decision, report)
    }

    /// The final report and decision, individuals not yet counted. Ends the scan: the
    /// scanner is consumed, so call it once.
    fn conclude(&mut self) -> (Decision, ScanReport) {
        self.conclude_with(&[])
    }

    /// [`Inspection::conclude`] with the body's last chunk (or all of it), scanned by the
    /// final pass.
    fn conclude_with(&mut self, last: &[u8]) -> (Decision, ScanReport) {
        debug_assert!(!self.finished, "the scan of a request is concluded once");
        self.finished = true;
        let report = match self.scanner.take() {
            Some(s) => {
                let started = std::time::Instant::now();
                let report = s.finish_with(last);
                self.scan_time += started.elapsed();
                self.metrics.observe_scan(self.scan_time, report.bytes);
                report
            }
            None => ScanReport::default(),
        };
        let decision = self.decide(&report);
        (decision, report)
    }

    /// Counts the decision's individuals against the approving transfer, if it has any to
    /// count (which may turn it into `volume_cap_exceeded`).
    async fn count(&self, decision: &mut Decision) {
        // Taken out for the store's borrow and put back before the decision reads it: no
        // copy of the subjects.
        let Some(claim) = decision.volume_claim.take() else {
            return;
        };
        let admitted = self.rt.volume.admit(&claim).await;
        decision.volume_claim = Some(claim);
        match admitted {
            Ok(admission) => decision.apply_admission(&admission),
            Err(e) => {
                // The store could not answer: the fail mode decides, as for anything we
                // cannot verify.
                let transfer = decision.volume_claim.as_ref().map_or("", |c| &c.transfer);
                tracing::warn!(error = %e, transfer, "volume store unavailable");
                let config = &self.rt.loaded.config;
                let fail_mode = config
                    .volume
                    .fail_mode
                    .unwrap_or(config.classification.fail_mode);
                if fail_mode == FailMode::Closed {
                    decision.apply_volume_unavailable();
                } else {
                    decision
                        .explanation
                        .push("volume: store unavailable, forwarded uncounted (fail open)");
                }
            }
        }
    }
}

/// The request as sent upstream: origin-form for HTTP/1.1, absolute for HTTP/2, hop-by-hop
/// headers removed, `Host` set to the upstream's authority, `Via` appended.
fn upstream_request(
    parts: http::request::Parts,
    target: &Target,
    protocol: Protocol,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let authority = target.authority();
    // The usual case forwards the client's path unchanged: its parsed form is reused
    // rather than parsed a second time.
    let same_path = parts
        .uri
        .path_and_query()
        .filter(|pq| pq.as_str() == target.path_and_query);
    let uri: Uri = match (protocol, same_path) {
        (Protocol::Http1, Some(pq)) => Ok(Uri::from(pq.clone())),
        (Protocol::Http1, None) => target.path_and_query.parse(),
        (Protocol::Http2, _) => format!(
            "{}://{}{}",
            target.scheme.as_str(),
            authority,
            target.path_and_query
        )
        .parse(),
    }
    .unwrap_or_else(|_| Uri::from_static("/"));
    let http::request::Parts {
        method,
        version,
        mut headers,
        ..
    } = parts;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = match protocol {
        Protocol::Http1 => Version::HTTP_11,
        Protocol::Http2 => Version::HTTP_2,
    };
    headers::strip_hop_by_hop(&mut headers);
    match protocol {
        Protocol::Http1 => {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                headers.insert(header::HOST, v);
            }
        }
        Protocol::Http2 => {
            headers.remove(header::HOST);
        }
    }
    headers.append(header::VIA, via_value(version));
    *request.headers_mut() = headers;
    request
}

/// `Via: <received protocol version> chujing` (RFC 9110 §7.6.3), one static value per version.
fn via_value(v: Version) -> HeaderValue {
    match v {
        Version::HTTP_2 => HeaderValue::from_static("2 chujing"),
        Version::HTTP_10 => HeaderValue::from_static("1.0 chujing"),
        _ => HeaderValue::from_static("1.1 chujing"),
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn target_error(e: TargetError, request_id: &str) -> Response<ProxyBody> {
    let (status, code) = match e {
        TargetError::NotAbsolute | TargetError::NoHost => (StatusCode::BAD_REQUEST, "bad_request"),
        TargetError::Scheme(_) => (StatusCode::BAD_REQUEST, "unsupported_scheme"),
        TargetError::NoRoute { .. } => (StatusCode::NOT_FOUND, "no_route"),
    };
    respond::error(
        status,
        code,
        "destination_not_found",
        &e.to_string(),
        request_id,
    )
}

/// Converts the upstream's response for the client: hop-by-hop headers removed, body streamed.
pub(super) fn client_response(resp: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, body.boxed_unsync())
}
