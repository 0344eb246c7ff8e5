//! Approved transfers compiled from `[[transfer]]` tables: destination matching (countries,
//! host globs, CIDRs), validity dates and category sets, in forms that are cheap to test on
//! every request (no allocation, no lowercasing copies).

use chrono::NaiveDate;
use ipnet::IpNet;

use crate::config::{LegalBasis, TransferConfig};
use crate::geo::{CountryCode, Destination};

use super::PolicyError;

/// One `hosts` entry. Only two shapes are accepted because they are the only ones with an
/// unambiguous meaning to the people who write the transfer records: an exact name, or
/// `*.suffix` = any subdomain of `suffix` at any depth (but not `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Lower-case name without a trailing dot.
    Exact(Box<str>),
    /// Lower-case `.suffix` (leading dot kept, so `xvendor.com` does not match `.vendor.com`).
    Subdomains(Box<str>),
}

impl HostPattern {
    pub(crate) fn parse(raw: &str) -> Result<HostPattern, String> {
        let s = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if s.is_empty() {
            return Err(
                "empty host pattern; remove it or write a name such as \"api.vendor.com\"".into(),
            );
        }
        if let Some(rest) = s.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!(
                    "host pattern {raw:?} is not supported; use an exact name or \"*.domain\""
                ));
            }
            return Ok(HostPattern::Subdomains(format!(".{rest}").into_boxed_str()));
        }
        if s.contains('*') {
            return Err(format!(
                "host pattern {raw:?} is not supported; '*' is only allowed as a leading \"*.\" label"
            ));
        }
        Ok(HostPattern::Exact(s.into_boxed_str()))
    }

    /// Case-insensitive match; a trailing dot on `host` (absolute DNS name) is ignored.
    pub(crate) fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).as_bytes();
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostPattern::Subdomains(suffix) => {
                let suffix = suffix.as_bytes();
                // Strictly longer: "vendor.com" itself must not match ".vendor.com", and the
                // label before the dot must be non-empty.
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// Where a transfer's validity window lies relative to a local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validity {
    Valid,
    /// Starts this many days after the date.
    NotYet(i64),
    /// Ended this many days before the date.
    Expired(i64),
}

impl Validity {
    pub(crate) fn distance(self) -> i64 {
        match self {
            Validity::Valid => 0,
            Validity::NotYet(d) | Validity::Expired(d) => d,
        }
    }
}

/// A `[[transfer]]` ready for matching.
#[derive(Debug, Clone)]
pub(crate) struct CompiledTransfer {
    pub(crate) id: String,
    pub(crate) legal_basis: LegalBasis,
    countries: Vec<CountryCode>,
    hosts: Vec<HostPattern>,
    cidrs: Vec<IpNet>,
    /// Sorted and deduplicated, so membership is a binary search.
    categories: Vec<Box<str>>,
    pub(crate) allow_sensitive: bool,
    valid_from: Option<NaiveDate>,
    valid_until: Option<NaiveDate>,
    pub(crate) max_individuals: Option<u64>,
    pub(crate) max_sensitive_individuals: Option<u64>,
}

impl CompiledTransfer {
    pub(crate) fn compile(t: &TransferConfig) -> Result<CompiledTransfer, PolicyError> {
        let err = |message: String| PolicyError::Transfer {
            id: t.id.clone(),
            message,
        };
        if t.id.trim().is_empty() {
            return Err(err(
                "empty id; give every transfer a unique id such as \"SCC-2026-001\"".into(),
            ));
        }
        let mut countries = Vec::with_capacity(t.countries.len());
        for c in &t.countries {
            let code = CountryCode::parse(c).ok_or_else(|| {
                err(format!(
                    "country {c:?} is not an ISO 3166-1 alpha-2 code; write e.g. \"US\", \"DE\", \"HK\""
                ))
            })?;
            countries.push(code);
        }
        if countries.is_empty() {
            return Err(err(
                "countries is empty, so the transfer can never match; list the destination countries".into(),
            ));
        }
        let hosts = t
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h).map_err(&err))
            .collect::<Result<Vec<_>, _>>()?;
        if let (Some(from), Some(until)) = (t.valid_from, t.valid_until) {
            if from > until {
                return Err(err(format!(
                    "valid_from {from} is after valid_until {until}; swap or correct the dates"
                )));
            }
        }
        let mut categories: Vec<Box<str>> = t
            .categories
            .iter()
            .map(|c| c.trim().to_string().into_boxed_str())
            .collect();
        categories.sort();
        categories.dedup();
        Ok(CompiledTransfer {
            id: t.id.clone(),
            legal_basis: t.legal_basis,
            countries,
            hosts,
            cidrs: t.cidrs.clone(),
            categories,
            allow_sensitive: t.allow_sensitive,
            valid_from: t.valid_from,
            valid_until: t.valid_until,
            max_individuals: t.max_individuals_per_year,
            max_sensitive_individuals: t.max_sensitive_individuals_per_year,
        })
    }

    /// Country in `countries`, and when given, host matches one of `hosts` and IP lies in one
    /// of `cidrs`. A destination without a country never matches: a transfer record names the
    /// countries it covers, and "unknown" is not one of them.
    pub(crate) fn matches_destination(&self, dest: &Destination) -> bool {
        let Some(country) = dest.country else {
            return false;
        };
        self.countries.contains(&country)
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(&dest.host)))
            && (self.cidrs.is_empty() || self.cidrs.iter().any(|n| n.contains(&dest.ip)))
    }

    /// Inclusive window check on a local date.
    pub(crate) fn validity(&self, today: NaiveDate) -> Validity {
        if let Some(from) = self.valid_from {
            if today < from {
                return Validity::NotYet((from - today).num_days());
            }
        }
        if let Some(until) = self.valid_until {
            if today > until {
                return Validity::Expired((today - until).num_days());
            }
        }
        Validity::Valid
    }

    pub(crate) fn allows_category(&self, category: &str) -> bool {
        self.categories
            .binary_search_by(|c| (**c).cmp(category))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_glob_matches_any_depth_but_not_apex() {
        let p = HostPattern::parse("*.Vendor.com").unwrap();
        assert!(p.matches("api.vendor.com"));
        assert!(p.matches("a.b.c.VENDOR.COM"));
        assert!(p.matches("api.vendor.com."));
        assert!(!p.matches("vendor.com"));
        assert!(!p.matches(".vendor.com"));
        assert!(!p.matches("xvendor.com"));
        assert!(!p.matches("vendor.com.evil.net"));
    }

    #[test]
    fn exact_host_matches_exactly_case_insensitive() {
        let p = HostPattern::parse("API.partner.de").unwrap();
        assert!(p.matches("api.partner.de"));
        assert!(p.matches("Api.Partner.De."));
        assert!(!p.matches("x.api.partner.de"));
        assert!(!p.matches("api.partner.de.evil"));
    }

    #[test]
    fn unsupported_globs_are_rejected() {
        assert!(HostPattern::parse("api.*.com").is_err());
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("").is_err());
    }
}
