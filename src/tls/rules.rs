//! Pure rules for CONNECT tunnels: which hosts bypass interception, whether the TLS SNI
//! agrees with the CONNECT authority (no domain fronting), and which destinations a tunnel
//! must never reach (the proxy itself, link-local and cloud metadata addresses: a classic
//! SSRF path to credentials).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Host globs from `[tls_intercept] bypass`: `*` matches any run of characters (also dots,
/// so `*.apple.com` covers every subdomain depth but not `apple.com` itself), `?` one
/// character; comparison ignores ASCII case and a trailing dot.
#[derive(Debug, Clone, Default)]
pub struct BypassList {
    globs: Vec<String>,
}

impl BypassList {
    pub fn new(globs: &[String]) -> BypassList {
        BypassList {
            globs: globs
                .iter()
                .map(|g| g.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|g| !g.is_empty())
                .collect(),
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.globs
            .iter()
            .any(|g| glob_match(g.as_bytes(), host.as_bytes()))
    }
}

/// Iterative wildcard match with single-star backtracking: linear in practice, no
/// allocation, no recursion depth to exhaust.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t].to_ascii_lowercase()) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether the SNI a client sent inside a tunnel names the host it asked to CONNECT to.
/// A different name is domain fronting: the policy would judge one host while the bytes go
/// to another. No SNI is accepted (clients omit it for IP literals); the leaf is then minted
/// for the CONNECT host, so a client expecting another name fails verification itself.
pub fn sni_agrees(sni: Option<&str>, connect_host: &str) -> bool {
    match sni {
        None => true,
        Some(sni) => {
            let sni = sni.trim_end_matches('.');
            let host = connect_host.trim_end_matches('.');
            sni.eq_ignore_ascii_case(host)
        }
    }
}

/// Why a CONNECT destination is refused before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is one of this proxy's own listeners or its admin port; a tunnel to itself would loop or expose the admin API")]
    OwnAddress(SocketAddr),
    #[error("{0} is a link-local or cloud metadata address; add it to [tls_intercept] allow_destinations if a tunnel there is really intended")]
    LinkLocal(IpAddr),
}

impl Refusal {
    /// Short stable code for audit and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OwnAddress(_) => "own_address",
            Refusal::LinkLocal(_) => "link_local",
        }
    }
}

/// Addresses serving instance metadata (credentials!) besides 169.254.169.254: AWS over
/// IPv6, and Alibaba Cloud, the most common cloud for workloads in the mainland.
const METADATA: [IpAddr; 2] = [
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Checks a CONNECT destination `ip:port` against the refusal rules. `own` are the proxy's
/// listener and admin addresses; `local` the address the client reached us on (for
/// listeners bound to an unspecified address, the IP proves it is ours). Networks in
/// `allowed` are exempt.
pub fn refusal(
    ip: IpAddr,
    port: u16,
    own: &[SocketAddr],
    local: Option<SocketAddr>,
    allowed: &[IpNet],
) -> Option<Refusal> {
    let ip = ip.to_canonical();
    if allowed.iter().any(|n| n.contains(&ip)) {
        return None;
    }
    let is_ours = |a: &SocketAddr| {
        let bind = a.ip().to_canonical();
        a.port() == port
            && (ip == bind
                || ip.is_unspecified()
                || (bind.is_unspecified()
                    && (ip.is_loopback() || local.is_some_and(|l| l.ip().to_canonical() == ip))))
    };
    if let Some(a) = own.iter().chain(local.iter()).find(|a| is_ours(a)) {
        return Some(Refusal::OwnAddress(*a));
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        // fe80::/10
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if link_local || METADATA.contains(&ip) {
        return Some(Refusal::LinkLocal(ip));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bypass_globs() {
        let b = BypassList::new(&[
            "*.apple.com".into(),
            "pinned.example.".into(),
            "api-?.bank.cn".into(),
        ]);
        assert!(b.matches("gateway.icloud.apple.com"));
        assert!(b.matches("X.Apple.COM"));
        assert!(!b.matches("apple.com"));
        assert!(!b.matches("notapple.com"));
        assert!(b.matches("pinned.example"));
        assert!(b.matches("pinned.example."));
        assert!(!b.matches("pinned.example.evil"));
        assert!(b.matches("api-1.bank.cn"));
        assert!(!b.matches("api-12.bank.cn"));
        assert!(!BypassList::new(&[]).matches("anything"));
        assert!(BypassList::new(&["*".into()]).matches("anything.at.all"));
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob_match(b"*a*b", b"xaxxab"));
        assert!(!glob_match(b"*a*b", b"xaxxa"));
        assert!(glob_match(b"a**", b"a"));
    }

    #[test]
    fn sni_must_name_the_connect_host() {
        assert!(sni_agrees(Some("api.example.com"), "api.example.com"));
        assert!(sni_agrees(Some("API.example.com."), "api.example.com"));
        assert!(sni_agrees(None, "10.0.0.1"));
        assert!(!sni_agrees(
            Some("allowed.example.com"),
            "blocked.example.org"
        ));
        assert!(!sni_agrees(Some("example.com"), "api.example.com"));
    }

    #[test]
    fn refuses_own_listeners_admin_and_link_local() {
        let own: Vec<SocketAddr> = vec![
            "127.0.0.1:8080".parse().unwrap(),
            "0.0.0.0:9090".parse().unwrap(),
        ];
        let r = |ip: &str, port| refusal(ip.parse().unwrap(), port, &own, None, &[]);
        assert!(matches!(r("127.0.0.1", 8080), Some(Refusal::OwnAddress(_))));
        assert!(matches!(r("0.0.0.0", 8080), Some(Refusal::OwnAddress(_))));
        assert_eq!(
            r("127.0.0.2", 8080),
            None,
            "127.0.0.1 listener is not on .2"
        );
        assert!(matches!(r("127.0.0.9", 9090), Some(Refusal::OwnAddress(_))));
        assert!(matches!(
            r("::ffff:127.0.0.1", 8080),
            Some(Refusal::OwnAddress(_))
        ));
        assert_eq!(r("10.1.2.3", 9090), None, "not known to be ours");
        let local = Some("10.1.2.3:9090".parse().unwrap());
        assert!(refusal("10.1.2.3".parse().unwrap(), 9090, &own, local, &[]).is_some());
        assert_eq!(r("127.0.0.1", 443), None);
        assert!(matches!(
            r("169.254.169.254", 80),
            Some(Refusal::LinkLocal(_))
        ));
        assert!(matches!(r("fe80::1", 443), Some(Refusal::LinkLocal(_))));
        assert!(matches!(r("febf::1", 443), Some(Refusal::LinkLocal(_))));
        assert_eq!(r("fec0::1", 443), None);
        assert!(matches!(
            r("100.100.100.200", 80),
            Some(Refusal::LinkLocal(_))
        ));
        assert!(matches!(
            r("fd00:ec2::254", 80),
            Some(Refusal::LinkLocal(_))
        ));
        let allowed: Vec<IpNet> = vec!["169.254.0.0/16".parse().unwrap()];
        assert_eq!(
            refusal("169.254.169.254".parse().unwrap(), 80, &own, None, &allowed),
            None
        );
    }
}
