//! Cost of the TLS handshake the proxy terminates inside a CONNECT tunnel, with and without
//! the leaf cache: `cached` finds the host's server configuration in the cache; `uncached`
//! mints a leaf (P-256 key generation plus a CA signature) for every handshake, as a first
//! visit to a host does. Each iteration is a full TLS 1.3 handshake between a rustls client
//! trusting the interception CA and the server side, in memory (no sockets), so the numbers
//! are CPU cost only. `mint_leaf` isolates the minting. Run:
//! `cargo bench --bench tls_handshake`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use chujing::tls::{ca, CertificateAuthority, LeafCache};

const HOST: &str = "api.partner.example";

fn client_config(ca: &CertificateAuthority) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate_der().clone()).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Resumption would skip the certificate entirely; every iteration is a first contact.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// Moves TLS records between the two sides until both finished the handshake.
fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) {
    let name = ServerName::try_from(HOST).unwrap();
    let mut c = ClientConnection::new(client, name).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        let mut moved = false;
        while c.wants_write() {
            buf.clear();
            c.write_tls(&mut buf).unwrap();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets().unwrap();
            moved = true;
        }
        while s.wants_write() {
            buf.clear();
            s.write_tls(&mut buf).unwrap();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            c.process_new_packets().unwrap();
            moved = true;
        }
        assert!(moved, "handshake stalled");
    }
    assert_eq!(c.alpn_protocol(), Some(&b"h2"[..]));
}

fn bench(c: &mut Criterion) {
    let (cert, key) = ca::generate("bench CA").unwrap();
    let authority = Arc::new(CertificateAuthority::from_pem(&cert, &key).unwrap());
    let client = client_config(&authority);
    let cached = LeafCache::new(Arc::clone(&authority), 1024);
    let uncached = LeafCache::new(Arc::clone(&authority), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let mut group = c.benchmark_group("tls_handshake");
    group.bench_function("cached", |b| {
        b.iter(|| {
            let config = cached.server_config(black_box(HOST)).unwrap();
            handshake(Arc::clone(&client), config);
        })
    });
    group.bench_function("uncached", |b| {
        b.iter(|| {
            let config = uncached.server_config(black_box(HOST)).unwrap();
            handshake(Arc::clone(&client), config);
        })
    });
    group.bench_function("mint_leaf", |b| {
        b.iter(|| black_box(uncached.mint_leaf(black_box(HOST), now).unwrap()))
    });
    group.bench_function("cache_hit_lookup", |b| {
        b.iter(|| black_box(cached.server_config(black_box(HOST)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
