//! Scanner-level tests: categories end to end, encodings, hard negatives, streaming splits,
//! subjects.

use std::sync::Arc;

use chrono::NaiveDate;
use proptest::prelude::*;

use super::validate::resident_id_check_char;
use super::*;

pub(crate) fn options() -> ClassifierOptions {
    ClassifierOptions {
        id_number_is_sensitive: true,
        max_inspect_bytes: 16 * 1024 * 1024,
        max_decompression_ratio: 100,
        hash_key: [42; 32],
        custom: Vec::new(),
    }
}

pub(crate) fn ctx(ct: Option<&str>, ce: Option<&str>) -> ScanContext {
    ScanContext {
        content_type: ct.map(str::to_owned),
        content_encoding: ce.map(str::to_owned),
        today: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    }
}

pub(crate) fn id(area: u32, y: i32, m: u32, d: u32, seq: u32) -> String {
    let mut s = format!("{area:06}{y:04}{m:02}{d:02}{seq:03}").into_bytes();
    let c = resident_id_check_char(&s);
    s.push(c);
    String::from_utf8(s).unwrap()
}

fn scan_with(opts: ClassifierOptions, ct: Option<&str>, body: &[u8]) -> ScanReport {
    let c = Arc::new(Classifier::new(opts).unwrap());
    c.scan_bytes(ctx(ct, None), body)
}

fn scan(body: &str) -> ScanReport {
    scan_with(options(), None, body.as_bytes())
}

fn count(r: &ScanReport, cat: &str) -> u64 {
    r.findings
        .iter()
        .find(|f| f.category.as_str() == cat)
        .map_or(0, |f| f.count)
}

#[test]
fn resident_id_in_json_with_sample_and_class() {
    let v = id(110105, 1990, 3, 7, 123);
    let r = scan(&format!(r#"{{"name":"x","idNo":"{v}"}}"#));
    assert_eq!(count(&r, "cn_resident_id"), 1);
    let f = &r.findings[0];
    assert_eq!(f.class, DataClass::Sensitive);
    assert_eq!(f.samples, vec![format!("110***********{}", &v[14..])]);
    assert!(
        !format!("{r:?}").contains(&v),
        "raw ID leaked into the report"
    );
    assert_eq!(r.subjects.len(), 1);
    assert!(r.subjects[0].sensitive);

    let mut o = options();
    o.id_number_is_sensitive = false;
    let r = scan_with(o, None, format!("id={v}").as_bytes());
    assert_eq!(r.findings[0].class, DataClass::Personal);
    assert!(!r.subjects[0].sensitive);
}

#[test]
fn lowercase_x_and_separators() {
    // GB 11643 example number ends in X.
    let r = scan("身份证号：11010519491231002x，已核验");
    assert_eq!(count(&r, "cn_resident_id"), 1);
    let r = scan("ID 110105 19491231 002X.");
    assert_eq!(count(&r, "cn_resident_id"), 1);
    let r = scan("ID 1101-0519-4912-3100-2X"); // not a known grouping
    assert_eq!(count(&r, "cn_resident_id"), 0);
}

#[test]
fn minor_reported_in_addition() {
    let child = id(310101, 2015, 6, 1, 456);
    let adult = id(310101, 2012, 11, 24, 456); // 14 today
    let r = scan(&format!("[\"{child}\",\"{adult}\"]"));
    assert_eq!(count(&r, "cn_resident_id"), 2);
    assert_eq!(count(&r, "minor"), 1);
    let mut o = options();
    o.id_number_is_sensitive = false;
    let r = scan_with(o, None, child.as_bytes());
    assert!(r.has_sensitive());
    assert!(r.subjects[0].sensitive);
}

#[test]
fn mobiles_in_many_shapes() {
    for s in [
        "13812345678",
        "+8613812345678",
        "+86 138 1234 5678",
        "(+86)138-1234-5678",
        "0086 13812345678",
        "008613812345678",
        "+86-13812345678",
        "电话１３８１２３４５６７８谢谢",
        r#"{"tel":"\u0031\u0033\u0038\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"}"#,
    ] {
        let r = scan(s);
        assert_eq!(count(&r, "cn_mobile"), 1, "{s}");
        assert_eq!(
            r.findings[0].samples,
            vec!["138****5678".to_string()],
            "{s}"
        );
    }
    let r = scan_with(
        options(),
        Some("application/x-www-form-urlencoded"),
        b"tel=138+1234+5678&x=%31%33%39%31%32%33%34%35%36%37%38",
    );
    assert_eq!(count(&r, "cn_mobile"), 2);
}

#[test]
fn cards() {
    let r = scan("card 6222 0212 3456 7890 128 and 4111-1111-1111-1111 and 5555555555554444");
    let n = if super::validate::luhn(b"6222021234567890128") {
        3
    } else {
        2
    };
    assert_eq!(count(&r, "bank_card"), n);
    let r = scan("x 4111111111111111 ");
    assert_eq!(r.findings[0].samples, vec!["4111********1111".to_string()]);
}

#[test]
fn emails() {
    let r = scan(
        r#"{"email":"Zhang.San+cn@Example.COM","b":"image@2x.png","c":"a@b","d":"13812345678@qq.com"}"#,
    );
    assert_eq!(count(&r, "email"), 2);
    assert_eq!(count(&r, "cn_mobile"), 0);
    assert!(r.findings[0]
        .samples
        .contains(&"z***@example.com".to_string()));
}

#[test]
fn hard_negatives() {
    let good = id(440305, 1985, 12, 1, 777);
    let mut bad_check = good.clone().into_bytes();
    bad_check[17] = if bad_check[17] == b'1' { b'2' } else { b'1' };
    let bad_check = String::from_utf8(bad_check).unwrap();
    let negatives = [
        bad_check,                                     // order number failing MOD 11-2
        id(440305, 1985, 2, 30, 777),                  // impossible date, valid check
        id(990305, 1985, 12, 1, 777),                  // impossible province
        id(440305, 2030, 1, 1, 777),                   // future
        "91350100M000100Y43".into(),                   // unified social credit code
        "1732512345678".into(),                        // ms timestamp
        "550e8400-e29b-41d4-a716-446655440000".into(), // UUID
        "1541815603606036480".into(),                  // snowflake
        "10012345678 11012345678 12012345678 14012345678 15412345678".into(),
        format!("9{good}"), // embedded in a longer run
        format!("{good}7"),
        format!("a{good}"),
        "6222021234567890123".into(), // 62… failing Luhn (checked below)
        "0.15012345678".into(),       // decimal fraction
    ];
    for n in &negatives {
        let r = scan(&format!(r#"{{"v":"{n}"}}"#));
        if n == "6222021234567890123" && super::validate::luhn(n.as_bytes()) {
            continue;
        }
        assert!(r.findings.is_empty(), "{n}: {:?}", r.findings);
    }
    // CJK directly against digits is a boundary.
    let r = scan(&format!("号码{good}。"));
    assert_eq!(count(&r, "cn_resident_id"), 1);
}

#[test]
fn org_code_takes_priority_in_credit_code_field() {
    // Find an all-digit string that is both a valid ID and a valid credit code.
    let mut both = None;
    'outer: for seq in 0..1000 {
        for day in 1..29 {
            let v = id(110105, 1990, 1, day, seq);
            if super::validate::social_credit_code(v.as_bytes()) {
                both = Some(v);
                break 'outer;
            }
        }
    }
    let v = both.expect("some ID is also a valid credit code");
    assert_eq!(
        count(
            &scan(&format!(r#"{{"creditCode":"{v}"}}"#)),
            "cn_resident_id"
        ),
        0
    );
    assert_eq!(
        count(&scan(&format!(r#"{{"idCard":"{v}"}}"#)), "cn_resident_id"),
        1
    );
}

#[test]
fn subjects_group_records() {
    let a = id(110105, 1990, 3, 7, 123);
    let b = id(320102, 1988, 8, 8, 321);
    let body = format!(
        r#"[{{"id":"{a}","tel":"13812345678","mail":"a@x.com"}},{{"id":"{b}","tel":"13912345678"}},{{"tel":"13812345678"}}]"#
    );
    let r = scan(&body);
    // a+13812345678, b+13912345678, and the third record repeats a phone of the first person
    // but cannot be joined to it: keys are per record's strongest identifier.
    assert!(r.subjects.len() >= 2, "{:?}", r.subjects);
    assert!(r.subjects.len() <= 3);
    let csv = format!("id,tel\n{a},13812345678\n{b},13912345678\n{a},13812345678\n");
    let r = scan(&csv);
    assert_eq!(r.subjects.len(), 2);
    // Keys are keyed hashes: a different key gives different subjects.
    let mut o = options();
    o.hash_key = [1; 32];
    let r2 = scan_with(o, None, csv.as_bytes());
    assert_ne!(r.subjects, r2.subjects);
}

#[test]
fn fragments_are_percent_decoded() {
    let c = Arc::new(Classifier::new(options()).unwrap());
    let mut s = c.scanner(ctx(None, None));
    s.feed_fragment(b"/api/user?phone=%2B86+138+1234+5678&mail=li%40example.cn");
    let r = s.finish();
    assert_eq!(count(&r, "cn_mobile"), 1);
    assert_eq!(count(&r, "email"), 1);
    assert_eq!(r.bytes, 0);
}

#[test]
fn too_large_stops() {
    let mut o = options();
    o.max_inspect_bytes = 100;
    let c = Arc::new(Classifier::new(o).unwrap());
    let mut s = c.scanner(ctx(None, None));
    s.feed(&[b' '; 60]);
    assert!(s.uninspectable().is_none());
    let v0 = s.version();
    s.feed(&[b' '; 60]);
    assert_eq!(
        s.uninspectable(),
        Some(&Uninspectable::TooLarge { limit: 100 })
    );
    assert!(s.version() > v0);
    s.feed(b"13812345678 ");
    let r = s.finish();
    assert_eq!(r.bytes, 100);
    assert!(r.findings.is_empty());
}

#[test]
fn snapshot_excludes_value_that_may_continue() {
    let c = Arc::new(Classifier::new(options()).unwrap());
    let mut s = c.scanner(ctx(None, None));
    s.feed(b"tel 1381234567");
    assert!(s.snapshot().findings.is_empty());
    let v = s.version();
    s.feed(b"8 ok");
    assert!(s.version() > v);
    assert_eq!(count(&s.snapshot(), "cn_mobile"), 1);
    // A run that continues is not a mobile.
    let mut s = c.scanner(ctx(None, None));
    s.feed(b"n 13812345678");
    assert!(s.snapshot().findings.is_empty());
    s.feed(b"9");
    assert!(s.finish().findings.is_empty());
}

/// A mixed payload exercising every decoder and category of part (a).
fn sample_payload() -> String {
    let a = id(110105, 1990, 3, 7, 123);
    let child = id(510104, 2016, 2, 29, 88);
    format!(
        "{{\"users\":[{{\"id\":\"{a}\",\"tel\":\"+86 138-1234-5678\",\"mail\":\"wang.li@example.com\"}},\
         {{\"id\":\"\\u0035\\u0031{}\",\"card\":\"6222 0000 0000 0000 000\",\"v\":\"4111111111111111\"}},\
         {{\"tel\":\"１３９１２３４５６７８\",\"n\":\"%31%35%30%31%32%33%34%35%36%37%38\"}}]}}",
        &child[2..]
    )
}

#[test]
fn every_split_finds_the_same() {
    let body = sample_payload();
    let whole = scan(&body);
    assert_eq!(count(&whole, "cn_resident_id"), 2, "{:?}", whole.findings);
    assert_eq!(count(&whole, "minor"), 1);
    assert_eq!(count(&whole, "cn_mobile"), 3);
    assert_eq!(count(&whole, "email"), 1);
    let c = Arc::new(Classifier::new(options()).unwrap());
    let b = body.as_bytes();
    for cut in 0..=b.len() {
        let mut s = c.scanner(ctx(None, None));
        s.feed(&b[..cut]);
        s.feed(&b[cut..]);
        assert_eq!(s.finish(), whole, "cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_chunking_is_invisible(cuts in prop::collection::vec(0usize..400, 0..12)) {
        let body = sample_payload();
        let b = body.as_bytes();
        let whole = scan(&body);
        let c = Arc::new(Classifier::new(options()).unwrap());
        let mut s = c.scanner(ctx(None, None));
        let mut cuts: Vec<usize> = cuts.into_iter().map(|x| x.min(b.len())).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for cut in cuts {
            s.feed(&b[last..cut]);
            last = cut;
        }
        s.feed(&b[last..]);
        prop_assert_eq!(s.finish(), whole);
    }

    #[test]
    fn scanner_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = scan_with(options(), None, &bytes);
        let _ = scan_with(options(), Some("application/x-www-form-urlencoded"), &bytes);
    }
}

#[test]
fn content_encodings() {
    use std::io::Write;
    let body = sample_payload();
    let whole = scan(&body);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 9, 22);
        w.write_all(body.as_bytes()).unwrap();
    }
    let c = Arc::new(Classifier::new(options()).unwrap());
    for (enc, data) in [("gzip", &gz), ("br", &br)] {
        for cut in 0..data.len() {
            let mut s = c.scanner(ctx(None, Some(enc)));
            s.feed(&data[..cut]);
            s.feed(&data[cut..]);
            let r = s.finish();
            assert_eq!(r.findings, whole.findings, "{enc} cut {cut}");
            assert_eq!(r.bytes, body.len() as u64);
        }
    }
    let r = c.scan_bytes(ctx(None, Some("compress")), b"x");
    assert_eq!(
        r.uninspectable.as_ref().map(|u| u.code()),
        Some("unsupported_encoding")
    );
    let r = c.scan_bytes(ctx(None, Some("gzip")), b"garbage!");
    assert_eq!(
        r.uninspectable.as_ref().map(|u| u.code()),
        Some("corrupt_encoding")
    );
    let zeros = vec![b'0'; 4 * 1024 * 1024];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).unwrap();
    let gz = gz.finish().unwrap();
    let r = c.scan_bytes(ctx(None, Some("gzip")), &gz);
    assert_eq!(r.uninspectable, Some(Uninspectable::DecompressionBomb));
    assert!(r.bytes <= 2 * 1024 * 1024);
}

fn hk(letters: &str, digits: &str) -> String {
    let c = super::validate::hk_id_check_char(letters.as_bytes(), digits.as_bytes()) as char;
    format!("{letters}{digits}({c})")
}

fn tw(letter: char, body: &str) -> String {
    for c in '0'..='9' {
        let v = format!("{letter}{body}{c}");
        if super::validate::tw_id(v.as_bytes()) {
            return v;
        }
    }
    unreachable!()
}

#[test]
fn letter_prefixed_identifiers() {
    // The keyword must label the value's own field: `x` does not inherit `护照`.
    let r = scan(r#"{"passportNo":"E12345678","护照":"EA1234567","x":"G12345678"}"#);
    assert_eq!(count(&r, "cn_passport"), 2);
    let r = scan("旅客护照号码：G12345678。");
    assert_eq!(count(&r, "cn_passport"), 1);
    // Without a keyword a passport-shaped code is not PI.
    let r = scan(r#"{"sku":"E12345678"}"#);
    assert_eq!(count(&r, "cn_passport"), 0);
    let r = scan("港澳通行证 C12345678，回乡证 H1234567801");
    assert_eq!(count(&r, "hk_macau_permit"), 2);
    let h = hk("A", "123456");
    let r = scan(&format!("HKID {h} and {}", hk("XY", "987654")));
    assert_eq!(count(&r, "hk_id"), 2);
    let bad = h.replace("(3)", "(4)");
    assert_eq!(count(&scan(&bad), "hk_id"), 0);
    let t = tw('A', "12345678");
    let r = scan(&format!("台湾身份证{t}。"));
    assert_eq!(count(&r, "tw_id"), 1);
    assert_eq!(r.subjects.len(), 1);
    let mut bad = t.clone().into_bytes();
    bad[9] = if bad[9] == b'0' { b'1' } else { b'0' };
    assert_eq!(count(&scan(std::str::from_utf8(&bad).unwrap()), "tw_id"), 0);
}

#[test]
fn keyword_led_categories() {
    let body = r#"{"收件人":"欧阳娜娜","name":"李雷","nickname":"今天天气好","收货地址":"广东省深圳市南山区科技园路1号","location":"116.397128,39.916527"}"#;
    let r = scan(body);
    assert_eq!(count(&r, "person_name"), 2, "{:?}", r.findings);
    assert_eq!(count(&r, "cn_address"), 1);
    assert_eq!(count(&r, "precise_location"), 1);
    let f = r
        .findings
        .iter()
        .find(|f| f.category.as_str() == "person_name")
        .unwrap();
    assert!(f.samples.contains(&"欧阳**".to_string()), "{:?}", f.samples);
    let r = scan(r#"{"lat":39.9165,"lng":116.3971}"#);
    assert_eq!(count(&r, "precise_location"), 1);
    let r = scan(r#"{"lat":39.9,"lng":116.3}"#);
    assert_eq!(count(&r, "precise_location"), 0);
    let r = scan(r#"{"location":"-122.419416,37.774929"}"#);
    assert_eq!(count(&r, "precise_location"), 0);
}

#[test]
fn health_needs_an_identifier_in_the_record() {
    let a = id(110105, 1990, 3, 7, 123);
    let mut o = options();
    o.id_number_is_sensitive = false;
    let body = format!(
        r#"[{{"诊断":"2型糖尿病 E11.9","idCard":"{a}"}},{{"诊断":"高血压"}},{{"tel":"13812345678","diagnosis":"asthma"}}]"#
    );
    let r = scan_with(o, None, body.as_bytes());
    assert_eq!(count(&r, "health"), 2, "{:?}", r.findings);
    assert_eq!(r.subjects.len(), 2);
    assert!(r.subjects.iter().all(|s| s.sensitive), "{:?}", r.subjects);
}

fn custom(
    regex: Option<&str>,
    keywords: &[&str],
    yes: &[&str],
    no: &[&str],
) -> CustomDetectorConfig {
    CustomDetectorConfig {
        category: "employee_id".into(),
        class: "sensitive".into(),
        regex: regex.map(str::to_owned),
        keywords: keywords.iter().map(|s| s.to_string()).collect(),
        must_match: yes.iter().map(|s| s.to_string()).collect(),
        must_not_match: no.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn custom_detectors() {
    let mut o = options();
    o.custom = vec![custom(
        Some(r"EMP-\d{6}"),
        &["工号", "employee"],
        &["工号: EMP-123456"],
        &["EMP-123456", "工号: EMP-12"],
    )];
    let c = Arc::new(Classifier::new(o.clone()).unwrap());
    assert!(
        c.verify_custom_examples().is_empty(),
        "{:?}",
        c.verify_custom_examples()
    );
    let r = c.scan_bytes(
        ctx(None, None),
        "{\"employeeNo\":\"EMP-654321\"}".as_bytes(),
    );
    let f = r
        .findings
        .iter()
        .find(|f| f.category.as_str() == "employee_id")
        .unwrap();
    assert_eq!(f.class, DataClass::Sensitive);
    assert_eq!(f.samples, vec!["EM******21".to_string()]);
    // Failing examples are reported by index, never by value.
    o.custom = vec![custom(
        Some(r"EMP-\d{6}"),
        &[],
        &["EMP-123456", "nope 314159"],
        &["EMP-999999"],
    )];
    let c = Arc::new(Classifier::new(o.clone()).unwrap());
    let msgs = c.verify_custom_examples();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("must_match example #1"));
    assert!(msgs[1].contains("must_not_match example #0"));
    assert!(!msgs
        .iter()
        .any(|m| m.contains("314159") || m.contains("999999")));
    // Regex-only detectors find matches split across chunks.
    let c = Arc::new(Classifier::new(o.clone()).unwrap());
    let body = format!("{}EMP-123456{}", "x".repeat(CAP_HINT), " y".repeat(300));
    let whole = c.scan_bytes(ctx(None, None), body.as_bytes());
    assert_eq!(count(&whole, "employee_id"), 1);
    for cut in [CAP_HINT, CAP_HINT + 3, CAP_HINT + 9, CAP_HINT + 10] {
        let mut s = c.scanner(ctx(None, None));
        s.feed(&body.as_bytes()[..cut]);
        s.feed(&body.as_bytes()[cut..]);
        assert_eq!(count(&s.finish(), "employee_id"), 1, "cut {cut}");
    }
    // Bad configurations are typed errors naming the detector and the fix.
    for bad in [
        custom(Some("("), &[], &[], &[]),
        custom(None, &[], &[], &[]),
        custom(Some("a*"), &[], &[], &[]),
    ] {
        let mut o = options();
        o.custom = vec![bad];
        let e = Classifier::new(o).unwrap_err();
        assert!(e.to_string().contains("employee_id"), "{e}");
    }
    let mut o = options();
    let mut b = custom(Some("x"), &[], &[], &[]);
    b.category = "cn_mobile".into();
    o.custom = vec![b];
    assert!(Classifier::new(o).is_err());
}

const CAP_HINT: usize = 40_000;

#[test]
fn keyword_split_across_chunks() {
    let body = r#"{"a":"xxxxxxxxxxxx","收件人":"张伟","passportNo":"E12345678"}"#;
    let whole = scan(body);
    assert_eq!(count(&whole, "person_name"), 1);
    assert_eq!(count(&whole, "cn_passport"), 1);
    let c = Arc::new(Classifier::new(options()).unwrap());
    let b = body.as_bytes();
    for cut in 0..=b.len() {
        let mut s = c.scanner(ctx(None, None));
        s.feed(&b[..cut]);
        s.feed(&b[cut..]);
        assert_eq!(s.finish(), whole, "cut {cut}");
    }
}

#[test]
fn multipart_form_is_one_record() {
    let a = id(110105, 1990, 3, 7, 123);
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"idNo\"\r\n\r\n{a}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n138 1234 5678\r\n--XyZ--\r\n"
    );
    let r = scan_with(
        options(),
        Some("multipart/form-data; boundary=XyZ"),
        body.as_bytes(),
    );
    assert_eq!(count(&r, "cn_resident_id"), 1);
    assert_eq!(count(&r, "cn_mobile"), 1);
    assert_eq!(r.subjects.len(), 1);
    // The same lines as CSV rows are two records.
    let r = scan_with(
        options(),
        Some("text/csv"),
        format!("{a}\n13812345678\n").as_bytes(),
    );
    assert_eq!(r.subjects.len(), 2);
}

#[test]
fn accumulator_indices_match_builtin_order() {
    let pairs = [
        (cat::RESIDENT_ID, Category::CN_RESIDENT_ID),
        (cat::MINOR, Category::MINOR),
        (cat::MOBILE, Category::CN_MOBILE),
        (cat::BANK_CARD, Category::BANK_CARD),
        (cat::PASSPORT, Category::CN_PASSPORT),
        (cat::PERMIT, Category::HK_MACAU_PERMIT),
        (cat::HK_ID, Category::HK_ID),
        (cat::TW_ID, Category::TW_ID),
        (cat::EMAIL, Category::EMAIL),
        (cat::PERSON_NAME, Category::PERSON_NAME),
        (cat::ADDRESS, Category::CN_ADDRESS),
        (cat::LOCATION, Category::PRECISE_LOCATION),
        (cat::HEALTH, Category::HEALTH),
    ];
    for (i, name) in pairs {
        assert_eq!(Category::BUILTIN[i], name);
    }
    assert_eq!(cat::CUSTOM_BASE, Category::BUILTIN.len());
}
