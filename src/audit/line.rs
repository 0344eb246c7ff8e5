//! The audit event as one JSON line, written by hand into a reused buffer.
//!
//! Why not `serde_json::to_vec`: every outbound request writes one event, and the generic
//! serializer (map states, a byte-at-a-time escape loop, a growing fresh `Vec`) was the
//! largest single user-space cost of a proxied 1 KiB request (about 14k instructions of
//! ~100k). This writer emits exactly the bytes serde would — field order, `null`s and the
//! skipped empty fields included — which `tests` checks byte for byte against the
//! `Serialize` derive, so the derive stays the schema's definition.

use std::io::Write as _;
use std::net::IpAddr;

use super::{AuditEvent, ChujingFields, ErrorFields};
use crate::classify::{DataClass, Finding};
use crate::config::Mode;

/// `2026-11-24T12:21:48.994Z`: what `to_rfc3339_opts(SecondsFormat::Millis, true)` writes,
/// without the formatting machinery (every event carries one). The date and time up to the
/// second are kept per thread: events of one second share them, only the milliseconds
/// change.
pub(super) fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    use std::cell::Cell;
    thread_local! {
        /// The last second formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: Cell<(i64, [u8; 19])> = const { Cell::new((i64::MIN, [0; 19])) };
    }
    let nanos = t.timestamp_subsec_nanos();
    // A leap second (nanos past 1e9) and years outside four digits take the slow path.
    if nanos >= 1_000_000_000 {
        return timestamp_uncached(t);
    }
    let second = t.timestamp();
    let (cached, mut prefix) = SECOND.with(Cell::get);
    if cached != second {
        let full = timestamp_uncached(t);
        if full.len() != 24 {
            return full;
        }
        prefix.copy_from_slice(&full.as_bytes()[..19]);
        SECOND.with(|c| c.set((second, prefix)));
    }
    let mut b = [0u8; 24];
    b[..19].copy_from_slice(&prefix);
    let millis = nanos / 1_000_000;
    b[19] = b'.';
    b[20] = b'0' + (millis / 100) as u8;
    b[21] = b'0' + (millis / 10 % 10) as u8;
    b[22] = b'0' + (millis % 10) as u8;
    b[23] = b'Z';
    String::from_utf8(b.to_vec()).expect("ASCII digits and separators")
}

/// [`timestamp`] without the per-thread second.
fn timestamp_uncached(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }
    let mut b = [0u8; 24];
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    // A leap second shows as :60, as chrono writes it.
    let nanos = t.nanosecond();
    put(17, 2, t.second() + nanos / 1_000_000_000);
    put(20, 3, (nanos % 1_000_000_000) / 1_000_000);
    b[4] = b'-';
    b[7] = b'-';
    b[10] = b'T';
    b[13] = b':';
    b[16] = b':';
    b[19] = b'.';
    b[23] = b'Z';
    String::from_utf8(b.to_vec()).expect("ASCII digits and separators")
}

/// Appends `event` as JSON (no newline) to `out`.
pub(super) fn write_event(out: &mut Vec<u8>, e: &AuditEvent) {
    out.extend_from_slice(b"{\"@timestamp\":");
    string(out, &e.timestamp);
    out.extend_from_slice(b",\"event\":{\"kind\":");
    known(out, e.event.kind);
    out.extend_from_slice(b",\"category\":[");
    known(out, e.event.category[0]);
    out.extend_from_slice(b"],\"action\":");
    known(out, e.event.action);
    out.extend_from_slice(b",\"outcome\":");
    known(out, e.event.outcome);
    out.extend_from_slice(b",\"reason\":");
    opt_known(out, e.event.reason);
    out.extend_from_slice(b",\"duration\":");
    number(out, e.event.duration);
    out.extend_from_slice(b"},\"source\":");
    match &e.source {
        None => out.extend_from_slice(b"null"),
        Some(s) => {
            out.extend_from_slice(b"{\"ip\":");
            ip(out, s.ip);
            out.extend_from_slice(b",\"port\":");
            number(out, u64::from(s.port));
            out.push(b'}');
        }
    }
    let d = &e.destination;
    out.extend_from_slice(b",\"destination\":{\"domain\":");
    string(out, &d.domain);
    out.extend_from_slice(b",\"ip\":");
    match d.ip {
        None => out.extend_from_slice(b"null"),
        Some(a) => ip(out, a),
    }
    out.extend_from_slice(b",\"port\":");
    number(out, u64::from(d.port));
    out.extend_from_slice(b",\"geo\":{\"country_iso_code\":");
    opt_string(out, d.geo.country_iso_code.as_deref());
    out.extend_from_slice(b"}},\"url\":{\"scheme\":");
    string(out, &e.url.scheme);
    out.extend_from_slice(b",\"domain\":");
    string(out, &e.url.domain);
    let h = &e.http;
    out.extend_from_slice(b"},\"http\":{\"version\":");
    string(out, &h.version);
    out.extend_from_slice(b",\"request\":{\"method\":");
    string(out, &h.request.method);
    out.extend_from_slice(b",\"id\":");
    string(out, &h.request.id);
    out.extend_from_slice(b",\"body\":{\"bytes\":");
    number(out, h.request.body.bytes);
    out.extend_from_slice(b"}},\"response\":{\"status_code\":");
    match h.response.status_code {
        None => out.extend_from_slice(b"null"),
        Some(s) => number(out, u64::from(s)),
    }
    out.extend_from_slice(b"}}");
    if let Some(err) = &e.error {
        error(out, err);
    }
    out.extend_from_slice(b",\"chujing\":");
    chujing(out, &e.chujing);
    out.push(b'}');
}

fn error(out: &mut Vec<u8>, e: &ErrorFields) {
    out.extend_from_slice(b",\"error\":{\"type\":");
    string(out, &e.kind);
    out.extend_from_slice(b",\"message\":");
    string(out, &e.message);
    out.push(b'}');
}

fn chujing(out: &mut Vec<u8>, c: &ChujingFields) {
    out.extend_from_slice(b"{\"request_id\":");
    string(out, &c.request_id);
    out.extend_from_slice(b",\"listener\":");
    known(out, c.listener);
    out.extend_from_slice(b",\"action\":");
    opt_known(out, c.action);
    out.extend_from_slice(b",\"enforced\":");
    out.extend_from_slice(if c.enforced { b"true" } else { b"false" });
    out.extend_from_slice(b",\"mode\":");
    known(out, mode(c.mode));
    out.extend_from_slice(b",\"reason\":");
    opt_known(out, c.reason);
    out.extend_from_slice(b",\"transfer\":");
    opt_string(out, c.transfer.as_deref());
    out.extend_from_slice(b",\"region\":");
    opt_known(out, c.region);
    out.extend_from_slice(b",\"findings\":[");
    for (i, f) in c.findings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        finding(out, f);
    }
    out.extend_from_slice(b"],\"subjects\":");
    number(out, c.subjects as u64);
    out.extend_from_slice(b",\"sensitive_subjects\":");
    number(out, c.sensitive_subjects as u64);
    if let Some(u) = c.uninspectable {
        out.extend_from_slice(b",\"uninspectable\":");
        known(out, u);
    }
    out.extend_from_slice(b",\"policy_hash\":");
    string(out, &c.policy_hash);
    if !c.explanation.is_empty() {
        out.extend_from_slice(b",\"explanation\":");
        string_array(out, c.explanation.iter());
    }
    out.push(b'}');
}

fn finding(out: &mut Vec<u8>, f: &Finding) {
    out.extend_from_slice(b"{\"category\":");
    string(out, f.category.as_str());
    out.extend_from_slice(b",\"class\":");
    known(out, class(f.class));
    out.extend_from_slice(b",\"count\":");
    number(out, f.count);
    if !f.samples.is_empty() {
        out.extend_from_slice(b",\"samples\":");
        string_array(out, f.samples.iter().map(String::as_str));
    }
    out.push(b'}');
}

/// The serde names (`rename_all = "snake_case"`), spelled out; the equality test keeps
/// them in step with the derive.
fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    }
}

fn class(c: DataClass) -> &'static str {
    match c {
        DataClass::Personal => "personal",
        DataClass::Sensitive => "sensitive",
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    // itoa writes two digits per step from a table; every line has a dozen numbers.
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn ip(out: &mut Vec<u8>, a: IpAddr) {
    out.push(b'"');
    match a {
        // The common case, without the formatting machinery: four decimal octets.
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        // Display of an address never needs escaping.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

/// A JSON array of strings (a finding's samples, the explanation's lines).
fn string_array<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, item);
    }
    out.push(b']');
}

/// A string the code itself names (reason codes, actions, regions, modes): never in need
/// of escaping, so it is copied as is.
fn known(out: &mut Vec<u8>, s: &'static str) {
    debug_assert!(
        next_escape(s.as_bytes(), 0).is_none(),
        "{s:?} needs escaping"
    );
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn opt_known(out: &mut Vec<u8>, s: Option<&'static str>) {
    match s {
        None => out.extend_from_slice(b"null"),
        Some(s) => known(out, s),
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(b"null"),
        Some(s) => string(out, s),
    }
}

/// A JSON string with serde_json's escaping: `"` and `\` escaped, control characters as
/// `\b \f \n \r \t` or `\u00XX`, everything else (UTF-8 included) as is. Clean runs are
/// copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..at]);
        escape(out, bytes[at]);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// Whether a byte must be escaped in a JSON string.
fn needs_escape_byte(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The position of the first byte at or after `from` that must be escaped. Sixteen bytes at
/// a time (SSE2, which every x86-64 has), then eight (SWAR), then one: the long explanation
/// lines and host names are mostly clean, so most of the work is these wide checks.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= bytes.len() {
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads bytes[i..i + 16],
        // in bounds by the loop condition, and `loadu` has no alignment requirement.
        let mask = unsafe {
            use std::arch::x86_64::*;
            let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v <= 0x1f exactly when max(v, 0x1f) == 0x1f.
            let low = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        };
        if mask != 0 {
            return Some(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if needs_escape(word) {
            break;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| needs_escape_byte(b))
        .map(|p| i + p)
}

/// Whether any byte of `w` is a control character (< 0x20), a quote or a backslash (SWAR: the classic
/// "has byte less than n" and "has zero byte" tests; bytes >= 0x80 never match).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))))
        != 0
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::write_event;
    use crate::classify::{Category, DataClass, Finding};
    use std::borrow::Cow;

    fn event(variant: usize) -> AuditEvent<'static> {
        let started = Utc::now();
        let facts = RequestFacts {
            request_id: "aed0b268000000011996",
            listener: if variant % 2 == 0 {
                "reverse"
            } else {
                "forward"
            },
            client: match variant {
                3 => None,
                0 => Some("[2001:db8::7]:40000".parse().unwrap()),
                _ => Some("10.0.255.7:40000".parse().unwrap()),
            },
            method: "POST",
            scheme: "https",
            host: "api.example.de",
            port: 443,
            version: "1.1",
            started,
        };
        let mut ev = AuditEvent::new(
            &facts,
            Outcome {
                destination: None,
                decision: None,
                report: None,
                mode: if variant % 2 == 0 {
                    Mode::Enforce
                } else {
                    Mode::Monitor
                },
                enforced: variant == 1,
                status: (variant != 2).then_some(403),
                error: (variant >= 2).then(|| ErrorFields {
                    kind: "http_request_error".into(),
                    message: "quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} 中文 \r \u{8}\u{c}".into(),
                }),
                policy_hash: "70a7bd0b6dcaf9b2",
            },
        );
        if variant >= 1 {
            ev.destination.ip = Some("127.0.0.2".parse().unwrap());
            ev.destination.geo.country_iso_code = Some("DE".into());
            ev.event.reason = Some("no_transfer_basis");
            ev.chujing.action = Some("block");
            ev.chujing.reason = Some("no_transfer_basis");
            ev.chujing.region = Some("abroad");
            ev.chujing.transfer = Some("SCC-\"2026\"".into());
            ev.chujing.findings = Cow::Owned(vec![
                Finding {
                    category: Category::new(Category::CN_RESIDENT_ID),
                    class: DataClass::Sensitive,
                    count: 12_345_678_901,
                    samples: vec!["110***********123X".into(), "3201**********0012".into()],
                },
                Finding {
                    category: Category::new(Category::CN_MOBILE),
                    class: DataClass::Personal,
                    count: 0,
                    samples: vec![],
                },
            ]);
            ev.chujing.subjects = 3;
            ev.chujing.sensitive_subjects = usize::MAX;
            ev.chujing.explanation = Cow::Owned(
                [
                    "destination api.example.de (127.0.0.2) is in DE (abroad)",
                    "控制字符 \u{1f} end",
                ]
                .into_iter()
                .collect(),
            );
            ev.event.duration = u64::MAX;
        }
        if variant == 4 {
            ev.chujing.uninspectable = Some("body_too_large");
            ev.http.response.status_code = Some(0);
        }
        ev
    }

    #[test]
    fn hand_written_line_is_byte_for_byte_what_serde_writes() {
        for variant in 0..5 {
            let ev = event(variant);
            let mut fast = Vec::new();
            write_event(&mut fast, &ev);
            let serde = serde_json::to_vec(&ev).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&serde),
                "variant {variant}"
            );
        }
    }

    /// An event borrows the request's strings, findings and explanation; detached with
    /// `into_owned`, it outlives them and still says the same thing, field for field.
    #[test]
    fn an_owned_event_outlives_what_it_borrowed_and_writes_the_same_line() {
        let (line, owned) = {
            let host = String::from("api.example.de");
            let request_id = String::from("aed0b268000000011996");
            let facts = RequestFacts {
                request_id: &request_id,
                listener: "forward",
                client: Some("10.0.255.7:40000".parse().unwrap()),
                method: "POST",
                scheme: "https",
                host: &host,
                port: 443,
                version: "1.1",
                started: Utc::now(),
            };
            let country = crate::geo::CountryCode::parse("DE");
            let destination = Destination {
                host: host.clone(),
                port: 443,
                ip: "127.0.0.2".parse().unwrap(),
                country,
                region: crate::geo::Region::of_country(country),
            };
            let report = ScanReport {
                bytes: 984,
                findings: vec![Finding {
                    category: Category::new(Category::CN_MOBILE),
                    class: DataClass::Personal,
                    count: 3,
                    samples: vec!["138****5678".into()],
                }],
                subjects: Vec::new(),
                uninspectable: None,
            };
            let decision = crate::policy::Decision {
                action: crate::policy::Action::Allow,
                reason: crate::policy::Reason::ApprovedTransfer,
                transfer: Some("SCC-LOAD".into()),
                explanation: ["transfer SCC-LOAD covers every category found"]
                    .into_iter()
                    .collect(),
                volume_claim: None,
            };
            let hash = String::from("70a7bd0b6dcaf9b2");
            let ev = AuditEvent::new(
                &facts,
                Outcome {
                    destination: Some(&destination),
                    decision: Some(&decision),
                    report: Some(&report),
                    mode: Mode::Enforce,
                    enforced: false,
                    status: Some(200),
                    error: None,
                    policy_hash: &hash,
                },
            );
            let mut line = Vec::new();
            write_event(&mut line, &ev);
            (line, ev.into_owned())
        };
        let mut again = Vec::new();
        write_event(&mut again, &owned);
        assert_eq!(
            String::from_utf8(again).unwrap(),
            String::from_utf8(line).unwrap()
        );
        let v = serde_json::to_value(&owned).unwrap();
        assert_eq!(v["destination"]["domain"], "api.example.de");
        assert_eq!(v["destination"]["geo"]["country_iso_code"], "DE");
        assert_eq!(v["chujing"]["request_id"], "aed0b268000000011996");
        assert_eq!(v["chujing"]["transfer"], "SCC-LOAD");
        assert_eq!(v["chujing"]["findings"][0]["samples"][0], "138****5678");
        assert_eq!(v["chujing"]["policy_hash"], "70a7bd0b6dcaf9b2");
        assert_eq!(
            v["chujing"]["explanation"][0],
            "transfer SCC-LOAD covers every category found"
        );
    }

    #[test]
    fn timestamp_is_what_chrono_writes() {
        let base = chrono::DateTime::parse_from_rfc3339("2026-12-31T23:59:59.999999999Z")
            .unwrap()
            .with_timezone(&Utc);
        for step_ms in [
            0i64,
            1,
            999,
            1_000,
            61_001,
            86_400_000,
            -400 * 86_400_000,
            3_000_000_000_000,
        ] {
            let t = base + chrono::Duration::milliseconds(step_ms);
            assert_eq!(
                super::timestamp(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
        }
        let now = Utc::now();
        assert_eq!(
            super::timestamp(now),
            now.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        // The per-thread second: hit within a second, missed on the next and on a return to
        // an earlier one, before 1970, and past year 9999.
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-24T12:21:48.005Z")
            .unwrap()
            .with_timezone(&Utc);
        for ms in [
            0i64,
            300,
            994,
            995,
            1_000,
            10,
            -1_000_000_000_000,
            -1,
            254_000_000_000_000,
            7,
        ] {
            let t = start + chrono::Duration::milliseconds(ms);
            assert_eq!(
                super::timestamp(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{ms} ms"
            );
        }
    }

    #[test]
    fn escapes_at_every_position_of_a_long_string() {
        // The sixteen- and eight-byte fast paths must not skip a byte that needs escaping,
        // wherever it is: every length up to 72 (several wide blocks and every tail), one
        // special anywhere, and a second one anywhere after it.
        let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:/é×";
        let specials = ["\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "中"];
        for special in specials {
            for (len, pos) in (0..=72).flat_map(|len| (0..=len).map(move |pos| (len, pos))) {
                let base: String = alphabet.chars().cycle().take(len).collect();
                let at = base.char_indices().nth(pos).map_or(base.len(), |(i, _)| i);
                let mut s = base.clone();
                s.insert_str(at, special);
                for second in [None, Some("\""), Some("\u{8}")] {
                    let mut s = s.clone();
                    if let Some(second) = second {
                        s.push_str(&"z".repeat(pos % 19));
                        s.push_str(second);
                    }
                    let mut fast = Vec::new();
                    super::string(&mut fast, &s);
                    assert_eq!(
                        fast,
                        serde_json::to_vec(&s).unwrap(),
                        "{special:?} at {pos} of {len}, then {second:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_does() {
        for b in 0u8..0x80 {
            let s = format!("a{}b", b as char);
            let mut fast = Vec::new();
            super::string(&mut fast, &s);
            assert_eq!(fast, serde_json::to_vec(&s).unwrap(), "byte {b:#04x}");
        }
    }
}
