//! The graceful drain of client connections: a signal every connection watches, raised once
//! at shutdown, after which each connection finishes the request it is serving and closes;
//! and the wait until all of them have.
//!
//! Why not `hyper_util::server::graceful`: its watcher is a `tokio::sync::watch` receiver,
//! and polling one takes the channel's waiter lock. The connection future polls it on every
//! wake-up, several times a request, and the lock is shared by every connection on every
//! worker, so each poll pulled its cache line from the other core (~550 instructions and a
//! cache miss per request on the load harness). Here a poll reads one flag on a line nothing
//! writes before the drain, and takes a lock only when its task's waker changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

use crate::shard::Padded;

/// The drain signal for a set of connections. Cheap to share; [`Drain::watch`] hands out one
/// [`DrainWatch`] per connection.
#[derive(Debug, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Alone on its cache line: read on every poll of every connection, written once.
    draining: Padded<AtomicBool>,
    /// Wakers of the connections that wait, by slot; `None` marks a free slot.
    waiters: Mutex<Waiters>,
    /// Raised whenever the last watch is dropped during a drain.
    all_closed: Notify,
}

#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// Watches alive (registered or not).
    live: usize,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// A watch for one connection; the drain waits for it to be dropped.
    pub fn watch(&self) -> DrainWatch {
        lock(&self.shared.waiters).live += 1;
        DrainWatch {
            shared: Arc::clone(&self.shared),
            slot: None,
            registered: None,
        }
    }

    /// Connections still watching.
    pub fn live(&self) -> usize {
        lock(&self.shared.waiters).live
    }

    /// Raises the signal (every watch resolves, now or at its next poll) and waits until
    /// every watch has been dropped.
    pub async fn drain(&self) {
        self.start();
        loop {
            let closed = self.shared.all_closed.notified();
            tokio::pin!(closed);
            // Registered before the check, so a last drop between the two still wakes us.
            closed.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Raises the signal without waiting.
    pub fn start(&self) {
        // The flag first, then the wakers under the lock: a watch registering concurrently
        // either is in the list we wake or takes the lock after us and sees the flag.
        self.shared.draining.0.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let mut waiters = lock(&self.shared.waiters);
            waiters.slots.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

/// One connection's view of the drain signal: a future that resolves when the drain starts.
#[derive(Debug)]
pub struct DrainWatch {
    shared: Arc<Shared>,
    slot: Option<usize>,
    /// The waker last registered, to skip the lock while the task's waker stays the same.
    registered: Option<Waker>,
}

impl Future for DrainWatch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.draining.0.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let this = &mut *self;
        {
            let mut waiters = lock(&this.shared.waiters);
            let waker = Some(cx.waker().clone());
            match this.slot {
                Some(slot) => waiters.slots[slot] = waker,
                None => {
                    let slot = match waiters.free.pop() {
                        Some(free) => {
                            waiters.slots[free] = waker;
                            free
                        }
                        None => {
                            waiters.slots.push(waker);
                            waiters.slots.len() - 1
                        }
                    };
                    this.slot = Some(slot);
                }
            }
        }
        this.registered = Some(cx.waker().clone());
        // Raised between the first check and the registration: the drain may have woken
        // the list before this waker was in it.
        if this.shared.draining.0.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for DrainWatch {
    fn drop(&mut self) {
        let last = {
            let mut waiters = lock(&self.shared.waiters);
            if let Some(slot) = self.slot {
                waiters.slots[slot] = None;
                waiters.free.push(slot);
            }
            waiters.live -= 1;
            waiters.live == 0
        };
        if last && self.shared.draining.0.load(Ordering::SeqCst) {
            self.shared.all_closed.notify_waiters();
        }
    }
}

/// Locks even if a panicking thread poisoned the mutex: the guarded list stays valid after
/// any partial update (each update is one slot write).
fn lock(m: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pin_project_lite::pin_project! {
    /// A connection future that starts its own graceful shutdown when the drain does, then
    /// keeps running until the connection has finished.
    pub struct Drained<C, S> {
        #[pin]
        conn: C,
        // Held until the connection ends: dropping it counts the connection as closed.
        watch: DrainWatch,
        fired: bool,
        shutdown: S,
    }
}

impl<C, S> Drained<C, S>
where
    C: Future,
    S: FnMut(Pin<&mut C>),
{
    /// `shutdown` asks the connection to finish gracefully (for hyper's connections, their
    /// `graceful_shutdown`); it is called once, when `watch` resolves.
    pub fn new(conn: C, watch: DrainWatch, shutdown: S) -> Self {
        Drained {
            conn,
            watch,
            fired: false,
            shutdown,
        }
    }
}

impl<C, S> Future for Drained<C, S>
where
    C: Future,
    S: FnMut(Pin<&mut C>),
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.fired && Pin::new(&mut *this.watch).poll(cx).is_ready() {
            *this.fired = true;
            (this.shutdown)(this.conn.as_mut());
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    /// A waker that counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (Arc::clone(&c), Waker::from(c))
    }

    #[test]
    fn a_watch_waits_until_the_drain_starts_and_wakes_its_latest_waker() {
        let drain = Drain::new();
        let mut watch = drain.watch();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let mut cx = Context::from_waker(&first_waker);
        assert!(Pin::new(&mut watch).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut watch).poll(&mut cx).is_pending());
        // The task moved (another waker): the drain must wake the new one, not the old.
        let mut cx2 = Context::from_waker(&second_waker);
        assert!(Pin::new(&mut watch).poll(&mut cx2).is_pending());
        drain.start();
        assert_eq!(
            first.0.load(Ordering::SeqCst),
            0,
            "a replaced waker was woken"
        );
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the waiting task was not woken"
        );
        assert!(Pin::new(&mut watch).poll(&mut cx2).is_ready());
        // A watch made after the drain started resolves at once.
        let mut late = drain.watch();
        assert!(Pin::new(&mut late).poll(&mut cx).is_ready());
    }

    #[test]
    fn slots_of_dropped_watches_are_reused() {
        let drain = Drain::new();
        let (_, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut w = drain.watch();
            assert!(Pin::new(&mut w).poll(&mut cx).is_pending());
        }
        assert_eq!(drain.live(), 0);
        assert_eq!(lock(&drain.shared.waiters).slots.len(), 1);
    }

    #[tokio::test]
    async fn the_drain_returns_once_every_watch_is_dropped() {
        let drain = Arc::new(Drain::new());
        // No connection: nothing to wait for.
        tokio::time::timeout(Duration::from_secs(5), drain.drain())
            .await
            .expect("an empty drain returns");

        let drain = Arc::new(Drain::new());
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3u64 {
            let watch = drain.watch();
            let done = done_tx.clone();
            tokio::spawn(async move {
                watch.await;
                // A connection finishing its last request after the signal.
                tokio::time::sleep(Duration::from_millis(20 * (i + 1))).await;
                let _ = done.send(i);
            });
        }
        drop(done_tx);
        assert_eq!(drain.live(), 3);
        tokio::time::timeout(Duration::from_secs(5), drain.drain())
            .await
            .expect("the drain ends when the connections do");
        assert_eq!(drain.live(), 0);
        let mut finished = Vec::new();
        while let Some(i) = done_rx.recv().await {
            finished.push(i);
        }
        assert_eq!(
            finished,
            vec![0, 1, 2],
            "the drain returned before its connections ended"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn watches_registering_while_the_drain_starts_all_resolve() {
        for _ in 0..50 {
            let drain = Arc::new(Drain::new());
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let watch = drain.watch();
                    tokio::spawn(async move {
                        tokio::task::yield_now().await;
                        watch.await;
                    })
                })
                .collect();
            drain.start();
            for t in tasks {
                tokio::time::timeout(Duration::from_secs(5), t)
                    .await
                    .expect("a watch missed the drain")
                    .expect("task");
            }
        }
    }

    #[tokio::test]
    async fn drained_asks_its_connection_to_shut_down_once_and_keeps_polling_it() {
        let drain = Drain::new();
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let conn = async move { rx.await.unwrap_or(0) };
        let seen = Arc::clone(&shutdowns);
        let drained = Drained::new(Box::pin(conn), drain.watch(), move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(drained);
        tokio::task::yield_now().await;
        assert_eq!(shutdowns.load(Ordering::SeqCst), 0);
        drain.start();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
        assert_eq!(drain.live(), 1, "the connection is still finishing");
        tx.send(7).unwrap();
        assert_eq!(task.await.unwrap(), 7);
        assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
        assert_eq!(drain.live(), 0);
    }
}
