//! Destination → region. Owns static host pins and DNS resolution (a host is resolved once and
//! the proxy connects to exactly the IP that was geolocated), the `.mmdb` country reader
//! (MaxMind GeoIP2/GeoLite2 `country.iso_code` and ip-location-db `country_code`), and the
//! operator's CIDR overrides, which beat the database.
//!
//! PIPL counts Hong Kong, Macao and Taiwan as outside the mainland: only `CN` is domestic.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::{Deserialize, Serialize, Serializer};

/// Where a destination IP is, in the terms PIPL cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `CN`: domestic.
    Mainland,
    Hk,
    Mo,
    Tw,
    /// Any other country.
    Abroad,
    /// No country could be determined.
    Unknown,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Mainland => "mainland",
            Region::Hk => "hk",
            Region::Mo => "mo",
            Region::Tw => "tw",
            Region::Abroad => "abroad",
            Region::Unknown => "unknown",
        }
    }

    /// Region of an ISO 3166-1 alpha-2 code (or of none).
    pub fn of_country(country: Option<CountryCode>) -> Region {
        match country.as_ref().map(CountryCode::as_str) {
            None => Region::Unknown,
            Some("CN") => Region::Mainland,
            Some("HK") => Region::Hk,
            Some("MO") => Region::Mo,
            Some("TW") => Region::Tw,
            Some(_) => Region::Abroad,
        }
    }
}

/// ISO 3166-1 alpha-2 country code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses two ASCII letters (any case). Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<CountryCode> {
        let b = s.as_bytes();
        if b.len() == 2 && b[0].is_ascii_alphabetic() && b[1].is_ascii_alphabetic() {
            Some(CountryCode([
                b[0].to_ascii_uppercase(),
                b[1].to_ascii_uppercase(),
            ]))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a request is really going: the host asked for and the IP we connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    pub ip: IpAddr,
    pub country: Option<CountryCode>,
    pub region: Region,
}

/// Errors at the geo boundary; messages name the input and the fix.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot open geo database {path}: {message}; set [geo] database to a MaxMind or ip-location-db country .mmdb file")]
    Open { path: String, message: String },
    #[error("cannot resolve host {host:?}: {message}; pin it under [resolve] or check DNS")]
    Resolve { host: String, message: String },
    #[error("host {host:?} resolved to no address; pin it under [resolve] or check DNS")]
    NoAddress { host: String },
    #[error("[[geo.override]] {cidr}: country {country:?} is not an ISO 3166-1 alpha-2 code; use two letters such as \"DE\" or \"HK\"")]
    OverrideCountry { cidr: String, country: String },
}

/// The fields of a database record we read. Both schemas are accepted, so the same reader
/// works on MaxMind GeoIP2/GeoLite2 Country and City files (`country.iso_code`, with
/// `registered_country.iso_code` as fallback: MaxMind leaves `country` empty for some
/// anycast/satellite networks) and on ip-location-db country files (`country_code`).
/// Strings are borrowed from the database: a lookup allocates nothing.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

fn iso<'a>(n: &Option<IsoCode<'a>>) -> Option<&'a str> {
    n.as_ref().and_then(|n| n.iso_code)
}

impl CountryRecord<'_> {
    fn country(&self) -> Option<CountryCode> {
        iso(&self.country)
            .or_else(|| iso(&self.registered_country))
            .or(self.country_code)
            .and_then(CountryCode::parse)
    }
}

/// Operator overrides compiled for longest-prefix match: one hash map per prefix length that
/// occurs, probed from the longest length down. A query costs at most one probe per distinct
/// length (typically a handful), independent of how many overrides there are.
#[derive(Debug, Default)]
struct OverrideTable {
    /// (prefix length, masked network address → country), longest first.
    v4: Vec<(u8, HashMap<u32, CountryCode>)>,
    v6: Vec<(u8, HashMap<u128, CountryCode>)>,
}

fn mask_v4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask_v6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl OverrideTable {
    fn compile(overrides: &[crate::config::GeoOverride]) -> Result<OverrideTable, GeoError> {
        let mut v4: BTreeMap<u8, HashMap<u32, CountryCode>> = BTreeMap::new();
        let mut v6: BTreeMap<u8, HashMap<u128, CountryCode>> = BTreeMap::new();
        for o in overrides {
            let country =
                CountryCode::parse(&o.country).ok_or_else(|| GeoError::OverrideCountry {
                    cidr: o.cidr.to_string(),
                    country: o.country.clone(),
                })?;
            // Later entries for the same network win, like later lines in a routing table
            // file; validation reports duplicates so this is only a tie-break.
            match o.cidr.trunc() {
                IpNet::V4(n) => {
                    v4.entry(n.prefix_len())
                        .or_default()
                        .insert(u32::from(n.network()), country);
                }
                IpNet::V6(n) => {
                    // An IPv4-mapped IPv6 override (::ffff:a.b.c.d/96+n) is an IPv4 override:
                    // queries are canonicalised the same way, so both spellings meet.
                    if let (Some(v4addr), true) =
                        (n.network().to_ipv4_mapped(), n.prefix_len() >= 96)
                    {
                        v4.entry(n.prefix_len() - 96)
                            .or_default()
                            .insert(u32::from(v4addr), country);
                    } else {
                        v6.entry(n.prefix_len())
                            .or_default()
                            .insert(u128::from(n.network()), country);
                    }
                }
            }
        }
        Ok(OverrideTable {
            v4: v4.into_iter().rev().collect(),
            v6: v6.into_iter().rev().collect(),
        })
    }

    fn lookup(&self, ip: IpAddr) -> Option<CountryCode> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, m)| m.get(&mask_v4(a, *len)).copied())
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, m)| m.get(&mask_v6(a, *len)).copied())
            }
        }
    }

    fn len(&self) -> usize {
        self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }
}

/// Country database plus operator overrides. Cheap to query, shared with `Arc`.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    overrides: OverrideTable,
    unknown_is_outbound: bool,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.reader.metadata.database_type)
            .field("build_epoch", &self.reader.metadata.build_epoch)
            .field("overrides", &self.overrides.len())
            .field("unknown_is_outbound", &self.unknown_is_outbound)
            .finish()
    }
}

/// Checks the parts of the file layout the `maxminddb` reader indexes without bounds checks,
/// so a truncated or corrupt file is refused at startup with a clear error instead of
/// panicking on the first request.
fn check_layout(reader: &maxminddb::Reader<Vec<u8>>, len: usize) -> Result<(), String> {
    let m = &reader.metadata;
    if m.binary_format_major_version != 2 {
        return Err(format!(
            "unsupported MaxMind DB format version {} (expected 2)",
            m.binary_format_major_version
        ));
    }
    if !matches!(m.record_size, 24 | 28 | 32) {
        return Err(format!(
            "invalid record size {} (expected 24, 28 or 32)",
            m.record_size
        ));
    }
    if !matches!(m.ip_version, 4 | 6) {
        return Err(format!(
            "invalid ip_version {} (expected 4 or 6)",
            m.ip_version
        ));
    }
    let tree = (m.node_count as usize).saturating_mul(usize::from(m.record_size)) / 4;
    if tree.saturating_add(16) > len {
        return Err(format!(
            "search tree of {} nodes does not fit in a {len}-byte file (truncated?)",
            m.node_count
        ));
    }
    Ok(())
}

impl GeoDb {
    /// Opens the `.mmdb` file named in `[geo]` and compiles the overrides.
    pub fn open(config: &crate::config::GeoConfig) -> Result<GeoDb, GeoError> {
        let overrides = OverrideTable::compile(&config.overrides)?;
        let reader = open_reader(&config.database)?;
        Ok(GeoDb {
            reader,
            overrides,
            unknown_is_outbound: config.unknown_is_outbound,
        })
    }

    /// Country of `ip`: the longest matching override, else the database, else `None`.
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as the IPv4 address they
    /// carry, so a dual-stack socket cannot dodge an IPv4 override or database entry.
    pub fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let ip = ip.to_canonical();
        if let Some(c) = self.overrides.lookup(ip) {
            return Some(c);
        }
        self.database_country(ip)
    }

    /// The database's answer alone, without overrides.
    pub fn database_country(&self, ip: IpAddr) -> Option<CountryCode> {
        let ip = ip.to_canonical();
        // An IPv6 address cannot be found in an IPv4-only database; maxminddb would
        // otherwise index the tree with the wrong bit count.
        if ip.is_ipv6() && self.reader.metadata.ip_version == 4 {
            return None;
        }
        // `check_layout` rules out the corruption we know how to detect up front; a panic
        // inside the reader on a record we could not pre-check becomes "unknown", which the
        // policy treats as abroad (fail closed) rather than taking the proxy down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.reader
                .lookup::<CountryRecord<'_>>(ip)
                .ok()
                .and_then(|r| r.country())
        }))
        .ok()
        .flatten()
    }

    /// `database_type` from the file's metadata, e.g. `GeoLite2-Country` or `country ipv4+ipv6`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata.database_type
    }

    pub fn unknown_is_outbound(&self) -> bool {
        self.unknown_is_outbound
    }

    /// The full destination for a host we are about to connect to at `ip`.
    pub fn locate(&self, host: &str, port: u16, ip: IpAddr) -> Destination {
        let country = self.country(ip);
        Destination {
            host: host.to_string(),
            port,
            ip,
            country,
            region: Region::of_country(country),
        }
    }
}

fn open_reader(path: &Path) -> Result<maxminddb::Reader<Vec<u8>>, GeoError> {
    let err = |message: String| GeoError::Open {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let len = bytes.len();
    let reader = std::panic::catch_unwind(|| maxminddb::Reader::from_source(bytes))
        .map_err(|_| err("not a MaxMind DB file (metadata unreadable)".to_string()))?
        .map_err(|e| err(format!("not a MaxMind DB file ({e})")))?;
    check_layout(&reader, len).map_err(err)?;
    Ok(reader)
}

/// Host → IP: static `[resolve]` pins first, then the system resolver. IP literals resolve to
/// themselves.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Keys normalised: lower case, no trailing dot (DNS names are case-insensitive and
    /// `host.` is the same name as `host`).
    pins: BTreeMap<String, Vec<IpAddr>>,
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolver {
    pub fn new(pins: &BTreeMap<String, Vec<IpAddr>>) -> Resolver {
        Resolver {
            pins: pins
                .iter()
                .map(|(h, ips)| (normalise_host(h), ips.clone()))
                .collect(),
        }
    }

    /// The static pin for `host`, if any (no DNS).
    pub fn pinned(&self, host: &str) -> Option<&[IpAddr]> {
        let key = normalise_host(host);
        self.pins.get(&key).map(Vec::as_slice)
    }

    /// The one address the proxy will connect to for `host:port`. The caller geolocates this
    /// address and connects to it and nothing else, so DNS cannot answer differently between
    /// the check and the connection.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<IpAddr, GeoError> {
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
            return Ok(ip);
        }
        if let Some(ips) = self.pinned(host) {
            return ips.first().copied().ok_or_else(|| GeoError::NoAddress {
                host: host.to_string(),
            });
        }
        let mut addrs =
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| GeoError::Resolve {
                    host: host.to_string(),
                    message: e.to_string(),
                })?;
        addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| GeoError::NoAddress {
                host: host.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GeoConfig, GeoOverride};

    fn ov(cidr: &str, country: &str) -> GeoOverride {
        GeoOverride {
            cidr: cidr.parse().unwrap(),
            country: country.to_string(),
        }
    }

    #[test]
    fn longest_prefix_wins_v4_and_v6() {
        let t = OverrideTable::compile(&[
            ov("10.0.0.0/8", "DE"),
            ov("10.1.0.0/16", "CN"),
            ov("10.1.2.0/24", "HK"),
            ov("2001:db8::/32", "US"),
            ov("2001:db8:aa::/48", "TW"),
        ])
        .unwrap();
        let c = |s: &str| t.lookup(s.parse().unwrap()).map(|c| c.to_string());
        assert_eq!(c("10.9.9.9").as_deref(), Some("DE"));
        assert_eq!(c("10.1.9.9").as_deref(), Some("CN"));
        assert_eq!(c("10.1.2.3").as_deref(), Some("HK"));
        assert_eq!(c("11.0.0.1"), None);
        assert_eq!(c("2001:db8:1::1").as_deref(), Some("US"));
        assert_eq!(c("2001:db8:aa::1").as_deref(), Some("TW"));
        assert_eq!(c("2001:db9::1"), None);
    }

    #[test]
    fn host_bits_in_override_are_ignored_and_mapped_v6_is_v4() {
        let t = OverrideTable::compile(&[
            ov("192.0.2.77/24", "MO"),
            ov("::ffff:198.51.100.0/120", "JP"),
        ])
        .unwrap();
        assert_eq!(
            t.lookup("192.0.2.1".parse().unwrap()).unwrap().as_str(),
            "MO"
        );
        assert_eq!(
            t.lookup("198.51.100.9".parse().unwrap()).unwrap().as_str(),
            "JP"
        );
    }

    #[test]
    fn zero_length_override_matches_everything() {
        let t = OverrideTable::compile(&[ov("0.0.0.0/0", "CN")]).unwrap();
        assert_eq!(t.lookup("8.8.8.8".parse().unwrap()).unwrap().as_str(), "CN");
        assert_eq!(t.lookup("::1".parse().unwrap()), None);
    }

    #[test]
    fn bad_override_country_is_rejected() {
        let e = OverrideTable::compile(&[ov("10.0.0.0/8", "Germany")]).unwrap_err();
        assert!(e.to_string().contains("Germany"), "{e}");
    }

    #[test]
    fn missing_database_is_a_clear_error() {
        let cfg = GeoConfig {
            database: "/nonexistent/chujing/country.mmdb".into(),
            ..GeoConfig::default()
        };
        let e = GeoDb::open(&cfg).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/chujing/country.mmdb"), "{msg}");
        assert!(msg.contains("set [geo] database"), "{msg}");
    }

    #[test]
    fn regions() {
        for (cc, r) in [
            ("CN", Region::Mainland),
            ("cn", Region::Mainland),
            ("HK", Region::Hk),
            ("MO", Region::Mo),
            ("TW", Region::Tw),
            ("US", Region::Abroad),
        ] {
            assert_eq!(Region::of_country(CountryCode::parse(cc)), r, "{cc}");
        }
        assert_eq!(Region::of_country(None), Region::Unknown);
    }

    #[tokio::test]
    async fn pins_before_dns_case_and_trailing_dot_insensitive() {
        let mut pins = BTreeMap::new();
        pins.insert(
            "API.Partner.DE".to_string(),
            vec!["127.0.0.2".parse().unwrap()],
        );
        pins.insert("empty.example".to_string(), vec![]);
        let r = Resolver::new(&pins);
        let want: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(r.resolve("api.partner.de", 443).await.unwrap(), want);
        assert_eq!(r.resolve("api.partner.de.", 443).await.unwrap(), want);
        assert_eq!(
            r.resolve("[::1]", 80).await.unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            r.resolve("10.1.2.3", 80).await.unwrap(),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert!(matches!(
            r.resolve("empty.example", 80).await,
            Err(GeoError::NoAddress { .. })
        ));
    }
}
