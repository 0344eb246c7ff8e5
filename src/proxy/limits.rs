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
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one client connection is doing, shared by its I/O and its request handlers.
///
/// Movement is counted, not timed: every read or write that moved bytes, and every request
/// start and end, bumps a counter, and the idle check asks only whether it changed between
/// its ticks. Reading the clock on every read and write (four times a request) cost more
/// than the rest of this wrapper.
#[derive(Debug, Default)]
pub struct Activity {
    moves: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        // Load and store rather than an atomic add: the connection's I/O and its handlers
        // run on one worker thread, and even a lost bump still changes the value.
        let moves = self.moves.load(Ordering::Relaxed);
        self.moves.store(moves.wrapping_add(1), Ordering::Relaxed);
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

    /// Resolves once the connection has been idle (no request in flight, no bytes moving)
    /// for at least `limit`, and at most one tick more. Checks a few times per period
    /// rather than re-arming a timer on every read, which would cost per chunk.
    pub fn idle_expired(&self, limit: Duration) -> IdleExpired<'_> {
        let period = (limit / 4).max(Duration::from_millis(10));
        IdleExpired {
            activity: self,
            tick: Box::pin(tokio::time::sleep(period)),
            period,
            // Quiet ticks in a row that make up `limit`: 4, or more when the tick is clamped.
            needed: limit.as_nanos().div_ceil(period.as_nanos()).max(1),
            seen: self.moves.load(Ordering::Relaxed),
            quiet: 0,
            armed_for: None,
        }
    }
}

/// The future of [`Activity::idle_expired`].
///
/// It shares its connection's task: `select!` polls it whenever the connection is woken,
/// several times per request. Polling the tick's `Sleep` each time (coop budget, waker
/// registration) cost more than the whole check, so once a tick is armed for this task's
/// waker, a poll only asks whether the tick has fired (one atomic load); the armed tick
/// wakes the task itself when it fires.
pub struct IdleExpired<'a> {
    activity: &'a Activity,
    /// Boxed once per connection, so the future is `Unpin` and the tick is reset in place.
    tick: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    needed: u128,
    seen: u64,
    quiet: u128,
    /// The waker the pending tick was registered with (a poll from another task re-polls).
    armed_for: Option<std::task::Waker>,
}

impl std::future::Future for IdleExpired<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            let armed = this
                .armed_for
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            if armed && !this.tick.is_elapsed() {
                return Poll::Pending;
            }
            if this.tick.as_mut().poll(cx).is_pending() {
                if !armed {
                    this.armed_for = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            this.armed_for = None;
            let now = this.activity.moves.load(Ordering::Relaxed);
            if now != this.seen || this.activity.in_flight.load(Ordering::Relaxed) > 0 {
                this.seen = now;
                this.quiet = 0;
            } else {
                // Nothing moved since the previous tick, so the last movement is at least
                // `quiet` whole ticks old.
                this.quiet += 1;
                if this.quiet >= this.needed {
                    return Poll::Ready(());
                }
            }
            let next = tokio::time::Instant::now() + this.period;
            this.tick.as_mut().reset(next);
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

    /// The connection's task wakes far more often than the tick: the idle future, polled on
    /// each wake, still expires on time; and a tick armed for another task's waker is
    /// re-armed for the one that polls now, else that task would never be woken.
    #[tokio::test(start_paused = true)]
    async fn idle_expires_on_time_however_often_it_is_polled_and_by_whom() {
        let limit = Duration::from_millis(40);
        // In a task of its own, as a connection is: its waker is the same on every poll.
        let after = tokio::spawn(async move {
            let activity = Activity::default();
            let started = tokio::time::Instant::now();
            let mut idle = activity.idle_expired(limit);
            let busy = async {
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            tokio::select! {
                () = &mut idle => {}
                () = busy => panic!("idle never expired while polled every millisecond"),
            }
            started.elapsed()
        })
        .await
        .unwrap();
        assert!(
            after >= limit && after <= limit + limit / 4,
            "expired after {after:?}"
        );

        let activity = Activity::default();
        let started = tokio::time::Instant::now();
        let mut idle = std::pin::pin!(activity.idle_expired(limit));
        let mut elsewhere = Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(idle.as_mut(), &mut elsewhere).is_pending());
        tokio::time::timeout(Duration::from_secs(1), idle)
            .await
            .expect("a tick armed for another waker still wakes this task");
        assert!(started.elapsed() <= limit + limit / 4);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_means_a_whole_limit_without_movement() {
        let activity = Arc::new(Activity::default());
        let limit = Duration::from_millis(400);
        let started = tokio::time::Instant::now();
        // Bytes move every 90 ms for a second: never a whole limit of quiet.
        let mover = {
            let activity = Arc::clone(&activity);
            async move {
                for _ in 0..11 {
                    tokio::time::sleep(Duration::from_millis(90)).await;
                    activity.touch();
                }
            }
        };
        let expired = async {
            activity.idle_expired(limit).await;
            tokio::time::Instant::now()
        };
        let ((), at) = tokio::join!(mover, expired);
        let last_move = started + Duration::from_millis(990);
        assert!(
            at >= last_move + limit,
            "expired {:?} after the last move",
            at - last_move
        );
        assert!(
            at <= last_move + limit + limit / 4,
            "expired {:?} after the last move, more than a tick late",
            at - last_move
        );

        // A clamped tick (limit / 4 under 10 ms) still waits the whole limit.
        let activity = Activity::default();
        let from = tokio::time::Instant::now();
        activity.idle_expired(Duration::from_millis(25)).await;
        let waited = tokio::time::Instant::now() - from;
        assert!(
            waited >= Duration::from_millis(25) && waited <= Duration::from_millis(40),
            "{waited:?}"
        );
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
