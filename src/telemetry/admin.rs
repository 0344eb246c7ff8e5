//! The admin listener (default `127.0.0.1:9901`): `/healthz`, `/readyz`, `/metrics`,
//! `/policy` over HTTP/1.1 on hyper 1.
//!
//! It runs on its own socket so it is never reachable through a proxy listener: the proxy
//! additionally refuses to forward to this address (see [`targets_admin`]). An optional
//! bearer token protects `/metrics`, `/policy` and anything added later; the probes
//! `/healthz` and `/readyz` stay open because kubelets and load balancers cannot be given a
//! secret without putting it in a manifest, and they reveal only check names.
//!
//! Routing is one `match` on method and path in [`route`]; new handlers (a web UI at `/`,
//! an event stream) are new arms there. Bodies are boxed so a streaming handler fits.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::telemetry::metrics::{self, Metrics};

/// Where the admin listener binds when `[admin]` does not say.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9901";

/// Environment variable that, when set, supplies the admin token (preferred over
/// `[admin] token`, so the secret can come from a Kubernetes Secret instead of the ConfigMap).
pub const ADMIN_TOKEN_ENV: &str = "CHUJING_ADMIN_TOKEN";

/// Slow or idle admin clients are dropped after this long without a full request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections get this long to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Concurrent admin connections; further clients wait in the listen backlog. Scrapers and
/// probes need a handful, and a cap keeps a misbehaving client from exhausting descriptors
/// the proxy listeners need.
const MAX_CONNECTIONS: usize = 64;

/// Response body of every admin route: boxed so fixed and streaming bodies share a type.
pub type AdminBody = BoxBody<Bytes, Infallible>;

/// Readiness check names the proxy reports (stable: dashboards and runbooks refer to them).
pub mod checks {
    /// The `.mmdb` country database is open.
    pub const GEO_DB: &str = "geo_db";
    /// The configuration parsed, validated and compiled into a policy.
    pub const POLICY: &str = "policy";
    /// The volume store (embedded file or Redis) answers.
    pub const VOLUME_STORE: &str = "volume_store";
    /// The audit sink accepts writes.
    pub const AUDIT: &str = "audit";
}

/// One readiness condition (geo database loaded, policy valid, volume store reachable…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadinessCheck {
    /// Stable short name, e.g. `geo_db`, `policy`, `volume_store`.
    pub name: String,
    pub ok: bool,
    /// What is wrong and what to do (empty when ok). Never personal data.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl ReadinessCheck {
    pub fn ok(name: impl Into<String>) -> ReadinessCheck {
        ReadinessCheck {
            name: name.into(),
            ok: true,
            detail: String::new(),
        }
    }

    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> ReadinessCheck {
        ReadinessCheck {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What the running proxy reports about itself; implemented by the integrator.
pub trait StatusSource: Send + Sync {
    /// Every readiness condition; `/readyz` is 200 only if all are ok.
    fn readiness(&self) -> Vec<ReadinessCheck>;
    /// The `/policy` document (see [`crate::telemetry::PolicyStatus`]).
    fn policy_status(&self) -> serde_json::Value;
}

/// What the admin handlers need. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub status: Arc<dyn StatusSource>,
    /// Bearer token required on protected routes; `None` = open (bind to loopback then).
    pub token: Option<String>,
    /// The live view (`/`, `/live/...`), when the proxy's hub is attached.
    pub live: Option<crate::live::LiveHub>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("AdminState")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// Constant-time check of the presented token: `Authorization: Bearer <token>`, or for
    /// browsers (which cannot set that header on page loads and `EventSource`) the live
    /// view's cookie or `?token=` (see [`crate::live::presented_token`]). Both sides are
    /// hashed first so the comparison time does not reveal the token's length either.
    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(presented) = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(std::borrow::Cow::Borrowed)
            .or_else(|| crate::live::presented_token(req))
        else {
            return false;
        };
        let a = blake3::hash(expected.as_bytes());
        let b = blake3::hash(presented.as_bytes());
        bool::from(a.as_bytes().ct_eq(b.as_bytes()))
    }
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive, RFC 6750).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The admin token: [`ADMIN_TOKEN_ENV`] if set and non-empty, else the configured one.
pub fn resolve_token(configured: Option<&str>) -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| configured.map(str::to_string))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// True if a proxied request to `ip:port` would reach the admin listener bound at `admin`.
/// The proxy must refuse such requests: the admin endpoints are never reachable through it.
/// A wildcard bind (`0.0.0.0`, `::`) listens on every local address, so any loopback or
/// unspecified destination on that port counts too (the proxy cannot cheaply enumerate
/// interface addresses; callers that can should also compare them).
pub fn targets_admin(admin: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if port != admin.port() {
        return false;
    }
    let ip = ip.to_canonical();
    if ip == admin.ip().to_canonical() {
        return true;
    }
    admin.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())
}

/// Serves the admin endpoints on `listener` until `shutdown` completes, then gives open
/// connections [`SHUTDOWN_GRACE`] to finish. Accept errors (e.g. out of file descriptors)
/// are logged and retried after a pause rather than ending the listener.
pub async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, auth = state.token.is_some(), "admin listener ready");
        if state.token.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "admin listener is reachable from the network without a token; set \
                 CHUJING_ADMIN_TOKEN or bind [admin] to 127.0.0.1"
            );
        }
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // Connection tasks, so the ones still open after the grace period can be aborted.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as small as the open ones.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; treat it like a shutdown if it ever is.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, req).await) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(
                open = connections.len(),
                "admin listener: connections still open after the shutdown grace period; closing them"
            );
        }
    }
    connections.shutdown().await;
}

/// Answers one admin request. Every route is an arm of the `match` below; add new ones there
/// (and to [`is_public`] if they must work without the token).
pub async fn route<B>(state: &AdminState, req: Request<B>) -> Response<AdminBody> {
    let path = req.uri().path();
    if !is_public(path) && !state.authorized(&req) {
        let mut resp = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token; send \"Authorization: Bearer <token>\" with the admin token (in a browser: open /?token=<token>)\n");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"chujing-admin\""),
        );
        return resp;
    }
    if let Some(live) = &state.live {
        if let Some(resp) = crate::live::handle(live, &req).await {
            return resp;
        }
    }
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    match (read, path) {
        (true, "/healthz") => text(StatusCode::OK, "ok\n"),
        (true, "/readyz") => readyz(state),
        (true, "/metrics") => {
            let mut resp = full(StatusCode::OK, state.metrics.encode());
            set_content_type(&mut resp, metrics::CONTENT_TYPE);
            resp
        }
        (true, "/policy") => json(StatusCode::OK, &state.status.policy_status()),
        (false, "/healthz" | "/readyz" | "/metrics" | "/policy") => {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "admin endpoints are read-only; use GET\n",
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "no such admin endpoint; try /healthz, /readyz, /metrics or /policy\n",
        ),
    }
}

/// Probes that must work without the token (see the module docs for why).
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<ReadinessCheck>,
}

fn readyz(state: &AdminState) -> Response<AdminBody> {
    let checks = state.status.readiness();
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &Readiness { ready, checks })
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<AdminBody> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    // Probe and metric answers are live state: no cache may serve a stale one.
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn set_content_type(resp: &mut Response<AdminBody>, value: &'static str) {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(value));
}

fn text(status: StatusCode, body: &'static str) -> Response<AdminBody> {
    let mut resp = full(status, body);
    set_content_type(&mut resp, "text/plain; charset=utf-8");
    resp
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<AdminBody> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            let mut resp = full(status, body);
            set_content_type(&mut resp, "application/json");
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "admin: cannot serialise a JSON response");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot serialise the response; see the chujing log\n",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<ReadinessCheck>);

    impl StatusSource for Fixed {
        fn readiness(&self) -> Vec<ReadinessCheck> {
            self.0.clone()
        }
        fn policy_status(&self) -> serde_json::Value {
            serde_json::json!({"version": "abc"})
        }
    }

    fn state(token: Option<&str>, checks: Vec<ReadinessCheck>) -> AdminState {
        AdminState {
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(Fixed(checks)),
            token: token.map(str::to_string),
            live: None,
        }
    }

    fn get(path: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::get(path);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    async fn body(resp: Response<AdminBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[tokio::test]
    async fn token_guards_everything_but_probes() {
        let s = state(Some("s3cret"), vec![ReadinessCheck::ok("policy")]);
        for path in ["/metrics", "/policy", "/nope"] {
            let resp = route(&s, get(path, None)).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
            let resp = route(&s, get(path, Some("Bearer s3cre"))).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
            let resp = route(&s, get(path, Some("Bearer s3cret!"))).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
        let resp = route(&s, get("/metrics", Some("Bearer s3cret"))).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = route(&s, get("/nope", Some("Bearer s3cret"))).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        for path in ["/healthz", "/readyz"] {
            assert_eq!(route(&s, get(path, None)).await.status(), StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn readiness_reflects_every_check() {
        let s = state(
            None,
            vec![
                ReadinessCheck::ok("geo_db"),
                ReadinessCheck::failed("volume_store", "redis at 127.0.0.1:6379 refused; start it"),
            ],
        );
        let resp = route(&s, get("/readyz", None)).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body(resp).await).unwrap();
        assert_eq!(v["ready"], false);
        assert_eq!(v["checks"][1]["name"], "volume_store");
        let s = state(None, vec![ReadinessCheck::ok("geo_db")]);
        assert_eq!(
            route(&s, get("/readyz", None)).await.status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn writes_are_refused() {
        let s = state(None, vec![]);
        let req = Request::post("/policy").body(()).unwrap();
        let resp = route(&s, req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "GET, HEAD");
    }

    #[test]
    fn admin_address_detection() {
        let admin: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        assert!(targets_admin(admin, "127.0.0.1".parse().unwrap(), 9901));
        assert!(targets_admin(
            admin,
            "::ffff:127.0.0.1".parse().unwrap(),
            9901
        ));
        assert!(!targets_admin(admin, "127.0.0.1".parse().unwrap(), 8080));
        assert!(!targets_admin(admin, "10.0.0.1".parse().unwrap(), 9901));
        let wildcard: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        assert!(targets_admin(wildcard, "127.0.0.5".parse().unwrap(), 9901));
        assert!(targets_admin(wildcard, "::1".parse().unwrap(), 9901));
        assert!(targets_admin(wildcard, "0.0.0.0".parse().unwrap(), 9901));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = state(Some("s3cret"), vec![]);
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
