//! Keyword context: one Aho-Corasick automaton holds every keyword of every category (built-in
//! and custom). It is used two ways: forward over the stream to trigger the keyword-led
//! detectors (person name, address, precise location, health), and backward over a short
//! look-behind to confirm identifiers that are only PI next to a keyword (passport numbers,
//! travel permits, bare HK ID numbers).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

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

const PASSPORT: &[&str] = &["passport", "护照", "旅行证件", "護照"];
const PERMIT: &[&str] = &[
    "通行证",
    "回乡证",
    "往来港澳",
    "港澳居民来往内地",
    "出入境",
    "permit",
    "hkmacao",
    "通行證",
];
const HK_ID: &[&str] = &[
    "hkid",
    "hk_id",
    "香港身份证",
    "香港身份證",
    "身份證",
    "hong kong id",
];
const NAME: &[&str] = &[
    "姓名",
    "名字",
    "收件人",
    "收货人",
    "联系人",
    "持卡人",
    "申请人",
    "患者",
    "客户",
    "乘客",
    "住客",
    "寄件人",
    "法定代表人",
    "监护人",
    "name",
    "realname",
    "real_name",
    "fullname",
    "full_name",
    "holder",
];
const ADDRESS: &[&str] = &[
    "地址",
    "住址",
    "收货地址",
    "家庭住址",
    "户籍",
    "居住地",
    "详细地址",
    "address",
    "addr",
];
const LOCATION: &[&str] = &[
    "经纬度",
    "坐标",
    "定位",
    "位置",
    "location",
    "lnglat",
    "latlng",
    "latitude",
    "longitude",
    "lat",
    "lng",
    "lon",
    "gps",
    "coordinates",
    "geo",
];
const HEALTH: &[&str] = &[
    "病历",
    "病案",
    "诊断",
    "住院号",
    "门诊号",
    "就诊",
    "病史",
    "处方",
    "过敏史",
    "体检",
    "检验报告",
    "病情",
    "症状",
    "疾病",
    "diagnosis",
    "medical",
    "icd10",
    "icd-10",
    "patient",
    "病歷",
    "診斷",
];

/// The compiled keyword automaton and each pattern's kind.
#[derive(Debug)]
pub struct Keywords {
    ac: AhoCorasick,
    kinds: Vec<Kw>,
    /// Longest pattern in bytes: a match may straddle this many bytes at a window edge.
    pub max_len: usize,
}

impl Keywords {
    /// Built-in keywords plus each custom detector's list (`custom[i]` → `Kw::Custom(i)`).
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
        // ASCII case-insensitive so `PassportNo`, `NAME`, `Address` all match; CJK is
        // unaffected. Leftmost-longest so `收货地址` wins over `地址`.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)?;
        Ok(Keywords { ac, kinds, max_len })
    }

    /// Keyword matches `(start, end, kind)` in `hay` from `from`.
    pub fn find_from<'h>(
        &'h self,
        hay: &'h [u8],
        from: usize,
    ) -> impl Iterator<Item = (usize, usize, Kw)> + 'h {
        let input = aho_corasick::Input::new(hay).range(from..);
        self.ac
            .find_iter(input)
            .map(move |m| (m.start(), m.end(), self.kinds[m.pattern().as_usize()]))
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

/// Single-character surnames covering the vast majority of the population (Ministry of
/// Public Security surname statistics), and the common compound surnames.
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝";
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
    let text = std::str::from_utf8(&buf[i..j]).ok()?;
    let first2 = text.get(..6).unwrap_or("");
    if (3..=4).contains(&n) && COMPOUND_SURNAMES.contains(&first2) {
        return Some((j, 6));
    }
    let first = text.get(..3)?;
    if (2..=3).contains(&n) && SURNAMES.contains(first) {
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
const ADMIN: &[&str] = &["省", "市", "区", "县", "州", "镇", "乡"];
const GRAMMAR: &[&str] = &[
    "路", "街", "道", "号", "栋", "幢", "室", "弄", "巷", "村", "楼", "单元", "小区", "大厦",
    "胡同",
];

/// A mainland address value at `buf[i..]` (up to a delimiter): a gazetteer token (province
/// or an administrative suffix) and a street-grammar token, with a house number.
pub fn address(buf: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < buf.len()
        && j - i < 240
        && !matches!(
            buf[j],
            b'"' | b'\n' | b'\r' | b'&' | b'<' | b'\\' | b',' | b';' | b'|'
        )
    {
        j += 1;
    }
    let v = &buf[i..j];
    let text = match std::str::from_utf8(v) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&v[..e.valid_up_to()]).ok()?,
    };
    if text.chars().count() < 6 {
        return None;
    }
    let gazetteer = PROVINCES
        .iter()
        .any(|p| text.starts_with(p) || text.contains(p))
        || ADMIN.iter().any(|a| text.contains(a));
    let grammar = GRAMMAR.iter().any(|g| text.contains(g));
    let number = text.bytes().any(|b| b.is_ascii_digit()) || text.contains('号');
    (gazetteer && grammar && number).then_some(j)
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

    #[test]
    fn locations() {
        assert!(location(b"\":\"116.397128,39.916527\"", 0, 96).is_some());
        assert!(location(b"\":39.9165,\"lng\":116.3971}", 0, 96).is_some());
        assert!(location(b"\":\"116.39,39.91\"", 0, 96).is_none());
        assert!(location(b"\":\"-122.419416,37.774929\"", 0, 96).is_none());
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
