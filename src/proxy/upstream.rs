//! Connections to upstreams. A connection is keyed by (scheme, host, IP, port): the proxy
//! connects to exactly the IP that was geolocated, never re-resolving behind the policy's back.
//! HTTPS upstreams are verified (webpki roots plus an optional CA bundle) and offered ALPN
//! `h2` and `http/1.1`; HTTP/2 connections are shared, HTTP/1.1 connections are reused once
//! their previous exchange has finished.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::inspect::UpstreamBody;
use crate::shard::Padded;

/// HTTP/1.1 connections kept per key and worker (idle, or finishing a response).
const MAX_IDLE_PER_KEY: usize = 32;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pool slots for workers 1..=IDLE_SLOTS; workers beyond share the last one (correct, just
/// contended).
const IDLE_SLOTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Identity of a pooled connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub scheme: Scheme,
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
}

/// Hashes the host's bytes and one word packing address, port and scheme: two hasher
/// writes instead of the derive's six (SipHash pays per write; the pool hashes a key on
/// every checkout and every return). Keys equal under the derived `Eq` hash alike.
impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let ip = match self.ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) ^ (1 << 127),
        };
        let tail = u64::from(self.port) << 1 | u64::from(self.scheme == Scheme::Https);
        state.write(self.host.as_bytes());
        state.write_u128(ip ^ u128::from(tail) << 64);
    }
}

/// Why an upstream exchange failed, with its RFC 9209 `Proxy-Status` error type.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct UpstreamError {
    /// RFC 9209 error type, e.g. `connection_refused`, `tls_certificate_error`.
    pub kind: &'static str,
    pub message: String,
}

impl UpstreamError {
    fn new(kind: &'static str, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            kind,
            message: message.into(),
        }
    }
}

/// Errors building the upstream TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error(
        "cannot read upstream CA bundle {path}: {message}; set [upstream] ca_bundle to a PEM file"
    )]
    Bundle { path: String, message: String },
}

/// Which protocol a connection speaks.
enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

/// The protocol chosen for an exchange, so the caller can shape the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Idle connections, per connection worker ([`super::workers::current_worker`]) and key: a
/// connection is driven by a task on the worker that opened it, so it is reused there
/// (using it from another worker would put a cross-thread wake on every exchange).
#[derive(Default)]
struct Idle {
    /// One entry per key, for both protocols, so a checkout looks the key up once.
    by_key: HashMap<PoolKey, IdleConns>,
    /// Entries at which keys without connections are dropped (see [`Idle::entry`]).
    prune_at: usize,
}

#[derive(Default)]
struct IdleConns {
    h1: Vec<http1::SendRequest<UpstreamBody>>,
    /// An HTTP/2 connection is shared by all requests on it: one per key.
    h2: Option<http2::SendRequest<UpstreamBody>>,
}

/// Keys the idle map holds before it first drops those left without connections.
const PRUNE_MIN: usize = 1024;

impl Idle {
    /// The entry for `key`, created if needed. A checkout leaves its key's entry in place
    /// (empty, until the connection comes back), so a forward proxy that reaches many hosts
    /// would keep one entry per host ever seen: past `prune_at` entries, the empty ones go,
    /// and the next pruning waits until the map has doubled, so the cost stays constant per
    /// insertion.
    fn entry(&mut self, key: PoolKey) -> &mut IdleConns {
        if self.by_key.len() >= self.prune_at.max(PRUNE_MIN) && !self.by_key.contains_key(&key) {
            self.by_key
                .retain(|_, conns| !conns.h1.is_empty() || conns.h2.is_some());
            self.prune_at = 2 * self.by_key.len();
        }
        self.by_key.entry(key).or_default()
    }
}

/// Connection pool and connector for all upstreams.
#[derive(Clone)]
pub struct UpstreamPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    tls: TlsConnector,
    connect_timeout: Duration,
    /// One slot per connection worker (slot 0: threads that are not workers), each with
    /// its own lock, so workers never contend for the pool, and on cache lines of its own:
    /// adjacent slots on one line would make every worker's lock and unlock move that line
    /// between cores.
    idle: Box<[Padded<Mutex<Idle>>]>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool").finish_non_exhaustive()
    }
}

/// A checked-out connection, ready for one request.
pub struct Checkout {
    key: PoolKey,
    sender: Sender,
}

impl Checkout {
    pub fn protocol(&self) -> Protocol {
        match self.sender {
            Sender::H1(_) => Protocol::Http1,
            Sender::H2(_) => Protocol::Http2,
        }
    }
}

impl UpstreamPool {
    pub fn new(
        ca_bundle: Option<&Path>,
        connect_timeout: Option<Duration>,
    ) -> Result<UpstreamPool, UpstreamTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path).map_err(|e| UpstreamTlsError::Bundle {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| UpstreamTlsError::Bundle {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| UpstreamTlsError::Bundle {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(UpstreamTlsError::Bundle {
                    path: path.display().to_string(),
                    message: "no PEM certificates found".into(),
                });
            }
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(UpstreamPool {
            inner: Arc::new(PoolInner {
                tls: TlsConnector::from(Arc::new(config)),
                connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                idle: (0..=IDLE_SLOTS).map(|_| Padded::default()).collect(),
            }),
        })
    }

    /// The calling worker's idle connections.
    fn slot(&self) -> std::sync::MutexGuard<'_, Idle> {
        let i = super::workers::current_worker().min(IDLE_SLOTS);
        self.inner.idle[i]
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for `key`: a live idle one, or a new one.
    pub async fn checkout(&self, key: PoolKey) -> Result<Checkout, UpstreamError> {
        if let Some(sender) = self.take_idle(&key) {
            return Ok(Checkout { key, sender });
        }
        // Boxed: connecting (TCP, TLS, the HTTP/2 handshake) is a ~7.7 KiB future, and it
        // would otherwise sit inline in every request's future, to be moved with it, although
        // most requests reuse a pooled connection.
        let sender = Box::pin(self.connect(&key)).await?;
        Ok(Checkout { key, sender })
    }

    fn take_idle(&self, key: &PoolKey) -> Option<Sender> {
        let mut idle = self.slot();
        let conns = idle.by_key.get_mut(key)?;
        if let Some(h2) = &conns.h2 {
            if h2.is_ready() {
                return Some(Sender::H2(h2.clone()));
            }
            conns.h2 = None;
        }
        let list = &mut conns.h1;
        // Newest first: the most recently used connection is the warmest. A connection
        // still streaming its last response body stays for later; a closed one goes.
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            if list[i].is_closed() {
                list.swap_remove(i);
            } else if list[i].is_ready() {
                return Some(Sender::H1(list.swap_remove(i)));
            }
        }
        None
    }

    async fn connect(&self, key: &PoolKey) -> Result<Sender, UpstreamError> {
        let addr = SocketAddr::new(key.ip, key.port);
        let tcp = match tokio::time::timeout(self.inner.connect_timeout, TcpStream::connect(addr))
            .await
        {
            Err(_) => {
                return Err(UpstreamError::new(
                    "connection_timeout",
                    format!("connecting to {addr} timed out"),
                ))
            }
            Ok(Err(e)) => return Err(connect_error(addr, e)),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        match key.scheme {
            Scheme::Http => handshake_h1(TokioIo::new(tcp)).await,
            Scheme::Https => {
                let name = ServerName::try_from(key.host.clone()).map_err(|_| {
                    UpstreamError::new(
                        "tls_protocol_error",
                        format!("{:?} is not a valid TLS server name", key.host),
                    )
                })?;
                let tls = self
                    .inner
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_error(&key.host, e))?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .map_err(|e| UpstreamError::new("http_protocol_error", e.to_string()))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    self.slot().entry(key.clone()).h2 = Some(sender.clone());
                    Ok(Sender::H2(sender))
                } else {
                    handshake_h1(TokioIo::new(tls)).await
                }
            }
        }
    }

    /// Sends the request on the checked-out connection and returns the response head.
    /// HTTP/1.1 connections go back to the pool once the exchange is complete.
    pub async fn send(
        &self,
        checkout: Checkout,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let Checkout { key, sender } = checkout;
        match sender {
            Sender::H2(mut h2) => h2.send_request(request).await.map_err(exchange_error),
            Sender::H1(mut h1) => {
                let response = h1.send_request(request).await.map_err(exchange_error)?;
                // Back in the pool at once, still busy: it becomes ready when the response
                // body has been read to the end, and `take_idle` only hands out ready ones.
                // (No task per request waiting for that moment.)
                let mut idle = self.slot();
                let list = &mut idle.entry(key).h1;
                if list.len() < MAX_IDLE_PER_KEY {
                    list.push(h1);
                }
                Ok(response)
            }
        }
    }
}

async fn handshake_h1<T>(io: TokioIo<T>) -> Result<Sender, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| UpstreamError::new("http_protocol_error", e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Sender::H1(sender))
}

fn connect_error(addr: SocketAddr, e: io::Error) -> UpstreamError {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::TimedOut => "connection_timeout",
        _ => "destination_unavailable",
    };
    UpstreamError::new(kind, format!("connecting to {addr}: {e}"))
}

fn tls_error(host: &str, e: io::Error) -> UpstreamError {
    let is_cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    let kind = if is_cert {
        "tls_certificate_error"
    } else {
        "tls_protocol_error"
    };
    UpstreamError::new(kind, format!("TLS handshake with {host:?} failed: {e}"))
}

fn exchange_error(e: hyper::Error) -> UpstreamError {
    let kind = if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        "http_response_incomplete"
    } else if e.is_body_write_aborted() || e.is_user() {
        "http_request_error"
    } else {
        "http_protocol_error"
    };
    UpstreamError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    use super::*;

    fn key(host: &str, ip: &str, port: u16, scheme: Scheme) -> PoolKey {
        PoolKey {
            scheme,
            host: host.to_owned(),
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn equal_keys_hash_alike_and_each_field_changes_the_hash() {
        let s = RandomState::new();
        let base = key("api.example.com", "127.0.0.2", 443, Scheme::Https);
        assert_eq!(s.hash_one(&base), s.hash_one(base.clone()));
        for other in [
            key("api.example.org", "127.0.0.2", 443, Scheme::Https),
            key("api.example.com", "127.0.0.3", 443, Scheme::Https),
            key("api.example.com", "::ffff:127.0.0.2", 443, Scheme::Https),
            key("api.example.com", "127.0.0.2", 444, Scheme::Https),
            key("api.example.com", "127.0.0.2", 443, Scheme::Http),
        ] {
            assert_ne!(base, other);
            assert_ne!(s.hash_one(&base), s.hash_one(&other), "{other:?}");
        }
    }

    /// A forward proxy reaching ever new hosts does not keep an entry per host: keys left
    /// without connections are dropped, a key with an idle connection stays.
    #[tokio::test]
    async fn keys_without_connections_are_pruned_and_live_ones_kept() {
        let (io, _peer) = tokio::io::duplex(64);
        let (sender, conn) = http1::handshake::<_, UpstreamBody>(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut idle = Idle::default();
        let live = key("live.test", "127.0.0.9", 80, Scheme::Http);
        idle.entry(live.clone()).h1.push(sender);
        let mut most = 0;
        for i in 0..20_000u32 {
            let host = format!("host{i}.test");
            idle.entry(key(&host, "127.0.0.2", 80, Scheme::Http));
            most = most.max(idle.by_key.len());
        }
        assert!(
            most <= 2 * PRUNE_MIN + 1,
            "the map stays bounded: {most} entries at most"
        );
        assert_eq!(idle.by_key.get(&live).map(|c| c.h1.len()), Some(1));
    }
}
