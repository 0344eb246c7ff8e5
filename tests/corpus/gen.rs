//! Labelled corpus generator for the classifier: realistic payloads (JSON batches, forms,
//! CSV exports, Chinese prose, gzip, base64-encoded records in JSON and forms) with the exact
//! number of each category they contain, plus hard negatives. Deterministic (seeded), so failures reproduce.
//!
//! Honest by construction: check digits are computed here independently of the classifier
//! (GB 11643 MOD 11-2, Luhn, HK and TW schemes), area codes are real GB/T 2260 district codes,
//! mobile prefixes are the MIIT-allocated ones, card BINs are real UnionPay/Visa/Mastercard
//! issuer prefixes. Shared by `tests/classify_corpus.rs` and `benches/classify.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

/// SplitMix64: tiny, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: u64, hi_incl: u64) -> u64 {
        lo + self.below(hi_incl - lo + 1)
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'0' + self.below(10) as u8) as char)
            .collect()
    }
}

/// Real county-level area codes (GB/T 2260) across all regions.
const AREAS: &[&str] = &[
    "110101", "110105", "110108", "120101", "130102", "140105", "150102", "210102", "220102",
    "230102", "310101", "310104", "310115", "320102", "320506", "330106", "330212", "340104",
    "350203", "360102", "370202", "410105", "420106", "430104", "440106", "440305", "440304",
    "450103", "460106", "500103", "510104", "510107", "520102", "530102", "540102", "610113",
    "620102", "630102", "640104", "650102",
];

/// Mobile prefixes allocated by MIIT (including virtual operators 170/171, 162/165/167).
const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "145", "147", "149",
    "150", "151", "152", "153", "155", "156", "157", "158", "159", "162", "165", "166", "167",
    "170", "171", "172", "173", "175", "176", "177", "178", "180", "181", "182", "183", "184",
    "185", "186", "187", "188", "189", "190", "191", "192", "193", "195", "196", "197", "198",
    "199",
];

/// Issuer prefixes: UnionPay debit BINs of ICBC/CCB/ABC/BOC/CMB, Visa, Mastercard (51-55 and
/// the 2-series).
const CARD_BINS: &[(&str, usize)] = &[
    ("622202", 19),
    ("621700", 19),
    ("622848", 19),
    ("621661", 19),
    ("622588", 16),
    ("625807", 16),
    ("438088", 16),
    ("427020", 16),
    ("491020", 16),
    ("512345", 16),
    ("545616", 16),
    ("222300", 16),
    ("271234", 16),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "欧阳", "司马", "诸葛",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "子涵", "欣怡", "浩然",
];
const PINYIN: &[&str] = &[
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
    "zhu", "hu", "guo", "he", "gao", "lin", "luo",
];
const MAIL_DOMAINS: &[&str] = &[
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "gmail.com",
    "outlook.com",
    "example.cn",
    "corp.com.cn",
    "foxmail.com",
    "aliyun.com",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("北京市", "北京市", "朝阳区"),
    ("上海市", "上海市", "浦东新区"),
    ("广东省", "深圳市", "南山区"),
    ("广东省", "广州市", "天河区"),
    ("浙江省", "杭州市", "西湖区"),
    ("江苏省", "南京市", "玄武区"),
    ("四川省", "成都市", "锦江区"),
    ("湖北省", "武汉市", "武昌区"),
];
const ROADS: &[&str] = &[
    "建国路",
    "科技园路",
    "中山东一路",
    "人民大道",
    "解放街",
    "文三路",
];
const DIAGNOSES: &[&str] = &[
    "2型糖尿病 E11.9",
    "高血压 I10",
    "支气管哮喘 J45.9",
    "抑郁症 F32.9",
];

// ---------------------------------------------------------------- identifiers

pub fn id_check(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let s: u32 = first17
        .bytes()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b"10X98765432"[(s % 11) as usize] as char
}

/// A valid resident ID; `minor` picks a birth date under 14 at 2026-11-24.
pub fn resident_id(r: &mut Rng, minor: bool) -> String {
    let year = if minor {
        r.range(2013, 2025)
    } else {
        r.range(1940, 2008)
    };
    let month = r.range(1, 12);
    let day = r.range(1, 28);
    let body = format!(
        "{}{year:04}{month:02}{day:02}{}",
        r.pick(AREAS),
        r.digits(3)
    );
    let c = id_check(&body);
    let c = if c == 'X' && r.chance(20) { 'x' } else { c };
    format!("{body}{c}")
}

/// 18-digit order number shaped like an ID whose check digit is wrong.
pub fn bad_check_id(r: &mut Rng) -> String {
    let v = resident_id(r, false);
    let good = v.as_bytes()[17].to_ascii_uppercase();
    let bad = *r.pick(
        &b"0123456789X"
            .iter()
            .filter(|&&c| c != good)
            .collect::<Vec<_>>(),
    );
    let bad = if *bad == b'X' { b'7' } else { *bad };
    let bad = if bad == good {
        if good == b'1' {
            b'2'
        } else {
            b'1'
        }
    } else {
        bad
    };
    format!("{}{}", &v[..17], bad as char)
}

/// ID-shaped with a correct check digit but a 30 February birth date or a non-province.
pub fn impossible_id(r: &mut Rng) -> String {
    let body = if r.chance(50) {
        format!(
            "{}{}0230{}",
            r.pick(AREAS),
            r.range(1950, 2000),
            r.digits(3)
        )
    } else {
        format!(
            "{}{}{}0115{}",
            r.pick(&["99", "00", "24", "90"]),
            r.digits(4),
            r.range(1950, 2000),
            r.digits(3)
        )
    };
    let c = id_check(&body);
    format!("{body}{c}")
}

pub fn mobile(r: &mut Rng) -> String {
    format!("{}{}", r.pick(MOBILE_PREFIXES), r.digits(8))
}

pub fn bad_mobile(r: &mut Rng) -> String {
    let p = *r.pick(&[
        "100", "110", "120", "140", "154", "179", "194", "160", "161",
    ]);
    format!("{p}{}", r.digits(8))
}

fn luhn_digit(partial: &str) -> char {
    // Check digit that makes `partial + d` pass Luhn.
    let mut sum = 0;
    for (i, c) in partial.bytes().rev().enumerate() {
        let mut v = u32::from(c - b'0');
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    (b'0' + ((10 - sum % 10) % 10) as u8) as char
}

pub fn bank_card(r: &mut Rng) -> String {
    let (bin, len) = *r.pick(CARD_BINS);
    let partial = format!("{bin}{}", r.digits(len - bin.len() - 1));
    let d = luhn_digit(&partial);
    format!("{partial}{d}")
}

/// A 62… card number with a wrong check digit.
pub fn bad_card(r: &mut Rng) -> String {
    let v = bank_card(r);
    let v = format!("62{}", &v[2..]);
    let partial = &v[..v.len() - 1];
    let good = luhn_digit(partial);
    let bad = if good == '9' {
        '0'
    } else {
        (good as u8 + 1) as char
    };
    format!("{partial}{bad}")
}

pub fn email(r: &mut Rng) -> String {
    let local = match r.below(3) {
        0 => format!("{}.{}", r.pick(PINYIN), r.pick(PINYIN)),
        1 => format!("{}{}", r.pick(PINYIN), r.range(1, 9999)),
        _ => format!("{}_{}", r.pick(PINYIN), r.pick(PINYIN)),
    };
    format!("{local}@{}", r.pick(MAIL_DOMAINS))
}

pub fn passport(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!("E{}", r.digits(8)),
        1 => {
            let l = *r.pick(&['A', 'B', 'C', 'D', 'F', 'G', 'H', 'J', 'K']);
            format!("E{l}{}", r.digits(7))
        }
        _ => format!("G{}", r.digits(8)),
    }
}

pub fn permit(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!("C{}", r.digits(8)),
        1 => format!("H{}", r.digits(8)),
        _ => format!("M{}", r.digits(10)),
    }
}

fn hk_value(c: u8) -> u32 {
    u32::from(c - b'A') + 10
}

pub fn hk_id(r: &mut Rng) -> String {
    let two = r.chance(20);
    let l1 = b'A' + r.below(26) as u8;
    let l2 = b'A' + r.below(26) as u8;
    let digits = r.digits(6);
    let mut vals = Vec::new();
    if two {
        vals.push(hk_value(l1));
        vals.push(hk_value(l2));
    } else {
        vals.push(36);
        vals.push(hk_value(l1));
    }
    vals.extend(digits.bytes().map(|d| u32::from(d - b'0')));
    let sum: u32 = vals
        .iter()
        .enumerate()
        .map(|(i, v)| v * (9 - i as u32))
        .sum();
    let c = (11 - sum % 11) % 11;
    let c = if c == 10 {
        'A'
    } else {
        (b'0' + c as u8) as char
    };
    let letters = if two {
        format!("{}{}", l1 as char, l2 as char)
    } else {
        format!("{}", l1 as char)
    };
    format!("{letters}{digits}({c})")
}

pub fn tw_id(r: &mut Rng) -> String {
    const VALUES: [u32; 26] = [
        10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32,
        30, 31, 33,
    ];
    let li = r.below(26) as usize;
    let letter = (b'A' + li as u8) as char;
    let body = format!("{}{}", r.range(1, 2), r.digits(7));
    let lv = VALUES[li];
    let w = [8, 7, 6, 5, 4, 3, 2, 1];
    let mut sum = lv / 10 + (lv % 10) * 9;
    for (d, w) in body.bytes().zip(w) {
        sum += u32::from(d - b'0') * w;
    }
    let c = (10 - sum % 10) % 10;
    format!("{letter}{body}{c}")
}

pub fn name(r: &mut Rng) -> String {
    format!("{}{}", r.pick(SURNAMES), r.pick(GIVEN))
}

pub fn address(r: &mut Rng) -> String {
    let (p, c, d) = *r.pick(PLACES);
    let p = if p == c { String::new() } else { p.to_string() };
    format!(
        "{p}{c}{d}{}{}号{}栋{}室",
        r.pick(ROADS),
        r.range(1, 999),
        r.range(1, 30),
        r.range(101, 2505)
    )
}

pub fn location(r: &mut Rng) -> (String, String) {
    let lat = format!("{}.{}", r.range(20, 50), r.digits(6));
    let lng = format!("{}.{}", r.range(75, 130), r.digits(6));
    (lat, lng)
}

/// Unified social credit code (GB 32100-2015) with a correct MOD 31 check character.
pub fn credit_code(r: &mut Rng) -> String {
    const CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const W: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let mut s = format!("91{}", r.pick(AREAS));
    for _ in 0..9 {
        s.push(CHARS[r.below(31) as usize] as char);
    }
    let sum: u32 = s
        .bytes()
        .zip(W)
        .map(|(b, w)| CHARS.iter().position(|&c| c == b).unwrap() as u32 * w)
        .sum();
    s.push(CHARS[((31 - sum % 31) % 31) as usize] as char);
    s
}

pub fn uuid(r: &mut Rng) -> String {
    let h = |r: &mut Rng, n: usize| -> String {
        (0..n)
            .map(|_| b"0123456789abcdef"[r.below(16) as usize] as char)
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        h(r, 8),
        h(r, 4),
        h(r, 4),
        h(r, 4),
        h(r, 12)
    )
}

// ---------------------------------------------------------------- presentation

/// Spacing/escaping variants the scanner must see through.
fn present_digits(r: &mut Rng, v: &str, groups: &[usize]) -> String {
    match r.below(10) {
        0 => v
            .chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap()
                } else {
                    c
                }
            })
            .collect(),
        1 | 2 => {
            let sep = if r.chance(50) { ' ' } else { '-' };
            let mut out = String::new();
            let mut i = 0;
            for (k, g) in groups.iter().enumerate() {
                if k > 0 {
                    out.push(sep);
                }
                let end = (i + g).min(v.len());
                out.push_str(&v[i..end]);
                i = end;
            }
            if i < v.len() {
                out.push(sep);
                out.push_str(&v[i..]);
            }
            out
        }
        _ => v.to_string(),
    }
}

fn json_escape_all(v: &str) -> String {
    v.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

fn percent_all(v: &str) -> String {
    v.bytes().map(|b| format!("%{b:02X}")).collect()
}

// ---------------------------------------------------------------- samples

pub struct Sample {
    pub name: String,
    pub content_type: Option<&'static str>,
    pub content_encoding: Option<&'static str>,
    pub body: Vec<u8>,
    pub expected: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Labels(BTreeMap<&'static str, u64>);
impl Labels {
    fn add(&mut self, c: &'static str) {
        *self.0.entry(c).or_insert(0) += 1;
    }
}

/// One person's record as JSON fields (`"k":"v"` pairs) with their labels.
fn person_fields(r: &mut Rng, l: &mut Labels, out: &mut String) {
    let mut fields: Vec<String> = Vec::new();
    fields.push(format!("\"uid\":{}", r.range(100000, 99999999)));
    fields.push(format!("\"orderNo\":\"{}\"", bad_check_id(r)));
    fields.push(format!(
        "\"createdAt\":{}",
        r.range(1_600_000_000_000, 1_790_000_000_000)
    ));
    fields.push(format!("\"traceId\":\"{}\"", uuid(r)));
    let mut has_id = false;
    if r.chance(60) {
        let minor = r.chance(15);
        let v = resident_id(r, minor);
        let v = if r.chance(15) {
            json_escape_all(&v)
        } else {
            present_digits(r, &v, &[6, 8])
        };
        fields.push(format!("\"idCard\":\"{v}\""));
        l.add("cn_resident_id");
        if minor {
            l.add("minor");
        }
        has_id = true;
    }
    if r.chance(70) {
        let m = mobile(r);
        let m = match r.below(6) {
            0 => format!("+86 {}", present_digits(r, &m, &[3, 4])),
            1 => format!("+86{m}"),
            2 => json_escape_all(&m),
            _ => present_digits(r, &m, &[3, 4]),
        };
        fields.push(format!("\"mobile\":\"{m}\""));
        l.add("cn_mobile");
        has_id = true;
    }
    if r.chance(40) {
        let c = bank_card(r);
        fields.push(format!(
            "\"cardNo\":\"{}\"",
            present_digits(r, &c, &[4, 4, 4, 4])
        ));
        l.add("bank_card");
        has_id = true;
    }
    if r.chance(50) {
        fields.push(format!("\"email\":\"{}\"", email(r)));
        l.add("email");
        has_id = true;
    }
    if r.chance(20) {
        fields.push(format!("\"passportNo\":\"{}\"", passport(r)));
        l.add("cn_passport");
        has_id = true;
    }
    if r.chance(10) {
        fields.push(format!(
            "\"permitNo\":\"{}\",\"docType\":\"港澳通行证\"",
            permit(r)
        ));
        l.add("hk_macau_permit");
        has_id = true;
    }
    if r.chance(10) {
        fields.push(format!("\"hkid\":\"{}\"", hk_id(r)));
        l.add("hk_id");
        has_id = true;
    }
    if r.chance(10) {
        fields.push(format!("\"twId\":\"{}\"", tw_id(r)));
        l.add("tw_id");
        has_id = true;
    }
    if r.chance(60) {
        fields.push(format!("\"name\":\"{}\"", name(r)));
        l.add("person_name");
    }
    if r.chance(40) {
        fields.push(format!("\"address\":\"{}\"", address(r)));
        l.add("cn_address");
    }
    if r.chance(20) {
        let (lat, lng) = location(r);
        fields.push(format!("\"location\":\"{lng},{lat}\""));
        l.add("precise_location");
    }
    if r.chance(15) {
        fields.push(format!("\"diagnosis\":\"{}\"", r.pick(DIAGNOSES)));
        if has_id {
            l.add("health");
        }
    }
    // Hard negatives that sit in real records.
    if r.chance(30) {
        fields.push(format!("\"sku\":\"{}\"", passport(r)));
    }
    if r.chance(30) {
        fields.push(format!("\"ref\":\"{}\"", impossible_id(r)));
    }
    if r.chance(30) {
        fields.push(format!("\"extNo\":\"{}\"", bad_mobile(r)));
    }
    if r.chance(20) {
        fields.push(format!("\"txn\":\"{}\"", bad_card(r)));
    }
    if r.chance(20) {
        fields.push(format!(
            "\"snowflake\":{}",
            r.range(1_400_000_000_000_000_000, 1_900_000_000_000_000_000)
        ));
    }
    if r.chance(20) {
        fields.push(format!("\"merchantCreditCode\":\"{}\"", credit_code(r)));
    }
    if r.chance(20) {
        fields.push("\"nickname\":\"今天天气很好\"".to_string());
    }
    // Shuffle field order.
    for i in (1..fields.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        fields.swap(i, j);
    }
    out.push('{');
    out.push_str(&fields.join(","));
    out.push('}');
}

fn json_batch(r: &mut Rng, l: &mut Labels) -> String {
    let n = r.range(1, 12);
    let mut s = String::from("{\"code\":0,\"msg\":\"ok\",\"data\":{\"page\":1,\"list\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        person_fields(r, l, &mut s);
    }
    s.push_str("]}}");
    s
}

fn form(r: &mut Rng, l: &mut Labels) -> String {
    let mut parts = vec![format!("ts={}", r.range(1_600_000_000, 1_790_000_000))];
    if r.chance(80) {
        let m = mobile(r);
        let v = if r.chance(50) {
            percent_all(&m)
        } else {
            format!("%2B86+{}+{}+{}", &m[..3], &m[3..7], &m[7..])
        };
        parts.push(format!("phone={v}"));
        l.add("cn_mobile");
    }
    if r.chance(60) {
        parts.push(format!("real_name={}", percent_all(&name(r))));
        l.add("person_name");
    }
    if r.chance(60) {
        let minor = r.chance(10);
        parts.push(format!("id_no={}", resident_id(r, minor)));
        l.add("cn_resident_id");
        if minor {
            l.add("minor");
        }
    }
    if r.chance(50) {
        parts.push(format!("mail={}", email(r).replace('@', "%40")));
        l.add("email");
    }
    parts.push(format!("order={}", bad_check_id(r)));
    parts.join("&")
}

fn csv(r: &mut Rng, l: &mut Labels) -> String {
    let mut s = String::from("姓名,身份证号,手机号,银行卡号,邮箱,订单号,金额\n");
    for _ in 0..r.range(1, 20) {
        let minor = r.chance(10);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}.{:02}",
            name(r),
            resident_id(r, minor),
            mobile(r),
            bank_card(r),
            email(r),
            bad_check_id(r),
            r.range(1, 99999),
            r.below(100)
        );
        for c in ["cn_resident_id", "cn_mobile", "bank_card", "email"] {
            l.add(c);
        }
        if minor {
            l.add("minor");
        }
    }
    s
}

fn prose(r: &mut Rng, l: &mut Labels) -> String {
    let mut s = String::new();
    for _ in 0..r.range(1, 6) {
        match r.below(6) {
            0 => {
                let m = mobile(r);
                let _ = write!(
                    s,
                    "客户来电反映订单{}未发货，联系电话{}，请尽快处理。",
                    bad_check_id(r),
                    present_digits(r, &m, &[3, 4])
                );
                l.add("cn_mobile");
            }
            1 => {
                let _ = write!(s, "收件人：{}，收货地址：{}。", name(r), address(r));
                l.add("person_name");
                l.add("cn_address");
            }
            2 => {
                let v = resident_id(r, false);
                let _ = write!(
                    s,
                    "申请人身份证号码为{}，请核对。",
                    present_digits(r, &v, &[6, 8])
                );
                l.add("cn_resident_id");
            }
            3 => {
                let _ = write!(
                    s,
                    "持卡人于{}年消费{}元，卡号{}。",
                    r.range(2019, 2026),
                    r.range(10, 9999),
                    bank_card(r)
                );
                l.add("bank_card");
            }
            4 => {
                let _ = write!(
                    s,
                    "会议纪要：第{}季度营收增长{}%，时间戳{}，无其他事项。",
                    r.range(1, 4),
                    r.range(1, 60),
                    r.range(1_600_000_000_000, 1_790_000_000_000)
                );
            }
            _ => {
                let _ = write!(s, "旅客护照号{}，请于登机前出示。", passport(r));
                l.add("cn_passport");
            }
        }
    }
    s
}

/// Base64 (standard or URL-safe alphabet, with or without `=` padding).
pub fn base64(data: &[u8], url: bool, pad: bool) -> String {
    let t: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(t[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn random_bytes(r: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.below(256) as u8).collect()
}

/// An API envelope whose payload is a base64-encoded person record (positives), next to
/// base64 hard negatives: a random signature, a JWT-like token, a hex nonce and an encoded
/// record whose identifiers fail their check digits. As JSON or as a form (`%2B`, `%2F`,
/// `%3D` escaped as a client would).
fn base64_envelope(r: &mut Rng, l: &mut Labels) -> (bool, String) {
    let mut rec = String::new();
    person_fields(r, l, &mut rec);
    let url = r.chance(40);
    let payload = base64(rec.as_bytes(), url, r.chance(50));
    let n = r.range(16, 64) as usize;
    let sig = base64(&random_bytes(r, n), false, true);
    let bad = format!(
        "{{\"idno\":\"{}\",\"tel\":\"{}\",\"card\":\"{}\"}}",
        bad_check_id(r),
        bad_mobile(r),
        bad_card(r)
    );
    let bad = base64(bad.as_bytes(), r.chance(50), true);
    let jwt = format!(
        "{}.{}.{}",
        base64(br#"{"alg":"HS256","typ":"JWT"}"#, true, false),
        base64(
            format!("{{\"sub\":\"{}\",\"iat\":1764000000}}", bad_check_id(r)).as_bytes(),
            true,
            false
        ),
        base64(&random_bytes(r, 32), true, false)
    );
    let nonce: String = (0..32)
        .map(|_| b"0123456789abcdef"[r.below(16) as usize] as char)
        .collect();
    let n = r.range(100, 2000) as usize;
    let url = r.chance(50);
    let blob = base64(&random_bytes(r, n), url, true);
    if r.chance(30) {
        let esc = |v: &str| {
            v.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        };
        let body = format!(
            "event=sync&payload={}&sig={}&ref={}&token={jwt}&nonce={nonce}&blob={}",
            esc(&payload),
            esc(&sig),
            esc(&bad),
            esc(&blob)
        );
        return (true, body);
    }
    let body = format!(
        "{{\"event\":\"sync\",\"payload\":\"{payload}\",\"sig\":\"{sig}\",\"ref\":\"{bad}\",\"token\":\"{jwt}\",\"nonce\":\"{nonce}\",\"blob\":\"{blob}\"}}"
    );
    (false, body)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `n` labelled samples.
pub fn corpus(seed: u64, n: usize) -> Vec<Sample> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let mut l = Labels::default();
            let kind = i % 6;
            let (name, ct, ce, body) = match kind {
                0 => (
                    "json",
                    Some("application/json"),
                    None,
                    json_batch(&mut r, &mut l).into_bytes(),
                ),
                1 => (
                    "form",
                    Some("application/x-www-form-urlencoded"),
                    None,
                    form(&mut r, &mut l).into_bytes(),
                ),
                2 => (
                    "csv",
                    Some("text/csv"),
                    None,
                    csv(&mut r, &mut l).into_bytes(),
                ),
                3 => (
                    "prose",
                    Some("text/plain; charset=utf-8"),
                    None,
                    prose(&mut r, &mut l).into_bytes(),
                ),
                4 => (
                    "gzip-json",
                    Some("application/json"),
                    Some("gzip"),
                    gzip(json_batch(&mut r, &mut l).as_bytes()),
                ),
                _ => {
                    let (is_form, body) = base64_envelope(&mut r, &mut l);
                    let ct = if is_form {
                        "application/x-www-form-urlencoded"
                    } else {
                        "application/json"
                    };
                    ("base64", Some(ct), None, body.into_bytes())
                }
            };
            Sample {
                name: format!("{name}-{i}"),
                content_type: ct,
                content_encoding: ce,
                body,
                expected: l.0,
            }
        })
        .collect()
}

// ---------------------------------------------------------------- bench haystacks

/// Typical API JSON with no personal information: ids, timestamps, prices, UUIDs, text.
pub fn clean_json(size: usize) -> Vec<u8> {
    let mut r = Rng::new(7);
    let mut s = String::from("{\"items\":[");
    while s.len() < size {
        let _ = write!(
            s,
            "{{\"id\":{},\"sku\":\"SKU-{}\",\"title\":\"Wireless mouse, 2.4GHz, black\",\"price\":{}.{:02},\"stock\":{},\"updated_at\":\"2026-{:02}-{:02}T{:02}:{:02}:00Z\",\"ts\":{},\"trace\":\"{}\",\"tags\":[\"electronics\",\"office\"],\"active\":true}},",
            r.range(1, 9_999_999),
            r.digits(6),
            r.range(1, 999),
            r.below(100),
            r.below(500),
            r.range(1, 12),
            r.range(1, 28),
            r.below(24),
            r.below(60),
            r.range(1_600_000_000_000, 1_790_000_000_000),
            uuid(&mut r)
        );
    }
    s.push_str("{}]}");
    s.into_bytes()
}

/// JSON where every record is a person.
pub fn pi_dense_json(size: usize) -> Vec<u8> {
    let mut r = Rng::new(11);
    let mut s = String::from("[");
    while s.len() < size {
        let _ = write!(
            s,
            "{{\"name\":\"{}\",\"idCard\":\"{}\",\"mobile\":\"{}\",\"email\":\"{}\",\"cardNo\":\"{}\",\"address\":\"{}\"}},",
            name(&mut r),
            resident_id(&mut r, false),
            mobile(&mut r),
            email(&mut r),
            bank_card(&mut r),
            address(&mut r)
        );
    }
    s.push_str("{}]");
    s.into_bytes()
}

/// Chinese prose with occasional personal information.
pub fn chinese_prose(size: usize) -> Vec<u8> {
    let mut r = Rng::new(13);
    let mut s = String::new();
    let mut l = Labels::default();
    while s.len() < size {
        s.push_str("根据《个人信息保护法》第三十八条，向境外提供个人信息应当具备法定条件。本季度共处理客户咨询若干件，整体满意度较上季度有所提升。");
        if r.chance(30) {
            s.push_str(&prose(&mut r, &mut l));
        }
    }
    s.into_bytes()
}
