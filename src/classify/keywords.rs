//! Keyword context: one pattern set holds every keyword of every category (built-in and
//! custom), matched leftmost-longest. It is used two ways: forward over the stream to trigger
//! the keyword-led detectors (person name, address, precise location, health) — by a packed
//! Teddy searcher when one can be built, else the Aho-Corasick automaton, with identical
//! matches — and backward over a short look-behind, by the automaton, to confirm identifiers
//! that are only PI next to a keyword (passport numbers, travel permits, bare HK ID numbers).

use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind, Span};

/// What a keyword announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    Passport,
    Permit,
    HkId,
    Name,
    Address,
    Location,
    Health,
    /// Keyword of the custom detector with this index.
    Custom(usize),
}

// At most 64 built-in patterns in total, matched case-sensitively: that keeps the
// automaton's SIMD (Teddy) prefilter, which is what lets the keyword pass run at memory
// speed. Case variants are listed explicitly (camelCase keys put the word capitalised in
// the middle: `realName`, `homeAddress`), and short stems cover their longer forms
// (`addr` → `address`, `lat` → `latitude`, `diagnos` → `diagnosis`).
const PASSPORT: &[&str] = &["passport", "Passport", "护照"];
const PERMIT: &[&str] = &["permit", "Permit", "通行证", "回乡证", "往来港澳"];
const HK_ID: &[&str] = &["hkid", "HKID", "HkId", "香港身份"];
const NAME: &[&str] = &[
    "name",
    "Name",
    "NAME",
    "holder",
    "Holder",
    "姓名",
    "收件人",
    "收货人",
    "联系人",
    "持卡人",
    "申请人",
    "患者",
    "乘客",
];
const ADDRESS: &[&str] = &["addr", "Addr", "ADDR", "地址", "住址", "户籍", "居住地"];
const LOCATION: &[&str] = &[
    "location",
    "Location",
    "lat",
    "Lat",
    "lng",
    "Lng",
    "lon",
    "Lon",
    "gps",
    "GPS",
    "经纬度",
    "坐标",
    "定位",
];
const HEALTH: &[&str] = &[
    "diagnos", "Diagnos", "medical", "Medical", "icd", "ICD", "patient", "Patient", "病历", "病案",
    "诊断", "住院", "门诊", "病史",
];

/// The compiled keyword automaton and each pattern's kind.
#[derive(Debug)]
pub struct Keywords {
    ac: AhoCorasick,
    /// The same patterns and match semantics as `ac` in a packed (Teddy) searcher, used for
    /// the forward pass over the stream when it can be built (at most 64 patterns, a CPU
    /// with SSSE3 or AVX2). Teddy verifies its candidates itself, which skips the
    /// automaton's prefilter-then-DFA round trip: that round trip cost about 150
    /// instructions per keyword on PI-dense JSON, where every record holds two keywords.
    packed: Option<packed::Searcher>,
    kinds: Vec<Kw>,
    /// Longest pattern in bytes: a match may straddle this many bytes at a window edge.
    pub max_len: usize,
}

impl Keywords {
    /// Built-in keywords plus each custom detector's list (`custom[i]` → `Kw::Custom(i)`).
    /// Custom keywords are matched as written (case-sensitively); past 64 patterns in total
    /// the SIMD prefilter is lost and the keyword pass slows to automaton speed.
    pub fn new(custom: &[Vec<String>]) -> Result<Keywords, aho_corasick::BuildError> {
        let mut pats: Vec<String> = Vec::new();
        let mut kinds = Vec::new();
        for (list, kind) in [
            (PASSPORT, Kw::Passport),
            (PERMIT, Kw::Permit),
            (HK_ID, Kw::HkId),
            (NAME, Kw::Name),
            (ADDRESS, Kw::Address),
            (LOCATION, Kw::Location),
            (HEALTH, Kw::Health),
        ] {
            for p in list {
                pats.push((*p).to_owned());
                kinds.push(kind);
            }
        }
        for (i, list) in custom.iter().enumerate() {
            for p in list.iter().filter(|p| !p.is_empty()) {
                pats.push(p.clone());
                kinds.push(Kw::Custom(i));
            }
        }
        let max_len = pats.iter().map(String::len).max().unwrap_or(1);
        // Leftmost-longest: of overlapping keywords the longer, more specific one wins.
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            // A full DFA behind the prefilter: one table lookup per byte when verifying.
            .kind(Some(AhoCorasickKind::DFA))
            .build(&pats)?;
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(&pats)
            .build();
        Ok(Keywords {
            ac,
            packed,
            kinds,
            max_len,
        })
    }

    /// Keyword matches `(start, end, kind)` in `hay` from `from`.
    pub fn find_from<'h>(
        &'h self,
        hay: &'h [u8],
        from: usize,
    ) -> impl Iterator<Item = (usize, usize, Kw)> + 'h {
        let matches = match &self.packed {
            Some(p) => Matches::Packed {
                searcher: p,
                hay,
                at: from.min(hay.len()),
            },
            None => Matches::Automaton(
                self.ac
                    .find_iter(aho_corasick::Input::new(hay).range(from..)),
            ),
        };
        matches.map(move |m| (m.start(), m.end(), self.kinds[m.pattern().as_usize()]))
    }

    /// Matches of the automaton alone (the reference the packed searcher must agree with).
    #[cfg(test)]
    fn find_from_automaton(&self, hay: &[u8], from: usize) -> Vec<(usize, usize, Kw)> {
        self.ac
            .find_iter(aho_corasick::Input::new(hay).range(from..))
            .map(|m| (m.start(), m.end(), self.kinds[m.pattern().as_usize()]))
            .collect()
    }

    /// Whether the value ending `hay` belongs to a keyword of `kind`: the last such keyword
    /// in `hay` must be in the same field, i.e. no field separator (`,` `;` `&` newline, or
    /// the full-width `，` `；`) between it and the value. Stops `"passportNo":"E1…","sku":"E2…"`
    /// from lending the passport keyword to the SKU.
    pub fn labels(&self, hay: &[u8], kind: Kw) -> bool {
        let Some(end) = self
            .ac
            .find_iter(hay)
            .filter(|m| self.kinds[m.pattern().as_usize()] == kind)
            .map(|m| m.end())
            .last()
        else {
            return false;
        };
        let between = &hay[end..];
        !between
            .iter()
            .any(|b| matches!(b, b',' | b';' | b'&' | b'\n'))
            && memchr::memmem::find(between, "，".as_bytes()).is_none()
            && memchr::memmem::find(between, "；".as_bytes()).is_none()
    }
}

/// Non-overlapping leftmost-longest keyword matches from the packed searcher or, when it
/// could not be built, the automaton.
enum Matches<'h> {
    Packed {
        searcher: &'h packed::Searcher,
        hay: &'h [u8],
        at: usize,
    },
    Automaton(aho_corasick::FindIter<'h, 'h>),
}

impl Iterator for Matches<'_> {
    type Item = aho_corasick::Match;

    #[inline]
    fn next(&mut self) -> Option<aho_corasick::Match> {
        match self {
            Matches::Packed { searcher, hay, at } => {
                let span = Span {
                    start: *at,
                    end: hay.len(),
                };
                let m = searcher.find_in(hay, span)?;
                // Patterns are never empty, so the search always moves forward.
                *at = m.end();
                Some(m)
            }
            Matches::Automaton(it) => it.next(),
        }
    }
}

/// Single-character surnames covering the vast majority of the population (Ministry of
/// Public Security surname statistics), and the common compound surnames.
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝";
/// The single-character surnames, sorted for binary search (built once).
fn surnames() -> &'static [char] {
    static SORTED: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    SORTED.get_or_init(|| {
        let mut v: Vec<char> = SURNAMES.chars().collect();
        v.sort_unstable();
        v.dedup();
        v
    })
}

const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "轩辕", "呼延", "申屠", "澹台", "太史", "万俟",
    "闻人", "钟离",
];

/// Is this 3-byte UTF-8 sequence a CJK unified ideograph (U+4E00-U+9FFF)?
fn is_cjk(b: &[u8]) -> bool {
    b.len() >= 3 && (0xE4..=0xE9).contains(&b[0]) && (b[1] & 0xC0) == 0x80 && (b[2] & 0xC0) == 0x80
}

/// Skip the separator between a key and its value: quotes, `:`/`=`, spaces and the
/// full-width colon, at most `max` bytes.
pub fn skip_separator(buf: &[u8], mut i: usize, max: usize) -> usize {
    let start = i;
    while i < buf.len() && i - start < max {
        match buf[i] {
            b'"' | b'\'' | b':' | b'=' | b' ' | b'\t' | b'_' => i += 1,
            0xEF if buf.get(i + 1) == Some(&0xBC) && buf.get(i + 2) == Some(&0x9A) => i += 3,
            _ => break,
        }
    }
    i
}

/// A Chinese personal name at `buf[i..]`: a known surname and 1-2 given-name characters (a
/// compound surname allows 1-2 more), then a non-ideograph. Returns (end, surname bytes).
pub fn person_name(buf: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut n = 0;
    let mut j = i;
    while j + 3 <= buf.len() && is_cjk(&buf[j..j + 3]) && n < 5 {
        j += 3;
        n += 1;
    }
    if j + 3 <= buf.len() && is_cjk(&buf[j..j + 3]) {
        return None; // a longer phrase, not a name
    }
    if n < 2 {
        return None;
    }
    if (3..=4).contains(&n)
        && COMPOUND_SURNAMES
            .iter()
            .any(|c| c.as_bytes() == &buf[i..i + 6])
    {
        return Some((j, 6));
    }
    let first = cp3(&buf[i..i + 3])?;
    if (2..=3).contains(&n) && surnames().binary_search(&first).is_ok() {
        return Some((j, 3));
    }
    None
}

const PROVINCES: &[&str] = &[
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
];

/// The code point of the 3-byte UTF-8 sequence at `b` (callers check `is_cjk` first).
fn cp3(b: &[u8]) -> Option<char> {
    char::from_u32(
        (u32::from(b[0] & 0x0F) << 12) | (u32::from(b[1] & 0x3F) << 6) | u32::from(b[2] & 0x3F),
    )
}

const ADMIN: u8 = 1;
const GRAMMAR: u8 = 2;
/// `号`: street grammar and a house number at once.
const HAO: u8 = 3;

/// Characters that make an address: administrative suffixes, street grammar, `号`.
const ADDR_CHARS: [(char, u8); 20] = [
    ('省', ADMIN),
    ('市', ADMIN),
    ('区', ADMIN),
    ('县', ADMIN),
    ('州', ADMIN),
    ('镇', ADMIN),
    ('乡', ADMIN),
    ('号', HAO),
    ('路', GRAMMAR),
    ('街', GRAMMAR),
    ('道', GRAMMAR),
    ('栋', GRAMMAR),
    ('幢', GRAMMAR),
    ('室', GRAMMAR),
    ('弄', GRAMMAR),
    ('巷', GRAMMAR),
    ('村', GRAMMAR),
    ('楼', GRAMMAR),
    ('厦', GRAMMAR),
    ('胡', GRAMMAR),
];

/// What an address has shown so far (bit set).
const SEEN_ADMIN: u8 = 1;
const SEEN_GRAMMAR: u8 = 2;
const SEEN_NUMBER: u8 = 4;

/// The three UTF-8 bytes of a BMP character above U+07FF as a little-endian integer: how
/// the scan reads them from the buffer, so no code point is decoded per character.
const fn utf8_3(c: char) -> u32 {
    let c = c as u32;
    (0xE0 | c >> 12) | (0x80 | (c >> 6 & 0x3F)) << 8 | (0x80 | (c & 0x3F)) << 16
}

/// Multiplier of a collision-free multiplicative hash of [`ADDR_CHARS`]' UTF-8 bytes into
/// 64 slots (checked when the table is built).
const ADDR_MUL: u32 = 0x3164_DC41;

/// Slot → `UTF-8 bytes << 8 | SEEN_* bits` (0: empty; a real entry's bytes are never 0).
static ADDR_TABLE: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut i = 0;
    while i < ADDR_CHARS.len() {
        let (c, class) = ADDR_CHARS[i];
        let raw = utf8_3(c);
        let slot = (raw.wrapping_mul(ADDR_MUL) >> 26) as usize;
        assert!(
            t[slot] == 0,
            "address character hash collision: pick another ADDR_MUL"
        );
        let seen = match class {
            ADMIN => SEEN_ADMIN,
            GRAMMAR => SEEN_GRAMMAR,
            _ => SEEN_GRAMMAR | SEEN_NUMBER,
        };
        t[slot] = raw << 8 | seen as u32;
        i += 1;
    }
    t
};

/// ASCII bytes inside an address value: [`ADDR_END`] ends it, a digit adds
/// [`SEEN_NUMBER`] (a house number), anything else nothing.
const ADDR_END: u8 = 0x80;
static ADDR_ASCII: [u8; 128] = {
    let mut t = [0u8; 128];
    let ends = b"\"\n\r&<\\,;|";
    let mut k = 0;
    while k < ends.len() {
        t[ends[k] as usize] = ADDR_END;
        k += 1;
    }
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = SEEN_NUMBER;
        d += 1;
    }
    t
};

/// A mainland address value at `buf[i..]` (up to a delimiter): an administrative suffix
/// (省 市 区 县 州 镇 乡) or a province name, a street-grammar character (路 街 道 号 栋 …), and
/// a house number. One pass over the bytes; the province list is only consulted when no
/// administrative suffix was seen.
///
/// The loop runs once per character of every address value after an address keyword
/// (PI-dense exports carry one per record), so a step is a few table probes: an ASCII byte
/// by [`ADDR_ASCII`]; a CJK character (lead byte E4-E9, two continuation bytes) by its raw
/// UTF-8 bytes hashed into [`ADDR_TABLE`], whose entry holds the `SEEN_*` bits to add.
pub fn address(buf: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut seen = 0u8;
    let mut chars = 0usize;
    let limit = (i + 240).min(buf.len());
    while j < limit {
        let b = buf[j];
        if b < 0x80 {
            let c = ADDR_ASCII[usize::from(b)];
            if c == ADDR_END {
                break;
            }
            seen |= c;
            chars += 1;
            j += 1;
            continue;
        }
        chars += 1;
        if b.wrapping_sub(0xE4) < 6 && j + 3 <= buf.len() {
            let raw = u32::from(b) | u32::from(buf[j + 1]) << 8 | u32::from(buf[j + 2]) << 16;
            if raw & 0x00C0_C000 == 0x0080_8000 {
                let e = ADDR_TABLE[(raw.wrapping_mul(ADDR_MUL) >> 26) as usize];
                if e >> 8 == raw {
                    seen |= e as u8;
                }
                j += 3;
                continue;
            }
        }
        j += 1;
    }
    if chars < 6 || seen & SEEN_GRAMMAR == 0 || seen & SEEN_NUMBER == 0 {
        return None;
    }
    let v = &buf[i..j];
    let gazetteer = seen & SEEN_ADMIN != 0
        || PROVINCES
            .iter()
            .any(|p| memchr::memmem::find(v, p.as_bytes()).is_some());
    gazetteer.then_some(j)
}

/// A coordinate pair inside China after a location keyword: two decimal numbers with at
/// least four decimals (≈ 10 m) within a short span, one a latitude 18-54 and the other a
/// longitude 73-135, in either order. Returns the end of the second number.
pub fn location(buf: &[u8], i: usize, span: usize) -> Option<usize> {
    let end = (i + span).min(buf.len());
    let mut nums = [(0f64, 0usize); 2];
    let mut n = 0;
    let mut j = i;
    while j < end && n < 2 {
        if buf[j].is_ascii_digit() && (j == 0 || !buf[j - 1].is_ascii_alphanumeric()) {
            let s = j;
            while j < buf.len() && buf[j].is_ascii_digit() {
                j += 1;
            }
            let mut decimals = 0;
            if j < buf.len() && buf[j] == b'.' {
                j += 1;
                while j < buf.len() && buf[j].is_ascii_digit() {
                    j += 1;
                    decimals += 1;
                }
            }
            let mut v: f64 = std::str::from_utf8(&buf[s..j]).ok()?.parse().ok()?;
            if s > 0 && buf[s - 1] == b'-' {
                v = -v; // western or southern hemisphere: not in China
            }
            if decimals < 4 {
                return None;
            }
            nums[n] = (v, j);
            n += 1;
        } else if buf[j].is_ascii_alphabetic() && n == 0 && j > i + 24 {
            return None;
        } else {
            j += 1;
        }
    }
    if n < 2 {
        return None;
    }
    let lat = |v: f64| (18.0..=54.0).contains(&v);
    let lng = |v: f64| (73.0..=135.0).contains(&v);
    let (a, b) = (nums[0].0, nums[1].0);
    ((lat(a) && lng(b)) || (lng(a) && lat(b))).then_some(nums[1].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let b = "张三\"".as_bytes();
        assert_eq!(person_name(b, 0), Some((6, 3)));
        assert_eq!(person_name("欧阳娜娜,".as_bytes(), 0), Some((12, 6)));
        assert_eq!(person_name("你好\"".as_bytes(), 0), None);
        assert_eq!(person_name("王".as_bytes(), 0), None);
        assert_eq!(person_name("王小明今天很好".as_bytes(), 0), None);
    }

    #[test]
    fn addresses() {
        assert!(address("广东省深圳市南山区科技园路1号\"".as_bytes(), 0).is_some());
        assert!(address("北京市朝阳区建国路88号SOHO现代城5号楼".as_bytes(), 0).is_some());
        assert!(address("请填写地址".as_bytes(), 0).is_none());
    }

    /// The table-driven address scan against the straightforward byte loop it replaced, on
    /// random mixes of address characters, other ideographs, cut and invalid UTF-8,
    /// full-width punctuation, digits and delimiters.
    #[test]
    fn address_matches_reference() {
        fn reference(buf: &[u8], i: usize) -> Option<usize> {
            let mut j = i;
            let (mut admin, mut grammar, mut number, mut chars) = (false, false, false, 0);
            let limit = (i + 240).min(buf.len());
            while j < limit {
                let b = buf[j];
                if b < 0x80 {
                    if matches!(
                        b,
                        b'"' | b'\n' | b'\r' | b'&' | b'<' | b'\\' | b',' | b';' | b'|'
                    ) {
                        break;
                    }
                    number |= b.is_ascii_digit();
                    chars += 1;
                    j += 1;
                    continue;
                }
                chars += 1;
                if j + 3 <= buf.len() && is_cjk(&buf[j..j + 3]) {
                    let c = cp3(&buf[j..j + 3]).unwrap_or(' ');
                    let class = ADDR_CHARS.iter().find(|e| e.0 == c).map_or(0, |e| e.1);
                    match class {
                        ADMIN => admin = true,
                        HAO => {
                            grammar = true;
                            number = true;
                        }
                        GRAMMAR => grammar = true,
                        _ => {}
                    }
                    j += 3;
                    continue;
                }
                j += 1;
            }
            if chars < 6 || !grammar || !number {
                return None;
            }
            let v = &buf[i..j];
            let gazetteer = admin
                || PROVINCES
                    .iter()
                    .any(|p| memchr::memmem::find(v, p.as_bytes()).is_some());
            gazetteer.then_some(j)
        }
        let pieces: Vec<&[u8]> = vec![
            "省".as_bytes(),
            "市".as_bytes(),
            "路".as_bytes(),
            "号".as_bytes(),
            "胡".as_bytes(),
            "广东".as_bytes(),
            "张".as_bytes(),
            "，".as_bytes(),
            &"号".as_bytes()[..2],
            &[0xE5, 0x41, 0x80],
            &[0xEA, 0x80, 0x80],
            &[0xE3, 0xBF, 0xBF],
            b"1",
            b"a",
            b" ",
            b"\"",
            b",",
            b"\\",
            b"|",
        ];
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..20_000 {
            let mut buf = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 120) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.extend_from_slice(pieces[(x % pieces.len() as u64) as usize]);
            }
            for i in [0, 1, 2, 3] {
                if i <= buf.len() {
                    assert_eq!(address(&buf, i), reference(&buf, i), "{buf:x?} {i}");
                }
            }
        }
    }

    #[test]
    fn locations() {
        assert!(location(b"\":\"116.397128,39.916527\"", 0, 96).is_some());
        assert!(location(b"\":39.9165,\"lng\":116.3971}", 0, 96).is_some());
        assert!(location(b"\":\"116.39,39.91\"", 0, 96).is_none());
        assert!(location(b"\":\"-122.419416,37.774929\"", 0, 96).is_none());
    }

    #[test]
    fn builtin_set_keeps_the_simd_prefilter() {
        let n = PASSPORT.len()
            + PERMIT.len()
            + HK_ID.len()
            + NAME.len()
            + ADDRESS.len()
            + LOCATION.len()
            + HEALTH.len();
        assert!(n <= 64, "{n} built-in keywords: Teddy handles at most 64");
    }

    /// The packed searcher reports exactly the automaton's leftmost-longest matches: random
    /// haystacks stitched from whole keywords, their prefixes and suffixes (overlaps,
    /// near-misses), CJK text and separators, searched from every start, for the built-in
    /// set and custom lists that duplicate, extend or overlap built-in keywords.
    #[test]
    fn packed_matches_automaton() {
        let customs: [Vec<Vec<String>>; 4] = [
            vec![],
            vec![vec!["工号".into(), "name".into()]],
            vec![
                vec!["nameNo".into(), "姓名拼音".into()],
                vec!["ssport".into()],
            ],
            vec![vec!["addressLine".into(), "病历号".into(), "latlng".into()]],
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for custom in &customs {
            let k = Keywords::new(custom).unwrap();
            assert!(
                k.packed.is_some(),
                "Teddy must be available for the tested set"
            );
            let mut words: Vec<String> = [PASSPORT, PERMIT, HK_ID, NAME, ADDRESS, LOCATION, HEALTH]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect();
            words.extend(custom.iter().flatten().cloned());
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            for w in &words {
                let b = w.as_bytes();
                pieces.push(b.to_vec());
                pieces.push(b[..b.len() - 1].to_vec());
                pieces.push(b[1..].to_vec());
            }
            for p in ["\":\"", ",", " ", "张三", "广东省", "x", "1", "é"] {
                pieces.push(p.as_bytes().to_vec());
            }
            for _ in 0..400 {
                let mut hay = Vec::new();
                for _ in 0..next(40) {
                    hay.extend_from_slice(&pieces[next(pieces.len())]);
                }
                for from in (0..=hay.len()).step_by(7).chain([hay.len()]) {
                    let got: Vec<_> = k.find_from(&hay, from).collect();
                    assert_eq!(
                        got,
                        k.find_from_automaton(&hay, from),
                        "{:?} from {from}",
                        String::from_utf8_lossy(&hay)
                    );
                }
            }
        }
    }

    #[test]
    fn automaton() {
        let k = Keywords::new(&[vec!["工号".into()]]).unwrap();
        let hits: Vec<Kw> = k
            .find_from("{\"PassportNo\":1,\"收货地址\":2,\"工号\":3}".as_bytes(), 0)
            .map(|m| m.2)
            .collect();
        assert_eq!(hits, vec![Kw::Passport, Kw::Address, Kw::Custom(0)]);
        assert!(k.labels(b"passport: ", Kw::Passport));
        assert!(k.labels(b"{\"passportNo\":\"", Kw::Passport));
        assert!(!k.labels(b"{\"passportNo\":\"E1\",\"sku\":\"", Kw::Passport));
    }
}
