//! Destination → region. Owns static host pins and DNS resolution (a host is resolved once and
//! the proxy connects to exactly the IP that was geolocated), the `.mmdb` country reader
//! (MaxMind GeoIP2/GeoLite2 `country.iso_code` and ip-location-db `country_code`), and the
//! operator's CIDR overrides, which beat the database.
//!
//! PIPL counts Hong Kong, Macao and Taiwan as outside the mainland: only `CN` is domestic.
//!
//! INTERFACE CONTRACT: public items keep their names and signatures; internals may change.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

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
}

/// Country database plus operator overrides. Cheap to query, shared with `Arc`.
#[derive(Debug)]
pub struct GeoDb {
    unknown_is_outbound: bool,
}

impl GeoDb {
    /// Opens the `.mmdb` file named in `[geo]` and compiles the overrides.
    pub fn open(config: &crate::config::GeoConfig) -> Result<GeoDb, GeoError> {
        Ok(GeoDb {
            unknown_is_outbound: config.unknown_is_outbound,
        })
    }

    /// Country of `ip`: the longest matching override, else the database, else `None`.
    pub fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let _ = ip;
        None
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

/// Host → IP: static `[resolve]` pins first, then the system resolver. IP literals resolve to
/// themselves.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pins: std::collections::BTreeMap<String, Vec<IpAddr>>,
}

impl Resolver {
    pub fn new(pins: &std::collections::BTreeMap<String, Vec<IpAddr>>) -> Resolver {
        Resolver { pins: pins.clone() }
    }

    /// The one address the proxy will connect to for `host:port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<IpAddr, GeoError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(ip);
        }
        if let Some(ips) = self.pins.get(&host.to_ascii_lowercase()) {
            return ips.first().copied().ok_or_else(|| GeoError::NoAddress {
                host: host.to_string(),
            });
        }
        let mut addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| GeoError::Resolve {
                host: host.to_string(),
                message: e.to_string(),
            })?;
        addrs.next().map(|a| a.ip()).ok_or_else(|| GeoError::NoAddress {
            host: host.to_string(),
        })
    }
}
