//! Validators for identifier candidates: check digits, date and prefix tables. Pure functions
//! over already-normalized ASCII, so they are cheap to call on every candidate and easy to
//! property-test (valid numbers pass, every single-digit mutation fails).

use chrono::{Datelike, NaiveDate};

/// Province-level prefixes of GB/T 2260 area codes (first two digits of a resident ID):
/// 11-15 North, 21-23 North-East, 31-37 East, 41-46 Central-South, 50-54 South-West,
/// 61-65 North-West, 71 Taiwan, 81 Hong Kong, 82 Macao, 83 (residence permits for
/// Taiwan residents, 2018).
pub fn is_province(p: u8) -> bool {
    matches!(p, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82 | 83)
}

/// ISO 7064 MOD 11-2 weights of GB 11643-1999 for digits 1-17.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Check character for the first 17 digits of a resident ID.
pub fn resident_id_check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(ID_WEIGHTS.iter())
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    ID_CHECK[(sum % 11) as usize]
}

/// Validates an 18-character resident ID (`x` accepted for `X`). Returns the birth date.
///
/// GB 11643-1999: province prefix, a real calendar birth date (not in the future, not before
/// 1900 — no living person holds such a card), sequence, MOD 11-2 check character.
pub fn resident_id(id: &[u8], today: NaiveDate) -> Option<NaiveDate> {
    if id.len() != 18 || !id[..17].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let last = id[17].to_ascii_uppercase();
    if !(last.is_ascii_digit() || last == b'X') {
        return None;
    }
    if !is_province(num(&id[0..2]) as u8) {
        return None;
    }
    let year = num(&id[6..10]) as i32;
    let month = num(&id[10..12]);
    let day = num(&id[12..14]);
    if year < 1900 {
        return None;
    }
    let birth = NaiveDate::from_ymd_opt(year, month, day)?;
    if birth > today {
        return None;
    }
    if resident_id_check_char(&id[..17]) != last {
        return None;
    }
    Some(birth)
}

/// Province and birth date of a resident ID are plausible (check character not verified).
pub fn resident_id_shape(id: &[u8], today: NaiveDate) -> bool {
    if id.len() != 18 || !id[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let year = num(&id[6..10]) as i32;
    is_province(num(&id[0..2]) as u8)
        && year >= 1900
        && NaiveDate::from_ymd_opt(year, num(&id[10..12]), num(&id[12..14]))
            .is_some_and(|d| d <= today)
}

/// Age in whole years at `today` (PIPL Art. 28/31: under 14 is a minor).
pub fn age_at(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0'))
}

/// Mainland mobile number (11 digits) against the MIIT prefix table: 13x, 14[5-9],
/// 15[0-35-9], 16[2567], 17[0-8], 18x, 19[0-35-9].
pub fn cn_mobile(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] != b'1' || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    match d[1] {
        b'3' | b'8' => true,
        b'4' => matches!(d[2], b'5'..=b'9'),
        b'5' => d[2] != b'4',
        b'6' => matches!(d[2], b'2' | b'5' | b'6' | b'7'),
        b'7' => d[2] != b'9',
        b'9' => d[2] != b'4',
        _ => false,
    }
}

/// Doubled digit with its digits summed (`0 2 4 6 8 1 3 5 7 9`), indexed by the raw byte
/// (`(b - '0') mod 10` for non-digits, as before): no subtraction, remainder or bounds check
/// per digit.
const LUHN_DOUBLED: [u8; 256] = {
    const DOUBLED: [u8; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = DOUBLED[(b as u8).wrapping_sub(b'0') as usize % 10];
        b += 1;
    }
    t
};

/// Luhn (ISO/IEC 7812-1) check over ASCII digits.
pub fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut pairs = d.rchunks_exact(2);
    for p in &mut pairs {
        sum += u32::from(p[1].wrapping_sub(b'0')) + u32::from(LUHN_DOUBLED[usize::from(p[0])]);
    }
    if let [c] = pairs.remainder() {
        sum += u32::from(c.wrapping_sub(b'0'));
    }
    sum % 10 == 0
}

/// Issuer prefix of a payment card: UnionPay 62 (and 81 for the 2016+ UnionPay range),
/// Visa 4, Mastercard 51-55 / 2221-2720, JCB 3528-3589, and domestic debit BINs that predate
/// the 62 range (ICBC 9558, ABC 95599, BOC 4563/6013 are covered above, CCB 4367 …).
pub fn card_issuer(d: &[u8]) -> bool {
    if d.len() < 6 {
        return false;
    }
    let p2 = num(&d[..2]);
    let p4 = num(&d[..4]);
    let p6 = num(&d[..6]);
    d[0] == b'4'
        || p2 == 62
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || (3528..=3589).contains(&p4)
        || p4 == 9558
        || p4 == 9559
        || (955_950..=955_999).contains(&p6)
        || matches!(
            p6,
            603_367 | 603_445 | 603_506 | 603_601 | 690_755 | 601_428
        )
}

/// Payment card: 16-19 digits, issuer prefix, a length the scheme issues (Visa 16/19,
/// Mastercard 16; UnionPay and domestic BINs 16-19), and Luhn.
pub fn bank_card(d: &[u8]) -> bool {
    if !(16..=19).contains(&d.len()) || !d.iter().all(u8::is_ascii_digit) || !card_issuer(d) {
        return false;
    }
    let p2 = num(&d[..2]);
    let p4 = num(&d[..4]);
    let length_ok = if d[0] == b'4' {
        d.len() == 16 || d.len() == 19
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        d.len() == 16
    } else {
        true
    };
    length_ok && luhn(d)
}

/// GB 32100-2015 unified social credit code (organisation, not PI): 18 chars over
/// `0-9A-HJ-NP-RTUW-Y`, MOD 31 check.
pub fn social_credit_code(c: &[u8]) -> bool {
    const CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const W: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    if c.len() != 18 {
        return false;
    }
    // Character → value table (0xFF: not in the alphabet), built at compile time.
    const VAL: [u8; 256] = {
        let mut t = [0xFFu8; 256];
        let mut i = 0;
        while i < CHARS.len() {
            t[CHARS[i] as usize] = i as u8;
            t[CHARS[i].to_ascii_lowercase() as usize] = i as u8;
            i += 1;
        }
        t
    };
    let val = |b: u8| match VAL[b as usize] {
        0xFF => None,
        v => Some(u32::from(v)),
    };
    let mut sum = 0;
    for (i, &b) in c[..17].iter().enumerate() {
        match val(b) {
            Some(v) => sum += v * W[i],
            None => return false,
        }
    }
    let check = (31 - sum % 31) % 31;
    val(c[17]) == Some(check)
}

/// Hong Kong identity card: 1-2 letters, 6 digits, check character (`A` = 10). A single
/// letter prefix is padded with a space (value 36), so weights are always 9..2 over 8 symbols.
pub fn hk_id(letters: &[u8], digits: &[u8], check: u8) -> bool {
    if !(1..=2).contains(&letters.len()) || digits.len() != 6 {
        return false;
    }
    if !letters.iter().all(u8::is_ascii_uppercase) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut vals = [0u32; 8];
    if letters.len() == 1 {
        vals[0] = 36;
        vals[1] = u32::from(letters[0] - b'A') + 10;
    } else {
        vals[0] = u32::from(letters[0] - b'A') + 10;
        vals[1] = u32::from(letters[1] - b'A') + 10;
    }
    for (i, &c) in digits.iter().enumerate() {
        vals[2 + i] = u32::from(c - b'0');
    }
    let sum: u32 = vals
        .iter()
        .enumerate()
        .map(|(i, v)| v * (9 - i as u32))
        .sum();
    let expect = (11 - sum % 11) % 11;
    let got = match check {
        b'0'..=b'9' => u32::from(check - b'0'),
        b'A' | b'a' => 10,
        _ => return false,
    };
    got == expect
}

/// HK ID check character for tests and the corpus generator.
pub fn hk_id_check_char(letters: &[u8], digits: &[u8]) -> u8 {
    for c in b"0123456789A" {
        if hk_id(letters, digits, *c) {
            return *c;
        }
    }
    b'?'
}

/// Taiwan national ID letter values (A=10 … Z=33; I, O, W, Z, etc. sit out of order because
/// they were added later).
const TW_LETTER: [u8; 26] = [
    10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30,
    31, 33,
];

/// Taiwan ID `[A-Z][12]\d{8}`: letter value split into two digits, weights 1 9 8 7 6 5 4 3 2 1 1,
/// sum ≡ 0 mod 10.
pub fn tw_id(id: &[u8]) -> bool {
    if id.len() != 10 || !id[0].is_ascii_uppercase() || !matches!(id[1], b'1' | b'2') {
        return false;
    }
    if !id[1..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let lv = u32::from(TW_LETTER[(id[0] - b'A') as usize]);
    let mut sum = lv / 10 + (lv % 10) * 9;
    const W: [u32; 9] = [8, 7, 6, 5, 4, 3, 2, 1, 1];
    for (i, &c) in id[1..].iter().enumerate() {
        sum += u32::from(c - b'0') * W[i];
    }
    sum % 10 == 0
}

/// Top-level domains accepted for e-mail addresses: generic ones seen in Chinese traffic plus
/// any two-letter country code that is not a common file extension (`image@2x.png` is not
/// an address, and neither is `a@b.js`).
pub fn email_tld(tld: &[u8]) -> bool {
    if !tld.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut low = [0u8; 16];
    if tld.len() > low.len() || tld.len() < 2 {
        return false;
    }
    for (i, c) in tld.iter().enumerate() {
        low[i] = c.to_ascii_lowercase();
    }
    let t = &low[..tld.len()];
    if t.len() == 2 {
        return !matches!(
            t,
            b"js" | b"py" | b"rs" | b"md" | b"sh" | b"gz" | b"pl" | b"rb"
        );
    }
    matches!(
        t,
        b"com"
            | b"net"
            | b"org"
            | b"edu"
            | b"gov"
            | b"mil"
            | b"int"
            | b"info"
            | b"biz"
            | b"name"
            | b"pro"
            | b"mobi"
            | b"asia"
            | b"xyz"
            | b"top"
            | b"site"
            | b"online"
            | b"shop"
            | b"tech"
            | b"club"
            | b"app"
            | b"dev"
            | b"cloud"
            | b"email"
            | b"store"
            | b"vip"
            | b"work"
            | b"ltd"
            | b"group"
            | b"company"
            | b"live"
            | b"life"
            | b"world"
            | b"today"
            | b"space"
            | b"website"
            | b"icu"
            | b"fun"
            | b"ink"
            | b"link"
            | b"red"
            | b"wang"
            | b"mail"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    pub(crate) fn make_id(area: u32, y: i32, m: u32, d: u32, seq: u32) -> Vec<u8> {
        let mut s = format!("{area:06}{y:04}{m:02}{d:02}{seq:03}").into_bytes();
        let c = resident_id_check_char(&s);
        s.push(c);
        s
    }

    #[test]
    fn known_resident_ids() {
        // The GB 11643-1999 example number.
        assert!(resident_id(b"11010519491231002X", today()).is_some());
        assert!(resident_id(b"11010519491231002x", today()).is_some());
        assert!(resident_id(b"110105194912310021", today()).is_none());
        // Valid check digit but impossible date / province.
        let bad_date = make_id(110105, 1990, 2, 30, 123);
        assert!(resident_id(&bad_date, today()).is_none());
        let bad_prov = make_id(990105, 1990, 2, 3, 123);
        assert!(resident_id(&bad_prov, today()).is_none());
        let future = make_id(110105, 2027, 1, 1, 123);
        assert!(resident_id(&future, today()).is_none());
    }

    #[test]
    fn ages() {
        let b = NaiveDate::from_ymd_opt(2012, 11, 25).unwrap();
        assert_eq!(age_at(b, today()), 13);
        let b = NaiveDate::from_ymd_opt(2012, 11, 24).unwrap();
        assert_eq!(age_at(b, today()), 14);
    }

    #[test]
    fn mobiles() {
        for ok in [
            "13812345678",
            "14512345678",
            "15012345678",
            "16212345678",
            "17012345678",
            "18912345678",
            "19912345678",
            "19212345678",
        ] {
            assert!(cn_mobile(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "10012345678",
            "11012345678",
            "12012345678",
            "14012345678",
            "15412345678",
            "16012345678",
            "17912345678",
            "19412345678",
            "1381234567",
        ] {
            assert!(!cn_mobile(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn cards() {
        assert!(bank_card(b"4111111111111111"));
        assert!(bank_card(b"5555555555554444"));
        assert!(bank_card(b"6222021234567890128") == luhn(b"6222021234567890128"));
        assert!(!bank_card(b"4111111111111112"));
        assert!(!bank_card(b"1234567890123452")); // Luhn-valid, no issuer
        assert!(luhn(b"1234567890123452"));
    }

    #[test]
    fn social_credit() {
        assert!(social_credit_code(b"91350100M000100Y43"));
        assert!(!social_credit_code(b"91350100M000100Y44"));
    }

    #[test]
    fn hk_and_tw() {
        // Published examples: A123456(3), AB987654(2) style.
        assert!(hk_id(b"A", b"123456", b'3'));
        assert!(!hk_id(b"A", b"123456", b'4'));
        assert!(tw_id(b"A123456789"));
        assert!(!tw_id(b"A123456788"));
    }

    #[test]
    fn tlds() {
        assert!(email_tld(b"com"));
        assert!(email_tld(b"cn"));
        assert!(!email_tld(b"png"));
        assert!(!email_tld(b"js"));
    }

    fn arb_id() -> impl Strategy<Value = Vec<u8>> {
        let provinces = vec![
            11u32, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
            50, 51, 52, 53, 54, 61, 62, 63, 64, 65,
        ];
        (
            prop::sample::select(provinces),
            0u32..10000,
            1900i32..2026,
            1u32..13,
            1u32..29,
            0u32..1000,
        )
            .prop_map(|(p, a, y, m, d, s)| make_id(p * 10000 + a, y, m, d, s))
    }

    proptest! {
        #[test]
        fn valid_ids_pass(id in arb_id()) {
            prop_assert!(resident_id(&id, today()).is_some());
        }

        #[test]
        fn single_digit_mutation_of_id_fails(id in arb_id(), pos in 0usize..18, delta in 1u8..10) {
            let mut m = id.clone();
            if pos == 17 {
                // Check character: any other value of 0-9/X.
                let cur = b"0123456789X".iter().position(|&c| c == m[17]).unwrap();
                m[17] = b"0123456789X"[(cur + delta as usize) % 11];
            } else {
                m[pos] = b'0' + (m[pos] - b'0' + delta) % 10;
            }
            prop_assert!(resident_id(&m, today()).is_none());
        }

        #[test]
        fn luhn_catches_single_digit_mutations(body in prop::collection::vec(0u8..10, 15),
                pos in 0usize..16, delta in 1u8..10) {
            let mut d: Vec<u8> = std::iter::once(b'4').chain(body.iter().map(|x| b'0' + x)).collect();
            d.truncate(15);
            for c in b'0'..=b'9' {
                let mut t = d.clone();
                t.push(c);
                if luhn(&t) { d = t; break; }
            }
            prop_assert!(bank_card(&d));
            let mut m = d.clone();
            m[pos] = b'0' + (m[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn(&m));
        }

        #[test]
        fn tw_single_digit_mutation_fails(l in 0u8..26, g in 1u8..3, body in prop::collection::vec(0u8..10, 7),
                pos in 1usize..10, delta in 1u8..10) {
            let mut id = vec![b'A' + l, b'0' + g];
            id.extend(body.iter().map(|x| b'0' + x));
            for c in b'0'..=b'9' {
                let mut t = id.clone();
                t.push(c);
                if tw_id(&t) { id = t; break; }
            }
            prop_assert!(tw_id(&id));
            // The TW scheme uses even weights and 5, so a change of a digit by `delta` is only
            // guaranteed to be caught when weight × delta is not a multiple of 10.
            const W: [u32; 9] = [8, 7, 6, 5, 4, 3, 2, 1, 1];
            let mut m = id.clone();
            m[pos] = b'0' + (m[pos] - b'0' + delta) % 10;
            if pos == 1 { m[1] = if id[1] == b'1' { b'2' } else { b'1' }; }
            let caught = pos == 1 || (W[pos - 1] * u32::from(delta)) % 10 != 0;
            prop_assert_eq!(!tw_id(&m), caught);
        }

        #[test]
        fn hk_single_digit_mutation_fails(l in 0u8..26, body in prop::collection::vec(0u8..10, 6),
                pos in 0usize..6, delta in 1u8..10) {
            let letters = [b'A' + l];
            let digits: Vec<u8> = body.iter().map(|x| b'0' + x).collect();
            let c = hk_id_check_char(&letters, &digits);
            prop_assert!(hk_id(&letters, &digits, c));
            let mut m = digits.clone();
            m[pos] = b'0' + (m[pos] - b'0' + delta) % 10;
            prop_assert!(!hk_id(&letters, &m, c));
        }
    }
}
