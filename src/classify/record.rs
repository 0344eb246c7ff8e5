//! Accumulation of one payload's results: per-category counts and masked samples, and the
//! grouping of identifiers into individuals (`subjects`). Raw identifiers are held only for
//! the open record (to hash its strongest identifier when the record closes) and never leave
//! this module; what leaves is a masked sample or a keyed SipHash-2-4 (128-bit) hash.

use super::{Category, DataClass, Finding, Subject};

/// Identifier kinds that name an individual, strongest first: the subject key is the hash of
/// the strongest identifier present in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strong {
    ResidentId = 0,
    Passport = 1,
    HkId = 2,
    TwId = 3,
    Permit = 4,
    BankCard = 5,
    Mobile = 6,
    Email = 7,
}

const STRONG_KINDS: usize = 8;

/// Per-category accumulator (the category is its index in the detectors' order).
#[derive(Debug, Clone, Default)]
pub struct CategoryAcc {
    pub count: u64,
    pub samples: Vec<String>,
    /// Masks built so far: bounded so a payload repeating one value does not build a
    /// String per occurrence.
    pub sample_tries: u8,
}

/// The open record: identifiers seen since the last record boundary.
#[derive(Debug)]
struct Group {
    /// Cheap fingerprint of each kind's value, to notice a second individual in one record.
    members: [Option<u64>; STRONG_KINDS],
    strongest: Option<Strong>,
    /// Normalized value of the strongest identifier (buffer reused across records).
    strongest_value: Vec<u8>,
    sensitive: bool,
    /// Brace depth at the first identifier; the record closes when that object closes.
    anchor_depth: i32,
}

impl Group {
    fn is_open(&self) -> bool {
        self.strongest.is_some()
    }
}

/// Everything a scanner has found so far.
#[derive(Debug)]
pub struct Recorder {
    pub cats: Vec<CategoryAcc>,
    /// Committed individuals as (key, sensitive), appended per record and compacted (sorted,
    /// deduplicated) whenever it doubles: a push per record instead of a hash-map insert,
    /// and the final sort compares integers. Memory stays proportional to the distinct
    /// individuals (at most twice that between compactions).
    subjects: Vec<(u128, bool)>,
    /// Length after the last compaction.
    compacted: usize,
    group: Group,
    /// Sensitive PI seen in the current record before any identifier (e.g. a diagnosis
    /// field preceding the ID): attributed to the record's individual when it appears.
    pending_sensitive: bool,
    /// A health keyword seen in the current record before any identifier.
    pending_health: Option<usize>,
    /// SipHash key: the first 16 bytes of the configured 32-byte hash key.
    sip_key: [u8; 16],
    /// Where a sample's mask is built, so a repeat of a value already sampled (the usual
    /// case in a record list) allocates nothing.
    scratch: String,
    pub version: u64,
    /// JSON brace depth, tracked over the normalized stream for record boundaries.
    pub depth: i32,
    /// Whether a newline outside braces ends a record (CSV rows, NDJSON, prose lines); not
    /// in forms and multipart bodies, where the whole form is one record.
    pub lines_are_records: bool,
}

/// Spans of at least this many bytes are searched with memchr3 for record structure; shorter
/// ones sixteen bytes at a time inline. memchr3 restarts its search after every brace, which
/// costs more than the inline steps until braces are rare. Moving the cutoff from 256 to 1024
/// took a 1 KiB JSON request (one span, ~40 braces) from 67.0k to 66.2k instructions and a
/// 64 KiB PI-bearing one (spans of a few hundred bytes) from 1.15M to 1.05M (callgrind, whole
/// proxy); long clean spans, where braces are rare, keep memchr3 and did not change.
const MEMCHR_SPAN: usize = 1024;

impl Recorder {
    /// A recorder for `categories` accumulators (the detectors' categories, in order).
    pub fn new(categories: usize, hash_key: [u8; 32]) -> Recorder {
        Recorder {
            // Indices only: a category's name and class are looked up when a report is made,
            // so starting a scan touches no shared reference count.
            cats: (0..categories).map(|_| CategoryAcc::default()).collect(),
            subjects: Vec::new(),
            compacted: 0,
            group: Group {
                members: [None; STRONG_KINDS],
                strongest: None,
                // Grown on the first identifier: a clean body never needs it.
                strongest_value: Vec::new(),
                sensitive: false,
                anchor_depth: 0,
            },
            pending_sensitive: false,
            pending_health: None,
            sip_key: hash_key[..16].try_into().expect("16 of 32 bytes"),
            scratch: String::new(),
            version: 0,
            depth: 0,
            lines_are_records: true,
        }
    }

    /// Advance record-structure tracking over normalized bytes that precede the next
    /// identifier: `}` closing the open record's object, or a newline outside any object (a
    /// CSV row, an NDJSON line), ends the record.
    pub fn structure(&mut self, bytes: &[u8]) {
        // Most calls cover the few dozen bytes between two identifiers of a record, where
        // setting up memchr3's iterator costs more than the search: those are classified 16
        // bytes at a time inline. Long spans (clean payloads) keep memchr3.
        if bytes.len() >= MEMCHR_SPAN {
            for i in memchr::memchr3_iter(b'{', b'}', b'\n', bytes) {
                self.structure_byte(bytes[i]);
            }
            return;
        }
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        if bytes.len() >= 16 {
            let n = bytes.len();
            while i + 16 <= n {
                // SAFETY: SSE2 is part of the x86_64 baseline; the load reads bytes[i..i + 16].
                let mut m = unsafe { structure_mask16(bytes.as_ptr().add(i)) };
                while m != 0 {
                    self.structure_byte(bytes[i + m.trailing_zeros() as usize]);
                    m &= m - 1;
                }
                i += 16;
            }
            if i < n {
                // The last 1-15 bytes: one load of the final sixteen (overlapping what was
                // classified already) instead of a byte loop, which cost more than all the
                // sixteen-byte steps of a typical span between two identifiers. Its top
                // `n - i` bits are bytes `i..n`.
                // SAFETY: as above; n ≥ 16, so the load reads bytes[n - 16..n].
                let m = unsafe { structure_mask16(bytes.as_ptr().add(n - 16)) };
                let mut m = m >> (16 - (n - i));
                while m != 0 {
                    self.structure_byte(bytes[i + m.trailing_zeros() as usize]);
                    m &= m - 1;
                }
            }
            return;
        }
        for &b in &bytes[i..] {
            if matches!(b, b'{' | b'}' | b'\n') {
                self.structure_byte(b);
            }
        }
    }

    #[inline]
    fn structure_byte(&mut self, b: u8) {
        match b {
            b'{' => self.depth += 1,
            b'}' => {
                self.depth -= 1;
                if self.depth < self.group.anchor_depth {
                    self.close_record();
                }
            }
            _ => {
                if self.depth <= 0 && self.lines_are_records {
                    self.depth = 0;
                    self.close_record();
                }
            }
        }
    }

    /// End the current record (end of a form, of a fragment, of the payload).
    pub fn close_record(&mut self) {
        if self.group.is_open() {
            let key = self.key_of_group();
            self.subjects.push((key, self.group.sensitive));
            if self.subjects.len() >= 2 * self.compacted.max(COMPACT_MIN) {
                compact(&mut self.subjects);
                self.compacted = self.subjects.len();
            }
            self.group.members = [None; STRONG_KINDS];
            self.group.strongest = None;
            self.group.strongest_value.clear();
            self.group.sensitive = false;
        }
        self.pending_sensitive = false;
        self.pending_health = None;
    }

    /// Keyed SipHash-2-4 with 128-bit output over the normalized strongest identifier.
    ///
    /// Why this is safe for pseudonymizing identifiers: an ID number or mobile has little
    /// entropy (an attacker can enumerate every mobile in minutes), so an unkeyed or
    /// public-keyed hash would be reversible by brute force. What protects the identifier is
    /// the secret key: SipHash-2-4 is a keyed PRF with a 128-bit key (the first 16 bytes of
    /// `classification.hash_key`, random 32 bytes), so without the key its output is
    /// indistinguishable from random and cannot be recomputed for guessed identifiers; with
    /// 128-bit output, collisions between distinct individuals are negligible (birthday
    /// bound 2^64). It is about five times cheaper than keyed BLAKE3 on 11-18 byte inputs,
    /// which matters at one hash per record in bulk exports.
    fn key_of_group(&self) -> u128 {
        use siphasher::sip128::{Hasher128, SipHasher24};
        let mut h = SipHasher24::new_with_key(&self.sip_key);
        std::hash::Hasher::write(&mut h, &self.group.strongest_value);
        h.finish128().as_u128()
    }

    /// A health keyword with a value in the current record: health PI when the record names
    /// an individual (now or before it closes).
    pub fn health_keyword(&mut self, cat: usize) {
        if self.group.is_open() {
            self.hit(cat, |_| {});
            self.mark_sensitive(true);
        } else {
            self.pending_health = Some(cat);
        }
    }

    /// Count one validated occurrence of category `cat`; `mask` writes its masked sample into
    /// the (empty) buffer it is given, and writing nothing adds no sample.
    pub fn hit(&mut self, cat: usize, mask: impl FnOnce(&mut String)) {
        let c = &mut self.cats[cat];
        c.count += 1;
        if c.count == 1 {
            self.version += 1;
        }
        if c.samples.len() < 3 && c.sample_tries < 16 {
            c.sample_tries += 1;
            self.scratch.clear();
            mask(&mut self.scratch);
            if !self.scratch.is_empty() && !c.samples.contains(&self.scratch) {
                c.samples.push(self.scratch.clone());
            }
        }
    }

    /// Attribute an identifier to the open record (or start a new one).
    pub fn identifier(&mut self, kind: Strong, normalized: &[u8], sensitive: bool) {
        let fp = fingerprint(normalized);
        let k = kind as usize;
        if let Some(old) = self.group.members[k] {
            if old == fp {
                self.mark_sensitive(sensitive);
                return;
            }
            // A second, different value of the same kind: another individual.
            self.close_record();
        }
        if !self.group.is_open() {
            self.group.anchor_depth = self.depth;
            self.group.sensitive = std::mem::take(&mut self.pending_sensitive);
            if let Some(h) = self.pending_health.take() {
                self.hit(h, |_| {});
                self.group.sensitive = true;
            }
        }
        self.group.members[k] = Some(fp);
        if self.group.strongest.is_none_or(|s| kind < s) {
            self.group.strongest = Some(kind);
            self.group.strongest_value.clear();
            self.group.strongest_value.extend_from_slice(normalized);
            self.version += 1;
        }
        self.mark_sensitive(sensitive);
    }

    /// Sensitive PI about the record's individual (a minor's ID, a diagnosis, a location).
    pub fn mark_sensitive(&mut self, sensitive: bool) {
        if !sensitive {
            return;
        }
        if self.group.is_open() {
            if !self.group.sensitive {
                self.group.sensitive = true;
                self.version += 1;
            }
        } else {
            self.pending_sensitive = true;
        }
    }

    /// The categories with a count, named and classed from `categories` and `classes` (the
    /// detectors', in accumulator order).
    pub fn findings(&self, categories: &[Category], classes: &[DataClass]) -> Vec<Finding> {
        named_findings(
            self.cats.iter().map(|c| (c.count, c.samples.clone())),
            categories,
            classes,
        )
    }

    /// [`Recorder::findings`] at the end of a scan: the samples are moved out, not copied.
    pub fn take_findings(
        &mut self,
        categories: &[Category],
        classes: &[DataClass],
    ) -> Vec<Finding> {
        named_findings(
            self.cats
                .iter_mut()
                .map(|c| (c.count, std::mem::take(&mut c.samples))),
            categories,
            classes,
        )
    }

    /// Committed individuals plus the open record's (provisional) one.
    pub fn subjects(&self) -> Vec<Subject> {
        let mut v = Vec::with_capacity(self.subjects.len() + 1);
        v.extend_from_slice(&self.subjects);
        if self.group.is_open() {
            v.push((self.key_of_group(), self.group.sensitive));
        }
        compact(&mut v);
        // Big-endian bytes of the sorted integers: the same order as the derived `Ord` of
        // `Subject` (keys are unique after compaction).
        v.into_iter()
            .map(|(k, sensitive)| Subject {
                key: k.to_be_bytes(),
                sensitive,
            })
            .collect()
    }
}

/// Records committed before the first compaction (32 bytes each: 512 KiB): typical payloads
/// never compact before the final sort; a bulk export repeating the same people stays
/// bounded.
const COMPACT_MIN: usize = 16 * 1024;

/// Sorts by key and merges duplicates (sensitive if any occurrence was).
///
/// Keys are keyed-PRF output, uniformly distributed and not steerable without the key, so a
/// bucket pass on their top bits (about one key per bucket) followed by an insertion sort
/// that only has to order within buckets sorts in linear expected time; a comparison sort
/// was a visible share of a bulk export's cost.
fn compact(v: &mut Vec<(u128, bool)>) {
    let n = v.len();
    if n < 64 {
        v.sort_unstable_by_key(|e| e.0);
    } else {
        let bits = n.next_power_of_two().trailing_zeros();
        let bucket = |k: u128| (k >> (128 - bits)) as usize;
        let mut starts = vec![0usize; (1 << bits) + 1];
        for e in v.iter() {
            starts[bucket(e.0) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut out = vec![(0u128, false); n];
        for &e in v.iter() {
            let b = bucket(e.0);
            out[starts[b]] = e;
            starts[b] += 1;
        }
        // Insertion sort: elements are already in bucket order, so each moves only past
        // the few others of its bucket.
        for i in 1..n {
            let e = out[i];
            let mut j = i;
            while j > 0 && out[j - 1].0 > e.0 {
                out[j] = out[j - 1];
                j -= 1;
            }
            out[j] = e;
        }
        *v = out;
    }
    v.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 |= later.1;
            true
        } else {
            false
        }
    });
}

/// Bit j set when byte j of the 16 at `p` is `{`, `}` or a newline.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn structure_mask16(p: *const u8) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let v = _mm_loadu_si128(p.cast());
    let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(eq(b'{'), eq(b'}')), eq(b'\n'))) as u32
}

/// Cheap fingerprint, only to tell two values of one kind apart inside a record, never
/// exported: eight bytes per multiply (a byte-wise FNV chained a multiply per byte, latency
/// bound at one identifier after another in bulk exports).
fn fingerprint(v: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (v.len() as u64).wrapping_mul(K);
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rem = chunks.remainder();
    // The remainder zero-extended to a word. Values of eight bytes or more take the last
    // eight and shift the remainder down (what the zero-padded copy gives, without a
    // variable-length memcpy call per identifier).
    let tail = if rem.is_empty() {
        0
    } else if v.len() >= 8 {
        let last = u64::from_le_bytes(v[v.len() - 8..].try_into().expect("8 bytes"));
        last >> (8 * (8 - rem.len()))
    } else {
        rem.iter().rev().fold(0u64, |t, &b| t << 8 | u64::from(b))
    };
    h = (h ^ tail).wrapping_mul(K);
    h ^ (h >> 32)
}

/// Findings from each accumulator's (count, samples), in accumulator order: the categories
/// with a count, named and classed, sorted by category. (A category without a count has no
/// samples, so taking or cloning its empty list costs nothing.)
fn named_findings(
    counted: impl Iterator<Item = (u64, Vec<String>)>,
    categories: &[Category],
    classes: &[DataClass],
) -> Vec<Finding> {
    let mut v: Vec<Finding> = counted
        .zip(categories.iter().zip(classes))
        .filter(|((count, _), _)| *count > 0)
        .map(|((count, samples), (category, &class))| Finding {
            category: category.clone(),
            class,
            count,
            samples,
        })
        .collect();
    v.sort_by(|a, b| a.category.cmp(&b.category));
    v
}

/// Masks keeping the first `head` and last `tail` characters (`110***********123X`), into
/// `out`.
pub fn write_mask_keep(out: &mut String, v: &[u8], head: usize, tail: usize) {
    for (i, &b) in v.iter().enumerate() {
        if i < head || i + tail >= v.len() {
            out.push(b as char);
        } else {
            out.push('*');
        }
    }
}

/// `z***@example.com`: first character of the local part and the domain, into `out`.
pub fn write_mask_email(out: &mut String, v: &[u8]) {
    let at = v.iter().position(|&b| b == b'@').unwrap_or(0);
    if let Some(&c) = v.first() {
        out.push(c as char);
    }
    out.push_str("***");
    // Nearly always valid UTF-8: checked first, as the lossy conversion's chunked scan
    // costs more than building the rest of the sample.
    match std::str::from_utf8(&v[at..]) {
        Ok(domain) => out.push_str(domain),
        Err(_) => out.push_str(&String::from_utf8_lossy(&v[at..])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_keep(v: &[u8], head: usize, tail: usize) -> String {
        let mut s = String::new();
        write_mask_keep(&mut s, v, head, tail);
        s
    }

    fn mask_email(v: &[u8]) -> String {
        let mut s = String::new();
        write_mask_email(&mut s, v);
        s
    }

    fn rec() -> Recorder {
        Recorder::new(0, [7; 32])
    }

    /// The fingerprint's word-at-a-time tail equals the zero-padded copy it replaced.
    #[test]
    fn fingerprint_tail() {
        fn reference(v: &[u8]) -> u64 {
            const K: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut h = (v.len() as u64).wrapping_mul(K);
            let mut chunks = v.chunks_exact(8);
            for c in &mut chunks {
                let w = u64::from_le_bytes(c.try_into().unwrap());
                h = (h ^ w).wrapping_mul(K).rotate_left(29);
            }
            let mut tail = [0u8; 8];
            tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
            h ^ (h >> 32)
        }
        let v: Vec<u8> = (0u8..40).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
        for n in 0..v.len() {
            assert_eq!(fingerprint(&v[..n]), reference(&v[..n]), "{n}");
        }
    }

    #[test]
    fn taken_findings_are_the_findings() {
        let cats = [
            Category::new("b_cat"),
            Category::new("a_cat"),
            Category::new("c_cat"),
        ];
        let classes = [
            DataClass::Personal,
            DataClass::Sensitive,
            DataClass::Personal,
        ];
        let mut r = Recorder::new(3, [7; 32]);
        r.hit(0, |m| m.push_str("b1"));
        r.hit(0, |m| m.push_str("b2"));
        r.hit(1, |m| m.push_str("a1"));
        let seen = r.findings(&cats, &classes);
        assert_eq!(seen.len(), 2, "categories without hits are left out");
        assert_eq!(seen[0].category.as_str(), "a_cat", "sorted by category");
        assert_eq!(seen[1].samples, ["b1", "b2"]);
        assert_eq!(r.take_findings(&cats, &classes), seen);
    }

    #[test]
    fn samples_are_distinct_and_bounded_and_masks_start_from_an_empty_buffer() {
        let mut r = Recorder::new(2, [7; 32]);
        for _ in 0..5 {
            r.hit(0, |m| {
                assert!(m.is_empty(), "a mask saw the previous one");
                m.push_str("138****5678");
            });
        }
        // Nothing written: counted, no sample (and no leftover of the last mask).
        r.hit(0, |_| {});
        r.hit(0, |m| m.push_str("139****0000"));
        r.hit(1, |m| m.push_str("z***@example.com"));
        for i in 0..20 {
            r.hit(1, |m| m.push_str(&format!("v{i}")));
        }
        assert_eq!(r.cats[0].count, 7);
        assert_eq!(r.cats[0].samples, ["138****5678", "139****0000"]);
        assert_eq!(r.cats[1].count, 21);
        assert_eq!(r.cats[1].samples, ["z***@example.com", "v0", "v1"]);
    }

    #[test]
    fn masks() {
        assert_eq!(mask_keep(b"11010519491231002X", 3, 4), "110***********002X");
        assert_eq!(mask_keep(b"13812345678", 3, 4), "138****5678");
        assert_eq!(mask_email(b"zhang@example.com"), "z***@example.com");
        assert_eq!(mask_email("li@例子.中国".as_bytes()), "l***@例子.中国");
        // A domain that is not UTF-8 still gives a sample, with the bad byte replaced.
        assert_eq!(
            mask_email(b"wang@ex\xffmple.com"),
            "w***@ex\u{fffd}mple.com"
        );
    }

    /// The bucket sort against a comparison sort, with duplicates (merged, sensitive if any
    /// copy is) and sizes on both sides of the small-input cutoff.
    #[test]
    fn compact_sorts_and_merges() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for n in [0usize, 1, 5, 63, 64, 65, 1000, 5000] {
            let v: Vec<(u128, bool)> = (0..n)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Every fourth key repeats an earlier one.
                    let k = if i % 4 == 3 {
                        u128::from(x % (i as u64))
                    } else {
                        u128::from(x) << 64 | u128::from(x.rotate_left(17))
                    };
                    (k, x % 3 == 0)
                })
                .collect();
            let mut want: std::collections::BTreeMap<u128, bool> = Default::default();
            for &(k, s) in &v {
                *want.entry(k).or_insert(false) |= s;
            }
            let mut got = v.clone();
            compact(&mut got);
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "n {n}");
        }
    }

    /// `structure` (sixteen-byte steps, the overlapping final load, the scalar short path,
    /// memchr3 for long spans) against one `structure_byte` per byte: same depth and the
    /// same records closed, for every span length up to past the memchr3 cutoff.
    #[test]
    fn structure_matches_bytewise() {
        let alphabet = [b'{', b'}', b'\n', b'a', b'"', b'1'];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let lengths = (0..300).chain(MEMCHR_SPAN - 20..MEMCHR_SPAN + 20);
        for n in lengths {
            for _ in 0..8 {
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        alphabet[(x % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let mut fast = rec();
                let mut slow = rec();
                for r in [&mut fast, &mut slow] {
                    r.structure(b"{");
                    r.identifier(Strong::Mobile, b"13812345678", false);
                }
                fast.structure(&bytes);
                for &b in &bytes {
                    if matches!(b, b'{' | b'}' | b'\n') {
                        slow.structure_byte(b);
                    }
                }
                assert_eq!(fast.depth, slow.depth, "{bytes:?}");
                assert_eq!(fast.subjects, slow.subjects, "{bytes:?}");
                assert_eq!(fast.group.is_open(), slow.group.is_open(), "{bytes:?}");
            }
        }
    }

    #[test]
    fn records_group_and_split() {
        let mut r = rec();
        r.structure(b"[{");
        r.identifier(Strong::Mobile, b"13812345678", false);
        r.identifier(Strong::ResidentId, b"11010519491231002X", true);
        r.structure(b"},{");
        r.identifier(Strong::Mobile, b"13912345678", false);
        r.structure(b"}]");
        let s = r.subjects();
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().filter(|s| s.sensitive).count(), 1);
        // Conflicts split records even without structure.
        let mut r = rec();
        r.identifier(Strong::Mobile, b"13812345678", false);
        r.identifier(Strong::Mobile, b"13912345678", false);
        r.identifier(Strong::Mobile, b"13812345678", false);
        r.close_record();
        assert_eq!(r.subjects().len(), 2);
    }
}
