//! Connection-level limits that hyper does not enforce by itself: the idle timeout (a
//! connection with no request in flight and no bytes moving is closed), the cap on concurrent
//! connections (refused with a framed `503`), and the classification of a connection's
//! failure into the limit it hit, so every exceeded limit ends in one audit event.
//!
//! The I/O wrapper touches one atomic per read or write call; it never allocates.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one client connection is doing, shared by its I/O and its request handlers.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    /// Milliseconds since `base` of the last read or write that moved bytes.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Requests the connection has started (HTTP/1.1 messages or HTTP/2 streams).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Marks a request in flight until the guard drops (the handler finished).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(Arc::clone(self))
    }

    /// Idle time so far: `None` while a request is being handled.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    /// Resolves once the connection has been idle for `limit`. Checks a few times per
    /// period rather than re-arming a timer on every read, which would cost per chunk.
    pub async fn idle_expired(&self, limit: Duration) {
        let tick = (limit / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(tick).await;
            if self.idle_for().is_some_and(|idle| idle >= limit) {
                return;
            }
        }
    }
}

/// A request being handled; see [`Activity::request`].
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client stream that records when bytes last moved.
pub struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> ActivityIo<T> {
        activity.touch();
        ActivityIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A limit a connection ran into, as the audit event records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    /// The HTTP status the client got (or, for a closed connection, would have got).
    pub status: u16,
    /// RFC 9209 error type.
    pub kind: &'static str,
    /// What happened and which setting governs it (no request content).
    pub message: &'static str,
}

pub const TOO_MANY_CONNECTIONS: LimitHit = LimitHit {
    status: 503,
    kind: "connection_limit_reached",
    message: "too many concurrent client connections; raise limits.max_connections if this load is legitimate",
};

pub const HEADER_TIMEOUT: LimitHit = LimitHit {
    status: 408,
    kind: "http_request_error",
    message: "request head not received within limits.header_read_timeout_ms; connection closed",
};

pub const HEAD_TOO_LARGE: LimitHit = LimitHit {
    status: 431,
    kind: "http_request_error",
    message: "request head exceeds limits.max_header_bytes or limits.max_headers",
};

pub const MALFORMED: LimitHit = LimitHit {
    status: 400,
    kind: "http_request_error",
    message: "malformed HTTP/1.1 request (invalid framing, e.g. conflicting Content-Length or Transfer-Encoding); connection closed",
};

pub const TLS_HANDSHAKE_TIMEOUT: LimitHit = LimitHit {
    status: 408,
    kind: "tls_protocol_error",
    message: "TLS handshake not completed within limits.header_read_timeout_ms",
};

/// The limit behind a connection's failure, if it was one worth auditing. A keep-alive
/// connection timing out between requests is the ordinary end of an idle connection.
pub fn classify_connection_error(
    error: &(dyn std::error::Error + 'static),
    requests: u64,
) -> Option<LimitHit> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return (requests == 0).then_some(HEADER_TIMEOUT);
            }
            if h.is_parse_too_large() {
                return Some(HEAD_TOO_LARGE);
            }
            if h.is_parse() {
                return Some(MALFORMED);
            }
            return None;
        }
        source = e.source();
    }
    None
}

/// Answers a connection over the cap with a complete HTTP/1.1 `503`; the caller then drops
/// (closes) it. One non-blocking write into an empty socket buffer: no task, no wait, so a
/// flood of connections cannot make the refusals themselves pile up.
pub fn refuse_connection(stream: &tokio::net::TcpStream, request_id: &str) {
    const BODY_HEAD: &str = r#"{"error":"overloaded","reason":"connection_limit_reached","message":"too many concurrent connections; retry later","request_id":""#;
    let body_len = BODY_HEAD.len() + request_id.len() + 3;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         proxy-status: chujing; error=connection_limit_reached\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {body_len}\r\n\r\n{BODY_HEAD}{request_id}\"}}\n"
    );
    let _ = stream.try_write(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_expires_only_without_requests_in_flight() {
        let activity = Arc::new(Activity::default());
        let guard = activity.request();
        let limit = Duration::from_millis(50);
        // A request in flight keeps the connection alive however long it takes.
        let waited = tokio::time::timeout(Duration::from_millis(400), activity.idle_expired(limit));
        assert!(
            waited.await.is_err(),
            "expired while a request was in flight"
        );
        drop(guard);
        let waited = tokio::time::timeout(Duration::from_secs(5), activity.idle_expired(limit));
        assert!(waited.await.is_ok(), "idle connection never expired");
        assert_eq!(activity.requests(), 1);
    }

    #[tokio::test]
    async fn refusal_is_a_complete_framed_response() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        refuse_connection(&server, "abc123");
        drop(server);
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut text)
            .await
            .unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["request_id"], "abc123");
        assert_eq!(json["reason"], "connection_limit_reached");
    }
}
