//! Connection workers: a fixed set of OS threads, each running its own single-threaded tokio
//! event loop (the nginx and pingora shape: one worker per core, no work stealing). The
//! accept loop hands each new connection to one worker, round robin, and everything that
//! connection does afterwards — its requests, the upstream connections they open, the tasks
//! hyper spawns for them — runs on that worker's thread.
//!
//! Why not the multi-threaded runtime: a proxied request crosses three tasks (client
//! connection, upstream connection, pool return). On a work-stealing runtime those land on
//! different threads and every hand-off is a futex wake and a context switch; measured on the
//! load harness that was about half a wake per request and a tenth of the proxy's CPU time.
//! Pinned to one thread the same hand-offs are queue pushes.
//!
//! The control plane (admin, reload, probes, volume store) stays on the caller's runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// 1-based index of the worker running on this thread; 0 on any other thread.
    static WORKER_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The worker the calling thread belongs to (1-based), or 0 outside the workers. Keys
/// per-worker state such as idle upstream connections, so a connection is reused on the
/// event loop that drives it.
pub fn current_worker() -> usize {
    WORKER_ID.with(|w| w.get())
}

/// Why a worker's `on_idle` hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The event loop has nothing left to run and is about to wait for I/O or a timer.
    Turn,
    /// The worker is stopping: the last call, after its event loop ended.
    Last,
}

/// A running set of connection workers. Dropping it stops them: their event loops end and
/// any connection still on them is closed (call it after the graceful drain).
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender ends that worker's loop.
    stops: std::sync::Mutex<Vec<oneshot::Sender<()>>>,
    /// Each worker's word that it ran its last `on_idle` and is ending.
    done: std::sync::Mutex<Vec<oneshot::Receiver<()>>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Starts `count` workers (at least one), named `chujing-worker-N`. `on_idle` runs on a
    /// worker whenever its event loop has nothing left to run and is about to wait for I/O
    /// (the end of each turn, [`Idle::Turn`]), and once more when the worker stops
    /// ([`Idle::Last`]).
    pub fn start(
        count: usize,
        on_idle: Option<Arc<dyn Fn(Idle) + Send + Sync>>,
    ) -> std::io::Result<Workers> {
        let count = count.max(1);
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        let mut done = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 1..=count {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder
                .enable_all()
                .thread_name(format!("chujing-worker-{index}"));
            if let Some(hook) = on_idle.clone() {
                builder.on_thread_park(move || hook(Idle::Turn));
            }
            let runtime = builder.build()?;
            let last_idle = on_idle.clone();
            handles.push(runtime.handle().clone());
            runtime.spawn(heartbeat());
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            stops.push(stop_tx);
            let (done_tx, done_rx) = oneshot::channel::<()>();
            done.push(done_rx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("chujing-worker-{index}"))
                    .spawn(move || {
                        WORKER_ID.with(|w| w.set(index));
                        crate::shard::pin(index - 1);
                        // A current-thread runtime runs its spawned tasks only while
                        // `block_on` is active on this thread: it is, until the stop.
                        let _ = runtime.block_on(stop_rx);
                        if let Some(hook) = last_idle {
                            hook(Idle::Last);
                        }
                        let _ = done_tx.send(());
                        // Dropping the runtime here cancels what is left (after the drain).
                        drop(runtime);
                    })?,
            );
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stops: std::sync::Mutex::new(stops),
            done: std::sync::Mutex::new(done),
            threads,
        })
    }

    /// Ends the workers' event loops (closing whatever outlived the drain) and waits, at most
    /// `limit`, until each has run its last `on_idle`: what it deferred is written before the
    /// process goes on to exit.
    pub async fn stop(&self, limit: std::time::Duration) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(limit, async {
            for worker in done {
                let _ = worker.await;
            }
        })
        .await;
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: there is always at least one worker.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs the future `make` builds on the next worker. `make` is called on that worker's
    /// thread, so the tokio resources the future creates (a `TcpStream` adopted from a std
    /// socket, timers) belong to that worker's reactor.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(async move { make().await });
    }

    /// Runs one future `make` builds on every worker (on that worker's thread), for per-worker
    /// housekeeping such as writing its audit batch when it is due.
    pub fn spawn_each<F, Fut>(&self, make: F)
    where
        F: Fn() -> Fut + Send + Clone + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        for handle in &self.handles {
            let make = make.clone();
            handle.spawn(async move { make().await });
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stops.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // Do not join: dropping may happen on a runtime thread, and the workers exit on
        // their own once their loop sees the stop.
        self.threads.clear();
    }
}

/// Keeps a timer due within half a second on every worker.
///
/// tokio's timer wakes a parked event loop (an `eventfd` write, then an extra `epoll_wait`
/// round) whenever a newly armed timer is due before the loop's planned wake-up. Every request
/// arms timers (header read, body read, upstream response), and with only long-lived timers
/// pending (connection idle limits, a minute out) each of them was "earlier": about one
/// self-wake per four requests under load. With this heartbeat pending, the planned wake-up
/// is always sooner than any request timer, so arming them costs no syscall; the price is
/// two wake-ups a second per idle worker.
async fn heartbeat() {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_worker_threads_round_robin() {
        let workers = Workers::start(2, None).unwrap();
        assert_eq!(workers.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(move || async move {
                let name = std::thread::current().name().map(str::to_string);
                tx.send((current_worker(), name)).unwrap();
            });
        }
        let mut seen: Vec<(usize, Option<String>)> = (0..4)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap())
            .collect();
        seen.sort();
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![1, 1, 2, 2]
        );
        assert_eq!(seen[0].1.as_deref(), Some("chujing-worker-1"));
        assert_eq!(current_worker(), 0, "the test thread is not a worker");
    }

    #[test]
    fn spawn_each_runs_once_on_every_worker() {
        let workers = Workers::start(3, None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        workers.spawn_each(move || {
            let tx = tx.clone();
            async move { tx.send(current_worker()).unwrap() }
        });
        let mut seen: Vec<usize> = (0..3)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(50))
                .is_err(),
            "more runs than workers"
        );
    }

    #[test]
    fn on_idle_runs_when_a_loop_waits_and_once_more_before_stop_returns() {
        use std::sync::atomic::AtomicBool;
        let calls = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let last_done = Arc::new(AtomicBool::new(false));
        let (seen, stop_seen, done) = (calls.clone(), stopping.clone(), last_done.clone());
        let workers = Workers::start(
            1,
            Some(Arc::new(move |why| {
                // Only ever called on the worker itself.
                assert_eq!(current_worker(), 1);
                seen.fetch_add(1, Ordering::SeqCst);
                if why == Idle::Last {
                    assert!(stop_seen.load(Ordering::SeqCst), "Last only once stopping");
                }
                if stop_seen.load(Ordering::SeqCst) && why == Idle::Last {
                    // A slow last write: stop must wait for it.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    done.store(true, Ordering::SeqCst);
                }
            })),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        workers.spawn(move || async move {
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while calls.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "on_idle never ran");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stopping.store(true, Ordering::SeqCst);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(workers.stop(std::time::Duration::from_secs(5)));
        assert!(
            last_done.load(Ordering::SeqCst),
            "stop returned before the worker's last on_idle finished"
        );
    }

    #[test]
    fn dropping_the_workers_ends_their_threads() {
        let workers = Workers::start(1, None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A task that never finishes on its own: holds the sender until the loop is dropped.
        workers.spawn(move || async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        // The runtime was dropped, so the task (and its sender) were dropped: recv ends.
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_err());
    }
}
