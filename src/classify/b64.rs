//! Base64 field values (standard `+/` and URL-safe `-_` alphabets, optional `=` padding):
//! finding runs that look like an encoded value, deciding cheaply whether they decode to
//! text, and the state that decodes one run into a nested scanner window. The scan pass
//! (`scan.rs`) calls into this in stream order, so personal data found inside a value is
//! attributed to the record the value sits in.
//!
//! What is decoded (one level deep; base64 inside decoded base64 is not decoded again):
//! - a maximal run of at least [`MIN_RUN`] alphabet characters, preceded by a value
//!   delimiter (start of payload, quote, `=`, `&`, whitespace, `:` or `,`);
//! - a run shorter than [`HOLD`] characters must also be valid base64 as a whole: at most two
//!   `=` of padding that complete a quad, a length that is not 1 mod 4, one alphabet (not
//!   both `+/` and `-_`), and a value delimiter after it (so a JWT's dot-separated segments,
//!   file paths ending in `.png` and `word@domain` are not decoded);
//! - runs made only of hex digits and `-` are skipped (hex digests, UUIDs, long digit runs);
//! - the decoded bytes must be text: valid UTF-8 (a sequence cut at the end is allowed) with
//!   at most one control byte in sixteen. Random tokens, digests, keys and compressed data
//!   decode to binary and are skipped after decoding at most [`HOLD`] characters.
//!
//! Bounds: a run shorter than [`HOLD`] characters is held in the window until it ends
//! (the window keeps at most `HOLD` + context bytes for it). A longer run is decided on its
//! first `HOLD` characters and then decoded in pieces of at most [`PIECE`] characters
//! straight into a nested streaming window, so memory per scanner is constant (one decode
//! buffer of `PIECE * 3 / 4` bytes and one nested window, both allocated on the first run
//! and reused). There is no per-request cap beyond the body's own inspection limit: decoded
//! bytes are at most three quarters of the body bytes that carry them, so the extra work is
//! linear in the body and bounded by `max_inspect_bytes`.

use super::normalize::{Mode, Normalizer};

/// Shortest run decoded (12 decoded bytes: shorter values hold no identifier worth the cost).
pub const MIN_RUN: usize = 16;
/// Runs shorter than this are validated whole; longer ones are decided on this prefix and
/// then streamed.
pub const HOLD: usize = 4096;
/// Characters decoded per step when streaming (a multiple of four).
pub const PIECE: usize = 4096;

/// Character classes of the base64 alphabets (one table lookup per byte off the SIMD path).
const ALPHA: u8 = 1;
/// `0-9`, `a-f`, `A-F` and `-`: a run of only these is a hex digest, UUID or number.
const HEXISH: u8 = 2;
/// `+` and `/`: standard alphabet only.
const STD: u8 = 4;
/// `-` and `_`: URL-safe alphabet only.
const URL: u8 = 8;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut v = 0;
        if c.is_ascii_alphanumeric() {
            v |= ALPHA;
        }
        if c.is_ascii_hexdigit() {
            v |= HEXISH;
        }
        if c == b'+' || c == b'/' {
            v |= ALPHA | STD;
        }
        if c == b'-' || c == b'_' {
            v |= ALPHA | URL;
        }
        if c == b'-' {
            v |= HEXISH;
        }
        t[b] = v;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

const fn value_table() -> [u8; 256] {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    let std = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while i < 64 {
        t[std[i] as usize] = i as u8;
        i += 1;
    }
    // Both alphabets decode with one table: a run mixing them is rejected before decoding
    // when it is short, and a long run is decided on its prefix.
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
}

static VALUE: [u8; 256] = value_table();

#[inline(always)]
pub fn is_alpha(b: u8) -> bool {
    CLASS[b as usize] & ALPHA != 0
}

/// A byte that may precede or follow an encoded value.
#[inline]
pub fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'"' | b'\'' | b'=' | b'&' | b' ' | b'\t' | b'\r' | b'\n' | b':' | b','
    )
}

/// Whether a run is worth decoding: one alphabet, not hex-only.
pub fn plausible(run: &[u8]) -> bool {
    let mut any = 0u8;
    let mut all = HEXISH;
    for &b in run {
        let c = CLASS[b as usize];
        any |= c;
        all &= c;
    }
    any & (STD | URL) != (STD | URL) && all & HEXISH == 0
}

/// Mask of the bits below `n` (all bits for `n ≥ 64`).
#[inline(always)]
fn low(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1 << n) - 1
    }
}

/// The next run of alphabet characters in `[from, lim)` that may be a value: at least
/// [`MIN_RUN`] long with a character outside hex digits and `-` (a *strong* character), or
/// touching `lim` (it may continue). Returns `(start, end)`; a run that began before `from`
/// is reported from `from`. A necessary condition of every check the caller makes, so it
/// filters without changing what is decoded.
///
/// Why this shape: most values are short, so 64 bytes are classified at once (AVX2 when the
/// CPU has it, SSE2 otherwise) and only chunks holding sixteen alphabet bytes in a row or a
/// run reaching the chunk's top are looked at further, with bit operations on the masks,
/// not byte by byte. UUIDs, digit runs and words shorter than 16 never leave the SIMD loop.
#[inline]
pub fn next_run(buf: &[u8], from: usize, lim: usize) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { next_run_avx2(buf, from, lim) };
        }
    }
    next_run_with::<Baseline>(buf, from, lim)
}

/// [`next_run`] without runtime feature detection (SSE2 on x86_64), for tests.
#[cfg(test)]
pub fn next_run_baseline(buf: &[u8], from: usize, lim: usize) -> Option<(usize, usize)> {
    next_run_with::<Baseline>(buf, from, lim)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_run_avx2(buf: &[u8], from: usize, lim: usize) -> Option<(usize, usize)> {
    next_run_with::<Avx2>(buf, from, lim)
}

/// Classifies 64 bytes: bit j of `.0` set when byte j is an alphabet character, of `.1` when
/// it is a strong one (`g-z`, `G-Z`, `+`, `/`, `_`).
trait Masks {
    fn masks64(chunk: &[u8; 64]) -> (u64, u64);
}

struct Baseline;

impl Masks for Baseline {
    #[inline(always)]
    fn masks64(chunk: &[u8; 64]) -> (u64, u64) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of the x86_64 baseline; every load reads 16 bytes inside
            // `chunk`.
            unsafe {
                let p = chunk.as_ptr();
                let mut a = 0u64;
                let mut s = 0u64;
                for k in 0..4 {
                    let (ak, sk) = sse2::masks16(p.add(16 * k));
                    a |= u64::from(ak) << (16 * k);
                    s |= u64::from(sk) << (16 * k);
                }
                (a, s)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let (mut a, mut st) = (0u64, 0u64);
            for (j, &b) in chunk.iter().enumerate() {
                let c = CLASS[b as usize];
                a |= u64::from(c & ALPHA != 0) << j;
                st |= u64::from(c & ALPHA != 0 && c & HEXISH == 0) << j;
            }
            (a, st)
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Masks for Avx2 {
    #[inline(always)]
    fn masks64(chunk: &[u8; 64]) -> (u64, u64) {
        // SAFETY: only reached through `next_run_avx2`, which requires AVX2; both loads read
        // 32 bytes inside `chunk`.
        unsafe {
            let p = chunk.as_ptr();
            let (a0, s0) = avx2::masks32(p);
            let (a1, s1) = avx2::masks32(p.add(32));
            (
                u64::from(a0) | u64::from(a1) << 32,
                u64::from(s0) | u64::from(s1) << 32,
            )
        }
    }
}

#[inline(always)]
fn next_run_with<M: Masks>(buf: &[u8], from: usize, lim: usize) -> Option<(usize, usize)> {
    let lim = lim.min(buf.len());
    let mut i = from;
    // A run that reached the top of the previous chunk: its start and whether it already
    // holds a strong character.
    let mut carry: Option<(usize, bool)> = None;
    while i + 64 <= lim {
        let (a, st) = M::masks64(buf[i..i + 64].try_into().expect("64 bytes"));
        let mut lo = 0u32;
        if let Some((s, strong)) = carry {
            let end = (!a).trailing_zeros();
            let strong = strong || st & low(end) != 0;
            if end == 64 {
                carry = Some((s, strong));
                i += 64;
                continue;
            }
            carry = None;
            if i + end as usize - s >= MIN_RUN && strong {
                return Some((s, i + end as usize));
            }
            lo = end;
        }
        // Bit j of `g`: sixteen alphabet bytes from j (shifts bring in zeros at the top,
        // so only runs inside the chunk count; one reaching the top is carried below).
        let f = a & (a >> 1);
        let f = f & (f >> 2);
        let f = f & (f >> 4);
        let g = f & (f >> 8);
        let mut hits = g & !low(lo);
        while hits != 0 {
            let h = hits.trailing_zeros();
            let below = !a & low(h);
            let left = if below == 0 {
                0
            } else {
                64 - below.leading_zeros()
            };
            let above = !a >> h;
            let right = if above == 0 {
                64
            } else {
                h + above.trailing_zeros()
            };
            if right == 64 {
                carry = Some((i + left as usize, st & !low(left) != 0));
                break;
            }
            if right - left >= MIN_RUN as u32 && st & low(right) & !low(left) != 0 {
                return Some((i + left as usize, i + right as usize));
            }
            hits &= !low(right);
        }
        if carry.is_none() && a >> 63 != 0 {
            // A short run at the top may continue in the next chunk.
            let left = 64 - (!a).leading_zeros();
            carry = Some((i + left as usize, st & !low(left) != 0));
        }
        i += 64;
    }
    let (mut s, mut strong) = carry.unwrap_or((usize::MAX, false));
    while i < lim {
        let c = CLASS[buf[i] as usize];
        if c & ALPHA != 0 {
            if s == usize::MAX {
                s = i;
                strong = false;
            }
            strong |= c & HEXISH == 0;
        } else if s != usize::MAX {
            if i - s >= MIN_RUN && strong {
                return Some((s, i));
            }
            s = usize::MAX;
        }
        i += 1;
    }
    (s != usize::MAX).then_some((s, lim))
}

/// Byte classification 16 at a time. Unsigned range tests: `x - lo ≤ span` is
/// `min(x - lo, span) == x - lo`.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };

    /// # Safety
    /// `p` must be valid for reading 16 bytes.
    #[inline(always)]
    pub unsafe fn masks16(p: *const u8) -> (u32, u32) {
        let v = _mm_loadu_si128(p.cast());
        let in_range = |x, lo: u8, span: u8| {
            let d = _mm_sub_epi8(x, _mm_set1_epi8(lo as i8));
            _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(span as i8)), d)
        };
        let digit = in_range(v, b'0', 9);
        let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
        let hex_letter = in_range(folded, b'a', 5);
        let other_letter = in_range(folded, b'g', 19);
        let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
        let strong = _mm_or_si128(
            _mm_or_si128(other_letter, eq(b'_')),
            _mm_or_si128(eq(b'+'), eq(b'/')),
        );
        let weak = _mm_or_si128(_mm_or_si128(digit, hex_letter), eq(b'-'));
        let a = _mm_movemask_epi8(_mm_or_si128(strong, weak)) as u32 & 0xFFFF;
        let s = _mm_movemask_epi8(strong) as u32 & 0xFFFF;
        (a, s)
    }
}

/// The same classification 32 bytes at a time, by nibble tables (AVX2 has `vpshufb`): the
/// two tables hold bit sets whose AND is non-zero exactly for the class members, which
/// takes about half the vector operations of range compares.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16,
    };

    // Each bit stands for a rectangle (high nibbles × low nibbles) of the byte table:
    // 0x01 `A-O a-o` (41-4F, 61-6F), 0x02 `P-Z p-z` (50-5A, 70-7A), 0x04 `0-9`, 0x08 `+ /`,
    // 0x10 `-`, 0x20 `_`, 0x40 `G-O g-o` (47-4F, 67-6F).
    /// Bits of alphabet characters.
    const ALPHA_BITS: i8 = 0x3F;
    /// Bits of strong characters (`g-z`, `G-Z`, `+`, `/`, `_`).
    const STRONG_BITS: i8 = 0x6A;
    /// By high nibble (repeated per 128-bit lane: `vpshufb` looks up within a lane).
    const HI: [u8; 32] = lanes([
        0, 0, 0x18, 0x04, 0x41, 0x22, 0x41, 0x02, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    /// By low nibble.
    const LO: [u8; 32] = lanes([
        0x06, 0x07, 0x07, 0x07, 0x07, 0x07, 0x07, 0x47, 0x47, 0x47, 0x43, 0x49, 0x41, 0x51, 0x41,
        0x69,
    ]);

    const fn lanes(t: [u8; 16]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = t[i % 16];
            i += 1;
        }
        out
    }

    /// # Safety
    /// `p` must be valid for reading 32 bytes and the CPU must support AVX2.
    #[inline(always)]
    pub unsafe fn masks32(p: *const u8) -> (u32, u32) {
        let v = _mm256_loadu_si256(p.cast());
        let nib = _mm256_set1_epi8(0x0F);
        let lo = _mm256_and_si256(v, nib);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
        let t_lo: __m256i = _mm256_loadu_si256(LO.as_ptr().cast());
        let t_hi: __m256i = _mm256_loadu_si256(HI.as_ptr().cast());
        let c = _mm256_and_si256(_mm256_shuffle_epi8(t_lo, lo), _mm256_shuffle_epi8(t_hi, hi));
        let zero = _mm256_setzero_si256();
        let none = |bits: i8| {
            _mm256_movemask_epi8(_mm256_cmpeq_epi8(
                _mm256_and_si256(c, _mm256_set1_epi8(bits)),
                zero,
            )) as u32
        };
        (!none(ALPHA_BITS), !none(STRONG_BITS))
    }

    /// Every byte value at every lane position against the class table.
    #[cfg(test)]
    #[test]
    fn nibble_tables_match_class_table() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        use super::{ALPHA, CLASS, HEXISH};
        #[target_feature(enable = "avx2")]
        unsafe fn masks32_avx2(p: *const u8) -> (u32, u32) {
            masks32(p)
        }
        for b in 0..=255u8 {
            let c = CLASS[b as usize];
            let want_alpha = c & ALPHA != 0;
            let want_strong = want_alpha && c & HEXISH == 0;
            for pos in 0..32 {
                let mut chunk = [b'.'; 32];
                chunk[pos] = b;
                // SAFETY: AVX2 checked above; `chunk` is 32 bytes.
                let (a, s) = unsafe { masks32_avx2(chunk.as_ptr()) };
                assert_eq!(a >> pos & 1 == 1, want_alpha, "alpha {b:#x} at {pos}");
                assert_eq!(s >> pos & 1 == 1, want_strong, "strong {b:#x} at {pos}");
                assert_eq!(a & !(1 << pos), 0, "{b:#x} at {pos}: other lanes");
            }
        }
    }
}

/// Decodes whole quads of `chars` (its length a multiple of four, every byte an alphabet
/// character) and a final partial quad of 2 or 3 characters when `last`, appending to `out`.
pub fn decode_into(chars: &[u8], out: &mut Vec<u8>) {
    let mut quads = chars.chunks_exact(4);
    for q in &mut quads {
        let n = u32::from(VALUE[q[0] as usize]) << 18
            | u32::from(VALUE[q[1] as usize]) << 12
            | u32::from(VALUE[q[2] as usize]) << 6
            | u32::from(VALUE[q[3] as usize]);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let r = quads.remainder();
    if r.len() >= 2 {
        let mut n = u32::from(VALUE[r[0] as usize]) << 18 | u32::from(VALUE[r[1] as usize]) << 12;
        if r.len() == 3 {
            n |= u32::from(VALUE[r[2] as usize]) << 6;
        }
        out.push((n >> 16) as u8);
        if r.len() == 3 {
            out.push((n >> 8) as u8);
        }
    }
}

/// Decoded bytes that are text: valid UTF-8 (a multi-byte sequence cut at the end is fine:
/// the decode may stop mid-character) and at most one control byte in sixteen.
pub fn is_text(d: &[u8]) -> bool {
    if d.is_empty() {
        return false;
    }
    let controls = d
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7F)
        .count();
    if controls * 16 > d.len() {
        return false;
    }
    match std::str::from_utf8(d) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Decoder state of a scanner window: where the base64 search resumes and the nested
/// window that scans decoded bytes (allocated on the first run that qualifies).
#[derive(Debug)]
pub struct B64 {
    /// Window index where the next search (or the active run's next character) starts.
    pub from: usize,
    /// A long run is being decoded piece by piece; `from` is its next undecoded character.
    pub active: bool,
    pub sub: Option<Box<Sub>>,
}

impl B64 {
    pub fn new() -> B64 {
        B64 {
            from: 0,
            active: false,
            sub: None,
        }
    }

    /// The nested scanner, allocated once.
    pub fn sub(&mut self) -> &mut Sub {
        self.sub.get_or_insert_with(|| {
            Box::new(Sub {
                win: super::scan::Window::plain(),
                norm: Normalizer::new(Mode::Text),
                dec: Vec::with_capacity(PIECE / 4 * 3),
                depth: 0,
            })
        })
    }
}

/// Nested scan of one decoded value: its own window (no base64 decoding inside: one level)
/// and normalizer (decoded JSON may carry `\u` escapes), sharing the payload's recorder.
#[derive(Debug)]
pub struct Sub {
    pub win: super::scan::Window,
    pub norm: Normalizer,
    /// Decoded bytes of the current piece.
    pub dec: Vec<u8>,
    /// Recorder brace depth when the value started: restored when it ends, so unbalanced
    /// decoded text cannot shift the record structure of the outer payload.
    pub depth: i32,
}
