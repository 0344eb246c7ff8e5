//! Graceful drain for intercepted CONNECT tunnels.
//!
//! hyper hands an upgraded socket over and ends the CONNECT's connection, so the
//! connection-level graceful shutdown in [`super::serve`] stops waiting for a tunnel the
//! moment its `200` is sent — while the HTTPS requests inside it are still being served. Such
//! a tunnel registers here instead (before the `200` leaves, so none slips through), hears
//! when the drain starts (its HTTP/1 connection then closes after the request in flight,
//! HTTP/2 sends GOAWAY), and the drain waits until every registered tunnel has ended, within
//! the same deadline as the connections. A tunnel whose bytes turn out not to be TLS is
//! spliced as it is and cannot be asked to close: the drain waits for it up to the deadline.
//! Bypassed tunnels (spliced without interception) are not registered; like any connection
//! still open at the deadline, they close when the workers stop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// The intercepted tunnels of one proxy.
#[derive(Debug)]
pub(super) struct Tunnels {
    open: AtomicUsize,
    all_closed: Notify,
    draining: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels {
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            draining: watch::Sender::new(false),
        }
    }
}

/// One registered tunnel; dropping it deregisters.
#[derive(Debug)]
pub(super) struct TunnelGuard {
    tunnels: Arc<Tunnels>,
}

impl Tunnels {
    /// Registers a tunnel about to start.
    pub(super) fn open(self: &Arc<Self>) -> TunnelGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        TunnelGuard {
            tunnels: Arc::clone(self),
        }
    }

    /// Whether the drain has started (already, or later: `wait_for(|d| *d)`).
    pub(super) fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Tells every tunnel, open or yet to open, that the drain has started.
    pub(super) fn start_drain(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once no tunnel is open. Call it after the connections have drained: a
    /// tunnel is registered by a request on a connection, so none can open after that, while
    /// a CONNECT still being decided when the drain started may register one late.
    pub(super) async fn closed(&self) {
        loop {
            let closed = self.all_closed.notified();
            tokio::pin!(closed);
            // Registered before looking, so a close in between still wakes us.
            closed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        if self.tunnels.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tunnels.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn drain_waits_for_every_open_tunnel_and_tells_late_ones() {
        let tunnels = Arc::new(Tunnels::default());
        tunnels.start_drain();
        tokio::time::timeout(Duration::from_secs(1), tunnels.closed())
            .await
            .expect("nothing open: the drain ends at once");
        // A CONNECT decided after the drain started registers late: still waited for.
        let late = tunnels.open();
        let wait = tokio::spawn({
            let tunnels = Arc::clone(&tunnels);
            async move { tunnels.closed().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!wait.is_finished(), "a late tunnel is waited for");
        drop(late);
        tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .unwrap()
            .unwrap();

        let tunnels = Arc::new(Tunnels::default());
        let first = tunnels.open();
        let second = tunnels.open();
        let mut told = tunnels.draining();
        assert!(!*told.borrow());
        let drain = tokio::spawn({
            let tunnels = Arc::clone(&tunnels);
            async move {
                tunnels.start_drain();
                tunnels.closed().await
            }
        });
        told.wait_for(|d| *d).await.unwrap();
        // A receiver made after the drain started sees it too.
        assert!(*tunnels.draining().borrow());
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!drain.is_finished(), "one tunnel is still open");
        assert_eq!(tunnels.open_count(), 1);
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), drain)
            .await
            .expect("the drain ends when the last tunnel closes")
            .unwrap();
    }
}
