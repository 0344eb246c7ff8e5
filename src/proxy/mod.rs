//! The proxy: hyper services for forward and reverse listeners. It only wires the pipeline
//! (see [`pipeline`]): resolve → locate → stream through the classifier → decide → forward or
//! refuse → audit. Everything a request needs that can change on reload lives in a
//! [`Runtime`], swapped atomically; a request keeps the runtime it started with.

pub mod connect;
pub mod drain;
pub mod headers;
pub mod inspect;
pub mod limits;
pub mod pipeline;
pub mod reload;
pub mod respond;
pub mod status;
pub mod target;
mod tunnels;
pub mod upstream;
pub mod workers;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::audit::{AuditError, AuditEvent, AuditLog, ErrorFields, Outcome, RequestFacts};
use crate::classify::{Classifier, ClassifierOptions, ClassifyError, ScanReport};
use crate::config::{ListenerConfig, LoadedConfig, Mode, TlsFiles};
use crate::geo::{Destination, GeoDb, GeoError, Resolver};
use crate::live::LiveHub;
use crate::policy::{Action, Decision, Policy, PolicyError};
use crate::telemetry::admin::targets_admin;
use crate::telemetry::logging::{log_blocked, BlockedRequest};
use crate::telemetry::metrics::Metrics;
use crate::volume::{VolumeError, VolumeStore};

use pipeline::ConnInfo;
use respond::ProxyBody;
use status::Health;
use target::{Route, RouteError};
use upstream::{UpstreamError, UpstreamPool, UpstreamTlsError};

/// Request ids a thread takes from the shared counter at a time.
const ID_BLOCK: u64 = 256;

/// Source of [`Proxy::instance`].
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

/// The next counter value of proxy `instance` for this thread, from its block of
/// [`ID_BLOCK`] values, taking a new block from `counter` when it is used up.
fn next_id(counter: &AtomicU64, instance: u64) -> u64 {
    thread_local! {
        /// (proxy instance, next id, end of the block).
        static BLOCK: Cell<(u64, u64, u64)> = const { Cell::new((u64::MAX, 0, 0)) };
    }
    BLOCK.with(|block| {
        let (owner, next, end) = block.get();
        if owner == instance && next < end {
            block.set((owner, next + 1, end));
            return next;
        }
        let start = counter.fetch_add(ID_BLOCK, Ordering::Relaxed);
        block.set((instance, start + 1, start + ID_BLOCK));
        start
    })
}

/// `{prefix:08x}{n:012x}` (lowercase hex, 20 characters), written without `format!`: one per
/// request.
fn request_id(prefix: u32, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 20];
    for (i, slot) in b[..8].iter_mut().enumerate() {
        *slot = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
    }
    // Twelve hex digits: the counter's low 48 bits (as `{:012x}` prints any value that fits).
    let wide = n >= 1 << 48;
    if wide {
        return format!("{prefix:08x}{n:012x}");
    }
    for (i, slot) in b[8..].iter_mut().enumerate() {
        *slot = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
    }
    String::from_utf8(b.to_vec()).expect("hex digits are ASCII")
}

/// Why the proxy could not start (or a reload was refused).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    UpstreamTls(#[from] UpstreamTlsError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener TLS files {cert} / {key}: {message}")]
    ListenerTls {
        cert: String,
        key: String,
        message: String,
    },
}

/// Everything a request needs that a reload may replace.
pub struct Runtime {
    pub loaded: LoadedConfig,
    pub geo: Arc<GeoDb>,
    pub resolver: Resolver,
    pub classifier: Arc<Classifier>,
    pub policy: Arc<Policy>,
    pub routes: Vec<Route>,
    pub volume: Arc<dyn VolumeStore>,
    /// CONNECT interception (`[tls_intercept]`): the CA, leaf cache and bypass list.
    /// `None`: CONNECT is answered with 501.
    pub tls: Option<Arc<crate::tls::Interceptor>>,
    /// When this runtime was built (for `/policy`).
    pub loaded_at: chrono::DateTime<chrono::Utc>,
}

impl Runtime {
    /// The audit outcome of a decided request under this runtime (destination, decision and
    /// findings known; no status or error): call sites add what happened, naming `enforced`.
    fn decided<'a>(
        &'a self,
        destination: &'a Destination,
        decision: &'a Decision,
        report: &'a ScanReport,
    ) -> Outcome<'a> {
        Outcome {
            destination: Some(destination),
            decision: Some(decision),
            report: Some(report),
            mode: self.policy.mode(),
            enforced: false,
            status: None,
            error: None,
            policy_hash: &self.loaded.hash,
        }
    }

    /// Builds every part from a validated configuration. `volume` is shared across reloads.
    pub fn build(
        loaded: LoadedConfig,
        volume: Arc<dyn VolumeStore>,
    ) -> Result<Runtime, StartError> {
        let config = &loaded.config;
        let geo = Arc::new(GeoDb::open(&config.geo)?);
        let classifier = Arc::new(Classifier::new(ClassifierOptions::from_config(config)?)?);
        let policy = Arc::new(Policy::from_config(config)?);
        let routes = config
            .routes
            .iter()
            .map(Route::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let tls = config
            .tls_intercept
            .as_ref()
            .map(crate::tls::Interceptor::from_config)
            .transpose()?
            .map(Arc::new);
        Ok(Runtime {
            tls,
            resolver: Resolver::new(&config.resolve),
            geo,
            classifier,
            policy,
            routes,
            volume,
            loaded,
            loaded_at: chrono::Utc::now(),
        })
    }
}

/// The running proxy: current runtime plus what outlives reloads.
pub struct Proxy {
    runtime: ArcSwap<Runtime>,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
    /// Addresses the embedder declares as the proxy's own besides its listeners (the admin
    /// listener's real address, in `run`). See [`Proxy::own_addresses`].
    own_addrs: OnceLock<Vec<SocketAddr>>,
    health: Health,
    upstream: UpstreamPool,
    id_prefix: u32,
    /// Request ids handed to workers in blocks of [`ID_BLOCK`] (see `next_request_id`).
    id_counter: AtomicU64,
    /// Tells this proxy's id blocks from another's in a thread's cache (tests run several).
    instance: u64,
    /// Addresses the listeners actually bound (port 0 resolved), set when serving starts:
    /// CONNECT must never tunnel back into the proxy.
    listening: std::sync::OnceLock<Vec<SocketAddr>>,
    live: LiveHub,
    /// Intercepted CONNECT tunnels, which the connection-level drain cannot see.
    tunnels: Arc<tunnels::Tunnels>,
}

impl Proxy {
    pub fn new(runtime: Runtime) -> Result<Arc<Proxy>, StartError> {
        let audit = Arc::new(AuditLog::from_config(&runtime.loaded.config.audit)?);
        Proxy::with_audit(runtime, audit)
    }

    /// Like [`Proxy::new`], sharing an audit log opened earlier (the volume store's guard
    /// writes its watermark events to the same file).
    pub fn with_audit(runtime: Runtime, audit: Arc<AuditLog>) -> Result<Arc<Proxy>, StartError> {
        let config = &runtime.loaded.config;
        let upstream = UpstreamPool::new(
            config.upstream.ca_bundle.as_deref(),
            config
                .upstream
                .connect_timeout_ms
                .map(Duration::from_millis),
        )?;
        let mut prefix = [0u8; 4];
        let _ = getrandom::getrandom(&mut prefix);
        let metrics = Arc::new(Metrics::new());
        observe_runtime(&metrics, &runtime);
        Ok(Arc::new(Proxy {
            runtime: ArcSwap::from_pointee(runtime),
            audit,
            metrics,
            own_addrs: OnceLock::new(),
            health: Health::default(),
            upstream,
            id_prefix: u32::from_le_bytes(prefix),
            id_counter: AtomicU64::new(0),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            listening: std::sync::OnceLock::new(),
            live: LiveHub::default(),
            tunnels: Arc::default(),
        }))
    }

    /// The runtime requests started now will use.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The live view's state: every audited decision is recorded there (serve it with
    /// [`crate::live::handle`] on the admin listener).
    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    /// Replaces the runtime; requests in flight keep the old one.
    pub fn swap_runtime(&self, runtime: Runtime) {
        observe_runtime(&self.metrics, &runtime);
        self.runtime.store(Arc::new(runtime));
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Declares the proxy's own addresses (listeners, admin); set once after binding.
    pub fn set_own_addresses(&self, addrs: Vec<SocketAddr>) {
        let _ = self.own_addrs.set(addrs);
    }

    /// Every address that is the proxy itself: the listeners as bound (port 0 resolved), the
    /// declared ones (admin), and the configured listener and admin binds. Requests and
    /// tunnels to any of them are refused, so the admin endpoints are never reachable
    /// through the proxy and no request loops back into it.
    pub fn own_addresses<'a>(&'a self, rt: &'a Runtime) -> impl Iterator<Item = SocketAddr> + 'a {
        let config = &rt.loaded.config;
        self.listening
            .get()
            .into_iter()
            .chain(self.own_addrs.get())
            .flatten()
            .copied()
            .chain(
                config
                    .listeners
                    .iter()
                    .map(|l| l.bind)
                    .filter(|a| a.port() != 0),
            )
            .chain(config.admin.as_ref().map(|a| a.bind))
    }

    /// Whether `ip:port` is one of [`Proxy::own_addresses`].
    pub fn is_own_address(&self, rt: &Runtime, ip: std::net::IpAddr, port: u16) -> bool {
        self.own_addresses(rt).any(|a| targets_admin(a, ip, port))
    }

    /// Records a reload outcome (metrics hook).
    fn reload_outcome(&self, ok: bool) {
        self.metrics.reload(ok);
    }

    /// A request id unique within this proxy's run: its random prefix and a counter. Each
    /// thread takes the counter [`ID_BLOCK`] values at a time, so workers do not share one
    /// atomic (and its cache line) per request; ids are unique, not ordered across workers.
    fn next_request_id(&self) -> String {
        request_id(self.id_prefix, next_id(&self.id_counter, self.instance))
    }

    /// Writes an audit event for an outbound decision (domestic only when configured).
    fn audit(&self, rt: &Runtime, event: &AuditEvent) {
        // The live view counts domestic traffic too (its charts are by region).
        self.live.record(event);
        let domestic = event.chujing.reason == Some("domestic");
        if domestic && !rt.loaded.config.audit.include_domestic {
            return;
        }
        // A forwarded request's line joins this worker's batch, written once the worker has
        // nothing left to run; refusals and failures are written before their response.
        let batch = rt.loaded.config.audit.batch_forwarded
            && event.event.outcome == "success"
            && workers::current_worker() != 0;
        let written = if batch {
            self.audit.defer(event)
        } else {
            self.audit.write(event)
        };
        self.audit_written(written);
    }

    /// Writes the audit lines this worker deferred: when they are due (`Idle::Turn`: its
    /// event loop is about to wait), or all of them (`Idle::Last`: the worker is stopping).
    fn flush_audit(&self, why: workers::Idle) {
        let written = match why {
            workers::Idle::Turn => crate::audit::flush_deferred_due(|| self.audit_batch_delay()),
            workers::Idle::Last => crate::audit::flush_deferred(),
        };
        if let Some(written) = written {
            self.audit_written(written);
        }
    }

    /// How long a forwarded request's audit line may wait in its worker's batch.
    fn audit_batch_delay(&self) -> Duration {
        self.runtime().loaded.config.audit.batch_max_delay()
    }

    /// Per worker: writes the audit batch once its first line has waited the configured
    /// delay, so lines go out in time even when no later request comes along (the end-of-turn
    /// check alone would leave them until the loop next wakes).
    async fn flush_audit_when_due(self: Arc<Self>) {
        loop {
            let since = crate::audit::batch_started().await;
            let delay = self.audit_batch_delay();
            if delay.is_zero() {
                // Written at the end of every turn by the idle hook. Look again later: a
                // reload may set a delay.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(since + delay)).await;
            if let Some(written) = crate::audit::flush_deferred_due(|| delay) {
                self.audit_written(written);
            }
        }
    }

    fn audit_written(&self, written: Result<(), AuditError>) {
        match written {
            Ok(()) => {
                // Only a change is stored: every worker writes here, so an unconditional
                // store would move the cache line between cores on every request.
                if !self.health.audit_ok.load(Ordering::Relaxed) {
                    self.health.audit_ok.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                self.health.audit_ok.store(false, Ordering::Relaxed);
                self.metrics.audit_write_error();
                tracing::error!(error = %e, "audit write failed");
            }
        }
    }

    /// Audits a limit that ended a connection before any request could be decided (no
    /// destination, no decision: only who hit which limit).
    fn audit_limit(&self, conn: &ConnInfo, request_id: &str, hit: limits::LimitHit) {
        let rt = self.runtime();
        let facts = RequestFacts {
            request_id,
            listener: match conn.kind {
                crate::config::ListenerKind::Forward => "forward",
                crate::config::ListenerKind::Reverse => "reverse",
            },
            client: Some(conn.client),
            method: "",
            scheme: if conn.tls { "https" } else { "http" },
            host: "",
            port: 0,
            version: "",
            started: chrono::Utc::now(),
        };
        let event = AuditEvent::new(
            &facts,
            Outcome {
                destination: None,
                decision: None,
                report: None,
                mode: rt.policy.mode(),
                enforced: false,
                status: Some(hit.status),
                error: Some(ErrorFields {
                    kind: hit.kind.to_string(),
                    message: hit.message.to_string(),
                }),
                policy_hash: &rt.loaded.hash,
            },
        );
        self.audit(&rt, &event);
    }

    /// Metrics and the canonical log line for a decision that was made.
    fn observe_decision(
        &self,
        rt: &Runtime,
        facts: &RequestFacts<'_>,
        destination: &Destination,
        decision: &Decision,
        report: &ScanReport,
    ) {
        let enforced = decision.action == Action::Block && rt.policy.mode() == Mode::Enforce;
        self.metrics
            .record_decision(decision, destination.region, enforced);
        self.metrics.record_findings(report);
        if decision.action == Action::Block {
            if let Some(client) = facts.client {
                log_blocked(&BlockedRequest {
                    request_id: facts.request_id,
                    client,
                    destination,
                    decision,
                    report,
                    enforced,
                });
            }
        }
    }

    /// Refuses a request the policy blocked (enforce mode).
    fn refuse(
        &self,
        rt: &Runtime,
        facts: &RequestFacts<'_>,
        destination: &Destination,
        decision: &Decision,
        report: &ScanReport,
    ) -> Response<ProxyBody> {
        self.record_refusal(rt, facts, destination, decision, report);
        respond::blocked(decision.reason.as_str(), facts.request_id)
    }

    /// The audit event (403, enforced), metrics and log line of a refused request; the
    /// caller answers the client (an HTTP response, or bytes written into a tunnel).
    fn record_refusal(
        &self,
        rt: &Runtime,
        facts: &RequestFacts<'_>,
        destination: &Destination,
        decision: &Decision,
        report: &ScanReport,
    ) {
        let event = AuditEvent::new(
            facts,
            Outcome {
                enforced: true,
                status: Some(403),
                ..rt.decided(destination, decision, report)
            },
        );
        self.audit(rt, &event);
        self.observe_decision(rt, facts, destination, decision, report);
    }

    /// Streams the upstream's response to the client and audits the decision.
    fn deliver(
        &self,
        rt: &Runtime,
        facts: &RequestFacts<'_>,
        destination: &Destination,
        decision: &Decision,
        report: &ScanReport,
        resp: Response<Incoming>,
    ) -> Response<ProxyBody> {
        let event = AuditEvent::new(
            facts,
            Outcome {
                enforced: false,
                status: Some(resp.status().as_u16()),
                ..rt.decided(destination, decision, report)
            },
        );
        self.audit(rt, &event);
        self.observe_decision(rt, facts, destination, decision, report);
        pipeline::client_response(resp)
    }

    /// 502 for an upstream that could not be reached or failed mid-exchange.
    fn upstream_failed(
        &self,
        rt: &Runtime,
        facts: &RequestFacts<'_>,
        destination: &Destination,
        decision: &Decision,
        report: &ScanReport,
        error: UpstreamError,
    ) -> Response<ProxyBody> {
        let event = AuditEvent::new(
            facts,
            Outcome {
                enforced: false,
                status: Some(match error.kind {
                    "http_response_timeout" | "connection_timeout" => 504,
                    _ => 502,
                }),
                error: Some(ErrorFields {
                    kind: error.kind.to_string(),
                    message: error.message.clone(),
                }),
                ..rt.decided(destination, decision, report)
            },
        );
        self.audit(rt, &event);
        self.observe_decision(rt, facts, destination, decision, report);
        // RFC 9110 §15.6.5: a gateway that timed out waiting answers 504, not 502.
        let status = match error.kind {
            "http_response_timeout" | "connection_timeout" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        respond::error(
            status,
            "upstream_unreachable",
            error.kind,
            &error.message,
            facts.request_id,
        )
    }
}

/// Keeps the metrics' bounded label sets in line with the configuration.
fn observe_runtime(metrics: &Metrics, runtime: &Runtime) {
    let config = &runtime.loaded.config;
    let custom: Vec<&str> = config
        .detectors
        .iter()
        .map(|d| d.category.as_str())
        .collect();
    metrics.register_categories(&custom);
    let ids: Vec<&str> = config.transfers.iter().map(|t| t.id.as_str()).collect();
    metrics.retain_transfers(&ids);
    for t in &config.transfers {
        metrics.set_transfer_caps(
            &t.id,
            t.max_individuals_per_year,
            t.max_sensitive_individuals_per_year,
        );
    }
}

/// A bound listener, ready to serve.
pub struct BoundListener {
    pub config: ListenerConfig,
    pub listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl BoundListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.bind)
    }
}

/// Binds every configured listener (port 0 picks a free port; see `local_addr`).
pub async fn bind(listeners: &[ListenerConfig]) -> Result<Vec<BoundListener>, StartError> {
    let mut bound = Vec::with_capacity(listeners.len());
    for config in listeners {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        let tls = config.tls.as_ref().map(listener_tls).transpose()?;
        bound.push(BoundListener {
            config: config.clone(),
            listener,
            tls,
        });
    }
    Ok(bound)
}

fn listener_tls(files: &TlsFiles) -> Result<TlsAcceptor, StartError> {
    let fail = |message: String| StartError::ListenerTls {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        message,
    };
    let cert_pem = std::fs::read(&files.cert).map_err(|e| fail(e.to_string()))?;
    let key_pem = std::fs::read(&files.key).map_err(|e| fail(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no private key in the key file".into()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| fail(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves all listeners until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for up to `drain` before returning. The connection cap and the per-
/// connection limits are read from the runtime at start (a reload does not change them).
pub async fn serve(
    proxy: Arc<Proxy>,
    listeners: Vec<BoundListener>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let draining = Arc::new(drain::Drain::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = proxy.runtime().loaded.config.limits.clone();
    let worker_count = proxy.runtime().loaded.config.server.worker_count();
    let flusher = Arc::clone(&proxy);
    let on_idle: Arc<dyn Fn(workers::Idle) + Send + Sync> =
        Arc::new(move |why| flusher.flush_audit(why));
    let workers = match workers::Workers::start(worker_count, Some(on_idle)) {
        Ok(w) => {
            let proxy = Arc::clone(&proxy);
            w.spawn_each(move || Arc::clone(&proxy).flush_audit_when_due());
            Some(Arc::new(w))
        }
        Err(e) => {
            // Serving on the caller's runtime is slower, not wrong.
            tracing::error!(error = %e, workers = worker_count, "cannot start connection workers; serving on the main runtime");
            None
        }
    };
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut accept_tasks = Vec::new();
    let _ = proxy
        .listening
        .set(listeners.iter().map(BoundListener::local_addr).collect());
    for bound in listeners {
        let proxy = Arc::clone(&proxy);
        let draining = Arc::clone(&draining);
        let connections = Arc::clone(&connections);
        let limits = limits.clone();
        let mut stop = stop_rx.clone();
        let workers = workers.clone();
        accept_tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.changed() => break,
                    accepted = bound.listener.accept() => accepted,
                };
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = ConnInfo {
                    kind: bound.config.kind,
                    client,
                    local: stream.local_addr().ok(),
                    tls: bound.tls.is_some(),
                    tunnel: None,
                };
                let proxy = Arc::clone(&proxy);
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    // Over the cap: answer (plain HTTP/1.1 only; a TLS client just sees the
                    // close), audit, and close, without spawning anything.
                    let request_id = proxy.next_request_id();
                    proxy.audit_limit(&conn, &request_id, limits::TOO_MANY_CONNECTIONS);
                    if !conn.tls {
                        limits::refuse_connection(&stream, &request_id);
                    }
                    continue;
                };
                let tls = bound.tls.clone();
                let watch = draining.watch();
                let limits = limits.clone();
                let Some(workers) = workers.as_ref() else {
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _connection = proxy.metrics.connection_guard();
                        serve_connection(proxy, conn, stream, tls, watch, &limits).await;
                    });
                    continue;
                };
                // Hand the socket to a worker: it leaves this reactor and joins the worker's.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand an accepted connection to a worker");
                        continue;
                    }
                };
                workers.spawn(move || async move {
                    let _permit = permit;
                    let _connection = proxy.metrics.connection_guard();
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "worker cannot adopt an accepted connection");
                            return;
                        }
                    };
                    serve_connection(proxy, conn, stream, tls, watch, &limits).await;
                });
            }
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
    // Connections, then intercepted tunnels, within one deadline. Tunnels hear of the drain
    // first; they are counted only once the connections are done, because a CONNECT still
    // being decided on one of them may register its tunnel late.
    proxy.tunnels.start_drain();
    let drained = async {
        draining.drain().await;
        proxy.tunnels.closed().await;
    };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(
            ?drain,
            "drain deadline reached; closing remaining connections"
        );
    }
    // Ends the workers' event loops, closing whatever outlived the drain, once they have
    // written the audit lines they deferred.
    if let Some(workers) = workers {
        workers.stop(Duration::from_secs(2)).await;
    }
}

/// One client connection under the configured limits: TLS handshake bounded by the header
/// timeout, request heads bounded in size, count and time, HTTP/2 streams capped, and the
/// connection closed once idle. A limit that ends the connection is audited.
async fn serve_connection(
    proxy: Arc<Proxy>,
    conn: ConnInfo,
    stream: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
    watch: drain::DrainWatch,
    limits: &crate::config::LimitsConfig,
) {
    let activity = Arc::new(limits::Activity::default());
    let io = limits::ActivityIo::new(stream, Arc::clone(&activity));
    let service = {
        let proxy = Arc::clone(&proxy);
        let activity = Arc::clone(&activity);
        let conn = conn.clone();
        service_fn(move |req| {
            let proxy = Arc::clone(&proxy);
            let conn = conn.clone();
            let in_flight = activity.request();
            async move {
                let response = pipeline::handle(proxy, conn, req).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(limits.max_headers)
        // hyper refuses buffers below 8 KiB; the head limit is the buffer limit.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // CVE-2023-44487 (rapid reset): bound streams reset before they were accepted.
        .max_pending_accept_reset_streams(Some(20))
        .keep_alive_interval(Some(Duration::from_millis(limits.idle_timeout_ms / 2)))
        .keep_alive_timeout(header_timeout);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let result = match tls {
        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(io)).await {
            Ok(Ok(tls_stream)) => {
                let fut = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                tokio::select! {
                    r = drain::Drained::new(fut.into_owned(), watch, |c| c.graceful_shutdown()) => Some(r),
                    () = activity.idle_expired(idle) => None,
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, client = %conn.client, "TLS handshake failed");
                return;
            }
            Err(_) => {
                let request_id = proxy.next_request_id();
                proxy.audit_limit(&conn, &request_id, limits::TLS_HANDSHAKE_TIMEOUT);
                return;
            }
        },
        None => {
            let fut = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::select! {
                r = drain::Drained::new(fut.into_owned(), watch, |c| c.graceful_shutdown()) => Some(r),
                () = activity.idle_expired(idle) => None,
            }
        }
    };
    match result {
        None => tracing::debug!(client = %conn.client, "idle connection closed"),
        Some(Ok(())) => {}
        Some(Err(e)) => {
            if let Some(hit) = limits::classify_connection_error(&*e, activity.requests()) {
                let request_id = proxy.next_request_id();
                proxy.audit_limit(&conn, &request_id, hit);
            }
            tracing::debug!(error = %e, client = %conn.client, "connection ended with an error");
        }
    }
}

/// Convenience for tests and `run`: build, bind and return the proxy with its listeners.
pub async fn start(
    loaded: LoadedConfig,
    volume: Arc<dyn VolumeStore>,
) -> Result<(Arc<Proxy>, Vec<BoundListener>), StartError> {
    let runtime = Runtime::build(loaded, volume)?;
    let listeners = bind(&runtime.loaded.config.listeners).await?;
    let proxy = Proxy::new(runtime)?;
    Ok((proxy, listeners))
}

/// Like [`start`], with an audit log shared with the volume store's guard.
pub async fn start_with_audit(
    loaded: LoadedConfig,
    volume: Arc<dyn VolumeStore>,
    audit: Arc<AuditLog>,
) -> Result<(Arc<Proxy>, Vec<BoundListener>), StartError> {
    let runtime = Runtime::build(loaded, volume)?;
    let listeners = bind(&runtime.loaded.config.listeners).await?;
    let proxy = Proxy::with_audit(runtime, audit)?;
    Ok((proxy, listeners))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_across_threads_and_proxies() {
        use std::collections::HashSet;
        use std::sync::atomic::AtomicU64;
        let (a, b) = (AtomicU64::new(0), AtomicU64::new(0));
        let per_thread = 3 * super::ID_BLOCK as usize + 17;
        let taken: Vec<(Vec<u64>, Vec<u64>)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        // Two proxies interleaved on one thread: neither continues the
                        // other's block.
                        let mut mine = (Vec::new(), Vec::new());
                        for _ in 0..per_thread {
                            mine.0.push(super::next_id(&a, 1_000_001));
                            mine.1.push(super::next_id(&b, 1_000_002));
                        }
                        mine
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for ids in [
            taken
                .iter()
                .flat_map(|t| t.0.iter().copied())
                .collect::<Vec<_>>(),
            taken
                .iter()
                .flat_map(|t| t.1.iter().copied())
                .collect::<Vec<_>>(),
        ] {
            let distinct: HashSet<u64> = ids.iter().copied().collect();
            assert_eq!(distinct.len(), 4 * per_thread, "every id once");
        }
        // One proxy on a thread counts up within its block and claims blocks from the
        // shared counter only when one is used up.
        let c = AtomicU64::new(0);
        let ids: Vec<u64> = (0..super::ID_BLOCK + 1)
            .map(|_| super::next_id(&c, 1_000_003))
            .collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive");
        assert_eq!(
            c.load(std::sync::atomic::Ordering::Relaxed),
            2 * super::ID_BLOCK
        );
    }

    #[test]
    fn request_id_is_prefix_and_counter_in_fixed_width_hex() {
        for (prefix, n) in [
            (0u32, 0u64),
            (0xaed0_b268, 0x1_1996),
            (u32::MAX, (1 << 48) - 1),
            (0x0000_00ff, 1 << 48),
            (7, u64::MAX),
        ] {
            assert_eq!(
                super::request_id(prefix, n),
                format!("{prefix:08x}{n:012x}")
            );
        }
    }
}
