//! Responses the proxy makes itself: the 403 for a blocked data exit (JSON body and RFC 9209
//! `Proxy-Status`), and the 4xx/5xx for requests it could not route or deliver.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

/// Body of every response the proxy returns (its own, or the upstream's streamed through).
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Name this proxy uses in `Proxy-Status` and `Via`.
pub const PROXY_NAME: &str = "chujing";

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `403` for a blocked data exit, per `policy.md`.
pub fn blocked(reason: &str, request_id: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": "data_exit_blocked",
        "reason": reason,
        "request_id": request_id,
    });
    json(
        StatusCode::FORBIDDEN,
        &body,
        &format!("{PROXY_NAME}; error=http_request_denied; details=\"{reason}\""),
    )
}

/// A proxy-generated error: `error` is a short code, `proxy_error` the RFC 9209 error type.
pub fn error(
    status: StatusCode,
    error: &str,
    proxy_error: &str,
    message: &str,
    request_id: &str,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": error,
        "reason": proxy_error,
        "message": message,
        "request_id": request_id,
    });
    json(status, &body, &format!("{PROXY_NAME}; error={proxy_error}"))
}

fn json(status: StatusCode, body: &serde_json::Value, proxy_status: &str) -> Response<ProxyBody> {
    let mut bytes = serde_json::to_vec(body).expect("JSON values serialise");
    bytes.push(b'\n');
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(proxy_status) {
        headers.insert("proxy-status", v);
    }
    response
}
