//! Group commit: the lines of requests that finish together reach the file in one `write`.
//!
//! Under load many responses come back in the same turn of a worker's event loop, and each
//! used to cost its own `write` (about 1.4 µs of kernel time for a 1 KiB line on ext4, plus
//! the inode lock the workers then contend on). Here the first request of a turn becomes the
//! batch's leader: it appends its line, yields once so that the other requests woken in the
//! same turn append theirs, then writes the batch in one `write`. Every member — leader and
//! followers — waits for that write and gets its result, so the promise of
//! [`AuditLog::write`] holds unchanged: a request's line is in the file (or its failure is
//! known) before its response leaves. Only the number of syscalls changes.
//!
//! A leader whose request is abandoned while it yields (the client went away, the runtime
//! shuts down) still writes the batch when it is dropped: no follower is left waiting and
//! no line is lost.

use std::future::Future;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

use super::{AuditError, AuditEvent, AuditLog};

/// The batch being gathered, shared by the log's writers.
#[derive(Debug, Default)]
pub(super) struct Group {
    state: Mutex<Gathering>,
    /// Batches written (each one `write`), for tests and the metrics of what batching saves.
    writes: AtomicU64,
    /// Lines written in those batches.
    lines: AtomicU64,
}

#[derive(Debug, Default)]
struct Gathering {
    /// Lines of the open batch.
    buf: Vec<u8>,
    lines: u64,
    /// The open batch, or `None` between batches (the next writer becomes a leader).
    open: Option<Arc<Batch>>,
    /// The last written batch's buffer, kept for its capacity.
    spare: Vec<u8>,
}

/// One batch: its members wait on `done` until the leader has set `result`.
#[derive(Debug, Default)]
struct Batch {
    result: OnceLock<Result<(), (io::ErrorKind, String)>>,
    done: Notify,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, Gathering> {
        // A panic while appending bytes leaves at worst a partial line in the buffer, which
        // the JSON-lines reader reports; the log must go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `(writes, lines)` so far: with no batching the two are equal.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.lines.load(Ordering::Relaxed),
        )
    }
}

impl AuditLog {
    /// Writes one event as one line like [`AuditLog::write`], in one `write` with the lines
    /// of the other requests that finish in the same turn of the event loop. Resolves once
    /// the batch holding the line has been written (or has failed).
    pub fn write_grouped<'a>(
        &'a self,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<(), AuditError>> + 'a {
        let (batch, leader) = super::with_line(event, |line| {
            let mut g = self.group.lock();
            g.buf.extend_from_slice(line);
            g.lines += 1;
            match &g.open {
                Some(batch) => (batch.clone(), false),
                None => {
                    let batch = Arc::new(Batch::default());
                    g.open = Some(batch.clone());
                    (batch, true)
                }
            }
        });
        async move {
            if leader {
                let mut pending = Leader {
                    log: self,
                    batch: Some(batch.clone()),
                };
                // Let the requests woken in this turn append their lines first.
                tokio::task::yield_now().await;
                pending.flush();
            } else {
                let done = batch.done.notified();
                tokio::pin!(done);
                // Registered before looking, so a result set in between still wakes us.
                done.as_mut().enable();
                if batch.result.get().is_none() {
                    done.await;
                }
            }
            match batch.result.get() {
                Some(Ok(())) => Ok(()),
                Some(Err((kind, message))) => Err(AuditError::Write {
                    path: self.path.display().to_string(),
                    source: io::Error::new(*kind, message.clone()),
                }),
                None => unreachable!("a batch is resolved before its members wake"),
            }
        }
    }

    /// `(writes, lines)` of grouped writing so far.
    pub fn grouped_counts(&self) -> (u64, u64) {
        self.group.counts()
    }
}

/// A batch's leader until it has written the batch; writes it when dropped before that.
struct Leader<'a> {
    log: &'a AuditLog,
    batch: Option<Arc<Batch>>,
}

impl Leader<'_> {
    fn flush(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let group = &self.log.group;
        let (mut buf, lines) = {
            let mut g = group.lock();
            let spare = mem::take(&mut g.spare);
            g.open = None;
            (mem::replace(&mut g.buf, spare), mem::take(&mut g.lines))
        };
        // The syscall runs outside the lock: the other workers keep gathering meanwhile.
        let result = self.log.append(&buf).map_err(|e| match e {
            AuditError::Open { source, .. } | AuditError::Write { source, .. } => {
                (source.kind(), source.to_string())
            }
        });
        group.writes.fetch_add(1, Ordering::Relaxed);
        group.lines.fetch_add(lines, Ordering::Relaxed);
        buf.clear();
        if buf.capacity() <= 1 << 20 {
            group.lock().spare = buf;
        }
        let _ = batch.result.set(result);
        batch.done.notify_waiters();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::audit::line::tests::event;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("whole JSON lines only"))
            .collect()
    }

    /// Fifty requests finishing in one turn of a single-threaded loop: fifty whole lines,
    /// far fewer writes, and every member resolves only after its line is in the file.
    #[test]
    fn lines_of_one_turn_share_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = Arc::new(AuditLog::open(&path).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let log = log.clone();
                    let path = path.clone();
                    tokio::spawn(async move {
                        let mut e = event(i % 3);
                        e.chujing.request_id = format!("req-{i}");
                        log.write_grouped(&e).await.unwrap();
                        // Resolved: the line is already readable.
                        let text = std::fs::read_to_string(&path).unwrap();
                        assert!(text.contains(&format!("\"req-{i}\"")), "req-{i}");
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let written = lines(&path);
        assert_eq!(written.len(), 50);
        let (writes, grouped) = log.grouped_counts();
        assert_eq!(grouped, 50);
        assert!(writes < 5, "{writes} writes for 50 lines of one turn");
    }

    /// A failed batch write fails every member of the batch, each with the log's path.
    #[test]
    fn a_failed_batch_fails_each_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.jsonl");
        // /dev/full answers every write with ENOSPC, as a full disk does.
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let log = Arc::new(AuditLog::open(&path).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let errors = rt.block_on(async {
            let tasks: Vec<_> = (0..5)
                .map(|i| {
                    let log = log.clone();
                    tokio::spawn(async move { log.write_grouped(&event(i)).await })
                })
                .collect();
            let mut errors = Vec::new();
            for t in tasks {
                errors.push(t.await.unwrap().unwrap_err().to_string());
            }
            errors
        });
        for e in errors {
            assert!(e.contains("full.jsonl") && e.contains("space"), "{e}");
        }
    }

    /// A leader abandoned while it yields (its client went away) writes the batch when
    /// dropped: its line and its followers' lines land, and the followers resolve.
    #[test]
    fn an_abandoned_leader_still_writes_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = Box::pin(log.write_grouped(&event(0)));
        assert!(leader.as_mut().poll(&mut cx).is_pending(), "the leader yields");
        let mut follower = pin!(log.write_grouped(&event(1)));
        assert!(follower.as_mut().poll(&mut cx).is_pending(), "waits for the batch");
        assert!(lines(&path).is_empty(), "nothing written before the batch closes");
        drop(leader);
        assert_eq!(lines(&path).len(), 2);
        assert!(matches!(follower.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(log.grouped_counts(), (1, 2));
    }
}
