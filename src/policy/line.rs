//! A decision's explanation lines, built by concatenation into one string.
//!
//! The engine writes about six lines for every outbound request it fully decides, and each
//! line lands in the audit event. `format!` goes through the `fmt` machinery (dynamic
//! dispatch per argument, padding checks) at about a thousand instructions a line, and a
//! `String` per line was a quarter of a proxied request's allocations; the lines are
//! appended piece by piece to one buffer instead, with where each ends. Tests compare every
//! builder with the `Display` output it replaces.

use std::fmt;
use std::net::IpAddr;

use chrono::{Datelike, NaiveDate};
use serde::ser::{Serialize, SerializeSeq, Serializer};

/// The lines of a decision's explanation, in order: one string and the end of each line.
/// Serialised (and compared, and debug-printed) as a list of strings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExplanationLines {
    text: String,
    ends: Vec<u32>,
}

impl ExplanationLines {
    /// Room for the usual six or seven lines, allocated once.
    pub(super) fn for_decision() -> ExplanationLines {
        ExplanationLines {
            text: String::with_capacity(512),
            ends: Vec::with_capacity(8),
        }
    }

    /// Appends one line.
    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.end_line();
    }

    /// Starts a line built piece by piece: `lines.line("destination ").s(host)…done()`.
    pub(super) fn line(&mut self, first: &str) -> Line<'_> {
        self.text.push_str(first);
        Line(self)
    }

    fn end_line(&mut self) {
        // Explanations are a few hundred bytes; a text past 4 GiB would be a bug upstream.
        self.ends
            .push(u32::try_from(self.text.len()).expect("explanation under 4 GiB"));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The lines, in order.
    pub fn iter(&self) -> Lines<'_> {
        Lines {
            text: &self.text,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// The lines as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

/// The lines of an [`ExplanationLines`], in order.
pub struct Lines<'a> {
    text: &'a str,
    ends: std::slice::Iter<'a, u32>,
    start: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.ends.next()? as usize;
        let line = &self.text[self.start..end];
        self.start = end;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Lines<'_> {}

impl<'a> IntoIterator for &'a ExplanationLines {
    type Item = &'a str;
    type IntoIter = Lines<'a>;
    fn into_iter(self) -> Lines<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for ExplanationLines {
    fn from_iter<I: IntoIterator<Item = S>>(lines: I) -> ExplanationLines {
        let mut e = ExplanationLines::default();
        for line in lines {
            e.push(line.as_ref());
        }
        e
    }
}

impl<const N: usize> PartialEq<[&str; N]> for ExplanationLines {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.len() == N && self.iter().zip(other).all(|(a, b)| a == *b)
    }
}

impl fmt::Debug for ExplanationLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for ExplanationLines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for line in self.iter() {
            seq.serialize_element(line)?;
        }
        seq.end()
    }
}

/// A line under construction, appended in place to its [`ExplanationLines`]; `done` ends it.
pub(super) struct Line<'e>(&'e mut ExplanationLines);

impl Line<'_> {
    pub(super) fn s(self, piece: &str) -> Self {
        self.0.text.push_str(piece);
        self
    }

    /// A decimal integer.
    pub(super) fn n(self, n: impl itoa::Integer) -> Self {
        self.0.text.push_str(itoa::Buffer::new().format(n));
        self
    }

    /// An address as `Display` writes it (IPv4 by hand; IPv6 through `fmt`, which is rare
    /// enough and has the compression rules).
    pub(super) fn ip(self, ip: IpAddr) -> Self {
        let text = &mut self.0.text;
        match ip {
            IpAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push('.');
                    }
                    text.push_str(digits.format(octet));
                }
            }
            IpAddr::V6(v6) => {
                use std::fmt::Write as _;
                let _ = write!(text, "{v6}");
            }
        }
        self
    }

    /// `YYYY-MM-DD`, as `NaiveDate`'s `Display` writes years 0 to 9999.
    pub(super) fn date(self, date: NaiveDate) -> Self {
        let text = &mut self.0.text;
        let year = date.year();
        if !(0..=9999).contains(&year) {
            use std::fmt::Write as _;
            let _ = write!(text, "{date}");
            return self;
        }
        let push2 = |s: &mut String, v: u32| {
            s.push(char::from(b'0' + (v / 10) as u8));
            s.push(char::from(b'0' + (v % 10) as u8));
        };
        let year = year as u32;
        push2(text, year / 100);
        push2(text, year % 100);
        text.push('-');
        push2(text, date.month());
        text.push('-');
        push2(text, date.day());
        self
    }

    pub(super) fn done(self) {
        self.0.end_line();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one line `build` makes.
    fn built(build: impl FnOnce(Line<'_>) -> Line<'_>) -> String {
        let mut lines = ExplanationLines::default();
        build(lines.line("")).done();
        assert_eq!(lines.len(), 1);
        lines.to_vec().remove(0)
    }

    #[test]
    fn pieces_read_as_display_would_write_them() {
        for ip in [
            "127.0.0.2",
            "0.0.0.0",
            "255.255.255.255",
            "10.200.3.45",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(built(|l| l.ip(ip)), ip.to_string());
        }
        for (y, m, d) in [
            (2026, 11, 24),
            (1, 1, 1),
            (999, 12, 31),
            (9999, 2, 3),
            (2024, 2, 29),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(built(|l| l.date(date)), date.to_string());
        }
        for date in [
            NaiveDate::from_ymd_opt(-44, 3, 15).unwrap(),
            NaiveDate::from_ymd_opt(12345, 6, 7).unwrap(),
        ] {
            assert_eq!(built(|l| l.date(date)), date.to_string());
        }
        for n in [0u64, 7, 10, 99, 1_000_000, u64::MAX] {
            assert_eq!(built(|l| l.s("x").n(n).s("y")), format!("x{n}y"));
        }
        assert_eq!(built(|l| l.s("a").n(-3i64)), "a-3");
    }

    #[test]
    fn lines_keep_their_order_and_bounds() {
        let mut lines = ExplanationLines::for_decision();
        assert!(lines.is_empty());
        lines.line("first ").n(1).done();
        lines.push("");
        lines.push("third, with ×");
        lines.line("").s("fourth").done();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines, ["first 1", "", "third, with ×", "fourth"]);
        assert_ne!(lines, ["first 1", "", "third, with ×"]);
        assert_eq!(
            (&lines).into_iter().collect::<Vec<_>>(),
            lines.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            serde_json::to_string(&lines).unwrap(),
            r#"["first 1","","third, with ×","fourth"]"#
        );
        assert_eq!(
            format!("{lines:?}"),
            r#"["first 1", "", "third, with ×", "fourth"]"#
        );
        let copy: ExplanationLines = lines.to_vec().into_iter().collect();
        assert_eq!(copy, lines);
        assert_eq!(
            serde_json::to_string(&ExplanationLines::default()).unwrap(),
            "[]"
        );
    }
}
