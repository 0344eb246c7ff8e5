//! Text normalization between content decoding and detection, so that nothing hides behind
//! an encoding: JSON `\uXXXX` (and `\/`, `\n` …) escapes, URL/form percent-encoding (`+` as
//! space in forms and URL fragments), and full-width digits/plus/hyphen (U+FF10-FF19, U+FF0B,
//! U+FF0D) folded to ASCII. A byte-level state machine: state survives chunk boundaries, the
//! common case (no `\`, `%`, `+` or 0xEF byte) is a `memchr3` skip plus one `memcpy`.

use memchr::memchr3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// JSON, text, CSV, multipart: `\` escapes and `%XX` are decoded, `+` is literal.
    Text,
    /// `application/x-www-form-urlencoded` bodies and URL fragments: `%XX` and `+` → space.
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\`.
    Backslash,
    /// After `\u` with `n` hex digits read into `acc`.
    Unicode {
        n: u8,
        acc: u32,
    },
    /// After `%` with `n` hex digits read into `acc`.
    Percent {
        n: u8,
        acc: u8,
    },
}

/// Streaming normalizer; writes into a caller-provided sink so there is no intermediate
/// buffer.
#[derive(Debug, Clone)]
pub struct Normalizer {
    mode: Mode,
    esc: Esc,
    /// Pending bytes of a possible full-width character (EF BC xx): 0, 1 (EF) or 2 (EF BC).
    fw: u8,
}

/// Where normalized bytes go.
pub trait Sink {
    fn push(&mut self, b: u8);
    fn extend(&mut self, s: &[u8]);
}

impl Normalizer {
    pub fn new(mode: Mode) -> Normalizer {
        Normalizer {
            mode,
            esc: Esc::None,
            fw: 0,
        }
    }

    /// Normalizes `input`, returning how many input bytes were consumed; stops early when
    /// fewer than 16 bytes of `room` remain (the caller then scans and drains its window and
    /// calls again with the rest).
    pub fn run<S: Sink>(&mut self, input: &[u8], sink: &mut S, room: usize) -> usize {
        // Each input byte produces at most 3 output bytes (flushing a non-matching EF BC xx or
        // an invalid escape), so keep a margin.
        let mut i = 0;
        let mut out = 0usize;
        let (a, b) = match self.mode {
            Mode::Text => (b'\\', b'%'),
            Mode::Form => (b'+', b'%'),
        };
        while i < input.len() {
            let room_left = room.saturating_sub(out);
            if room_left <= 16 {
                break;
            }
            if self.esc == Esc::None && self.fw == 0 {
                let lim = (input.len() - i).min(room_left - 16);
                let rest = &input[i..i + lim];
                let span = memchr3(a, b, 0xEF, rest).unwrap_or(lim);
                sink.extend(&rest[..span]);
                out += span;
                i += span;
                if span == lim {
                    continue;
                }
                // A whole three-byte sequence starting 0xEF (full-width punctuation such as
                // `，` in Chinese text, or a full-width digit) is decided here in one step
                // instead of three trips through the state machine. Bytes ≥ 0x80 other than
                // 0xEF cannot start an escape or a fold, so this is exactly what the byte-wise
                // path would emit; anything else takes that path.
                if let [0xEF, x, y, ..] = input[i..] {
                    if x >= 0x80 && y >= 0x80 && x != 0xEF && y != 0xEF {
                        let folded = match (x, y) {
                            (0xBC, 0x90..=0x99) => Some(b'0' + (y - 0x90)),
                            (0xBC, 0x8B) => Some(b'+'),
                            (0xBC, 0x8D) => Some(b'-'),
                            _ => None,
                        };
                        match folded {
                            Some(c) => {
                                sink.push(c);
                                out += 1;
                            }
                            None => {
                                sink.extend(&[0xEF, x, y]);
                                out += 3;
                            }
                        }
                        i += 3;
                        continue;
                    }
                }
            }
            let c = input[i];
            i += 1;
            out += self.step(c, sink);
        }
        i
    }

    /// End of stream: flush anything half-read (an incomplete escape is literal text).
    pub fn finish<S: Sink>(&mut self, sink: &mut S) {
        match std::mem::replace(&mut self.esc, Esc::None) {
            Esc::None => {}
            Esc::Backslash => sink.push(b'\\'),
            Esc::Unicode { .. } => sink.push(b' '),
            Esc::Percent { n, acc } => {
                sink.push(b'%');
                if n == 1 {
                    sink.push(b"0123456789ABCDEF"[acc as usize]);
                }
            }
        }
        self.flush_fw(sink);
    }

    fn flush_fw<S: Sink>(&mut self, sink: &mut S) {
        match self.fw {
            1 => sink.push(0xEF),
            2 => sink.extend(&[0xEF, 0xBC]),
            _ => {}
        }
        self.fw = 0;
    }

    /// One byte through the escape state machine; returns output bytes written (upper bound).
    fn step<S: Sink>(&mut self, b: u8, sink: &mut S) -> usize {
        match self.esc {
            Esc::None => match b {
                b'\\' if self.mode == Mode::Text => {
                    self.esc = Esc::Backslash;
                    0
                }
                b'%' => {
                    self.esc = Esc::Percent { n: 0, acc: 0 };
                    0
                }
                b'+' if self.mode == Mode::Form => self.emit(b' ', sink),
                _ => self.emit(b, sink),
            },
            Esc::Backslash => {
                self.esc = Esc::None;
                match b {
                    b'u' => {
                        self.esc = Esc::Unicode { n: 0, acc: 0 };
                        0
                    }
                    // Control escapes become whitespace: they separate values like a space.
                    b'n' | b'r' | b't' | b'b' | b'f' => self.emit(b'\n', sink),
                    _ => self.emit(b, sink),
                }
            }
            Esc::Unicode { n, acc } => match hex(b) {
                Some(h) => {
                    let acc = acc << 4 | u32::from(h);
                    if n == 3 {
                        self.esc = Esc::None;
                        self.emit_char(acc, sink)
                    } else {
                        self.esc = Esc::Unicode { n: n + 1, acc };
                        0
                    }
                }
                None => {
                    // Malformed escape: a separator, then the byte as ordinary text.
                    self.esc = Esc::None;
                    self.emit(b' ', sink) + self.step(b, sink)
                }
            },
            Esc::Percent { n, acc } => match hex(b) {
                Some(h) => {
                    let acc = acc << 4 | h;
                    if n == 1 {
                        self.esc = Esc::None;
                        self.emit(acc, sink)
                    } else {
                        self.esc = Esc::Percent { n: 1, acc };
                        0
                    }
                }
                None => {
                    // A literal `%` (e.g. "50%"), then this byte normally.
                    self.esc = Esc::None;
                    let w = self.emit(b'%', sink);
                    if n == 1 {
                        // `%A` followed by non-hex: emit the hex char we swallowed.
                        let c = b"0123456789ABCDEF"[acc as usize];
                        w + self.emit(c, sink) + self.step(b, sink)
                    } else {
                        w + self.step(b, sink)
                    }
                }
            },
        }
    }

    /// Emit one decoded code point as UTF-8 (through the full-width fold).
    fn emit_char<S: Sink>(&mut self, cp: u32, sink: &mut S) -> usize {
        if cp < 0x80 {
            return self.emit(cp as u8, sink);
        }
        // Surrogates cannot be re-encoded; names and digits are in the BMP, so a separator
        // keeps positions honest without inventing characters.
        let c = char::from_u32(cp).unwrap_or(' ');
        let mut tmp = [0u8; 4];
        let s = c.encode_utf8(&mut tmp);
        let mut w = 0;
        for &b in s.as_bytes() {
            w += self.emit(b, sink);
        }
        w
    }

    /// Emit one byte, folding full-width forms EF BC 90-99 (０-９), EF BC 8B (＋), EF BC 8D (－).
    fn emit<S: Sink>(&mut self, b: u8, sink: &mut S) -> usize {
        match self.fw {
            0 => {
                if b == 0xEF {
                    self.fw = 1;
                    0
                } else {
                    sink.push(b);
                    1
                }
            }
            1 => {
                if b == 0xBC {
                    self.fw = 2;
                    0
                } else {
                    self.fw = 0;
                    sink.push(0xEF);
                    1 + self.emit(b, sink)
                }
            }
            _ => {
                self.fw = 0;
                match b {
                    0x90..=0x99 => {
                        sink.push(b'0' + (b - 0x90));
                        1
                    }
                    0x8B => {
                        sink.push(b'+');
                        1
                    }
                    0x8D => {
                        sink.push(b'-');
                        1
                    }
                    _ => {
                        sink.extend(&[0xEF, 0xBC]);
                        2 + self.emit(b, sink)
                    }
                }
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Sink for Vec<u8> {
    fn push(&mut self, b: u8) {
        Vec::push(self, b)
    }
    fn extend(&mut self, s: &[u8]) {
        self.extend_from_slice(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(mode: Mode, chunks: &[&[u8]]) -> Vec<u8> {
        let mut n = Normalizer::new(mode);
        let mut out = Vec::new();
        for c in chunks {
            let used = n.run(c, &mut out, usize::MAX / 2);
            assert_eq!(used, c.len());
        }
        n.finish(&mut out);
        out
    }

    #[test]
    fn json_escapes() {
        assert_eq!(norm(Mode::Text, &[br#"\u0031\u0033\u0038"#]), b"138");
        assert_eq!(norm(Mode::Text, &[br#"a\/b\"c"#]), b"a/b\"c");
        assert_eq!(norm(Mode::Text, &[b"\\u59d3\\u540d"]), "姓名".as_bytes());
    }

    #[test]
    fn percent_and_plus() {
        assert_eq!(norm(Mode::Form, &[b"a=1+2%2B3%40x"]), b"a=1 2+3@x");
        assert_eq!(norm(Mode::Text, &[b"50% off %zz"]), b"50% off %zz");
        assert_eq!(norm(Mode::Text, &[b"%4"]), b"%4");
        assert_eq!(norm(Mode::Text, &[b"%4g"]), b"%4g");
    }

    #[test]
    fn full_width() {
        assert_eq!(norm(Mode::Text, &["１３８－".as_bytes()]), b"138-");
        assert_eq!(norm(Mode::Text, &["ｘ".as_bytes()]), "ｘ".as_bytes());
        assert_eq!(norm(Mode::Form, &[b"%EF%BC%91"]), b"1");
    }

    /// The three-byte 0xEF fast path emits exactly what the byte-wise state machine does:
    /// one-byte chunks never take it, so they are the reference. Every four-byte string over
    /// lead, continuation, fold-range and escape bytes, after each escape state, both modes.
    #[test]
    fn full_width_fast_path_matches_bytewise() {
        let alphabet = [
            0xEF, 0xBC, 0x90, 0x99, 0x9A, 0x8B, 0x8C, 0x8D, 0xE4, b'\\', b'%', b'F', b'+',
        ];
        let k = alphabet.len();
        for prefix in [&b""[..], b"\\", b"\\u00", b"%", b"%E"] {
            for code in 0..k.pow(4) {
                let mut input = prefix.to_vec();
                let mut c = code;
                for _ in 0..4 {
                    input.push(alphabet[c % k]);
                    c /= k;
                }
                for mode in [Mode::Text, Mode::Form] {
                    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
                    assert_eq!(norm(mode, &[&input]), norm(mode, &bytewise), "{input:x?}");
                }
            }
        }
    }

    #[test]
    fn split_everywhere() {
        let input = "p=\\u0031%33８+x%EF%BC%99ｙ".as_bytes();
        for mode in [Mode::Text, Mode::Form] {
            let whole = norm(mode, &[input]);
            for cut in 0..input.len() {
                let parts = norm(mode, &[&input[..cut], &input[cut..]]);
                assert_eq!(parts, whole, "cut {cut}");
            }
        }
    }
}
