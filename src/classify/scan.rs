//! The hot loop: a window over the normalized stream, searched for candidate tokens (digit
//! runs, `@`, base64 values) eight or more bytes at a time, each candidate dispatched by
//! length and shape to the validators (base64 values to a nested window, see `b64`). The window is allocated once per scanner; after each pass only a small tail
//! (the candidate that may continue in the next chunk plus [`CONTEXT`] bytes of look-behind
//! for prefixes and keywords) is kept, so memory is constant and a value split at any byte is
//! found exactly once.

use std::collections::VecDeque;

use chrono::NaiveDate;
use memchr::memmem;

use super::b64::{self, B64};
use super::keywords::{self, Kw};
use super::record::{write_mask_email, write_mask_keep, Recorder, Strong};
use super::validate;
use super::{cat, Detectors};

/// Something the keyword pass found that concerns the record it sits in; applied in stream
/// order by the candidate pass, which tracks record structure.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// Health keyword with a value: health PI if the record names an individual.
    Health,
    /// Sensitive PI (a precise location) about the record's individual.
    Sensitive,
}

/// Window capacity: large enough that the copy into it is amortized, small enough to stay in
/// L1/L2 per concurrent request.
pub const CAP: usize = 32 * 1024;
/// Look-behind kept before the resume point (e-mail local parts ≤ 64, keywords, `+86`).
pub const CONTEXT: usize = 128;
/// Digit groups longer than this are not identifiers (hashes, big integers): skipped whole.
const LONG_GROUP: usize = 24;
/// Separated digit groups considered together (`6222 0212 3456 7890 123` is 5).
const MAX_GROUPS: usize = 8;

/// A window over the normalized stream.
#[derive(Debug)]
pub struct Window {
    pub buf: Vec<u8>,
    /// Where the next pass starts (everything before it is decided).
    scan_from: usize,
    /// Up to where record structure (braces, newlines) has been fed to the recorder.
    struct_pos: usize,
    /// Inside a digit group longer than [`LONG_GROUP`] that reached the end of the window.
    long_run: bool,
    /// Where the next keyword pass starts (a keyword may straddle the previous end).
    kw_from: usize,
    /// Stream offset where the last processed keyword ended: matches starting before it
    /// were seen already (the keyword pass re-reads a short overlap).
    kw_next: u64,
    /// Where the next custom-regex pass starts.
    rx_from: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Keyword-pass events not yet reached by the candidate pass (stream offsets).
    events: VecDeque<(u64, Event)>,
    /// End (stream offset) of the last location pair, so `lat` and `lng` keys of one pair
    /// count once.
    loc_until: u64,
    /// Base64 value decoding; `None` in the nested window that scans decoded values (one
    /// level deep).
    b64: Option<B64>,
}

impl Drop for Window {
    fn drop(&mut self) {
        spare::put(
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.events),
        );
    }
}

/// Window buffers of finished scans, kept per thread for the next ones. Every request that
/// is inspected needs one or two windows; a fresh 32 KiB block each time takes the
/// allocator's slow path twice (allocation from a page whose free list is empty, and the
/// page's retirement when it is freed), about 1k instructions a request. A kept buffer is
/// cleared before it is handed out again, so nothing of one request is seen by the next.
mod spare {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::{Event, CAP};

    /// Buffers kept per thread: enough for the windows of the requests one worker has in
    /// flight between two of its turns, and a bound (`KEEP` × 32 KiB) on what idles.
    pub(super) const KEEP: usize = 8;

    type Buffers = (Vec<u8>, VecDeque<(u64, Event)>);

    thread_local! {
        static SPARE: RefCell<Vec<Buffers>> = const { RefCell::new(Vec::new()) };
    }

    /// Empty buffers for a new window: kept ones if this thread has any, else new ones.
    pub(super) fn take() -> Buffers {
        SPARE
            .try_with(|spare| spare.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| (Vec::with_capacity(CAP), VecDeque::with_capacity(16)))
    }

    /// Keeps a dropped window's buffers, emptied, unless enough are kept or they grew (a
    /// window never grows past `CAP`; an event queue that did is let go).
    pub(super) fn put(mut buf: Vec<u8>, mut events: VecDeque<(u64, Event)>) {
        if buf.capacity() != CAP || events.capacity() > 64 {
            return;
        }
        buf.clear();
        events.clear();
        // During thread teardown the list may be gone already: the buffers are then freed.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < KEEP {
                spare.push((buf, events));
            }
        });
    }

    #[cfg(test)]
    pub(super) fn kept() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }
}

impl Window {
    /// A window over a payload or fragment, decoding base64 field values.
    pub fn new() -> Window {
        let mut w = Window::plain();
        w.b64 = Some(B64::new());
        w
    }

    /// A window that does not decode base64 (the nested scan of a decoded value).
    pub fn plain() -> Window {
        let (buf, events) = spare::take();
        Window {
            buf,
            scan_from: 0,
            struct_pos: 0,
            long_run: false,
            kw_from: 0,
            kw_next: 0,
            rx_from: 0,
            base: 0,
            events,
            loc_until: 0,
            b64: None,
        }
    }

    /// Free room for the normalizer.
    pub fn room(&self) -> usize {
        CAP - self.buf.len()
    }

    /// Scan what is buffered; unless `eof`, keep the undecided tail for the next pass.
    pub fn pass(&mut self, det: &Detectors, today: NaiveDate, rec: &mut Recorder, eof: bool) {
        let mut s = Pass {
            buf: &self.buf,
            eof,
            det,
            today,
            rec,
            struct_pos: self.struct_pos,
            base: self.base,
            events: &mut self.events,
            loc_until: self.loc_until,
            kw_next: self.kw_next,
            floor: 0,
            next_at: 0,
            block: usize::MAX,
            hold: usize::MAX,
            b64: self.b64.as_mut(),
            b64_next: 0,
            b64_run: (0, 0, 0),
        };
        let (kw_resume, kw_block) = s.keywords(self.kw_from);
        s.block = if eof { usize::MAX } else { kw_block };
        let rx_resume = s.custom_regex(self.rx_from);
        let mut from = self.scan_from;
        if self.long_run {
            while from < s.buf.len() && s.buf[from].is_ascii_digit() {
                from += 1;
            }
            self.long_run = from == s.buf.len() && !eof;
        }
        let (resume, long) = s.run(from);
        self.long_run |= long;
        // Record structure must not run ahead of a keyword whose event is still pending, nor
        // past where an undecided candidate's hit will be attributed, nor into a trailing run
        // of e-mail local-part characters (when its `@` arrives the address starts there):
        // keyword events inside a value belong after its hit, as when the body is scanned
        // whole.
        let mut hold = resume.min(kw_block).min(s.hold);
        if !eof {
            hold = hold.min(s.local_run_start(s.buf.len()));
        }
        s.advance(hold);
        if eof {
            s.drain_events();
        }
        self.struct_pos = s.struct_pos;
        self.loc_until = s.loc_until;
        self.kw_next = s.kw_next;
        let b64_resume = self.b64.as_ref().map_or(usize::MAX, |b| b.from);
        if eof {
            if let Some(b) = self.b64.as_mut() {
                b.from = 0;
                b.active = false;
            }
            self.base += self.buf.len() as u64;
            self.buf.clear();
            self.scan_from = 0;
            self.kw_from = 0;
            self.rx_from = 0;
            self.struct_pos = 0;
            self.long_run = false;
            return;
        }
        let keep_from = resume
            .min(kw_resume)
            .min(rx_resume)
            .min(b64_resume)
            .saturating_sub(CONTEXT)
            .min(self.struct_pos);
        self.buf.drain(..keep_from);
        self.base += keep_from as u64;
        self.scan_from = resume - keep_from;
        self.kw_from = kw_resume - keep_from;
        self.rx_from = rx_resume - keep_from;
        self.struct_pos -= keep_from;
        if let Some(b) = self.b64.as_mut() {
            b.from -= keep_from;
        }
    }
}

enum Step {
    /// Continue scanning at this index.
    Done(usize),
    /// A candidate starting here may continue past the window: stop, resume here.
    Incomplete(usize),
    /// A long digit group runs to the end of the window.
    LongToEnd,
}

struct Pass<'a> {
    buf: &'a [u8],
    eof: bool,
    det: &'a Detectors,
    today: NaiveDate,
    rec: &'a mut Recorder,
    struct_pos: usize,
    base: u64,
    events: &'a mut VecDeque<(u64, Event)>,
    loc_until: u64,
    kw_next: u64,
    /// Candidates before this index were decided in this pass.
    floor: usize,
    /// Position of the next `@` at or after the scan position (`buf.len()` if none).
    next_at: usize,
    /// Candidates starting at or after this index wait for the next pass: a keyword there has
    /// not been decided yet, and its event must be applied before any later hit (otherwise
    /// the keyword's attribution would depend on where the chunks were cut).
    block: usize,
    /// Where record structure must stop in this pass because an undecided candidate's hit
    /// will be attributed there (an e-mail's local part starts before its `@`, a
    /// letter-prefixed ID before its digits).
    hold: usize,
    /// Base64 decoding state (`None` in a nested window).
    b64: Option<&'a mut B64>,
    /// Start of the next base64 run to act on (`buf.len()` if none in this pass).
    b64_next: usize,
    /// That run: start, end of its alphabet characters, end of its padding (`usize::MAX`
    /// for a long run, decided on its prefix).
    b64_run: (usize, usize, usize),
}

/// First index in `[i, lim)` where four ASCII digits in a row start (every identifier has
/// a group of at least four digits: 3-4-4 mobiles, 4-4-4-4 cards, 6-8-4 IDs, HK/TW IDs,
/// passports). SWAR: eight bytes are classified at once with no branch per byte; a word
/// without a 4-run lets the search skip past it except for the digits at its top end (at
/// most three, which may begin a run continuing in the next word), so it moves 5-8 bytes a
/// step and never re-reads a byte it has already ruled out more than three times.
#[inline]
fn next_run4(buf: &[u8], i: usize, lim: usize) -> Option<usize> {
    let lim = lim.min(buf.len());
    #[cfg(target_arch = "x86_64")]
    let i = match run4_sse2(buf, i, lim) {
        Ok(found) => return Some(found),
        Err(resume) => resume,
    };
    next_run4_swar(buf, i, lim)
}

/// The same search 32 bytes a step with SSE2 (part of the x86_64 baseline, so no runtime
/// detection): a 32-bit digit mask per step, a 4-run is `m & m>>1 & m>>2 & m>>3`. Returns
/// `Ok(start)` or `Err(i)` with fewer than 32 bytes left before `lim` from `i`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn run4_sse2(buf: &[u8], mut i: usize, lim: usize) -> Result<usize, usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_sub_epi8,
    };
    let hay = &buf[..lim];
    while i + 32 <= hay.len() {
        let chunk = &hay[i..i + 32];
        // SAFETY: SSE2 is always available on x86_64; both unaligned loads read 16 bytes
        // inside `chunk`, which is 32 bytes long.
        let m = unsafe {
            let zero = _mm_set1_epi8(b'0' as i8);
            let nine = _mm_set1_epi8(9);
            let lane = |v: __m128i| {
                // `b - '0'` is ≤ 9 (unsigned) exactly for digits.
                let x = _mm_sub_epi8(v, zero);
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x)) as u32 & 0xFFFF
            };
            let lo = lane(_mm_loadu_si128(chunk.as_ptr().cast()));
            let hi = lane(_mm_loadu_si128(chunk.as_ptr().add(16).cast()));
            lo | hi << 16
        };
        let r = m & (m >> 1) & (m >> 2) & (m >> 3);
        if r != 0 {
            return Ok(i + r.trailing_zeros() as usize);
        }
        // At most three digits at the top may begin a run that continues: resume there.
        i += 32 - (!m).leading_zeros() as usize;
    }
    Err(i)
}

/// Portable form of [`next_run4`] (and its tail on x86_64).
#[inline]
fn next_run4_swar(buf: &[u8], mut i: usize, lim: usize) -> Option<usize> {
    while i + 8 <= lim {
        let w = u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
        let d = digit_mask(w);
        // Lane j of `r` is set when bytes j..j+4 are all digits (little-endian: lane j+1
        // shifts down onto lane j).
        let r = d & (d >> 8) & (d >> 16) & (d >> 24);
        if r != 0 {
            return Some(i + (r.trailing_zeros() / 8) as usize);
        }
        // Digits at the top of the word (0..=3 of them) may start a run: resume there.
        let top = (!d & HI).leading_zeros() / 8;
        i += 8 - top as usize;
    }
    // Tail shorter than a word.
    let mut run = 0;
    while i < lim {
        if buf[i].is_ascii_digit() {
            run += 1;
            if run == 4 {
                return Some(i - 3);
            }
        } else {
            run = 0;
        }
        i += 1;
    }
    None
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte lane set iff that byte is an ASCII digit. Lanes are 7-bit after
/// masking, so the additions never carry into the next lane.
#[inline(always)]
fn digit_mask(w: u64) -> u64 {
    let x = w & !HI;
    let ge0 = x.wrapping_add(LO * (0x80 - b'0' as u64));
    let gt9 = x.wrapping_add(LO * (0x80 - b'9' as u64 - 1));
    ge0 & !gt9 & !w & HI
}

/// Next index ≥ `i` where a run of four digits starts or an `@` sits, or `buf.len()`.
#[cfg(test)]
fn next_candidate(buf: &[u8], i: usize) -> usize {
    let at = memchr::memchr(b'@', &buf[i.min(buf.len())..]).map_or(buf.len(), |p| i + p);
    next_run4(buf, i, at).unwrap_or(at)
}

/// First index ≥ `k` whose byte is not an ASCII digit (`buf.len()` if none): eight bytes a
/// step with the SWAR digit mask, as every candidate's groups are measured this way (IDs
/// and cards are 16-19 digits).
#[inline]
fn digit_run_end(buf: &[u8], mut k: usize) -> usize {
    while k + 8 <= buf.len() {
        let w = u64::from_le_bytes(buf[k..k + 8].try_into().expect("8 bytes"));
        let other = !digit_mask(w) & HI;
        if other != 0 {
            return k + (other.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < buf.len() && buf[k].is_ascii_digit() {
        k += 1;
    }
    k
}

/// E-mail character classes by table (the local part is walked back from every `@` and the
/// domain forward, a byte at a time).
const LOCAL: u8 = 1;
const DOMAIN: u8 = 2;
static EMAIL_CHARS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-') {
            t[b] = LOCAL | DOMAIN;
        } else if matches!(c, b'_' | b'%' | b'+') {
            t[b] = LOCAL;
        }
        b += 1;
    }
    t
};

/// Alphanumeric or `. _ % + -`.
#[inline(always)]
fn is_local_char(b: u8) -> bool {
    EMAIL_CHARS[usize::from(b)] & LOCAL != 0
}

/// Alphanumeric or `. -`.
#[inline(always)]
fn is_domain_char(b: u8) -> bool {
    EMAIL_CHARS[usize::from(b)] & DOMAIN != 0
}

impl Pass<'_> {
    /// Returns the resume index and whether it stopped inside a long digit group.
    fn run(&mut self, mut i: usize) -> (usize, bool) {
        let len = self.buf.len();
        self.floor = i;
        self.next_at = memchr::memchr(b'@', &self.buf[i.min(len)..]).map_or(len, |p| i + p);
        self.b64_next = self.b64_first();
        loop {
            // `@` by SIMD memchr (rare in most payloads, so its position is cached), digit
            // runs by the strided search up to it.
            if self.next_at < i {
                self.next_at = memchr::memchr(b'@', &self.buf[i..]).map_or(len, |p| i + p);
            }
            let lim = self.next_at.min(self.b64_next);
            let c = next_run4(self.buf, i, lim).unwrap_or(lim);
            if c >= self.block && c < len {
                // Behind an undecided keyword: stop here, as at the end of the window. The
                // candidate's hit may be attributed before `c` (an e-mail's local part, an
                // ID's letters): record structure waits there too.
                self.hold = self.hold.min(self.local_run_start(c));
                return (self.resume_before(c), false);
            }
            if c == self.b64_next && c < len {
                // A base64 value, handled in stream order so what it hides lands in its
                // record; its characters are still searched for digit runs afterwards (the
                // candidate position `i` does not move).
                self.b64_next = self.b64_step();
                continue;
            }
            i = c;
            if i >= len {
                if self.eof {
                    return (len, false);
                }
                return (self.resume_before(len), false);
            }
            let step = if self.buf[i] == b'@' {
                self.email(i)
            } else {
                self.digits(i)
            };
            match step {
                Step::Done(next) => {
                    i = next;
                    self.floor = next;
                }
                Step::Incomplete(at) => return (at, false),
                Step::LongToEnd => return (len, true),
            }
        }
    }

    /// Start of the run of e-mail local-part characters (at most 64) that ends at `end`, not
    /// before the structure already fed: where an address whose `@` is at `end` would start.
    fn local_run_start(&self, end: usize) -> usize {
        let mut t = end;
        while t > self.struct_pos && end - t < 64 && is_local_char(self.buf[t - 1]) {
            t -= 1;
        }
        t
    }

    /// Where the next pass resumes when this one stops at `end`: digits and separators just
    /// before it may begin a candidate once more arrives (`138 12|34 5678`), so they are
    /// re-read.
    fn resume_before(&self, end: usize) -> usize {
        let mut t = end;
        while t > self.floor
            && end - t < 64
            && matches!(
                self.buf[t - 1],
                b'0'..=b'9' | b' ' | b'-' | b'+' | b'(' | b')'
            )
        {
            t -= 1;
        }
        t
    }

    /// Where base64 work starts in this pass: the active long run's next character, or the
    /// first run found from the saved search position.
    fn b64_first(&mut self) -> usize {
        match self.b64.as_deref() {
            None => self.buf.len(),
            Some(b) if b.active => b.from,
            Some(_) => self.b64_find(),
        }
    }

    /// Searches from the saved position for the next run to act on: returns its start (and
    /// sets `b64_run`), or `buf.len()` after saving where the next pass must search again (a
    /// short run that may continue past the window is held whole).
    fn b64_find(&mut self) -> usize {
        let buf = self.buf;
        let len = buf.len();
        let eof = self.eof;
        let Some(b) = self.b64.as_deref_mut() else {
            return len;
        };
        let mut i = b.from;
        loop {
            let Some((s, e)) = b64::next_run(buf, i, len) else {
                b.from = len;
                return len;
            };
            let open = e == len && !eof;
            // `s == 0` only at the start of the stream or of a fragment: the window keeps
            // context before every resume point.
            let left_ok = s == 0 || b64::is_delimiter(buf[s - 1]);
            let n = e - s;
            if !left_ok {
                // Part of a longer token (`a.b64`, a JWT segment) or the rest of a run
                // decided before: skipped whole.
                i = e;
                if open {
                    b.from = len;
                    return len;
                }
                continue;
            }
            if n >= b64::HOLD {
                b.from = s;
                self.b64_run = (s, e, usize::MAX);
                return s;
            }
            let mut p = e;
            while p < len && p - e < 2 && buf[p] == b'=' {
                p += 1;
            }
            if p == len && !eof {
                // The value's end (padding, delimiter) has not arrived: hold it.
                b.from = s;
                return len;
            }
            if n < b64::MIN_RUN {
                i = e;
                continue;
            }
            b.from = s;
            self.b64_run = (s, e, p);
            return s;
        }
    }

    /// Acts on the run at `b64_next` (a short value, the start of a long one, or the active
    /// long run's next piece) and returns the next place to act on.
    fn b64_step(&mut self) -> usize {
        let active = self.b64.as_deref().is_some_and(|b| b.active);
        if active {
            return self.b64_continue();
        }
        let (s, e, p) = self.b64_run;
        if p == usize::MAX {
            return self.b64_long(s, e);
        }
        self.b64_short(s, e, p);
        self.b64_find()
    }

    /// A run shorter than [`b64::HOLD`], complete with its padding and the byte after it.
    fn b64_short(&mut self, s: usize, e: usize, p: usize) {
        let buf = self.buf;
        let (det, today) = (self.det, self.today);
        let b = self.b64.as_deref_mut().expect("base64 state");
        b.from = p;
        let n = e - s;
        let pad = p - e;
        let right_ok = buf
            .get(p)
            .is_none_or(|&c| c != b'=' && b64::is_delimiter(c));
        let valid = n % 4 != 1
            && (pad == 0 || (n + pad) % 4 == 0)
            && right_ok
            && b64::plausible(&buf[s..e]);
        if !valid {
            return;
        }
        let sub = b.sub();
        sub.dec.clear();
        b64::decode_into(&buf[s..e], &mut sub.dec);
        if !b64::is_text(&sub.dec) {
            return;
        }
        self.advance(s);
        let sub = self.b64.as_deref_mut().expect("base64 state").sub();
        sub.depth = self.rec.depth;
        sub_feed_dec(sub, det, today, self.rec);
        sub_finish(sub, det, today, self.rec);
    }

    /// A run of at least [`b64::HOLD`] characters: decided on its first `HOLD` characters,
    /// then decoded piece by piece as it arrives.
    fn b64_long(&mut self, s: usize, e: usize) -> usize {
        let buf = self.buf;
        let len = buf.len();
        let (det, today) = (self.det, self.today);
        let b = self.b64.as_deref_mut().expect("base64 state");
        let head = &buf[s..s + b64::HOLD];
        let sub = b.sub();
        sub.dec.clear();
        let text = b64::plausible(head) && {
            b64::decode_into(head, &mut sub.dec);
            b64::is_text(&sub.dec)
        };
        if !text {
            // Binary (a file, a key, compressed data): skip the rest of the run, here and
            // in later windows (its continuation has no delimiter before it).
            b.from = if e == len && !self.eof { len } else { e };
            return self.b64_find_after_skip();
        }
        b.from = s + b64::HOLD;
        b.active = true;
        self.advance(s);
        let sub = self.b64.as_deref_mut().expect("base64 state").sub();
        sub.depth = self.rec.depth;
        sub_feed_dec(sub, det, today, self.rec);
        self.b64_continue()
    }

    /// After skipping a run: search on unless the skip reached the window end.
    fn b64_find_after_skip(&mut self) -> usize {
        let len = self.buf.len();
        if self.b64.as_deref().is_some_and(|b| b.from >= len) {
            return len;
        }
        self.b64_find()
    }

    /// Decodes the active long run from `from` up to its end or the window end (whole
    /// quads only; the last 0-3 characters wait for the next pass unless the run ended).
    fn b64_continue(&mut self) -> usize {
        let buf = self.buf;
        let len = buf.len();
        let (det, today) = (self.det, self.today);
        let eof = self.eof;
        let b = self.b64.as_deref_mut().expect("base64 state");
        let from = b.from;
        let mut j = from;
        while j < len && b64::is_alpha(buf[j]) {
            j += 1;
        }
        let ended = j < len || eof;
        let take = if ended { j - from } else { (j - from) / 4 * 4 };
        let sub = b.sub();
        for piece in buf[from..from + take].chunks(b64::PIECE) {
            sub.dec.clear();
            b64::decode_into(piece, &mut sub.dec);
            sub_feed_dec(sub, det, today, self.rec);
        }
        if !ended {
            b.from = from + take;
            return len;
        }
        sub_finish(sub, det, today, self.rec);
        b.from = j;
        b.active = false;
        self.b64_find()
    }

    /// Feed record structure up to `pos` to the recorder (before attributing a hit at `pos`),
    /// applying keyword events in stream order on the way.
    fn advance(&mut self, pos: usize) {
        if pos <= self.struct_pos {
            return;
        }
        let abs_end = self.base + pos as u64;
        while let Some(&(at, ev)) = self.events.front() {
            if at >= abs_end {
                break;
            }
            self.events.pop_front();
            let rel = (at.saturating_sub(self.base) as usize).clamp(self.struct_pos, pos);
            self.rec.structure(&self.buf[self.struct_pos..rel]);
            self.struct_pos = rel;
            self.apply(ev);
        }
        self.rec.structure(&self.buf[self.struct_pos..pos]);
        self.struct_pos = pos;
    }

    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Health => self.rec.health_keyword(cat::HEALTH),
            Event::Sensitive => self.rec.mark_sensitive(true),
        }
    }

    /// End of stream: apply every remaining event.
    fn drain_events(&mut self) {
        while let Some((_, ev)) = self.events.pop_front() {
            self.apply(ev);
        }
    }

    /// The keyword pass over `[from, len)`: triggers the keyword-led detectors. Returns where
    /// the next pass must start (a keyword may straddle the window end, so the last
    /// `max_len - 1` bytes are re-read) and where record structure must stop (a keyword whose
    /// value has not fully arrived yet is retried, and its event must land in its record).
    fn keywords(&mut self, from: usize) -> (usize, usize) {
        let det = self.det;
        let len = self.buf.len();
        let overlap = if self.eof {
            len
        } else {
            len.saturating_sub(det.keywords.max_len - 1).max(from)
        };
        for (start, end, kind) in det.keywords.find_from(self.buf, from) {
            if self.base + (start as u64) < self.kw_next {
                continue; // seen in the previous pass
            }
            // How far the value may reach; undecidable until that much has arrived.
            let need = match kind {
                Kw::Name => 48,
                Kw::Address => 260,
                Kw::Location => 120,
                // The rest of the key word (up to 24 bytes), a separator (up to 8) and the
                // first byte of the value must all be here to tell whether a value follows.
                Kw::Health => 24 + 8 + 1,
                Kw::Custom(_) => det.custom_window(),
                Kw::Passport | Kw::Permit | Kw::HkId => 0,
            };
            if need > 0 && end + need > len && !self.eof {
                return (start.min(overlap), start);
            }
            self.kw_next = self.base + end as u64;
            // Keywords are stems (`addr`, `lat`, `diagnos`): the value follows the rest of the
            // key word (`address`, `latitude`, `diagnosisCode`).
            let mut end = end;
            let word_end = (end + 24).min(len);
            while end < word_end && (self.buf[end].is_ascii_alphanumeric() || self.buf[end] == b'_')
            {
                end += 1;
            }
            match kind {
                Kw::Name => {
                    let v = keywords::skip_separator(self.buf, end, 8);
                    if let Some((e, sur)) = keywords::person_name(self.buf, v) {
                        let name = &self.buf[v..e];
                        self.rec.hit(cat::PERSON_NAME, |m| {
                            m.push_str(&String::from_utf8_lossy(&name[..sur]));
                            for _ in 0..(name.len() - sur) / 3 {
                                m.push('*');
                            }
                        });
                    }
                }
                Kw::Address => {
                    let v = keywords::skip_separator(self.buf, end, 8);
                    if let Some(e) = keywords::address(self.buf, v) {
                        let a = &self.buf[v..e];
                        self.rec.hit(cat::ADDRESS, |m| {
                            // Keep the first two characters (a province or city), mask the rest.
                            m.extend(String::from_utf8_lossy(a).chars().take(2));
                            m.push_str("****");
                        });
                    }
                }
                Kw::Location => {
                    if self.base + (start as u64) < self.loc_until {
                        continue;
                    }
                    if let Some(e) = keywords::location(self.buf, end, 96) {
                        self.loc_until = self.base + e as u64;
                        self.rec
                            .hit(cat::LOCATION, |m| m.push_str("**.****,***.****"));
                        self.events
                            .push_back((self.base + start as u64, Event::Sensitive));
                    }
                }
                Kw::Health => {
                    let v = keywords::skip_separator(self.buf, end, 8);
                    let has_value = self
                        .buf
                        .get(v)
                        .is_some_and(|&b| !matches!(b, b'"' | b',' | b'}' | b'\n' | b'&' | b'\r'));
                    if has_value {
                        self.events
                            .push_back((self.base + start as u64, Event::Health));
                    }
                }
                Kw::Custom(i) => self.custom_keyword(i, end),
                Kw::Passport | Kw::Permit | Kw::HkId => {}
            }
        }
        (overlap, len)
    }

    fn email(&mut self, at: usize) -> Step {
        let buf = self.buf;
        let mut s = at;
        while s > 0 && at - s < 64 && is_local_char(buf[s - 1]) {
            s -= 1;
        }
        // Local part may not start with a dot; skip leading punctuation that is not part of it.
        while s < at && matches!(buf[s], b'.' | b'%' | b'+' | b'-') {
            s += 1;
        }
        if s == at {
            return Step::Done(at + 1);
        }
        let mut e = at + 1;
        while e < buf.len() && e - at <= 253 && is_domain_char(buf[e]) {
            e += 1;
        }
        if e == buf.len() && !self.eof {
            self.hold = self.hold.min(s);
            return Step::Incomplete(at);
        }
        let mut d_end = e;
        while d_end > at + 1 && matches!(buf[d_end - 1], b'.' | b'-') {
            d_end -= 1;
        }
        let domain = &buf[at + 1..d_end];
        let Some(dot) = domain.iter().rposition(|&b| b == b'.') else {
            return Step::Done(at + 1);
        };
        if dot == 0
            || domain.windows(2).any(|w| w == b"..")
            || domain[0] == b'-'
            || !validate::email_tld(&domain[dot + 1..])
        {
            return Step::Done(at + 1);
        }
        let raw = &buf[s..d_end];
        // Lower-cased into a copy only when needed: most addresses are written in lower
        // case, and the copy (with zeroing the buffer) was a visible share of an e-mail.
        let lower;
        let v: &[u8] = if raw.iter().any(u8::is_ascii_uppercase) {
            let mut norm = [0u8; 320];
            for (o, &b) in norm.iter_mut().zip(raw) {
                *o = b.to_ascii_lowercase();
            }
            lower = norm;
            &lower[..raw.len()]
        } else {
            raw
        };
        self.advance(s);
        let cat = cat::EMAIL;
        let class_sensitive = self.det.sensitive(cat);
        self.rec.hit(cat, |m| write_mask_email(m, v));
        self.rec.identifier(Strong::Email, v, class_sensitive);
        Step::Done(e)
    }

    fn digits(&mut self, p: usize) -> Step {
        let buf = self.buf;
        let len = buf.len();
        // The trigger is the first group of four or more digits; shorter groups before it
        // (`+86 138 1234 5678`) belong to the same value. Never step back into what this
        // pass already decided.
        let mut p = p;
        let mut back = 0;
        while back < MAX_GROUPS - 2
            && p >= self.floor + 2
            && matches!(buf[p - 1], b' ' | b'-')
            && buf[p - 2].is_ascii_digit()
        {
            let mut q = p - 1;
            while q > self.floor && p - 1 - q < 3 && buf[q - 1].is_ascii_digit() {
                q -= 1;
            }
            if q > 0 && buf[q - 1].is_ascii_digit() {
                break; // a longer group: it was (or will be) a trigger of its own
            }
            p = q;
            back += 1;
        }
        let mut starts = [0usize; MAX_GROUPS];
        let mut lens = [0usize; MAX_GROUPS];
        let mut n = 0;
        let mut j = p;
        let end;
        loop {
            let k = digit_run_end(buf, j);
            if k - j > LONG_GROUP {
                if n == 0 {
                    // Not an identifier; skip it whole, across windows if need be.
                    return if k == len && !self.eof {
                        Step::LongToEnd
                    } else {
                        Step::Done(k)
                    };
                }
                // Decide the groups before it; the long group is skipped on the next call.
                end = j - 1;
                break;
            }
            if k == len && !self.eof {
                return Step::Incomplete(p);
            }
            starts[n] = j;
            lens[n] = k - j;
            n += 1;
            match buf.get(k) {
                Some(b' ' | b'-') if n < MAX_GROUPS => {
                    if k + 1 == len {
                        if !self.eof {
                            return Step::Incomplete(p);
                        }
                    } else if buf[k + 1].is_ascii_digit() {
                        j = k + 1;
                        continue;
                    }
                }
                _ => {}
            }
            end = k;
            break;
        }
        let mut first = 0;
        if p > 0 && buf[p - 1].is_ascii_uppercase() {
            match self.letter_prefixed(p, lens[0]) {
                Some(Step::Done(e)) => {
                    if n == 1 {
                        return Step::Done(e);
                    }
                    first = 1;
                }
                Some(other) => return other,
                None => {}
            }
        }
        let total: usize = lens[first..n].iter().sum();
        if total < 11 {
            return Step::Done(end);
        }
        // `X` check character directly after 17 digits.
        let mut x = false;
        let mut tail_end = end;
        if end < len && matches!(buf[end], b'X' | b'x') && end == starts[n - 1] + lens[n - 1] {
            x = true;
            tail_end = end + 1;
            if tail_end == len && !self.eof {
                return Step::Incomplete(p);
            }
        }
        let left = if p > 0 { Some(buf[p - 1]) } else { None };
        let left_ok = match left {
            Some(c) if c.is_ascii_alphanumeric() => false,
            // A decimal fraction (`0.13812345678`) is a number, not an identifier.
            Some(b'.') => !(p >= 2 && buf[p - 2].is_ascii_digit()),
            _ => true,
        };
        let right_ok_plain = match buf.get(end) {
            Some(&c) => !(c.is_ascii_alphanumeric() || c == b'@'),
            None => true,
        };
        let right_ok_x = match buf.get(tail_end) {
            Some(&c) => !(c.is_ascii_alphanumeric() || c == b'@'),
            None => true,
        };

        // Try the longest span of groups first, then shorter ones.
        let mut a = first;
        while a < n {
            let mut matched = false;
            let mut b = n;
            while b > a {
                let lok = if a == 0 { left_ok } else { true };
                let with_x = x && b == n;
                let rok = if b < n {
                    true
                } else if with_x {
                    right_ok_x
                } else {
                    right_ok_plain
                };
                if lok && rok && self.span(&starts[a..b], &lens[a..b], with_x, left) {
                    matched = true;
                    break;
                }
                b -= 1;
            }
            a = if matched { b } else { a + 1 };
        }
        Step::Done(if x { tail_end } else { end })
    }

    /// Validate one span of digit groups; records and returns true when it is PI (or an
    /// organisation code that takes priority and must not be re-read as smaller parts).
    fn span(&mut self, starts: &[usize], lens: &[usize], with_x: bool, left: Option<u8>) -> bool {
        let total: usize = lens.iter().sum();
        let chars = total + usize::from(with_x);
        if !(11..=19).contains(&chars) {
            return false;
        }
        let mut d = [0u8; 20];
        let mut o = 0;
        for (&s, &l) in starts.iter().zip(lens) {
            d[o..o + l].copy_from_slice(&self.buf[s..s + l]);
            o += l;
        }
        let start = starts[0];
        let shape = |want: &[usize]| lens == want;

        if chars == 18 {
            let id_shape = if with_x {
                shape(&[17]) || shape(&[6, 8, 3]) || shape(&[6, 4, 4, 3])
            } else {
                shape(&[18]) || shape(&[6, 8, 4]) || shape(&[6, 4, 4, 4])
            };
            if id_shape {
                if with_x {
                    d[17] = b'X';
                }
                let id = &d[..18];
                if let Some(birth) = validate::resident_id(id, self.today) {
                    // GB 32100 registration codes 11/12/13 and 51/52/53 coincide with
                    // province prefixes; other IDs cannot be credit codes.
                    let org_prefix =
                        matches!(&id[..2], b"11" | b"12" | b"13" | b"51" | b"52" | b"53");
                    if org_prefix
                        && validate::social_credit_code(id)
                        && self.org_keyword_before(start)
                    {
                        // GB 32100 organisation code in a credit-code field: not PI.
                        return true;
                    }
                    self.advance(start);
                    let minor = validate::age_at(birth, self.today) < 14;
                    let cat = cat::RESIDENT_ID;
                    let sens = self.det.sensitive(cat) || minor;
                    self.rec.hit(cat, |m| write_mask_keep(m, id, 3, 4));
                    if minor {
                        self.rec.hit(cat::MINOR, |m| write_mask_keep(m, id, 3, 4));
                    }
                    self.rec.identifier(Strong::ResidentId, id, sens);
                    return true;
                }
                if validate::resident_id_shape(id, self.today) {
                    // Province and birth date of an ID but a wrong check digit: an ID typo or
                    // an ID-derived order number, not a payment card (18-digit cards are rare
                    // UnionPay numbers; an 18-digit run starting 62 is just as likely Gansu).
                    return false;
                }
            }
            if with_x {
                return false;
            }
        }
        if with_x {
            return false;
        }
        let digits = &d[..total];
        let mobile = match total {
            11 if shape(&[11]) || shape(&[3, 4, 4]) => Some(digits),
            13 if shape(&[13]) && left == Some(b'+') && digits.starts_with(b"86") => {
                Some(&digits[2..])
            }
            15 if shape(&[15]) && digits.starts_with(b"0086") => Some(&digits[4..]),
            _ => None,
        };
        if let Some(m) = mobile {
            if validate::cn_mobile(m) {
                self.advance(start);
                let cat = cat::MOBILE;
                self.rec.hit(cat, |out| write_mask_keep(out, m, 3, 4));
                self.rec
                    .identifier(Strong::Mobile, m, self.det.sensitive(cat));
                return true;
            }
            return false;
        }
        if (16..=19).contains(&total) {
            let (last, init) = lens.split_last().expect("non-empty");
            let grouped =
                lens.len() == 1 || (init.iter().all(|&l| l == 4) && (1..=4).contains(last));
            if grouped && validate::bank_card(digits) {
                self.advance(start);
                let cat = cat::BANK_CARD;
                self.rec.hit(cat, |m| write_mask_keep(m, digits, 4, 4));
                self.rec
                    .identifier(Strong::BankCard, digits, self.det.sensitive(cat));
                return true;
            }
        }
        false
    }

    /// A custom detector's keyword at `..end`: with a regex, the regex must match within the
    /// keyword window after it; without, the keyword is the finding.
    fn custom_keyword(&mut self, i: usize, end: usize) {
        let d = &self.det.custom[i];
        let cat = cat::CUSTOM_BASE + i;
        match &d.regex {
            Some(re) => {
                let w = &self.buf[end..(end + super::custom::KEYWORD_WINDOW).min(self.buf.len())];
                if let Some(m) = re.find(w) {
                    let v = m.as_bytes();
                    self.custom_hit(cat, end + m.start(), v);
                }
            }
            None => self.custom_hit(cat, end, &[]),
        }
    }

    fn custom_hit(&mut self, cat: usize, pos: usize, v: &[u8]) {
        self.rec.hit(cat, |m| mask_custom(m, v));
        if self.det.sensitive(cat) {
            self.events
                .push_back((self.base + pos as u64, Event::Sensitive));
        }
    }

    /// Custom detectors with a regex and no keywords: searched over the whole stream, holding
    /// back [`REGEX_HOLD`](super::custom::REGEX_HOLD) bytes at the window edge.
    fn custom_regex(&mut self, from: usize) -> usize {
        let len = self.buf.len();
        if !self.det.custom_regex_only {
            return len;
        }
        let limit = if self.eof {
            len
        } else {
            len.saturating_sub(super::custom::REGEX_HOLD).max(from)
        };
        if limit == from {
            return from;
        }
        let det = self.det;
        for (i, d) in det.custom.iter().enumerate() {
            let Some(re) = d.regex.as_ref().filter(|_| !d.has_keywords) else {
                continue;
            };
            for m in re.find_iter(&self.buf[from..]) {
                if from + m.start() >= limit {
                    break;
                }
                self.custom_hit(cat::CUSTOM_BASE + i, from + m.start(), m.as_bytes());
            }
        }
        limit
    }

    /// Identifiers that start with letters: PRC passports, HK/Macao travel permits, HK and
    /// Taiwan IDs. `p` is the first digit, `nd` the digit count. `None`: not one of them.
    fn letter_prefixed(&mut self, p: usize, nd: usize) -> Option<Step> {
        let buf = self.buf;
        let len = buf.len();
        let mut q = p;
        while q > 0 && p - q < 3 && buf[q - 1].is_ascii_uppercase() {
            q -= 1;
        }
        let nl = p - q;
        if nl > 2 || (q > 0 && buf[q - 1].is_ascii_alphanumeric()) {
            return None;
        }
        let letters = &buf[q..p];
        let digits = &buf[p..p + nd];
        let after = p + nd;
        // Look ahead up to 3 bytes (`(3)`) and the byte after them (the boundary check);
        // undecidable at the window edge.
        if after + 4 > len && !self.eof {
            self.hold = self.hold.min(q);
            return Some(Step::Incomplete(p));
        }
        let boundary = |i: usize| {
            buf.get(i)
                .is_none_or(|&c| !c.is_ascii_alphanumeric() && c != b'@')
        };
        let mut v = [0u8; 16];
        let kw_near = |kind: Kw| {
            let w = &buf[q.saturating_sub(64)..q];
            self.det.keywords.labels(w, kind)
        };

        // Hong Kong ID: `A123456(3)` always; `A1234563` / `A123456A` only next to a keyword.
        if nd == 6 || nd == 7 {
            let (check, end, bracketed) = if nd == 6 && buf.get(after) == Some(&b'(') {
                match (buf.get(after + 1), buf.get(after + 2)) {
                    (Some(&c), Some(&b')')) => (c, after + 3, true),
                    _ => (0, after, false),
                }
            } else if nd == 6 && buf.get(after) == Some(&b'A') {
                (b'A', after + 1, false)
            } else if nd == 7 {
                (digits[6], after, false)
            } else {
                (0, after, false)
            };
            if check != 0
                && boundary(end)
                && validate::hk_id(letters, &digits[..6], check)
                && (bracketed || kw_near(Kw::HkId))
            {
                v[..nl].copy_from_slice(letters);
                v[nl..nl + 6].copy_from_slice(&digits[..6]);
                v[nl + 6] = check;
                let id = &v[..nl + 7];
                self.record(q, cat::HK_ID, Strong::HkId, id, nl + 1, 1);
                return Some(Step::Done(end));
            }
        }
        if !boundary(after) {
            return None;
        }
        v[..nl].copy_from_slice(letters);
        v[nl..nl + nd.min(16 - nl)].copy_from_slice(&digits[..nd.min(16 - nl)]);
        let id = &v[..(nl + nd).min(16)];
        // Taiwan ID: letter, 1/2, eight digits, weighted check.
        if nl == 1 && nd == 9 && validate::tw_id(id) {
            self.record(q, cat::TW_ID, Strong::TwId, id, 2, 2);
            return Some(Step::Done(after));
        }
        let passport = match (letters, nd) {
            ([b'E' | b'G' | b'D' | b'S' | b'P'], 8) => true,
            ([b'E', l], 7) => l.is_ascii_uppercase() && !matches!(l, b'I' | b'O'),
            ([b'P' | b'S' | b'D', b'E'], 7) => true,
            _ => false,
        };
        if passport && kw_near(Kw::Passport) {
            self.record(q, cat::PASSPORT, Strong::Passport, id, 2, 2);
            return Some(Step::Done(after));
        }
        let permit = matches!((letters, nd), ([b'H' | b'M'], 8 | 10) | ([b'C'], 8));
        if permit && (kw_near(Kw::Permit) || kw_near(Kw::Passport)) {
            self.record(q, cat::PERMIT, Strong::Permit, id, 2, 2);
            return Some(Step::Done(after));
        }
        None
    }

    /// Count a validated identifier of a sensitive category and attribute it to its record.
    fn record(
        &mut self,
        start: usize,
        cat: usize,
        kind: Strong,
        id: &[u8],
        head: usize,
        tail: usize,
    ) {
        self.advance(start);
        let sens = self.det.sensitive(cat);
        self.rec.hit(cat, |m| write_mask_keep(m, id, head, tail));
        self.rec.identifier(kind, id, sens);
    }

    /// A credit-code field name shortly before `pos`, in the same field (GB 32100 codes take
    /// priority over IDs there).
    fn org_keyword_before(&self, pos: usize) -> bool {
        let w = &self.buf[pos.saturating_sub(64)..pos];
        const KEYS: [&[u8]; 6] = [
            "信用代码".as_bytes(),
            "税号".as_bytes(),
            "纳税人".as_bytes(),
            b"redit",
            b"uscc",
            b"USCC",
        ];
        let last = KEYS
            .iter()
            .filter_map(|k| memmem::rfind(w, k).map(|i| i + k.len()))
            .max();
        match last {
            Some(end) => !w[end..]
                .iter()
                .any(|b| matches!(b, b',' | b';' | b'&' | b'\n')),
            None => false,
        }
    }
}

/// Scans `sub.dec` (decoded bytes of a base64 value) in the nested window.
fn sub_feed_dec(sub: &mut b64::Sub, det: &Detectors, today: NaiveDate, rec: &mut Recorder) {
    let b64::Sub { win, norm, dec, .. } = sub;
    let mut rest = &dec[..];
    while !rest.is_empty() {
        let room = win.room();
        let used = norm.run(rest, &mut win.buf, room);
        rest = &rest[used..];
        win.pass(det, today, rec, false);
    }
}

/// End of a decoded value: flush the nested window and restore the outer record depth.
fn sub_finish(sub: &mut b64::Sub, det: &Detectors, today: NaiveDate, rec: &mut Recorder) {
    sub.norm.finish(&mut sub.win.buf);
    sub.win.pass(det, today, rec, true);
    sub.norm = super::normalize::Normalizer::new(super::normalize::Mode::Text);
    rec.depth = sub.depth;
}

/// Masked sample of a custom detector's match: the ends of long values only.
fn mask_custom(out: &mut String, v: &[u8]) {
    if v.is_empty() {
        return;
    }
    if v.len() >= 8 && v.is_ascii() {
        write_mask_keep(out, v, 2, 2);
    } else {
        out.push_str("***");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tests::xorshift;

    #[test]
    fn kept_window_buffers_come_back_empty_and_are_bounded() {
        let mut windows: Vec<Window> = (0..3 * spare::KEEP).map(|_| Window::new()).collect();
        for w in &mut windows {
            w.buf.extend_from_slice(b"13812345");
            w.events.push_back((7, Event::Health));
        }
        drop(windows);
        assert_eq!(spare::kept(), spare::KEEP, "at most KEEP are kept");
        for _ in 0..spare::KEEP + 2 {
            let w = Window::plain();
            assert!(
                w.buf.is_empty() && w.events.is_empty(),
                "a kept buffer is cleared"
            );
            assert_eq!(w.buf.capacity(), CAP);
            std::mem::forget(w);
        }
        assert_eq!(spare::kept(), 0);
    }

    #[test]
    fn candidates_found_at_run_start() {
        let hay = b"ab 12 3456789 x@y 123";
        let mut found = Vec::new();
        let mut i = 0;
        while i < hay.len() {
            i = next_candidate(hay, i);
            if i < hay.len() {
                found.push(i);
                i += 1;
                while i < hay.len() && hay[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        assert_eq!(found, vec![6, 15]);
        for start in 0..20 {
            let mut v = vec![b'x'; 40];
            v[start..start + 4].copy_from_slice(b"1234");
            assert_eq!(next_candidate(&v, 0), start);
        }
    }

    /// The SWAR search against a byte-by-byte reference on every short mix of digits,
    /// non-digits and bytes just outside `'0'..='9'` (`/`, `:`, 0xB0 = `'0' | 0x80`), at
    /// every start and limit.
    #[test]
    fn run4_matches_reference() {
        fn reference(buf: &[u8], i: usize, lim: usize) -> Option<usize> {
            (i..lim.saturating_sub(3)).find(|&p| buf[p..p + 4].iter().all(u8::is_ascii_digit))
        }
        let alphabet = [b'7', b'0', b'9', b'/', b':', 0xB0, b'a'];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..600 {
            let n = (state % 80) as usize;
            let buf: Vec<u8> = (0..n)
                .map(|_| {
                    // Digits more often than not, so runs of every length occur.
                    let k = (xorshift(&mut state) % 10) as usize;
                    alphabet[if k < 6 { k % 3 } else { k - 3 }]
                })
                .collect();
            for i in 0..=n {
                for lim in i..=n {
                    let want = reference(&buf, i, lim);
                    assert_eq!(next_run4(&buf, i, lim), want, "{buf:?} {i} {lim}");
                    assert_eq!(next_run4_swar(&buf, i, lim), want, "swar {buf:?} {i} {lim}");
                }
            }
        }
    }

    #[test]
    fn digit_run_end_matches_reference() {
        let alphabet = [b'7', b'0', b'9', b'/', b':', 0xB0, b'a'];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let n = (state % 40) as usize;
            let buf: Vec<u8> = (0..n)
                .map(|_| {
                    let k = (xorshift(&mut state) % 12) as usize;
                    alphabet[if k < 9 { k % 3 } else { k - 6 }]
                })
                .collect();
            for k in 0..=n {
                let want = (k..n).find(|&i| !buf[i].is_ascii_digit()).unwrap_or(n);
                assert_eq!(digit_run_end(&buf, k), want, "{buf:?} {k}");
            }
        }
    }

    #[test]
    fn email_char_tables() {
        for b in 0..=255u8 {
            let local = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
            let domain = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
            assert_eq!(is_local_char(b), local, "{b:#x}");
            assert_eq!(is_domain_char(b), domain, "{b:#x}");
        }
    }

    #[test]
    fn digit_mask_exact_for_every_byte() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let w = u64::from(b) << (lane * 8);
                let want = if b.is_ascii_digit() {
                    0x80u64 << (lane * 8)
                } else {
                    0
                };
                assert_eq!(
                    digit_mask(w) & (0xFFu64 << (lane * 8)),
                    want,
                    "{b:#x} lane {lane}"
                );
            }
        }
    }
}
