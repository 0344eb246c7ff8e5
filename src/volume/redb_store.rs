//! Embedded, crash-safe volume store: one redb file (copy-on-write B-trees, checksummed
//! commits), written by a single writer thread that folds every claim waiting in its queue
//! into one transaction — group commit, so concurrent requests share one `fsync` instead of
//! queueing for one each.
//!
//! Durability contract: with `flush_window = 0` (default) `admit` returns only after the
//! transaction holding the claim is durably committed, so a `kill -9` loses no acknowledged
//! individual. With a window `w > 0`, batches are committed non-durably and acknowledged at
//! once, and a durable commit follows within `w`: at most `w` of acknowledged claims can be
//! lost.
//!
//! Blocking file I/O lives on the writer thread (and `spawn_blocking` for reports), never on
//! the async request path; the request only awaits a oneshot reply.

// redb::Error is large (160 bytes) but only travels the rare failure path; boxing it would
// cost an allocation per `?` for no gain on the request path.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::ledger::{check_and_add, Caps, Key, Ledgers, Meta, Outcome};
use super::{
    on_unavailable, EntityGuard, ReportFuture, UnavailableMode, VolumeClaim, VolumeError,
    VolumeFuture, VolumeOptions, VolumeRow, VolumeStore,
};

/// (ledger, year, 0 = all | 1 = sensitive, subject key) → ().
const MEMBERS: TableDefinition<(&str, i32, u8, [u8; 16]), ()> = TableDefinition::new("members");
/// (ledger, year) → (all, sensitive, first_seen, last_seen, cap_all, cap_sensitive);
/// `u64::MAX` encodes "no cap".
const META: TableDefinition<(&str, i32), MetaRow> = TableDefinition::new("meta");

type MetaRow = (u64, u64, i64, i64, u64, u64);

const NO_CAP: u64 = u64::MAX;

struct Job {
    claim: VolumeClaim,
    entity: Option<Caps>,
    reply: oneshot::Sender<Result<Outcome, String>>,
}

/// The open tables of one write transaction, seen through [`Ledgers`].
struct TxLedgers<'t> {
    members: Table<'t, (&'static str, i32, u8, [u8; 16]), ()>,
    meta: Table<'t, (&'static str, i32), MetaRow>,
}

impl Ledgers for TxLedgers<'_> {
    type Error = redb::Error;

    fn meta(&mut self, name: &str, year: i32) -> Result<Option<Meta>, redb::Error> {
        Ok(self.meta.get((name, year))?.map(|v| decode_meta(v.value())))
    }

    fn contains(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<bool, redb::Error> {
        Ok(self
            .members
            .get((name, year, u8::from(sensitive), *key))?
            .is_some())
    }

    fn insert(
        &mut self,
        name: &str,
        year: i32,
        sensitive: bool,
        key: &Key,
    ) -> Result<(), redb::Error> {
        self.members
            .insert((name, year, u8::from(sensitive), *key), ())?;
        Ok(())
    }

    fn put_meta(&mut self, name: &str, year: i32, m: Meta) -> Result<(), redb::Error> {
        self.meta.insert(
            (name, year),
            (
                m.all,
                m.sensitive,
                m.first_seen,
                m.last_seen,
                m.caps.all.unwrap_or(NO_CAP),
                m.caps.sensitive.unwrap_or(NO_CAP),
            ),
        )?;
        Ok(())
    }
}

fn decode_meta(v: MetaRow) -> Meta {
    let cap = |c: u64| (c != NO_CAP).then_some(c);
    Meta {
        all: v.0,
        sensitive: v.1,
        first_seen: v.2,
        last_seen: v.3,
        caps: Caps {
            all: cap(v.4),
            sensitive: cap(v.5),
        },
    }
}

/// Volume store in a redb file.
#[derive(Debug)]
pub struct RedbStore {
    path: PathBuf,
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    guard: EntityGuard,
    unavailable: UnavailableMode,
}

impl RedbStore {
    /// Opens (or creates) the database file, creating its directory, and starts the writer.
    pub fn open(path: &Path, options: VolumeOptions) -> Result<RedbStore, VolumeError> {
        let open_err = |message: String| VolumeError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| open_err(e.to_string()))?;
        // Create the tables up front so readers never see a database without them.
        let init = || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(MEMBERS)?;
            tx.open_table(META)?;
            tx.commit()?;
            Ok(())
        };
        init().map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let window = options.flush_window;
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("chujing-volume-writer".into())
            .spawn(move || writer_loop(&writer_db, &queue, window, max_batch))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(RedbStore {
            path: path.to_path_buf(),
            db,
            jobs: Some(jobs),
            writer: Some(writer),
            guard: EntityGuard::new(options.guard),
            unavailable: options.unavailable,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entity-wide totals and watermark state (for metrics).
    pub fn guard(&self) -> &EntityGuard {
        &self.guard
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the queue makes the writer drain, commit durably and exit; joining lets the
        // file be reopened by the same process right after (redb locks it while open).
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer_loop(db: &Database, queue: &mpsc::Receiver<Job>, window: Duration, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut results: Vec<Outcome> = Vec::with_capacity(max_batch);
    // Time of the oldest acknowledged but not yet durable commit.
    let mut undurable_since: Option<Instant> = None;
    loop {
        let first = match undurable_since {
            Some(since) => {
                let left = window.saturating_sub(since.elapsed());
                match queue.recv_timeout(left) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        if durable_checkpoint(db) {
                            undurable_since = None;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let durable =
            window.is_zero() || undurable_since.is_some_and(|since| since.elapsed() >= window);
        results.clear();
        match run_batch(db, &batch, &mut results, durable) {
            Ok(()) => {
                if durable {
                    undurable_since = None;
                } else {
                    undurable_since.get_or_insert_with(Instant::now);
                }
                for (job, outcome) in batch.drain(..).zip(results.drain(..)) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // The whole transaction was abandoned: nothing of this batch was counted.
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(message.clone()));
                }
            }
        }
    }
    if undurable_since.is_some() {
        durable_checkpoint(db);
    }
}

fn run_batch(
    db: &Database,
    batch: &[Job],
    results: &mut Vec<Outcome>,
    durable: bool,
) -> Result<(), redb::Error> {
    let mut tx: WriteTransaction = db.begin_write()?;
    tx.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    });
    {
        let mut ledgers = TxLedgers {
            members: tx.open_table(MEMBERS)?,
            meta: tx.open_table(META)?,
        };
        let now = super::unix_seconds();
        // Claims apply in queue order inside the transaction, so each sees the ones before it
        // and two claims racing at a cap are serialised exactly as with one commit each.
        for job in batch {
            results.push(check_and_add(&mut ledgers, &job.claim, job.entity, now)?);
        }
    }
    tx.commit()?;
    Ok(())
}

/// An empty durable commit: makes every earlier non-durable commit persistent.
fn durable_checkpoint(db: &Database) -> bool {
    let run = || -> Result<(), redb::Error> {
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        tx.commit()?;
        Ok(())
    };
    match run() {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(target: "chujing::volume", error = %e, "durable commit of the volume database failed; retrying at the next claim");
            false
        }
    }
}

impl VolumeStore for RedbStore {
    fn admit<'a>(&'a self, claim: &'a VolumeClaim) -> VolumeFuture<'a> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                claim: claim.clone(),
                entity: self.guard.options().entity_for(&claim.transfer),
                reply,
            };
            let sent = self
                .jobs
                .as_ref()
                .map(|q| q.send(job).is_ok())
                .unwrap_or(false);
            let result = if sent {
                match answer.await {
                    Ok(Ok(outcome)) => Ok(outcome),
                    Ok(Err(message)) => Err(format!("{}: {message}", self.path.display())),
                    Err(_) => Err(format!("{}: writer thread stopped", self.path.display())),
                }
            } else {
                Err(format!("{}: writer thread stopped", self.path.display()))
            };
            match result {
                Ok(outcome) => {
                    if let Some(change) = &outcome.entity {
                        self.guard.observe(change);
                    }
                    Ok(outcome.admission)
                }
                Err(message) => on_unavailable(&self.guard, self.unavailable, "redb", message),
            }
        })
    }

    fn report(&self, year: Option<i32>) -> ReportFuture<'_> {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read_report(&db, year))
                .await
                .map_err(|e| VolumeError::Storage {
                    store: "redb",
                    message: e.to_string(),
                })?
                .map_err(|e| VolumeError::Storage {
                    store: "redb",
                    message: e.to_string(),
                })
        })
    }
}

fn read_report(db: &Database, year: Option<i32>) -> Result<Vec<VolumeRow>, redb::Error> {
    let tx = db.begin_read()?;
    let meta = tx.open_table(META)?;
    let mut rows = Vec::new();
    for entry in meta.iter()? {
        let (k, v) = entry?;
        let (name, y) = k.value();
        if year.is_some_and(|want| want != y) {
            continue;
        }
        rows.push(super::memory::row(name, y, &decode_meta(v.value())));
    }
    rows.sort_by(|a, b| (a.year, &a.transfer).cmp(&(b.year, &b.transfer)));
    Ok(rows)
}
