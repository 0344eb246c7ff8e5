//! The request body's way to the upstream: every chunk goes through the classifier before it
//! may leave, and the newest bytes are held back until enough later bytes were scanned, so a
//! value split across chunks is recognised before any part of it is forwarded. When the
//! policy's verdict becomes a block, the held bytes are dropped and the upstream request is
//! aborted: the bytes that carry the personal data never reach the upstream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Raw bytes kept back behind the scan front for identity bodies: longer than any identifier
/// in any encoding we decode (an 18-digit ID as JSON `\uXXXX` escapes is 108 bytes, an email
/// is at most 254 characters, percent-encoded three times that).
pub const HOLDBACK_IDENTITY: usize = 4 * 1024;
/// For content-encoded bodies the compressed bytes map loosely onto decoded ones; keep more.
pub const HOLDBACK_ENCODED: usize = 64 * 1024;

/// The request body sent upstream: frames released by the pump, one chunk scanned and
/// decided before the request left, or nothing.
pub struct UpstreamBody {
    rx: Option<mpsc::Receiver<Result<Frame<Bytes>, BodyAborted>>>,
    whole: Option<Bytes>,
    size: SizeHint,
}

/// The upstream body was cut off on purpose (block) or because the client went away.
#[derive(Debug, thiserror::Error)]
#[error("request body aborted by the proxy: {0}")]
pub struct BodyAborted(pub &'static str);

impl UpstreamBody {
    pub fn empty() -> UpstreamBody {
        UpstreamBody {
            rx: None,
            whole: None,
            size: SizeHint::with_exact(0),
        }
    }

    /// The whole body, already scanned and allowed.
    pub fn full(data: Bytes) -> UpstreamBody {
        UpstreamBody {
            rx: None,
            size: SizeHint::with_exact(data.len() as u64),
            whole: Some(data),
        }
    }

    /// A streamed body and the sender the pump feeds it through. `size` is the client's
    /// declared length, so HTTP/1.1 keeps `Content-Length` framing when it had one.
    pub fn channel(size: SizeHint) -> (BodySender, UpstreamBody) {
        let (tx, rx) = mpsc::channel(4);
        let body = UpstreamBody {
            rx: Some(rx),
            whole: None,
            size,
        };
        (BodySender { tx }, body)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        if let Some(data) = self.whole.take() {
            self.size = SizeHint::with_exact(0);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match self.rx.as_mut() {
            None => Poll::Ready(None),
            Some(rx) => rx.poll_recv(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rx.is_none() && self.whole.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.size
    }
}

/// Feeds frames to an [`UpstreamBody`].
pub struct BodySender {
    tx: mpsc::Sender<Result<Frame<Bytes>, BodyAborted>>,
}

/// The upstream side stopped reading (connection failed or exchange finished).
#[derive(Debug)]
pub struct UpstreamGone;

impl BodySender {
    pub async fn send(&self, frame: Frame<Bytes>) -> Result<(), UpstreamGone> {
        self.tx.send(Ok(frame)).await.map_err(|_| UpstreamGone)
    }

    /// Aborts the upstream request: hyper resets the stream (HTTP/2) or closes the
    /// connection (HTTP/1.1) instead of completing the body.
    pub async fn abort(self, why: &'static str) {
        let _ = self.tx.send(Err(BodyAborted(why))).await;
    }
}

/// Chunks scanned but not yet forwarded. A chunk leaves once at least `limit` newer bytes
/// were scanned after it; the queue holds `limit` bytes plus at most one chunk.
pub struct Holdback {
    queue: VecDeque<Bytes>,
    queued: usize,
    limit: usize,
}

impl Holdback {
    pub fn new(limit: usize) -> Holdback {
        Holdback {
            queue: VecDeque::new(),
            queued: 0,
            limit,
        }
    }

    pub fn push(&mut self, chunk: Bytes) {
        self.queued += chunk.len();
        self.queue.push_back(chunk);
    }

    /// The next chunk that has enough scanned bytes behind it, if any.
    pub fn pop_released(&mut self) -> Option<Bytes> {
        let front = self.queue.front()?;
        if self.queued - front.len() >= self.limit {
            self.queued -= front.len();
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Everything still held (after the final verdict allowed it).
    pub fn drain(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        self.queued = 0;
        self.queue.drain(..)
    }

    pub fn held_bytes(&self) -> usize {
        self.queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdback_releases_only_chunks_with_enough_bytes_behind_them() {
        let mut h = Holdback::new(10);
        h.push(Bytes::from_static(b"aaaa"));
        assert!(h.pop_released().is_none(), "nothing scanned after it yet");
        h.push(Bytes::from_static(b"bbbbbb"));
        assert!(h.pop_released().is_none(), "6 bytes behind < 10");
        h.push(Bytes::from_static(b"cccc"));
        assert_eq!(h.pop_released().as_deref(), Some(&b"aaaa"[..]));
        assert!(h.pop_released().is_none(), "4 bytes behind bbbbbb");
        assert_eq!(h.held_bytes(), 10);
        let rest: Vec<Bytes> = h.drain().collect();
        assert_eq!(rest.len(), 2);
        assert_eq!(h.held_bytes(), 0);
    }
}
