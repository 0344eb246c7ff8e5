//! Hop-by-hop header handling (RFC 9110 §7.6.1): headers that describe one connection are
//! not forwarded, including every header the `Connection` header names.

use http::header::{self, HeaderMap, HeaderName};

/// Always connection-specific. `TE` is handled apart (HTTP/2 allows `TE: trailers`).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Index in [`HOP_BY_HOP`] of a (lower-case) header name: a match on the name's text, a few
/// instructions, where comparing it with each entry in turn cost a hundred per header.
fn hop_index(name: &str) -> Option<usize> {
    Some(match name {
        "connection" => 0,
        "transfer-encoding" => 1,
        "upgrade" => 2,
        "proxy-authorization" => 3,
        "proxy-authenticate" => 4,
        "keep-alive" => 5,
        "proxy-connection" => 6,
        _ => return None,
    })
}

/// Whether every `Connection` value is just `keep-alive` (the usual response, already on the
/// fixed list), so there are no further names to find.
fn only_keep_alive(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"keep-alive"))
}

/// Removes hop-by-hop headers in place.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the distinct names (a handful) finds which hop-by-hop headers are there;
    // most requests carry none, and most responses only `Connection: keep-alive`. Removing
    // just those is cheaper than hashing eight removals.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut te = false;
    for k in headers.keys() {
        match hop_index(k.as_str()) {
            Some(i) => present[i] = true,
            None => te |= k == header::TE,
        }
    }
    if !te && !present.contains(&true) {
        return;
    }
    // `Connection` names more headers to drop. `keep-alive`, the usual value, is on the
    // fixed list already, so it is skipped: no name list is built for the usual response.
    if present[0] && !only_keep_alive(headers) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if te {
        let te_trailers = headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        headers.remove(header::TE);
        if te_trailers {
            headers.insert(header::TE, header::HeaderValue::from_static("trailers"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_index_names_each_fixed_header_and_nothing_else() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name.as_str()), Some(i), "{name}");
        }
        for other in [
            "te",
            "host",
            "content-length",
            "x-connection",
            "connectio",
            "",
        ] {
            assert_eq!(hop_index(other), None, "{other}");
        }
    }

    #[test]
    fn removes_fixed_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip, trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get("x-keep").unwrap(), "yes");
    }

    #[test]
    fn headers_named_only_by_connection_go_even_without_other_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-hop").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        let mut clean = HeaderMap::new();
        clean.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut clean);
        assert_eq!(clean.len(), 1);
    }

    #[test]
    fn usual_connection_values_and_unusual_ones() {
        // The usual response: only `Connection: keep-alive` goes.
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.get(header::CONTENT_TYPE).is_some());
        // The usual value first, a name on a second line: the name still counts.
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("KEEP-ALIVE"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-keep"]);
        // A named header hidden behind the usual values, in a second Connection line, any case.
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("Keep-Alive, close"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static(" X-Hop-Two "));
        h.insert("x-hop-two", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        // Every option Connection lists is a header to drop, even one named `close`.
        h.insert("close", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-keep"],
            "TE without trailers goes too"
        );
    }
}
