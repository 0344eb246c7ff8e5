//! Leaf certificates minted on the fly for intercepted hosts, signed by the interception CA,
//! and a bounded least-recently-used cache of the resulting rustls server configurations.
//!
//! Minting costs a key generation and a CA signature; the cache makes a repeat visit to a
//! host cost only a lookup. Leaves are short-lived (`LEAF_VALIDITY`) and backdated by
//! `LEAF_BACKDATE` so a client whose clock is slightly behind still accepts them; a cached
//! leaf is re-minted well before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use super::{CertificateAuthority, TlsError};
use crate::clock::unix_seconds;

/// How long a minted leaf is valid (after its backdated start).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(3 * 24 * 3600);
/// How far a leaf's `notBefore` lies in the past (client clock skew).
pub const LEAF_BACKDATE: Duration = Duration::from_secs(3600);
/// A cached leaf this close to its expiry is minted again.
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);
/// Hosts whose leaves are kept when `[tls_intercept] leaf_cache_size` is not set.
pub const DEFAULT_LEAF_CACHE_CAPACITY: usize = 1024;

struct Entry {
    config: Arc<ServerConfig>,
    /// Unix seconds after which the entry must be re-minted.
    renew_at: u64,
    /// Logical clock of the last use, for eviction.
    used: u64,
}

struct Slots {
    map: HashMap<String, Entry>,
    clock: u64,
}

/// Bounded LRU of per-host server configurations (leaf + CA chain, ALPN h2 and http/1.1).
pub struct LeafCache {
    ca: Arc<CertificateAuthority>,
    capacity: usize,
    slots: Mutex<Slots>,
}

impl std::fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl LeafCache {
    /// A cache holding at most `capacity` hosts; 0 disables caching (every call mints).
    pub fn new(ca: Arc<CertificateAuthority>, capacity: usize) -> LeafCache {
        LeafCache {
            ca,
            capacity,
            slots: Mutex::new(Slots {
                map: HashMap::with_capacity(capacity.min(4096)),
                clock: 0,
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The server configuration for `host` (lower case, no port): cached, or minted now.
    /// Minting happens outside the lock, so one slow mint never stalls other hosts; two
    /// concurrent first visits to one host may both mint, and the later one is kept.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, TlsError> {
        let now = unix_seconds();
        if self.capacity > 0 {
            let mut slots = self.lock();
            slots.clock += 1;
            let clock = slots.clock;
            if let Some(entry) = slots.map.get_mut(host) {
                if now < entry.renew_at {
                    entry.used = clock;
                    return Ok(Arc::clone(&entry.config));
                }
            }
        }
        let config = Arc::new(self.mint(host, now)?);
        if self.capacity > 0 {
            let mut slots = self.lock();
            if slots.map.len() >= self.capacity && !slots.map.contains_key(host) {
                // O(capacity) scan instead of a linked list: it runs only when a mint (a key
                // generation and a signature, far dearer) already happened.
                if let Some(oldest) = slots
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
                {
                    slots.map.remove(&oldest);
                }
            }
            slots.clock += 1;
            let used = slots.clock;
            let renew_at = now + LEAF_VALIDITY.as_secs() - RENEW_BEFORE.as_secs();
            slots.map.insert(
                host.to_string(),
                Entry {
                    config: Arc::clone(&config),
                    renew_at,
                    used,
                },
            );
        }
        Ok(config)
    }

    /// Mints a leaf for `host` and wraps it in a server configuration, bypassing the cache.
    pub fn mint(&self, host: &str, now_unix: u64) -> Result<ServerConfig, TlsError> {
        let (chain, key) = self.mint_leaf(host, now_unix)?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| mint_error(host, e))?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .map_err(|e| mint_error(host, e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The leaf certificate chain (leaf, CA) and the leaf's private key for `host`.
    pub fn mint_leaf(
        &self,
        host: &str,
        now_unix: u64,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        // An IP literal becomes an iPAddress SAN, a name a dNSName SAN (rcgen decides).
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| mint_error(host, e))?;
        let mut dn = DistinguishedName::new();
        // X.520 caps commonName at 64 characters; the SAN is what clients check anyway.
        let cn: String = host.chars().take(64).collect();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "chujing egress proxy");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        getrandom::getrandom(&mut serial).map_err(|e| TlsError::KeyGen(e.to_string()))?;
        serial[0] &= 0x7f; // positive INTEGER (RFC 5280 §4.1.2.2)
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before =
            epoch + Duration::from_secs(now_unix.saturating_sub(LEAF_BACKDATE.as_secs()));
        params.not_after = epoch + Duration::from_secs(now_unix + LEAF_VALIDITY.as_secs());
        let key = KeyPair::generate().map_err(|e| TlsError::KeyGen(e.to_string()))?;
        let cert = params
            .signed_by(&key, self.ca.issuer(), self.ca.key())
            .map_err(|e| mint_error(host, e))?;
        let chain = vec![cert.der().clone(), self.ca.certificate_der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((chain, key))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn mint_error(host: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Mint {
        host: host.to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ca;

    fn cache(capacity: usize) -> (LeafCache, CertificateDer<'static>) {
        let (cert, key) = ca::generate("leaf test CA").unwrap();
        let ca = Arc::new(CertificateAuthority::from_pem(&cert, &key).unwrap());
        let der = ca.certificate_der().clone();
        (LeafCache::new(ca, capacity), der)
    }

    /// Verifies `chain` for `name` against `root` with webpki, as a client would.
    fn verify(
        root: &CertificateDer<'static>,
        chain: &[CertificateDer<'static>],
        name: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .map(|_| ())
    }

    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn minted_leaves_verify_against_the_ca_for_their_host_only() {
        let (cache, root) = cache(4);
        let (chain, _) = cache.mint_leaf("api.example.com", unix_seconds()).unwrap();
        verify(&root, &chain, "api.example.com").unwrap();
        assert!(verify(&root, &chain, "other.example.com").is_err());
        let (chain, _) = cache.mint_leaf("127.0.0.9", unix_seconds()).unwrap();
        verify(&root, &chain, "127.0.0.9").unwrap();
        // A leaf minted long ago has expired: validity is short on purpose.
        let (chain, _) = cache
            .mint_leaf(
                "api.example.com",
                unix_seconds() - LEAF_VALIDITY.as_secs() - 60,
            )
            .unwrap();
        assert!(verify(&root, &chain, "api.example.com").is_err());
        // A leaf minted a little in the future (client clock behind) is accepted: backdated.
        let (chain, _) = cache
            .mint_leaf("api.example.com", unix_seconds() + 1800)
            .unwrap();
        verify(&root, &chain, "api.example.com").unwrap();
    }

    #[test]
    fn cache_reuses_per_host_and_evicts_the_least_recently_used() {
        let (cache, _) = cache(2);
        let a1 = cache.server_config("a.test").unwrap();
        let a2 = cache.server_config("a.test").unwrap();
        assert!(Arc::ptr_eq(&a1, &a2), "second visit is a cache hit");
        let b = cache.server_config("b.test").unwrap();
        let _ = cache.server_config("a.test").unwrap(); // a is now more recent than b
        let _c = cache.server_config("c.test").unwrap(); // evicts b
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(&a1, &cache.server_config("a.test").unwrap()));
        assert!(
            !Arc::ptr_eq(&b, &cache.server_config("b.test").unwrap()),
            "b was evicted"
        );
        assert_eq!(
            a1.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let (cache, _) = cache(0);
        let a1 = cache.server_config("a.test").unwrap();
        let a2 = cache.server_config("a.test").unwrap();
        assert!(!Arc::ptr_eq(&a1, &a2));
        assert!(cache.is_empty());
    }
}
