//! Where a request should go: the absolute-form target of a forward-proxy request, or the
//! upstream of the reverse route that matches its Host and path (longest prefix wins; a route
//! naming the host beats a route for any host).

use http::Request;

use super::upstream::Scheme;
use crate::config::RouteConfig;

/// The upstream a request is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host name (or IP literal, IPv6 without brackets), lower case.
    pub host: String,
    pub port: u16,
    /// Origin-form path and query to send upstream.
    pub path_and_query: String,
}

impl Target {
    /// `Host` header value: the port only when it is not the scheme's default.
    /// Built by hand (once per request, where `format!` costs more than the rest).
    pub fn authority(&self) -> String {
        let bracket = self.host.contains(':');
        let mut out = String::with_capacity(self.host.len() + 8);
        if bracket {
            out.push('[');
        }
        out.push_str(&self.host);
        if bracket {
            out.push(']');
        }
        if self.port != self.scheme.default_port() {
            out.push(':');
            out.push_str(itoa::Buffer::new().format(self.port));
        }
        out
    }
}

/// Why no target could be found; each maps to an HTTP status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("a forward proxy needs an absolute-form request target (http://host/path); configure the client's proxy setting or use a reverse listener")]
    NotAbsolute,
    #[error("unsupported scheme {0:?}; only http and https are proxied")]
    Scheme(String),
    #[error("no route matches host {host:?} and this path; add a [[route]] for it")]
    NoRoute { host: String },
    #[error("the request has no Host header or authority")]
    NoHost,
}

/// A reverse route, parsed once.
#[derive(Debug, Clone)]
pub struct Route {
    host: Option<String>,
    prefix: String,
    strip_prefix: bool,
    scheme: Scheme,
    upstream_host: String,
    upstream_port: u16,
    base_path: String,
}

/// Errors in a route's upstream URL (also caught by config validation).
#[derive(Debug, thiserror::Error)]
#[error("route upstream {upstream:?}: {message}")]
pub struct RouteError {
    pub upstream: String,
    pub message: String,
}

impl Route {
    pub fn parse(config: &RouteConfig) -> Result<Route, RouteError> {
        let err = |message: &str| RouteError {
            upstream: config.upstream.clone(),
            message: message.to_string(),
        };
        let uri: http::Uri = config
            .upstream
            .parse()
            .map_err(|_| err("not a URL; write it as http://host[:port][/base] or https://…"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(err("scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| err("has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Route {
            host: config.host.as_ref().map(|h| h.to_ascii_lowercase()),
            prefix: config.path_prefix.clone().unwrap_or_else(|| "/".into()),
            strip_prefix: config.strip_prefix,
            scheme,
            upstream_port: uri.port_u16().unwrap_or(scheme.default_port()),
            upstream_host: host,
            base_path,
        })
    }
}

/// Host of a request without the port: the URI authority (HTTP/2, absolute-form) or `Host`.
pub fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(host) = req.uri().host() {
        return Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        );
    }
    let value = req.headers().get(http::header::HOST)?.to_str().ok()?;
    if let Some(host) = plain_host(value) {
        return Some(host.to_string());
    }
    host_of_authority(value)
}

/// The host of a Host header value through the full authority parser (IPv6 literals,
/// upper case, anything unusual).
fn host_of_authority(value: &str) -> Option<String> {
    let authority: http::uri::Authority = value.parse().ok()?;
    Some(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

/// The host of the usual Host header, `name[:port]` in lower-case letters, digits, dots and
/// hyphens with a valid port, without the authority parser (on every request: callgrind put
/// `request_host` at 1.16k instructions before, 0.65k with this); `None` for anything else,
/// which [`host_of_authority`] then decides.
fn plain_host(value: &str) -> Option<&str> {
    let (host, port) = match value.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= u32::from(u16::MAX))
    });
    (host_ok && port_ok).then_some(host)
}

/// Target of a forward-proxy request (absolute-form, or HTTP/2 with scheme and authority).
pub fn forward_target<B>(req: &Request<B>) -> Result<Target, TargetError> {
    let uri = req.uri();
    let scheme = match uri.scheme_str() {
        None => return Err(TargetError::NotAbsolute),
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => return Err(TargetError::Scheme(other.to_string())),
    };
    let host = uri.host().ok_or(TargetError::NotAbsolute)?;
    Ok(Target {
        scheme,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(scheme.default_port()),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
    })
}

/// Target of a reverse-proxy request: the best matching route.
pub fn reverse_target<B>(routes: &[Route], req: &Request<B>) -> Result<Target, TargetError> {
    let host = request_host(req).ok_or(TargetError::NoHost)?;
    let path = req.uri().path();
    let best = routes
        .iter()
        .filter(|r| r.host.as_deref().is_none_or(|h| h == host))
        .filter(|r| path_has_prefix(path, &r.prefix))
        .max_by_key(|r| (r.host.is_some(), r.prefix.len()))
        .ok_or(TargetError::NoRoute { host })?;
    let rest = if best.strip_prefix {
        let stripped = &path[best.prefix.trim_end_matches('/').len()..];
        if stripped.starts_with('/') {
            stripped
        } else {
            "/"
        }
    } else {
        path
    };
    let query_len = req.uri().query().map_or(0, |q| q.len() + 1);
    let mut path_and_query = String::with_capacity(best.base_path.len() + rest.len() + query_len);
    path_and_query.push_str(&best.base_path);
    path_and_query.push_str(rest);
    if let Some(q) = req.uri().query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    Ok(Target {
        scheme: best.scheme,
        host: best.upstream_host.clone(),
        port: best.upstream_port,
        path_and_query,
    })
}

/// `/api` matches `/api`, `/api/x`, but not `/apix`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" || prefix.is_empty() {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: Option<&str>, upstream: &str, strip: bool) -> Route {
        Route::parse(&RouteConfig {
            host: host.map(String::from),
            path_prefix: prefix.map(String::from),
            upstream: upstream.into(),
            strip_prefix: strip,
        })
        .unwrap()
    }

    fn get(host: &str, path: &str) -> Request<()> {
        Request::builder()
            .uri(path)
            .header("host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn plain_host_fast_path_agrees_with_the_authority_parser() {
        let values = [
            "api.local",
            "api.local:8080",
            "a",
            "a:1",
            "a:65535",
            "a:65536",
            "a:99999",
            "a:123456",
            "a:",
            ":80",
            "",
            "API.Local",
            "api.local:80:80",
            "[::1]:8080",
            "[::1]",
            "127.0.0.1:9",
            "xn--fiq228c.cn",
            "-.-",
            "a_b.local",
            "a b",
            "a/b",
            "a@b",
            "a:+80",
            "a:8o",
            "例子.cn",
        ];
        for value in values {
            if let Some(fast) = plain_host(value) {
                assert_eq!(
                    Some(fast.to_string()),
                    host_of_authority(value),
                    "{value:?}"
                );
            }
            let req = get(value, "/");
            let expected = if value.is_empty() {
                None
            } else {
                host_of_authority(value)
            };
            if http::HeaderValue::from_str(value).is_ok() {
                assert_eq!(request_host(&req), expected, "{value:?}");
            }
        }
        assert_eq!(plain_host("api.local:8080"), Some("api.local"));
        assert_eq!(plain_host("API.local"), None);
        assert_eq!(plain_host("a:65536"), None);
    }

    #[test]
    fn host_route_beats_any_host_and_longest_prefix_wins() {
        let routes = vec![
            route(None, None, "http://fallback:8000", false),
            route(
                Some("api.local"),
                Some("/v1"),
                "https://v1.example:8443/base",
                true,
            ),
            route(
                Some("api.local"),
                Some("/v1/users"),
                "http://users.example",
                false,
            ),
        ];
        let t = reverse_target(&routes, &get("api.local:8080", "/v1/orders?x=1")).unwrap();
        assert_eq!(t.scheme, Scheme::Https);
        assert_eq!(t.host, "v1.example");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path_and_query, "/base/orders?x=1");
        let t = reverse_target(&routes, &get("api.local", "/v1/users/7")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("users.example", 80));
        assert_eq!(
            t.authority(),
            "users.example",
            "no port when it is the default"
        );
        assert_eq!(t.path_and_query, "/v1/users/7");
        let t = reverse_target(&routes, &get("other", "/v1x")).unwrap();
        assert_eq!(t.host, "fallback");
        assert_eq!(t.authority(), "fallback:8000");
    }

    #[test]
    fn prefix_does_not_match_inside_a_segment() {
        let routes = vec![route(Some("a"), Some("/api"), "http://b", false)];
        assert!(matches!(
            reverse_target(&routes, &get("a", "/apix")),
            Err(TargetError::NoRoute { .. })
        ));
        assert!(reverse_target(&routes, &get("a", "/api")).is_ok());
    }

    #[test]
    fn forward_needs_absolute_form() {
        let req = Request::builder().uri("/x").body(()).unwrap();
        assert_eq!(forward_target(&req), Err(TargetError::NotAbsolute));
        let req = Request::builder()
            .uri("http://[::1]:9000/a?b")
            .body(())
            .unwrap();
        let t = forward_target(&req).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(t.authority(), "[::1]:9000");
        assert_eq!(t.path_and_query, "/a?b");
    }
}
