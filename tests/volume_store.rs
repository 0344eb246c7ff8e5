//! Volume stores end to end: the redb file survives `kill -9` without losing an acknowledged
//! individual, group commit keeps caps exact under concurrency, and Redis replicas racing at
//! a cap never admit more than the cap. Redis tests start their own `redis-server` on a
//! loopback port (install: `apt-get install -y redis-server`) and skip loudly without it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chujing::classify::Subject;
use chujing::config::VolumeConfig;
use chujing::volume::{
    open_store, report, Admission, RedbStore, RedisStore, UnavailableMode, VolumeClaim,
    VolumeError, VolumeOptions, VolumeStore, ENTITY_LEDGER,
};

fn subject(n: u64, sensitive: bool) -> Subject {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&n.to_le_bytes());
    key[8] = 0xA5;
    Subject { key, sensitive }
}

fn claim(transfer: &str, subjects: Vec<Subject>, cap: Option<u64>) -> VolumeClaim {
    VolumeClaim {
        transfer: transfer.to_string(),
        year: 2026,
        subjects,
        max_individuals: cap,
        max_sensitive_individuals: None,
    }
}

fn admitted(new_individuals: u64, total: u64) -> Admission {
    Admission::Admitted {
        new_individuals,
        total,
    }
}

fn refused(cap: u64, current: u64, new_individuals: u64) -> Admission {
    Admission::CapExceeded {
        cap,
        current,
        new_individuals,
    }
}

/// Claims `n` distinct single-individual requests concurrently against a cap, spread over
/// `stores`; returns how many individuals were admitted.
async fn race(stores: &[Arc<dyn VolumeStore>], n: u64, cap: u64) -> u64 {
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = Arc::clone(&stores[(i as usize) % stores.len()]);
        tasks.push(tokio::spawn(async move {
            let c = claim("RACE", vec![subject(i, false)], Some(cap));
            store.admit(&c).await.expect("store answers")
        }));
    }
    let mut total = 0;
    for t in tasks {
        if let Admission::Admitted {
            new_individuals, ..
        } = t.await.unwrap()
        {
            total += new_individuals;
        }
    }
    total
}

// ---- redb ---------------------------------------------------------------------------------

#[tokio::test]
async fn redb_counts_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/volume.redb");
    {
        let store = RedbStore::open(&path, VolumeOptions::default()).unwrap();
        let a = store
            .admit(&claim(
                "T",
                vec![subject(1, false), subject(2, true)],
                Some(3),
            ))
            .await
            .unwrap();
        assert_eq!(a, admitted(2, 2));
    }
    let store = RedbStore::open(&path, VolumeOptions::default()).unwrap();
    let a = store
        .admit(&claim(
            "T",
            vec![subject(2, true), subject(3, false)],
            Some(3),
        ))
        .await
        .unwrap();
    assert_eq!(a, admitted(1, 3));
    let a = store
        .admit(&claim("T", vec![subject(4, false)], Some(3)))
        .await
        .unwrap();
    assert_eq!(a, refused(3, 3, 1));
    let rows = store.report(Some(2026)).await.unwrap();
    let t = rows.iter().find(|r| r.transfer == "T").unwrap();
    assert_eq!((t.individuals, t.sensitive_individuals), (3, 1));
    assert_eq!(t.max_individuals, Some(3));
    let entity = rows.iter().find(|r| r.transfer == ENTITY_LEDGER).unwrap();
    assert_eq!(entity.individuals, 3);
    assert!(report::render_table(&rows).contains("(entity total)"));
    assert!(store.report(Some(2025)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_group_commit_keeps_the_cap_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn VolumeStore> =
        Arc::new(RedbStore::open(&dir.path().join("v.redb"), VolumeOptions::default()).unwrap());
    let started = Instant::now();
    let n = race(&[Arc::clone(&store)], 400, 150).await;
    let took = started.elapsed();
    assert_eq!(n, 150);
    let rows = store.report(None).await.unwrap();
    let race_row = rows.iter().find(|r| r.transfer == "RACE").unwrap();
    assert_eq!(race_row.individuals, 150);
    eprintln!("redb: 400 concurrent durable claims in {took:?}");
}

#[tokio::test]
async fn redb_flush_window_acknowledges_before_the_durable_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.redb");
    let options = VolumeOptions {
        flush_window: Duration::from_millis(50),
        ..VolumeOptions::default()
    };
    {
        let store = RedbStore::open(&path, options.clone()).unwrap();
        for i in 0..20 {
            store
                .admit(&claim("W", vec![subject(i, false)], None))
                .await
                .unwrap();
        }
        // Dropping the store drains the writer and commits durably.
    }
    let store = RedbStore::open(&path, options).unwrap();
    let rows = store.report(Some(2026)).await.unwrap();
    assert_eq!(
        rows.iter().find(|r| r.transfer == "W").unwrap().individuals,
        20
    );
}

const CRASH_ENV: &str = "CHUJING_VOLUME_CRASH_DB";

/// Child half of the crash test: admits claims from many tasks forever and prints `ACK <n>`
/// after each acknowledged one. Does nothing unless started by the parent.
#[test]
fn crash_child_admits_until_killed() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(RedbStore::open(Path::new(&path), VolumeOptions::default()).unwrap());
        let mut tasks = Vec::new();
        for task in 0..16u64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = task * 1_000_000 + i;
                    let c = claim("CRASH", vec![subject(n, n % 3 == 0)], None);
                    if let Ok(Admission::Admitted { .. }) = store.admit(&c).await {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ACK {n}");
                        let _ = out.flush();
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[tokio::test]
async fn redb_kill_9_loses_no_acknowledged_individual() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_admits_until_killed", "--exact", "--nocapture"])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_ack_tx, first_ack_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.parse::<u64>().unwrap());
                if acked.len() == 1 {
                    let _ = first_ack_tx.send(());
                }
            }
        }
        acked
    });
    // Once the child is committing, let it run a while, then SIGKILL it mid-stream: no
    // destructor, no flush, no clean close of the database.
    first_ack_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledges claims");
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    // Lines printed before the kill are still in the pipe and are read to EOF.
    let acked = reader.join().unwrap();
    assert!(
        acked.len() >= 20,
        "child acknowledged only {} claims before the kill",
        acked.len()
    );

    let store =
        RedbStore::open(&path, VolumeOptions::default()).expect("redb recovers after kill -9");
    let rows = store.report(Some(2026)).await.unwrap();
    let counted = rows
        .iter()
        .find(|r| r.transfer == "CRASH")
        .unwrap()
        .individuals;
    assert!(counted >= acked.len() as u64);
    for n in &acked {
        // Admitting an acknowledged individual again must find them already counted.
        let a = store
            .admit(&claim("CRASH", vec![subject(*n, n % 3 == 0)], None))
            .await
            .unwrap();
        assert!(
            matches!(
                a,
                Admission::Admitted {
                    new_individuals: 0,
                    ..
                }
            ),
            "acknowledged individual #{n} was lost by the crash"
        );
    }
    eprintln!(
        "crash test: all {} acknowledged claims present after kill -9 ({counted} counted)",
        acked.len()
    );
}

// ---- open_store ---------------------------------------------------------------------------

#[tokio::test]
async fn open_store_dispatches_on_backend() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open_store(&VolumeConfig::default()).unwrap();
    let a = memory
        .admit(&claim("M", vec![subject(1, false)], None))
        .await
        .unwrap();
    assert_eq!(a, admitted(1, 1));
    let redb = open_store(&VolumeConfig {
        backend: "redb".into(),
        path: Some(dir.path().join("o.redb")),
        url: None,
        ..VolumeConfig::default()
    })
    .unwrap();
    let a = redb
        .admit(&claim("R", vec![subject(1, false)], None))
        .await
        .unwrap();
    assert_eq!(a, admitted(1, 1));
    let err = open_store(&VolumeConfig {
        backend: "sqlite3".into(),
        path: None,
        url: None,
        ..VolumeConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, VolumeError::UnknownBackend(_)));
    assert!(err.to_string().contains("\"redb\""));
    let err = open_store(&VolumeConfig {
        backend: "redis".into(),
        path: None,
        url: None,
        ..VolumeConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, VolumeError::MissingUrl));
}

// ---- redis --------------------------------------------------------------------------------

/// A `redis-server` this test started on a free loopback port; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis() -> Option<RedisServer> {
    start_redis_on(free_port())
}

fn start_redis_on(port: u16) -> Option<RedisServer> {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "\n!!!!! SKIPPING REDIS TEST: redis-server not found. Install it with \
             `apt-get install -y redis-server` to run the Redis volume tests. !!!!!\n"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let server = RedisServer {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not come up on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

#[tokio::test]
async fn redis_check_and_add_semantics() {
    let Some(server) = start_redis() else { return };
    let store = RedisStore::open(&server.url(), VolumeOptions::default()).unwrap();
    let a = store
        .admit(&claim(
            "T",
            vec![subject(1, false), subject(2, true)],
            Some(3),
        ))
        .await
        .unwrap();
    assert_eq!(a, admitted(2, 2));
    let a = store
        .admit(&claim(
            "T",
            vec![subject(1, false), subject(2, true)],
            Some(3),
        ))
        .await
        .unwrap();
    assert_eq!(a, admitted(0, 2));
    let a = store
        .admit(&claim(
            "T",
            vec![subject(3, false), subject(4, false)],
            Some(3),
        ))
        .await
        .unwrap();
    assert_eq!(a, refused(3, 2, 2));
    let mut sensitive_capped = claim("T", vec![subject(5, true)], None);
    sensitive_capped.max_sensitive_individuals = Some(1);
    let a = store.admit(&sensitive_capped).await.unwrap();
    assert_eq!(a, refused(1, 1, 1));
    // A repeat under a changed cap: nothing new is counted, the cap on record follows (the
    // script skips writes only when nothing at all changed).
    let a = store
        .admit(&claim("T", vec![subject(2, true)], Some(4)))
        .await
        .unwrap();
    assert_eq!(a, admitted(0, 2));
    let rows = store.report(Some(2026)).await.unwrap();
    let t = rows.iter().find(|r| r.transfer == "T").unwrap();
    assert_eq!((t.individuals, t.sensitive_individuals), (2, 1));
    assert_eq!(t.max_individuals, Some(4));
    assert!(t.first_seen.is_some());
    let entity = rows.iter().find(|r| r.transfer == ENTITY_LEDGER).unwrap();
    assert_eq!(entity.individuals, 2);
    assert_eq!(store.guard().snapshot().individuals, 2);
    let json: serde_json::Value = serde_json::from_str(&report::render_json(&rows)).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_redis_replicas_racing_at_the_cap_never_exceed_it() {
    let Some(server) = start_redis() else { return };
    let a: Arc<dyn VolumeStore> =
        Arc::new(RedisStore::open(&server.url(), VolumeOptions::default()).unwrap());
    let b: Arc<dyn VolumeStore> =
        Arc::new(RedisStore::open(&server.url(), VolumeOptions::default()).unwrap());
    let n = race(&[Arc::clone(&a), Arc::clone(&b)], 400, 100).await;
    assert_eq!(n, 100);
    // Both replicas see the same count.
    for store in [&a, &b] {
        let rows = store.report(Some(2026)).await.unwrap();
        let row = rows.iter().find(|r| r.transfer == "RACE").unwrap();
        assert_eq!(row.individuals, 100);
    }
    // At the cap, one more new individual is refused by either replica.
    for store in [&a, &b] {
        let c = claim("RACE", vec![subject(10_000, false)], Some(100));
        assert_eq!(store.admit(&c).await.unwrap(), refused(100, 100, 1));
    }
}

#[tokio::test]
async fn unreachable_redis_applies_the_outage_mode_without_crashing() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let options = VolumeOptions {
        redis_timeout: Duration::from_millis(500),
        ..VolumeOptions::default()
    };
    let closed = RedisStore::open(&url, options.clone()).unwrap();
    let err = closed
        .admit(&claim("T", vec![subject(1, false)], Some(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, VolumeError::Unavailable(_)), "{err}");
    assert_eq!(closed.guard().snapshot().store_unavailable_total, 1);

    let open = RedisStore::open(
        &url,
        VolumeOptions {
            unavailable: UnavailableMode::Open,
            ..options
        },
    )
    .unwrap();
    let a = open
        .admit(&claim("T", vec![subject(1, false)], Some(10)))
        .await
        .unwrap();
    assert_eq!(a, admitted(0, 0));
    assert_eq!(open.guard().snapshot().store_unavailable_total, 1);
    assert!(matches!(
        RedisStore::open("not a url", VolumeOptions::default()),
        Err(VolumeError::BadUrl { .. })
    ));
}

#[tokio::test]
async fn redis_outage_mid_run_then_recovery() {
    let Some(server) = start_redis() else { return };
    let port = server.port;
    let options = VolumeOptions {
        redis_timeout: Duration::from_millis(500),
        ..VolumeOptions::default()
    };
    let store = RedisStore::open(&server.url(), options).unwrap();
    let c = claim("T", vec![subject(1, false)], Some(10));
    assert_eq!(store.admit(&c).await.unwrap(), admitted(1, 1));
    drop(server);
    let err = store.admit(&c).await.unwrap_err();
    assert!(matches!(err, VolumeError::Unavailable(_)), "{err}");
    // The same address comes back (empty, as after a failover without persistence): the
    // store reconnects by itself.
    let _server = start_redis_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.admit(&c).await {
            Ok(a) => {
                assert_eq!(a, admitted(1, 1));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no reconnect: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.guard().snapshot().store_unavailable_total >= 1);
}

#[tokio::test]
async fn redis_entity_guard_refuses_uncovered_thresholds_atomically() {
    let Some(server) = start_redis() else { return };
    // Only a small-volume exemption on file: no sensitive PI is covered (entity cap 0).
    let options = VolumeOptions {
        guard: chujing::volume::GuardOptions {
            block_uncovered: true,
            ..Default::default()
        },
        ..VolumeOptions::default()
    };
    let store = RedisStore::open(&server.url(), options).unwrap();
    let c = claim("SV", vec![subject(1, false), subject(2, true)], None);
    assert_eq!(store.admit(&c).await.unwrap(), refused(0, 0, 1));
    // All or nothing: the transfer ledger did not count the personal-only individual either.
    assert!(store.report(Some(2026)).await.unwrap().is_empty());
    let c = claim("SV", vec![subject(1, false)], None);
    assert_eq!(store.admit(&c).await.unwrap(), admitted(1, 1));
    let rows = store.report(Some(2026)).await.unwrap();
    let entity = rows.iter().find(|r| r.transfer == ENTITY_LEDGER).unwrap();
    assert_eq!(
        (entity.individuals, entity.max_individuals),
        (1, Some(99_999))
    );
}
