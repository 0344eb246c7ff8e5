//! Semantic validation of a parsed [`Config`]: everything serde cannot see (dates in order,
//! known categories, unique ids, reachable routes …). Each problem is located on the line of
//! the offending key through `toml_edit` spans, and its message says how to fix it.
//!
//! Messages quote configuration values (ids, hosts, CIDRs) but never detector examples
//! (`must_match`), which may be real personal data pasted in by a user.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use toml_edit::{ImDocument, Item};

use super::model::*;
use super::ConfigError;
use crate::classify::Category;
use crate::geo::CountryCode;

/// One step of a path into the TOML document: a key or an array index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    K(&'a str),
    I(usize),
}
use Seg::{I, K};

/// Maps a path such as `transfer[2].valid_until` to a line, using the spans `toml_edit`
/// keeps while parsing. If the path does not exist in the text (a default value), the line
/// of the deepest part that does exist is used, and line 1 if nothing does.
pub(crate) struct Locator<'t> {
    text: &'t str,
    doc: Option<ImDocument<&'t str>>,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Locator<'t> {
        Locator {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    pub(crate) fn line(&self, path: &[Seg<'_>]) -> usize {
        let Some(doc) = &self.doc else { return 1 };
        let mut item: &Item = doc.as_item();
        let mut best: Option<usize> = None;
        for seg in path {
            match *seg {
                K(k) => {
                    let Some((key, value)) = item.as_table_like().and_then(|t| t.get_key_value(k))
                    else {
                        break;
                    };
                    // The key's own span is the line a user looks at; dotted or header keys
                    // may lack one, then the value's span is next best.
                    best = key
                        .span()
                        .or_else(|| value.span())
                        .map(|s| s.start)
                        .or(best);
                    item = value;
                }
                I(i) => {
                    let Some(next) = item.get(i) else { break };
                    best = next.span().map(|s| s.start).or(best);
                    item = next;
                }
            }
        }
        best.map(|o| super::line_of(self.text, o)).unwrap_or(1)
    }
}

/// Collects problems with their locations.
struct Problems<'a> {
    loc: &'a Locator<'a>,
    path: &'a Path,
    out: Vec<ConfigError>,
}

impl Problems<'_> {
    fn add(&mut self, at: &[Seg<'_>], message: String) {
        self.out.push(ConfigError::Invalid {
            path: self.path.display().to_string(),
            line: self.loc.line(at),
            message,
        });
    }
}

/// Every semantic problem in `config`; `text` is the file it came from (for lines) and
/// `path` names it in messages.
pub fn validate(config: &Config, text: &str, path: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut p = Problems {
        loc: &loc,
        path,
        out: Vec::new(),
    };
    check_timezone(config, &mut p);
    check_listeners(config, &mut p);
    check_routes(config, &mut p);
    check_geo(config, &mut p);
    check_resolve(config, &mut p);
    check_classification(config, &mut p);
    let custom = check_detectors(config, &mut p);
    check_transfers(config, &custom, &mut p);
    check_volume(config, &mut p);
    check_admin(config, &mut p);
    check_tls_intercept(config, &mut p);
    check_limits(config, &mut p);
    p.out
}

fn check_timezone(c: &Config, p: &mut Problems<'_>) {
    if chrono_tz::Tz::from_str(&c.timezone).is_err() {
        p.add(
            &[K("timezone")],
            format!(
                "timezone {:?} is not an IANA time zone; use a name such as \"Asia/Shanghai\" \
                 (PIPL volumes count from 1 January in this zone)",
                c.timezone
            ),
        );
    }
}

fn check_listeners(c: &Config, p: &mut Problems<'_>) {
    let mut seen: HashMap<std::net::SocketAddr, usize> = HashMap::new();
    let has_routes = !c.routes.is_empty();
    for (i, l) in c.listeners.iter().enumerate() {
        // Port 0 asks the OS for any free port, so two such listeners never clash.
        let clash = if l.bind.port() == 0 {
            None
        } else {
            seen.insert(l.bind, i)
        };
        if let Some(first) = clash {
            p.add(
                &[K("listener"), I(i), K("bind")],
                format!(
                    "listener[{i}].bind {} is already used by listener[{first}]; give each \
                     [[listener]] its own address or port",
                    l.bind
                ),
            );
        }
        if l.kind == ListenerKind::Reverse && !has_routes {
            p.add(
                &[K("listener"), I(i), K("kind")],
                format!(
                    "listener[{i}] is kind = \"reverse\" but no [[route]] is defined, so it \
                     could serve nothing; add a [[route]] with an upstream, or use kind = \"forward\""
                ),
            );
        }
        if let Some(tls) = &l.tls {
            for (field, v) in [("cert", &tls.cert), ("key", &tls.key)] {
                if v.as_os_str().is_empty() {
                    p.add(
                        &[K("listener"), I(i), K("tls"), K(field)],
                        format!("listener[{i}].tls.{field} is empty; set it to a PEM file path"),
                    );
                }
            }
        }
    }
    if has_routes && !c.listeners.iter().any(|l| l.kind == ListenerKind::Reverse) {
        p.add(
            &[K("route"), I(0)],
            "[[route]] entries are only used by reverse listeners and none is configured; add \
             a [[listener]] with kind = \"reverse\" or remove the routes"
                .to_string(),
        );
    }
}

/// A host name as written in configuration: letters, digits, `-`, `_`, `.`; with `glob`,
/// also `*` and `?` wildcards (`*.vendor.com`, `api-?.vendor.com`, `*`). Rejects URLs, ports
/// and paths pasted by mistake, which would otherwise silently never match.
fn host_ok(h: &str, glob: bool) -> bool {
    if glob && h == "*" {
        return true;
    }
    let wild = |b: u8| glob && (b == b'*' || b == b'?');
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || wild(b))
        })
}

fn check_routes(c: &Config, p: &mut Problems<'_>) {
    let mut seen: HashMap<(Option<String>, String), usize> = HashMap::new();
    for (i, r) in c.routes.iter().enumerate() {
        let at = |f| [K("route"), I(i), K(f)];
        match r.upstream.parse::<http::Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http") | Some("https"))
                    && u.host().is_some_and(|h| !h.is_empty())
                    && u.query().is_none() => {}
            _ => p.add(
                &at("upstream"),
                format!(
                    "route[{i}].upstream {:?} is not an http:// or https:// URL with a host; \
                     write it like \"https://api.partner.de\" (no query string)",
                    r.upstream
                ),
            ),
        }
        if let Some(h) = &r.host {
            if !host_ok(h, false) {
                p.add(
                    &at("host"),
                    format!(
                        "route[{i}].host {h:?} is not a host name; write the bare name the \
                         client sends, e.g. \"partner-api.internal\" (no scheme, port or path)"
                    ),
                );
            }
        }
        if let Some(prefix) = &r.path_prefix {
            if !prefix.starts_with('/') {
                p.add(
                    &at("path_prefix"),
                    format!("route[{i}].path_prefix {prefix:?} must start with \"/\""),
                );
            }
        }
        let key = (
            r.host.as_ref().map(|h| h.to_ascii_lowercase()),
            r.path_prefix.clone().unwrap_or_else(|| "/".to_string()),
        );
        if let Some(first) = seen.insert(key, i) {
            p.add(
                &[K("route"), I(i)],
                format!(
                    "route[{i}] has the same host and path_prefix as route[{first}], so it can \
                     never be chosen; change or remove one of them"
                ),
            );
        }
    }
}

fn check_geo(c: &Config, p: &mut Problems<'_>) {
    if c.geo.database.as_os_str().is_empty() {
        p.add(
            &[K("geo"), K("database")],
            "geo.database is empty; set it to a country .mmdb file such as \
             \"config/geo/country.mmdb\""
                .to_string(),
        );
    }
    let mut seen: HashMap<ipnet::IpNet, usize> = HashMap::new();
    for (i, o) in c.geo.overrides.iter().enumerate() {
        let at = |f| [K("geo"), K("override"), I(i), K(f)];
        if CountryCode::parse(&o.country).is_none() {
            p.add(
                &at("country"),
                format!(
                    "geo.override[{i}].country {:?} is not an ISO 3166-1 alpha-2 code; use two \
                     letters such as \"DE\" (Hong Kong, Macao and Taiwan are \"HK\", \"MO\", \"TW\")",
                    o.country
                ),
            );
        }
        if o.cidr.trunc() != o.cidr {
            p.add(
                &at("cidr"),
                format!(
                    "geo.override[{i}].cidr {} has host bits set; write the network address {}",
                    o.cidr,
                    o.cidr.trunc()
                ),
            );
        }
        if let Some(first) = seen.insert(o.cidr.trunc(), i) {
            p.add(
                &at("cidr"),
                format!(
                    "geo.override[{i}].cidr {} repeats geo.override[{first}]; keep one entry per network",
                    o.cidr
                ),
            );
        }
    }
}

fn check_resolve(c: &Config, p: &mut Problems<'_>) {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (host, ips) in &c.resolve {
        let at = [K("resolve"), K(host)];
        if !host_ok(host, false) {
            p.add(
                &at,
                format!(
                    "resolve key {host:?} is not a host name; pin bare names such as \
                     \"api.partner.de\" (no scheme, port or path)"
                ),
            );
        }
        if ips.is_empty() {
            p.add(
                &at,
                format!(
                    "resolve {host:?} lists no address; give at least one IP or remove the pin"
                ),
            );
        }
        let norm = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(first) = seen.insert(norm, host) {
            p.add(
                &at,
                format!(
                    "resolve {host:?} and {first:?} are the same host (names are case-insensitive); keep one"
                ),
            );
        }
    }
}

fn check_classification(c: &Config, p: &mut Problems<'_>) {
    let cl = &c.classification;
    let at = |f| [K("classification"), K(f)];
    if cl.max_inspect_bytes == 0 {
        p.add(
            &at("max_inspect_bytes"),
            "classification.max_inspect_bytes is 0, so no body could be inspected; use e.g. \
             16777216 (16 MiB)"
                .to_string(),
        );
    }
    if cl.max_decompression_ratio == 0 {
        p.add(
            &at("max_decompression_ratio"),
            "classification.max_decompression_ratio must be at least 1; the default is 100"
                .to_string(),
        );
    }
    if let Some(k) = &cl.hash_key {
        // The key itself is a secret: say what is wrong with it, never echo it.
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.add(
                &at("hash_key"),
                format!(
                    "classification.hash_key must be 64 hex characters (32 bytes), found {} \
                     characters; generate one with `openssl rand -hex 32`",
                    k.chars().count()
                ),
            );
        }
    }
}

/// Custom categories that validated (by name), for the transfer category check.
fn check_detectors(c: &Config, p: &mut Problems<'_>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, d) in c.detectors.iter().enumerate() {
        let at = |f| [K("detector"), I(i), K(f)];
        let ident_ok = d
            .category
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
            && d.category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ident_ok {
            p.add(
                &at("category"),
                format!(
                    "detector[{i}].category {:?} is not an identifier; use lower case letters, \
                     digits and \"_\", starting with a letter (e.g. \"employee_id\")",
                    d.category
                ),
            );
        } else if Category::BUILTIN.contains(&d.category.as_str()) {
            p.add(
                &at("category"),
                format!(
                    "detector[{i}].category {:?} is a built-in category; custom detectors need a \
                     new name (built-in detectors are always on)",
                    d.category
                ),
            );
        } else if !names.insert(d.category.clone()) {
            p.add(
                &at("category"),
                format!(
                    "detector[{i}].category {:?} is defined twice; merge the two [[detector]] \
                     entries or rename one",
                    d.category
                ),
            );
        }
        if !matches!(d.class.as_str(), "personal" | "sensitive") {
            p.add(
                &at("class"),
                format!(
                    "detector[{i}].class {:?} must be \"personal\" or \"sensitive\" (PIPL Art. 28)",
                    d.class
                ),
            );
        }
        match &d.regex {
            Some(re) => {
                if let Err(e) = regex::bytes::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                {
                    // regex errors span several lines (pattern, caret, message); one line
                    // keeps `file:line: message` greppable.
                    let why = e.to_string().replace('\n', " ");
                    p.add(
                        &at("regex"),
                        format!(
                            "detector[{i}].regex does not compile: {why}; fix the pattern (Rust \
                             regex syntax, no look-around or backreferences)"
                        ),
                    );
                }
            }
            None if d.keywords.is_empty() => p.add(
                &[K("detector"), I(i)],
                format!(
                    "detector[{i}] ({:?}) has neither regex nor keywords, so it can never match; \
                     add a regex",
                    d.category
                ),
            ),
            None => {}
        }
        if d.keywords.iter().any(|k| k.trim().is_empty()) {
            p.add(
                &at("keywords"),
                format!("detector[{i}].keywords contains an empty keyword; remove it"),
            );
        }
    }
    names
}

fn check_transfers(c: &Config, custom: &HashSet<String>, p: &mut Problems<'_>) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, t) in c.transfers.iter().enumerate() {
        let at = |f| [K("transfer"), I(i), K(f)];
        let who = format!("transfer[{i}] ({:?})", t.id);
        if t.id.trim().is_empty() {
            p.add(
                &at("id"),
                format!("transfer[{i}].id is empty; give each transfer the id of its filing or contract"),
            );
        } else if let Some(first) = ids.insert(t.id.as_str(), i) {
            p.add(
                &at("id"),
                format!(
                    "{who}: id is already used by transfer[{first}]; ids appear in audit events \
                     and volume counts, so each must be unique"
                ),
            );
        }
        if t.countries.is_empty() {
            p.add(
                &at("countries"),
                format!(
                    "{who}: countries is empty, so the transfer can never match; list the \
                     recipient's countries, e.g. [\"US\"]"
                ),
            );
        }
        for (j, cc) in t.countries.iter().enumerate() {
            match CountryCode::parse(cc) {
                None => p.add(
                    &[K("transfer"), I(i), K("countries"), I(j)],
                    format!(
                        "{who}: country {cc:?} is not an ISO 3166-1 alpha-2 code; use two \
                         letters such as \"US\" (Hong Kong, Macao and Taiwan are \"HK\", \"MO\", \"TW\")"
                    ),
                ),
                Some(code) if code.as_str() == "CN" => p.add(
                    &[K("transfer"), I(i), K("countries"), I(j)],
                    format!(
                        "{who}: \"CN\" is the mainland, which is domestic and always allowed; \
                         remove it (for Hong Kong, Macao or Taiwan write \"HK\", \"MO\", \"TW\")"
                    ),
                ),
                Some(_) => {}
            }
        }
        if t.categories.is_empty() {
            p.add(
                &at("categories"),
                format!(
                    "{who}: categories is empty, so no personal information may use it; list \
                     the approved categories, e.g. [\"cn_mobile\", \"email\"]"
                ),
            );
        }
        for (j, cat) in t.categories.iter().enumerate() {
            if !Category::BUILTIN.contains(&cat.as_str()) && !custom.contains(cat) {
                p.add(
                    &[K("transfer"), I(i), K("categories"), I(j)],
                    format!(
                        "{who}: unknown category {cat:?}; use a built-in category ({}) or \
                         define it with a [[detector]]",
                        Category::BUILTIN.join(", ")
                    ),
                );
            }
        }
        for (j, h) in t.hosts.iter().enumerate() {
            if !host_ok(h, true) {
                p.add(
                    &[K("transfer"), I(i), K("hosts"), I(j)],
                    format!(
                        "{who}: host {h:?} is not a host name or \"*.domain\" glob; write e.g. \
                         \"*.support-vendor.com\" (no scheme, port or path)"
                    ),
                );
            }
        }
        for (j, n) in t.cidrs.iter().enumerate() {
            if n.trunc() != *n {
                p.add(
                    &[K("transfer"), I(i), K("cidrs"), I(j)],
                    format!(
                        "{who}: cidr {n} has host bits set; write the network address {}",
                        n.trunc()
                    ),
                );
            }
        }
        if let (Some(from), Some(until)) = (t.valid_from, t.valid_until) {
            if until < from {
                p.add(
                    &at("valid_until"),
                    format!(
                        "{who}: valid_until {until} is before valid_from {from}; both dates are \
                         inclusive, so set valid_until on or after valid_from"
                    ),
                );
            }
        }
        for f in [
            "max_individuals_per_year",
            "max_sensitive_individuals_per_year",
        ] {
            let v = if f == "max_individuals_per_year" {
                t.max_individuals_per_year
            } else {
                t.max_sensitive_individuals_per_year
            };
            if v == Some(0) {
                p.add(
                    &at(f),
                    format!(
                        "{who}: {f} = 0 would block every request; remove the cap or set it \
                         to the approved number of individuals"
                    ),
                );
            }
        }
        // The 2024 Provisions exempt only non-sensitive PI of fewer than 100,000 individuals
        // per year (Art. 5(4)); a transfer claiming that basis cannot carry more.
        if t.legal_basis == LegalBasis::ExemptionSmallVolume {
            if t.allow_sensitive {
                p.add(
                    &at("allow_sensitive"),
                    format!(
                        "{who}: exemption_small_volume covers non-sensitive personal information \
                         only; set allow_sensitive = false or use standard_contract, \
                         certification or security_assessment"
                    ),
                );
            }
            if t.max_individuals_per_year.is_some_and(|n| n >= 100_000) {
                p.add(
                    &at("max_individuals_per_year"),
                    format!(
                        "{who}: exemption_small_volume applies below 100,000 individuals a year; \
                         set max_individuals_per_year to at most 99999 or use another legal basis"
                    ),
                );
            }
        }
    }
}

fn check_volume(c: &Config, p: &mut Problems<'_>) {
    let v = &c.volume;
    let at = |f| [K("volume"), K(f)];
    match v.backend.as_str() {
        "memory" | "redb" => {}
        "redis" => match &v.url {
            None => p.add(
                &at("backend"),
                "volume.backend = \"redis\" needs volume.url, e.g. url = \"redis://127.0.0.1:6379/0\""
                    .to_string(),
            ),
            Some(u) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => p.add(
                &at("url"),
                // The URL may carry a password: do not echo it.
                "volume.url must start with redis:// or rediss://".to_string(),
            ),
            Some(_) => {}
        },
        other => p.add(
            &at("backend"),
            format!("volume.backend {other:?} is unknown; use \"memory\", \"redb\" or \"redis\""),
        ),
    }
    let g = &v.guard;
    for (f, share) in [("warn", g.warn), ("critical", g.critical)] {
        if !(share > 0.0 && share <= 1.0) {
            p.add(
                &[K("volume"), K("guard"), K(f)],
                format!("volume.guard.{f} = {share} must be a share of the threshold in (0, 1], e.g. 0.8"),
            );
        }
    }
    if g.warn > g.critical {
        p.add(
            &[K("volume"), K("guard"), K("warn")],
            format!(
                "volume.guard.warn = {} is above critical = {}; warn must come first",
                g.warn, g.critical
            ),
        );
    }
    if c.audit.keep == 0 {
        p.add(
            &[K("audit"), K("keep")],
            "audit.keep must be at least 1 (rotated files kept); remove it to keep 10".to_string(),
        );
    }
    if c.audit.batch_max_delay_ms > crate::config::AuditConfig::MAX_BATCH_DELAY_MS {
        p.add(
            &[K("audit"), K("batch_max_delay_ms")],
            format!(
                "audit.batch_max_delay_ms = {} is above {}; a forwarded request's line waits at most a second (the default is 5)",
                c.audit.batch_max_delay_ms,
                crate::config::AuditConfig::MAX_BATCH_DELAY_MS
            ),
        );
    }
}

fn check_admin(c: &Config, p: &mut Problems<'_>) {
    let Some(admin) = &c.admin else { return };
    if let Some(i) = c.listeners.iter().position(|l| l.bind == admin.bind) {
        p.add(
            &[K("admin"), K("bind")],
            format!(
                "admin.bind {} is also listener[{i}].bind; give the admin endpoint its own port",
                admin.bind
            ),
        );
    }
    if admin.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p.add(
            &[K("admin"), K("token")],
            "admin.token is empty; remove it or set a random secret".to_string(),
        );
    }
}

fn check_tls_intercept(c: &Config, p: &mut Problems<'_>) {
    let Some(t) = &c.tls_intercept else { return };
    for (j, h) in t.bypass.iter().enumerate() {
        if !host_ok(h, true) {
            p.add(
                &[K("tls_intercept"), K("bypass"), I(j)],
                format!(
                    "tls_intercept.bypass {h:?} is not a host name or \"*.domain\" glob; write \
                     e.g. \"*.apple.com\""
                ),
            );
        }
    }
}

fn check_limits(c: &Config, p: &mut Problems<'_>) {
    let l = &c.limits;
    for (f, zero) in [
        ("header_read_timeout_ms", l.header_read_timeout_ms == 0),
        ("max_header_bytes", l.max_header_bytes == 0),
        ("max_connections", l.max_connections == 0),
        ("max_headers", l.max_headers == 0),
        ("idle_timeout_ms", l.idle_timeout_ms == 0),
        ("body_read_timeout_ms", l.body_read_timeout_ms == 0),
        (
            "upstream_response_timeout_ms",
            l.upstream_response_timeout_ms == 0,
        ),
        ("max_concurrent_streams", l.max_concurrent_streams == 0),
    ] {
        if zero {
            p.add(
                &[K("limits"), K(f)],
                format!("limits.{f} must be greater than 0; remove it to use the default"),
            );
        }
    }
    if c.server.workers > 1024 {
        p.add(
            &[K("server"), K("workers")],
            format!(
                "server.workers = {} is more threads than any machine needs; use 0 for one per core",
                c.server.workers
            ),
        );
    }
    if c.upstream.connect_timeout_ms == Some(0) {
        p.add(
            &[K("upstream"), K("connect_timeout_ms")],
            "upstream.connect_timeout_ms must be greater than 0; remove it to use the default"
                .to_string(),
        );
    }
}

/// Files the configuration names that must exist before `run` can start: the geo database
/// (opened for real, so a corrupt file is caught too), listener TLS files, the interception
/// CA and the upstream CA bundle. Relative paths are taken from the working directory, as
/// `run` does.
pub fn check_files(config: &Config, text: &str, path: &Path) -> Vec<ConfigError> {
    let loc = Locator::new(text);
    let mut p = Problems {
        loc: &loc,
        path,
        out: Vec::new(),
    };
    if let Err(e) = crate::geo::GeoDb::open(&config.geo) {
        p.add(&[K("geo"), K("database")], e.to_string());
    }
    let mut need = |at: &[Seg<'_>], what: String, file: &Path| {
        if let Err(e) = std::fs::metadata(file) {
            p.add(
                at,
                format!(
                    "{what} {}: {e}; create the file or fix the path",
                    file.display()
                ),
            );
        }
    };
    for (i, l) in config.listeners.iter().enumerate() {
        if let Some(tls) = &l.tls {
            need(
                &[K("listener"), I(i), K("tls"), K("cert")],
                format!("listener[{i}].tls.cert"),
                &tls.cert,
            );
            need(
                &[K("listener"), I(i), K("tls"), K("key")],
                format!("listener[{i}].tls.key"),
                &tls.key,
            );
        }
    }
    if let Some(t) = &config.tls_intercept {
        need(
            &[K("tls_intercept"), K("ca_cert")],
            "tls_intercept.ca_cert".into(),
            &t.ca_cert,
        );
        need(
            &[K("tls_intercept"), K("ca_key")],
            "tls_intercept.ca_key".into(),
            &t.ca_key,
        );
    }
    if let Some(b) = &config.upstream.ca_bundle {
        need(
            &[K("upstream"), K("ca_bundle")],
            "upstream.ca_bundle".into(),
            b,
        );
    }
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"mode = "enforce"

[[listener]]
bind = "127.0.0.1:8080"
kind = "forward"
tls = { cert = "a.pem", key = "a.key" }

[resolve]
"api.partner.de" = ["192.0.2.1"]

[[transfer]]
id = "A"
countries = [
  "US",
  "DE",
]
"#;

    #[test]
    fn locator_finds_keys_inline_tables_arrays_and_quoted_keys() {
        let l = Locator::new(DOC);
        assert_eq!(l.line(&[K("mode")]), 1);
        assert_eq!(l.line(&[K("listener"), I(0), K("kind")]), 5);
        assert_eq!(l.line(&[K("listener"), I(0), K("tls"), K("key")]), 6);
        assert_eq!(l.line(&[K("resolve"), K("api.partner.de")]), 9);
        assert_eq!(l.line(&[K("transfer"), I(0), K("countries"), I(1)]), 15);
        // Absent parts fall back to the deepest part that exists.
        assert_eq!(l.line(&[K("transfer"), I(0), K("valid_until")]), 11);
        assert_eq!(l.line(&[K("volume"), K("url")]), 1);
    }

    #[test]
    fn host_names_and_globs() {
        assert!(host_ok("api.partner.de", false));
        assert!(!host_ok("*.partner.de", false));
        assert!(host_ok("*.partner.de", true));
        assert!(host_ok("api-?.partner.de", true));
        assert!(host_ok("*", true));
        for bad in ["", "https://x.de", "x.de:443", "x.de/path", "a..b", "x .de"] {
            assert!(!host_ok(bad, true), "{bad:?}");
        }
    }
}
