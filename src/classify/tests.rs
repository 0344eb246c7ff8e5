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
        // The last chunk handed to the final pass (the whole-body path of the proxy).
        let mut s = c.scanner(ctx(None, None));
        s.feed(&b[..cut]);
        assert_eq!(s.finish_with(&b[cut..]), whole, "last chunk from {cut}");
    }
}

#[test]
fn a_last_chunk_left_to_the_final_pass_finds_the_same_as_feeding_it() {
    // Bodies around and beyond the 32 KiB window, so the last chunk also arrives in parts
    // that do not fit, and hard negatives that must stay negative.
    let c = Arc::new(Classifier::new(options()).unwrap());
    let sample = sample_payload();
    let bodies = [
        String::new(),
        sample.clone(),
        sample.repeat(40),
        format!(
            "{}{}",
            " ".repeat(32 * 1024 - 9),
            "13812345678 li@example.cn"
        ),
        "order 20240101123456789 ts 1700000000123 uscc 91350100M000100Y43 id 110101199003071235"
            .to_string(),
    ];
    for body in &bodies {
        let b = body.as_bytes();
        let mut fed = c.scanner(ctx(None, None));
        fed.feed(b);
        let fed = fed.finish();
        assert_eq!(
            c.scanner(ctx(None, None)).finish_with(b),
            fed,
            "{} bytes",
            b.len()
        );
        for ct in [
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data"),
        ] {
            let mut fed = c.scanner(ctx(ct, None));
            fed.feed(b);
            assert_eq!(c.scanner(ctx(ct, None)).finish_with(b), fed.finish());
        }
    }
    assert!(
        count(
            &c.scanner(ctx(None, None)).finish_with(bodies[1].as_bytes()),
            "cn_mobile"
        ) > 0
    );
    assert!(c
        .scanner(ctx(None, None))
        .finish_with(bodies[4].as_bytes())
        .findings
        .is_empty());
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
        prop_assert_eq!(s.finish_with(&b[last..]), whole);
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

// ---------------------------------------------------------------- base64 field values

/// Reference encoder (standard or URL-safe alphabet, with or without padding).
fn b64(data: &[u8], url: bool, pad: bool) -> String {
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

/// Deterministic pseudo-random bytes (xorshift), for binary hard negatives.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn base64_values_are_decoded_and_scanned() {
    let a = id(110105, 1990, 3, 7, 123);
    let rec = format!(r#"{{"idno":"{a}","tel":"13812345678","card":"6222020200112233445"}}"#);
    let want_card = super::validate::bank_card(b"6222020200112233445");
    for (url, pad) in [(false, true), (false, false), (true, false), (true, true)] {
        let v = b64(rec.as_bytes(), url, pad);
        let r = scan(&format!(r#"{{"user":"u1","payload":"{v}"}}"#));
        assert_eq!(count(&r, "cn_resident_id"), 1, "url {url} pad {pad}");
        assert_eq!(count(&r, "cn_mobile"), 1, "url {url} pad {pad}");
        assert_eq!(count(&r, "bank_card"), u64::from(want_card));
        assert_eq!(r.subjects.len(), 1, "one person in one record");
        assert!(!format!("{r:?}").contains(&a), "raw ID leaked");
    }
    // A value that is only an identifier, in a form (`=`/`&` delimited, `+` percent-encoded),
    // in text after `:` and at the very start and end of the payload.
    let v = b64(format!("id {a} ok").as_bytes(), false, true);
    let pct = v
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let r = scan_with(
        options(),
        Some("application/x-www-form-urlencoded"),
        format!("x=1&blob={pct}&y=2").as_bytes(),
    );
    assert_eq!(count(&r, "cn_resident_id"), 1);
    assert_eq!(count(&scan(&format!("token: {v}\n")), "cn_resident_id"), 1);
    assert_eq!(count(&scan(&v), "cn_resident_id"), 1);
    // JSON-escaped `/` in the value is normalized before the search.
    let esc = b64(format!("??>{a}>").as_bytes(), false, true).replace('/', "\\/");
    assert_eq!(
        count(&scan(&format!(r#"{{"p":"{esc}"}}"#)), "cn_resident_id"),
        1
    );
    // Fragments (URL query, header values) too.
    let c = Arc::new(Classifier::new(options()).unwrap());
    let mut s = c.scanner(ctx(None, None));
    s.feed_fragment(format!("/api?d={}", b64(a.as_bytes(), true, false)).as_bytes());
    assert_eq!(count(&s.finish(), "cn_resident_id"), 1);
}

#[test]
fn base64_hard_negatives() {
    let a = id(110105, 1990, 3, 7, 123);
    let mut bad = a.clone().into_bytes();
    bad[17] = if bad[17] == b'1' { b'2' } else { b'1' };
    let bad = String::from_utf8(bad).unwrap();
    let random = b64(&noise(7, 48), false, true);
    let negatives = [
        // Hex digests and UUIDs: hex-only runs are not decoded.
        "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
        "3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f".to_owned(),
        // Base64 digests, keys and random tokens decode to binary.
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned(),
        random.clone(),
        b64(&noise(11, 300), true, false),
        // A JWT: dot-separated segments are not values on their own.
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            b64(format!(r#"{{"sub":"{a}"}}"#).as_bytes(), true, false)
        ),
        // A record whose ID has a wrong check digit, and long digit runs.
        b64(format!(r#"{{"idno":"{bad}"}}"#).as_bytes(), false, true),
        "62220202001122334456222020200112".to_owned(),
        // Identifiers and words made of the alphabet.
        "very_long_snake_case_identifier_name".to_owned(),
        "/static/js/app/vendor/bundle".to_owned(),
    ];
    for v in &negatives {
        let r = scan(&format!(r#"{{"v":"{v}","w":"{v}"}}"#));
        assert!(r.findings.is_empty(), "{v}: {:?}", r.findings);
    }
    // Not delimited like a value: part of a longer token.
    let v = b64(format!("{{\"idno\":\"{a}\"}}").as_bytes(), false, false);
    assert!(scan(&format!("x.{v}.y")).findings.is_empty());
    assert!(scan(&format!("\"{v}@example\"")).findings.is_empty());
}

/// A record in base64 inside a JSON batch: every split finds the same, and the decoded
/// identifiers join the record the value sits in.
fn base64_payload() -> String {
    let a = id(110105, 1990, 3, 7, 123);
    let b = id(440305, 1985, 11, 2, 77);
    let inner = format!(r#"{{"idno":"{b}","tel":"139 1234 5678","mail":"li@example.cn"}}"#);
    format!(
        r#"[{{"idno":"{a}","blob":"{}"}},{{"n":1,"data":"{}","trace":"3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f"}}]"#,
        b64(b"not personal, just a note", false, true),
        b64(inner.as_bytes(), true, false)
    )
}

#[test]
fn base64_every_split_finds_the_same() {
    let body = base64_payload();
    let whole = scan(&body);
    assert_eq!(count(&whole, "cn_resident_id"), 2, "{:?}", whole.findings);
    assert_eq!(count(&whole, "cn_mobile"), 1);
    assert_eq!(count(&whole, "email"), 1);
    assert_eq!(whole.subjects.len(), 2);
    let c = Arc::new(Classifier::new(options()).unwrap());
    let b = body.as_bytes();
    for cut in 0..=b.len() {
        let mut s = c.scanner(ctx(None, None));
        s.feed(&b[..cut]);
        s.feed(&b[cut..]);
        assert_eq!(s.finish(), whole, "cut at {cut}");
    }
    let mut s = c.scanner(ctx(None, None));
    for byte in b.chunks(1) {
        s.feed(byte);
    }
    assert_eq!(s.finish(), whole, "byte at a time");
}

/// Values longer than the hold limit and the window: decided on their prefix, decoded in
/// pieces, identifiers at any depth found once whatever the chunking; binary ones skipped.
#[test]
fn base64_long_values_stream() {
    let a = id(110105, 1990, 3, 7, 123);
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 60_000 {
        text.push_str(&format!(
            "line {i}: nothing to see here, order {}.\n",
            1000 + i
        ));
        if i == 50 || i == 900 || i == 1300 {
            text.push_str(&format!("申请人身份证号码为{a}，请核对。\n"));
        }
        i += 1;
    }
    let body = format!(
        r#"{{"doc":"{}","after":"13812345678"}}"#,
        b64(text.as_bytes(), false, true)
    );
    let whole = scan(&body);
    assert_eq!(count(&whole, "cn_resident_id"), 3, "{:?}", whole.findings);
    assert_eq!(count(&whole, "cn_mobile"), 1);
    let c = Arc::new(Classifier::new(options()).unwrap());
    let b = body.as_bytes();
    for chunk in [1, 7, 1000, 4093, 16 * 1024] {
        let mut s = c.scanner(ctx(None, None));
        for part in b.chunks(chunk) {
            s.feed(part);
        }
        assert_eq!(s.finish(), whole, "chunks of {chunk}");
    }
    for cut in (0..b.len()).step_by(997) {
        let mut s = c.scanner(ctx(None, None));
        s.feed(&b[..cut]);
        s.feed(&b[cut..]);
        assert_eq!(s.finish(), whole, "cut at {cut}");
    }
    // A long binary value with an identifier's base64 spliced in after the prefix is
    // skipped whole; the mobile after it is still found.
    let mut bin = noise(3, 9000);
    bin.extend_from_slice(format!(" {a} ").as_bytes());
    let body = format!(
        r#"{{"file":"{}","tel":"13812345678"}}"#,
        b64(&bin, false, true)
    );
    let r = scan(&body);
    assert_eq!(count(&r, "cn_resident_id"), 0);
    assert_eq!(count(&r, "cn_mobile"), 1);
}

#[test]
fn base64_run_search_matches_reference() {
    use super::b64::{is_alpha, next_run, next_run_baseline};
    // Byte-by-byte reference: the first maximal run (clipped at `from`) that is at least 16
    // long with a non-hex character, or that touches the limit.
    fn reference(buf: &[u8], from: usize, lim: usize) -> Option<(usize, usize)> {
        let mut i = from;
        while i < lim {
            if !is_alpha(buf[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < lim && is_alpha(buf[i]) {
                i += 1;
            }
            let strong = buf[s..i]
                .iter()
                .any(|&b| !(b.is_ascii_hexdigit() || b == b'-'));
            if i == lim || (i - s >= 16 && strong) {
                return Some((s, i));
            }
        }
        None
    }
    let alphabet = [
        b'A', b'z', b'0', b'+', b'_', b'f', b'-', b'"', b'.', b' ', 0xC3,
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..3000 {
        let n = (state % 300) as usize;
        // Mostly alphabet so long runs occur; some rounds hex-only.
        let hex_only = round % 5 == 0;
        let buf: Vec<u8> = (0..n)
            .map(|_| {
                let k = (xorshift(&mut state) % 40) as usize;
                if k < 36 {
                    if hex_only {
                        [b'0', b'f', b'-'][k % 3]
                    } else {
                        alphabet[k % 7]
                    }
                } else {
                    alphabet[7 + k - 36]
                }
            })
            .collect();
        for from in [0, 1, 5, 31, 33, 63, 65] {
            if from > n {
                continue;
            }
            for lim in [n, n.saturating_sub(3).max(from)] {
                let want = reference(&buf, from, lim);
                assert_eq!(
                    next_run(&buf, from, lim),
                    want,
                    "{buf:?} from {from} lim {lim}"
                );
                assert_eq!(next_run_baseline(&buf, from, lim), want, "baseline {buf:?}");
            }
        }
    }
}

/// The fuzz target's contract for a form body: cut into chunks of each size in `steps`, the
/// report is the one of the whole body.
fn assert_form_chunking_invariant(body: &[u8], steps: std::ops::Range<usize>) {
    let c = Arc::new(Classifier::new(options()).unwrap());
    let form = Some("application/x-www-form-urlencoded");
    let whole = c.scan_bytes(ctx(form, None), body);
    for step in steps {
        let mut s = c.scanner(ctx(form, None));
        for chunk in body.chunks(step) {
            s.feed(chunk);
        }
        assert_eq!(s.finish(), whole, "chunks of {step}");
    }
}

/// Found by `cargo fuzz run scanner`: fed one byte at a time, a form body attributed a health
/// keyword to a different individual than when scanned whole.
#[test]
fn fuzz_regression_health_attribution_does_not_depend_on_chunking() {
    let body: &[u8] = &[
        68, 64, 53, 46, 65, 68, 64, 1, 68, 107, 107, 107, 255, 255, 255, 255, 107, 107, 107, 107,
        64, 53, 198, 188, 255, 255, 71, 75, 73, 67, 68, 255, 23, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 141, 109, 255, 255, 255, 255, 255, 255, 255, 71, 75, 73, 67, 68,
        255, 23, 255, 255, 255, 255, 255, 255, 75, 67, 67, 67, 198, 188, 255, 255, 71, 75, 73, 67,
        68, 255, 46, 65, 1, 68, 64, 52, 46, 65, 68, 64, 53, 13, 120, 68, 64, 119, 42, 42, 42, 64,
        49, 46, 104, 101, 53, 46, 65, 68, 64, 1, 68, 64, 53, 46, 65, 68, 64, 53, 46, 48, 68,
    ];
    assert_form_chunking_invariant(body, 1..body.len());
}

/// Found by `cargo fuzz run scanner` (second run): a health keyword next to base64-looking
/// runs was counted twice or three times depending on the chunking.
#[test]
fn fuzz_regression_health_count_does_not_depend_on_chunking() {
    let body: &[u8] = &[
        68, 64, 53, 46, 65, 68, 64, 1, 68, 107, 107, 107, 255, 61, 0, 0, 0, 107, 107, 4, 0, 0, 0,
        0, 0, 0, 0, 75, 73, 67, 68, 115, 100, 100, 65, 52, 52, 52, 52, 52, 52, 52, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 43, 115, 100, 100, 65, 52, 52, 52, 52, 52, 52, 52, 101, 73, 107, 72,
        99, 99, 122, 43, 115, 100, 100, 65, 52, 52, 52, 52, 52, 52, 52, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 43, 115, 100, 100, 65, 52, 52, 255, 53, 42, 42, 42, 64, 53, 46, 97, 52, 52, 100,
        255, 255, 255, 255, 52, 52, 52, 101, 141, 109, 255, 191, 255, 255, 255, 255, 255, 71, 75,
        73, 67, 68, 255, 23, 255, 73, 107, 72, 99, 255, 255, 255, 255, 255, 75, 67, 67, 67, 198,
        188, 255, 255, 99, 99, 71, 75, 73, 67, 68, 255, 43, 46, 65, 1, 68, 64,
    ];
    assert_form_chunking_invariant(body, 1..body.len());
}

/// Found by `cargo fuzz run scanner` (third run): a bracketed HK ID after an e-mail-like run
/// was found in one-byte chunks but not in the whole body.
#[test]
fn fuzz_regression_hk_id_does_not_depend_on_chunking() {
    let body: &[u8] = &[
        69, 104, 46, 64, 1, 69, 104, 46, 64, 49, 52, 45, 3, 8, 98, 208, 45, 3, 8, 98, 208, 99, 137,
        75, 68, 52, 49, 52, 52, 52, 52, 40, 49, 41, 52, 49, 46, 104, 49, 49, 49, 48, 46, 64, 49,
        49, 44, 46, 49, 49, 107, 49, 49, 46, 104, 49, 43, 64, 57, 57, 48, 99, 137, 75, 68, 55, 49,
        52, 52, 52, 52, 40, 49, 41, 52, 0, 0, 46, 64, 49, 49, 46, 46, 107, 49, 45, 3, 8, 98, 208,
        99, 137, 75, 68, 52, 49, 52, 52, 52, 52, 40, 49, 41, 52, 49, 41, 52, 49, 46, 104, 49, 49,
        49, 48, 46, 64, 49, 49, 46, 46, 49, 49, 107, 49, 49, 46, 104, 49, 43, 64, 57, 57, 48, 99,
        137, 75, 68, 52, 49, 49, 49, 104, 46, 64, 56, 42, 42, 42, 64, 57, 56, 46, 100, 100, 49, 46,
        104, 69, 14, 0, 0, 0, 0, 180, 73, 73, 73, 54, 49, 49, 98, 0, 0, 0, 46,
    ];
    assert_form_chunking_invariant(body, 1..body.len());
}

/// Found by `cargo fuzz run scanner` (fourth run, after 2M inputs): health keywords inside
/// what becomes an e-mail's local part (`…KICDKICDxD@5.AD`) were applied before the e-mail's
/// hit when the candidate pass stopped short of the `@` (behind a pending keyword, or at the
/// window end), and after it when the body was scanned whole.
#[test]
fn fuzz_regression_health_count_in_long_form_does_not_depend_on_chunking() {
    let body: &[u8] = &[
        0, 0, 0, 115, 109, 210, 251, 251, 37, 8, 255, 71, 75, 73, 67, 68, 41, 37, 8, 255, 255, 255,
        255, 255, 255, 251, 10, 56, 64, 57, 57, 0, 0, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68,
        41, 43, 57, 0, 4, 75, 73, 67, 68, 41, 43, 42, 43, 71, 75, 73, 67, 68, 75, 73, 67, 68, 41,
        43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 0, 0, 0, 13, 75, 73, 67, 68, 41, 43, 42, 75,
        73, 68, 41, 43, 46, 100, 41, 100, 0, 255, 100, 41, 100, 50, 0, 255, 255, 43, 71, 75, 73,
        71, 68, 41, 43, 42, 75, 73, 68, 11, 100, 239, 41, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75,
        73, 68, 11, 100, 239, 41, 43, 57, 57, 46, 100, 255, 255, 0, 0, 0, 164, 73, 255, 0, 0, 0, 0,
        254, 0, 0, 0, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 57, 46, 100, 255,
        255, 0, 0, 0, 164, 255, 0, 0, 0, 0, 254, 0, 0, 0, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73,
        68, 41, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 100, 41, 100, 0, 255,
        255, 43, 71, 75, 73, 67, 68, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57,
        46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 46, 100, 41, 100, 0,
        255, 100, 41, 100, 0, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 11, 100,
        239, 41, 43, 57, 192, 46, 100, 255, 255, 0, 0, 0, 164, 73, 255, 0, 0, 0, 0, 254, 0, 0, 0,
        71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 172, 239, 172, 239, 139, 239, 43, 57, 68,
        75, 73, 67, 68, 41, 43, 42, 172, 239, 172, 239, 139, 239, 43, 57, 0, 4, 75, 73, 67, 68, 41,
        43, 42, 75, 73, 68, 41, 43, 48, 0, 4, 57, 46, 100, 41, 100, 0, 255, 255, 43, 71, 75, 71,
        75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 75, 73, 67, 68, 41, 43, 42, 43,
        75, 73, 68, 41, 43, 49, 0, 4, 57, 46, 100, 41, 100, 0, 255, 255, 43, 69, 75, 73, 67, 68,
        75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73,
        67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 46, 100, 41, 100, 0, 255, 100, 41, 100, 0, 255,
        255, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 11, 100, 239, 41, 43, 57, 57, 46, 100,
        255, 255, 0, 0, 0, 164, 73, 255, 0, 0, 0, 0, 254, 0, 0, 0, 71, 75, 73, 67, 68, 41, 43, 42,
        75, 73, 68, 41, 172, 239, 172, 239, 139, 239, 43, 57, 68, 75, 73, 67, 68, 41, 43, 42, 75,
        73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 73, 67, 68, 75,
        73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 73, 67, 68, 57, 68, 75, 73, 67,
        68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41,
        43, 73, 67, 68, 75, 73, 1, 25, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 73, 67, 68,
        41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43,
        42, 75, 73, 68, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255,
        43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 46, 100, 41, 100, 0, 255, 100, 41,
        100, 0, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 11, 100, 239, 41, 43, 57,
        192, 46, 100, 255, 255, 0, 0, 0, 164, 73, 255, 0, 0, 0, 0, 254, 0, 0, 0, 71, 75, 73, 67,
        68, 41, 43, 42, 75, 73, 68, 41, 172, 239, 172, 239, 139, 239, 43, 57, 68, 75, 73, 67, 68,
        41, 43, 42, 172, 239, 172, 239, 139, 239, 43, 57, 0, 4, 75, 73, 67, 68, 41, 43, 42, 75, 73,
        68, 41, 43, 48, 0, 4, 57, 46, 100, 41, 100, 0, 255, 255, 43, 71, 75, 71, 75, 73, 67, 68,
        41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 75, 73, 67, 68, 41, 43, 42, 43, 75, 73, 68, 41,
        43, 57, 0, 4, 57, 46, 100, 41, 100, 0, 255, 255, 43, 69, 75, 73, 67, 68, 75, 73, 67, 68,
        41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43,
        42, 75, 73, 68, 41, 43, 46, 100, 41, 100, 0, 255, 100, 41, 100, 0, 255, 255, 43, 71, 75,
        73, 67, 68, 41, 43, 42, 75, 73, 68, 11, 100, 239, 41, 43, 57, 57, 46, 100, 255, 255, 0, 0,
        0, 164, 73, 255, 0, 0, 0, 0, 254, 0, 0, 0, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41,
        172, 239, 172, 239, 139, 239, 43, 57, 68, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43,
        57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 73, 67, 68, 75, 73, 67, 68, 41,
        43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 73, 67, 68, 57, 68, 75, 73, 67, 68, 41, 43, 42,
        75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 71, 75, 73,
        67, 68, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 247, 4, 41, 45, 42, 75, 73, 68,
        41, 43, 57, 0, 4, 57, 46, 255, 255, 43, 71, 75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43,
        46, 100, 41, 100, 0, 255, 100, 41, 100, 0, 46, 255, 255, 43, 71, 75, 73, 67, 0, 4, 75, 73,
        67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 100, 41, 100, 0, 255, 255, 43,
        41, 43, 46, 100, 41, 100, 0, 255, 100, 41, 100, 0, 46, 255, 255, 43, 71, 75, 73, 67, 0, 4,
        75, 73, 67, 68, 41, 43, 42, 75, 73, 68, 41, 43, 57, 0, 4, 57, 46, 100, 41, 100, 0, 255,
        255, 43, 71, 75, 73, 67, 68, 75, 73, 67, 68, 120, 68, 64, 53, 46, 65, 68, 64, 1, 68, 64,
        53, 46, 65, 68, 64, 53, 46, 48, 68, 0, 13, 120, 68, 64, 53, 46, 65, 68, 64, 1, 68, 64, 53,
        46, 65, 68, 64, 64, 53, 46, 48, 68, 32, 13, 120, 68, 64, 53, 46, 65, 68, 64, 1, 68, 64, 53,
        46, 65, 68, 64, 53, 64, 1, 68, 64, 53, 46, 65, 68, 64, 64, 53, 46, 48, 68, 32, 13, 120, 68,
        64, 53, 46, 65, 48, 68, 0, 13, 120, 68, 64, 53, 46, 65, 68, 64, 1, 68, 64, 53, 46, 65, 68,
        64, 64, 53, 46, 48, 68, 32, 13, 120, 68, 64, 53, 46, 65, 68, 64, 1, 68, 64, 53, 46, 65, 68,
        64, 53, 64, 1, 68, 64, 53, 46, 65, 68, 64, 64, 53, 46, 75, 73, 67, 68, 41, 43,
    ];
    assert_form_chunking_invariant(body, 1..body.len());
}

/// One step of Marsaglia's xorshift64: a fixed, dependency-free byte source for the
/// reference-comparison tests here and in `scan`.
pub(super) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Window buffers are reused across scans on a thread (`scan::spare`): a scan dropped with a
/// value cut at its end (a client that went away mid-body) leaves nothing for the next scan to
/// join its own bytes to.
#[test]
fn a_dropped_scan_leaves_nothing_for_the_next_one() {
    let c = Arc::new(Classifier::new(options()).unwrap());
    for _ in 0..20 {
        let mut first = c.scanner(ctx(Some("application/json"), None));
        first.feed(br#"{"note":"call 138123"#);
        drop(first);
        let mut second = c.scanner(ctx(Some("application/json"), None));
        second.feed_fragment(b"/orders?ref=138123");
        second.feed(br#"45678 now"}"#);
        let report = second.finish();
        assert!(
            report.findings.is_empty(),
            "the next scan sees only its own bytes: {:?}",
            report.findings
        );
    }
    // And the same value whole in one scan is found, so the check above can fail.
    let mut whole = c.scanner(ctx(Some("application/json"), None));
    whole.feed(br#"{"note":"call 13812345678 now"}"#);
    assert_eq!(whole.finish().findings.len(), 1);
}

/// Media types are case-insensitive: an upper-case form or multipart type selects the same
/// decoding and record rules as the lower-case one.
#[test]
fn content_type_is_matched_without_regard_to_case() {
    let form = b"tel=138+1234+5678&x=%31%33%39%31%32%33%34%35%36%37%38";
    for ct in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
    ] {
        assert_eq!(
            count(&scan_with(options(), Some(ct), form), "cn_mobile"),
            2,
            "{ct}"
        );
    }
    // Not a form: the percent-encoded number stays encoded, so the rules above made a
    // difference.
    assert!(count(&scan_with(options(), Some("text/plain"), form), "cn_mobile") < 2);
    let a = id(110105, 1990, 3, 7, 123);
    let parts = format!("{a}\r\n13812345678\r\n");
    for (ct, subjects) in [
        ("multipart/form-data; boundary=XyZ", 1),
        ("Multipart/Form-Data; boundary=XyZ", 1),
        ("text/csv", 2),
    ] {
        let r = scan_with(options(), Some(ct), parts.as_bytes());
        assert_eq!(r.subjects.len(), subjects, "{ct}");
    }
}
