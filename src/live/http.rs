//! HTTP side of the live view, mounted on the admin listener through [`handle`]:
//!
//! | path | answer |
//! |---|---|
//! | `GET /` (also `/live`) | the page (HTML; `?token=` sets the cookie, see below) |
//! | `GET /live/assets/{live.js,live.css}` | the page's script and style, embedded in the binary |
//! | `GET /live/events` | server-sent events: `snapshot` on connect, `decision` per block or would-block, `tick` every second with the last complete second, `transfers` every 10 s |
//! | `GET /live/state` | the snapshot as JSON (`?reason=&country=&transfer=&limit=` filter the list) |
//! | `GET /live/event/{request_id}` | the full audit event of a listed decision |
//!
//! Token: checking it is the admin router's job, but a browser cannot send an
//! `Authorization` header on a page load and `EventSource` cannot send one at all. So the
//! operator opens `/?token=<admin token>` once; the router accepts the token from the query
//! ([`presented_token`]), and this handler answers with a `303` to `/` that sets it as an
//! `HttpOnly; SameSite=Strict` cookie ([`TOKEN_COOKIE`]) and takes it out of the address bar
//! and history. Every later request of the page (assets, `fetch`, `EventSource`) carries the
//! cookie, which [`presented_token`] also accepts. The page loads nothing from elsewhere
//! (CSP `default-src 'none'` plus `'self'` for script, style and connections).

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::{unix_seconds, EventFilter, LiveHub, Tick};
use crate::telemetry::AdminBody;

/// Cookie carrying the admin token for the page's own requests (value percent-encoded).
pub const TOKEN_COOKIE: &str = "chujing_admin_token";
/// Open event streams allowed at once; each holds a task and a socket.
pub const MAX_SUBSCRIBERS: usize = 64;
/// Ticks between two `transfers` events (the volume figures change slowly).
const TRANSFERS_EVERY_TICKS: u32 = 10;
/// At most this many missed seconds are caught up after a stalled tick; older ones are in
/// the next snapshot anyway.
const MAX_CATCH_UP_SECS: u64 = 30;
/// Longest request id accepted in `/live/event/{id}` (ours are 20 hex digits).
const MAX_REQUEST_ID_LEN: usize = 64;

const PAGE_HTML: &str = include_str!("../../assets/live/index.html");
const PAGE_JS: &str = include_str!("../../assets/live/live.js");
const PAGE_CSS: &str = include_str!("../../assets/live/live.css");

/// Nothing but our own script, style and connections; no framing (clickjacking), no
/// referrer (the first URL may hold the token).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Why a live-view request was refused. The `Display` text is the response body's message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LiveError {
    #[error("the live view is read-only: {path} accepts GET and HEAD; reload the page instead of posting to it")]
    MethodNotAllowed { path: &'static str },
    #[error("no such live-view asset; the page only loads /live/assets/live.js and /live/assets/live.css (reload the page, the binary may have been upgraded)")]
    NoSuchAsset,
    #[error("the request id in /live/event/{{id}} must be 1-{max} letters, digits or dashes; copy it from the table or from chujing.request_id in the audit log", max = MAX_REQUEST_ID_LEN)]
    BadRequestId,
    #[error("request {request_id} is not among the latest {capacity} blocked or would-block decisions (allowed requests are not kept, older ones rotate out); search the audit log for chujing.request_id = {request_id}")]
    EventNotFound { request_id: String, capacity: usize },
    #[error(
        "query parameter `limit` of /live/state must be a whole number; omit it for the whole list"
    )]
    BadLimit,
    #[error("too many open live-view streams (limit {limit}); close other live-view tabs or dashboards and retry")]
    TooManySubscribers { limit: usize },
}

impl LiveError {
    fn status(&self) -> StatusCode {
        match self {
            LiveError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            LiveError::NoSuchAsset | LiveError::EventNotFound { .. } => StatusCode::NOT_FOUND,
            LiveError::BadRequestId | LiveError::BadLimit => StatusCode::BAD_REQUEST,
            LiveError::TooManySubscribers { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            LiveError::MethodNotAllowed { .. } => "method_not_allowed",
            LiveError::NoSuchAsset => "no_such_asset",
            LiveError::BadRequestId => "bad_request_id",
            LiveError::EventNotFound { .. } => "event_not_found",
            LiveError::BadLimit => "bad_limit",
            LiveError::TooManySubscribers { .. } => "too_many_streams",
        }
    }

    fn into_response(self) -> Response<AdminBody> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
            message: String,
        }
        let body = serde_json::to_vec(&ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
        .unwrap_or_default();
        let mut resp = fixed(self.status(), "application/json", body);
        if let LiveError::MethodNotAllowed { .. } = self {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        resp
    }
}

/// The live-view routes. `None`: not a live-view path, the admin router goes on matching.
/// The caller must have checked the admin token already (see the module docs).
pub async fn handle<B>(hub: &LiveHub, req: &Request<B>) -> Option<Response<AdminBody>> {
    let path = req.uri().path();
    let route = if matches!(path, "/" | "/live" | "/live/") {
        Route::Page
    } else if path == "/live/events" {
        Route::Events
    } else if path == "/live/state" {
        Route::State
    } else if let Some(name) = path.strip_prefix("/live/assets/") {
        Route::Asset(name)
    } else if let Some(id) = path.strip_prefix("/live/event/") {
        Route::Event(id)
    } else {
        return None;
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Some(LiveError::MethodNotAllowed { path: route.name() }.into_response());
    }
    let query = req.uri().query().unwrap_or("");
    let resp = match route {
        Route::Page => page(query),
        Route::Asset(name) => asset(name),
        Route::State => state(hub, query),
        Route::Event(id) => event(hub, id),
        Route::Events => events(hub),
    };
    Some(resp.unwrap_or_else(LiveError::into_response))
}

enum Route<'a> {
    Page,
    Asset(&'a str),
    Events,
    State,
    Event(&'a str),
}

impl Route<'_> {
    fn name(&self) -> &'static str {
        match self {
            Route::Page => "/",
            Route::Asset(_) => "/live/assets/",
            Route::Events => "/live/events",
            Route::State => "/live/state",
            Route::Event(_) => "/live/event/{id}",
        }
    }
}

fn page(query: &str) -> Result<Response<AdminBody>, LiveError> {
    if let Some(token) = query_param(query, "token") {
        // The router already accepted this token; move it into a cookie and out of the URL.
        let cookie = format!(
            "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            percent_encode(&token)
        );
        let mut resp = fixed(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
        let headers = resp.headers_mut();
        headers.insert(http::header::LOCATION, HeaderValue::from_static("/"));
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.insert(http::header::SET_COOKIE, v);
        }
        return Ok(resp);
    }
    let mut resp = fixed(StatusCode::OK, "text/html; charset=utf-8", PAGE_HTML);
    let headers = resp.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    Ok(resp)
}

fn asset(name: &str) -> Result<Response<AdminBody>, LiveError> {
    let (content_type, body) = match name {
        "live.js" => ("text/javascript; charset=utf-8", PAGE_JS),
        "live.css" => ("text/css; charset=utf-8", PAGE_CSS),
        _ => return Err(LiveError::NoSuchAsset),
    };
    Ok(fixed(StatusCode::OK, content_type, body))
}

/// The filter a query string asks for (`reason`, `country`, `transfer`).
pub fn filter_from_query(query: &str) -> EventFilter {
    EventFilter {
        reason: query_param(query, "reason").map(Cow::into_owned),
        country: query_param(query, "country").map(Cow::into_owned),
        transfer: query_param(query, "transfer").map(Cow::into_owned),
    }
}

fn state(hub: &LiveHub, query: &str) -> Result<Response<AdminBody>, LiveError> {
    let filter = filter_from_query(query);
    let mut snapshot = hub.snapshot(&filter);
    if let Some(limit) = query_param(query, "limit") {
        let limit: usize = limit.parse().map_err(|_| LiveError::BadLimit)?;
        snapshot.recent.truncate(limit);
    }
    Ok(json(StatusCode::OK, &snapshot))
}

fn event(hub: &LiveHub, id: &str) -> Result<Response<AdminBody>, LiveError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        return Err(LiveError::BadRequestId);
    }
    match hub.audit_event(id) {
        Some(body) => Ok(fixed(StatusCode::OK, "application/json", body)),
        None => Err(LiveError::EventNotFound {
            request_id: id.to_string(),
            capacity: hub.recent_capacity(),
        }),
    }
}

/// Counts open streams; released when the stream's task ends.
struct SubscriberGuard(LiveHub);

impl SubscriberGuard {
    fn acquire(hub: &LiveHub) -> Result<SubscriberGuard, LiveError> {
        let counter = &hub.inner.subscribers;
        let mut current = counter.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            if current >= MAX_SUBSCRIBERS {
                return Err(LiveError::TooManySubscribers {
                    limit: MAX_SUBSCRIBERS,
                });
            }
            match counter.compare_exchange_weak(
                current,
                current + 1,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(SubscriberGuard(hub.clone())),
                Err(now) => current = now,
            }
        }
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0
            .inner
            .subscribers
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

fn events(hub: &LiveHub) -> Result<Response<AdminBody>, LiveError> {
    let guard = SubscriberGuard::acquire(hub)?;
    // Subscribe before taking the snapshot so no decision falls between the two; one may
    // arrive twice, and the page de-duplicates by request id.
    let decisions = hub.subscribe();
    let mut first = BytesMut::new();
    // Reconnect quickly after an admin restart (EventSource's default is ~3 s).
    first.put_slice(b"retry: 2000\n\n");
    first.put(sse_frame(
        "snapshot",
        &hub.snapshot(&EventFilter::default()),
    ));
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(stream_events(guard, decisions, tx, first.freeze()));
    let mut resp = Response::new(SseBody { rx }.boxed());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies (nginx) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// One subscriber's stream: decisions as they happen, a tick per second, transfers now and
/// then. Ends when the client goes away (the body, and with it `rx`, is dropped).
async fn stream_events(
    guard: SubscriberGuard,
    mut decisions: broadcast::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    first: Bytes,
) {
    let hub = guard.0.clone();
    if tx.send(first).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_sent = unix_seconds().saturating_sub(1);
    let mut ticks: u32 = 0;
    loop {
        let frame = tokio::select! {
            () = tx.closed() => return,
            msg = decisions.recv() => match msg {
                Ok(frame) => frame,
                // This subscriber fell behind the broadcast buffer: start it over.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    sse_frame("snapshot", &hub.snapshot(&EventFilter::default()))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                let mut out = BytesMut::new();
                // Every complete second not sent yet (one, unless this task was starved).
                let end = unix_seconds().saturating_sub(1);
                let from = (last_sent + 1).max(end.saturating_sub(MAX_CATCH_UP_SECS));
                for second in from..=end {
                    out.put(sse_frame("tick", &Tick { second, counts: hub.second(second) }));
                }
                last_sent = last_sent.max(end);
                if ticks % TRANSFERS_EVERY_TICKS == 0 {
                    if let Some(view) = hub.transfers() {
                        out.put(sse_frame("transfers", &view));
                    }
                }
                if out.is_empty() {
                    continue;
                }
                out.freeze()
            }
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// A server-sent event: `event: NAME` and one `data:` line of compact JSON (which never
/// contains a newline, so one line suffices).
pub(super) fn sse_frame<T: Serialize + ?Sized>(name: &str, value: &T) -> Bytes {
    // Room for a typical decision summary, so the frame is built without regrowing.
    let mut out = BytesMut::with_capacity(512);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    let mut writer = out.writer();
    if serde_json::to_writer(&mut writer, value).is_err() {
        // Only plain structs are sent; this cannot happen, but never emit half a frame.
        let mut out = BytesMut::new();
        out.put_slice(b": unserialisable event dropped\n\n");
        return out.freeze();
    }
    let mut out = writer.into_inner();
    out.put_slice(b"\n\n");
    out.freeze()
}

/// The SSE response body: frames handed over by the subscriber's task.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn fixed(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<AdminBody> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Live state and a page that embeds the token flow: never cached.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<AdminBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    fixed(status, "application/json", body)
}

/// The admin token a request presents: `Authorization: Bearer <t>` first, then the
/// [`TOKEN_COOKIE`] cookie (set by `/?token=`), then a `token` query parameter (the first
/// page load, or scripts that cannot set headers). The admin router compares it with the
/// configured token; this function does not know the token and checks nothing.
pub fn presented_token<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let headers = req.headers();
    if let Some(t) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
    {
        return Some(Cow::Borrowed(t));
    }
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=') {
                if name == TOKEN_COOKIE && !v.is_empty() {
                    return Some(percent_decode(v));
                }
            }
        }
    }
    query_param(req.uri().query().unwrap_or(""), "token").filter(|t| !t.is_empty())
}

/// The first value of `name` in an `application/x-www-form-urlencoded` query.
fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` and `+`; invalid escapes are kept as written. Borrowed when nothing to do.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes everything but RFC 3986 unreserved characters, so any token fits a cookie value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        for s in ["abc", "a b+c/d=e;f%g", "令牌", "%", "%4", "x%zz"] {
            assert_eq!(percent_decode(&percent_encode(s)), s, "{s}");
        }
        assert_eq!(percent_decode("a+b%20c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn token_sources_in_order() {
        let req = Request::get("/live/state?token=q")
            .header(COOKIE, "a=b; chujing_admin_token=c%20d")
            .header(AUTHORIZATION, "Bearer h")
            .body(())
            .unwrap();
        assert_eq!(presented_token(&req).as_deref(), Some("h"));
        let req = Request::get("/live/state?token=q")
            .header(COOKIE, "a=b; chujing_admin_token=c%20d")
            .body(())
            .unwrap();
        assert_eq!(presented_token(&req).as_deref(), Some("c d"));
        let req = Request::get("/?x=1&token=q%2Br").body(()).unwrap();
        assert_eq!(presented_token(&req).as_deref(), Some("q+r"));
        let req = Request::get("/?token=").body(()).unwrap();
        assert_eq!(presented_token(&req), None);
    }

    #[test]
    fn sse_frames_are_one_data_line() {
        let f = sse_frame("tick", &serde_json::json!({"a": "x\ny"}));
        assert_eq!(&f[..], b"event: tick\ndata: {\"a\":\"x\\ny\"}\n\n");
    }
}
