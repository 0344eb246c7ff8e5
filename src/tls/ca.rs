//! The interception CA: loaded from `[tls_intercept] ca_cert` / `ca_key` once per runtime,
//! or created by `chujing ca init`. The key file is written with mode 0600 and never
//! overwritten without `--force`, because replacing a CA silently breaks every client that
//! was told to trust the old one.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

use super::TlsError;

/// File names `ca init` writes inside `--out`.
pub const CA_CERT_FILE: &str = "chujing-ca.pem";
pub const CA_KEY_FILE: &str = "chujing-ca.key";

/// How long a CA made by `ca init` is valid.
const CA_VALIDITY_DAYS: u64 = 5 * 365;

/// A CA able to sign leaf certificates.
pub struct CertificateAuthority {
    /// The CA as rcgen needs it for signing: its subject name and key identifier, parsed
    /// from the PEM so leaves chain to exactly the certificate clients trust.
    issuer: Certificate,
    key: KeyPair,
    /// The CA certificate as clients have it (sent after the leaf in the chain).
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Reads a PEM certificate and its PKCS#8 PEM private key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertificateAuthority, TlsError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let cert_pem = read("ca_cert", cert_path)?;
        let key_pem = read("ca_key", key_path)?;
        CertificateAuthority::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            TlsError::Parse { what, message, .. } => TlsError::Parse {
                what,
                path: if what == "ca_key" {
                    key_path.display().to_string()
                } else {
                    cert_path.display().to_string()
                },
                message,
            },
            other => other,
        })
    }

    /// Builds the CA from PEM text (certificate, PKCS#8 key).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, TlsError> {
        let parse = |what: &'static str, message: String| TlsError::Parse {
            what,
            path: "<pem>".into(),
            message,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            parse(
                "ca_key",
                format!("{e}; the key must be a PKCS#8 PEM (convert with `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`)"),
            )
        })?;
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or_else(|| parse("ca_cert", "no PEM certificate found".into()))?
            .map_err(|e| parse("ca_cert", e.to_string()))?;
        let params = CertificateParams::from_ca_cert_der(&der)
            .map_err(|e| parse("ca_cert", format!("cannot parse the certificate: {e}")))?;
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(parse(
                "ca_cert",
                "not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
            ));
        }
        // Re-signing the parsed parameters gives rcgen an issuer with the same subject name
        // and key identifier; the signature of this copy is never used. A key that does not
        // belong to the certificate is caught here rather than by confused clients.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| parse("ca_key", e.to_string()))?;
        if !public_keys_match(&der, &key) {
            return Err(parse(
                "ca_key",
                "the key does not belong to the CA certificate; point ca_key at the certificate's own key".into(),
            ));
        }
        Ok(CertificateAuthority { issuer, key, der })
    }

    pub(crate) fn issuer(&self) -> &Certificate {
        &self.issuer
    }

    pub(crate) fn key(&self) -> &KeyPair {
        &self.key
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.der
    }
}

/// Whether the certificate's SubjectPublicKeyInfo carries the key pair's public key.
fn public_keys_match(cert: &CertificateDer<'_>, key: &KeyPair) -> bool {
    let public = key.public_key_raw();
    !public.is_empty() && cert.windows(public.len()).any(|w| w == public)
}

/// Where `ca init` wrote the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Creates a new CA (ECDSA P-256) in `out`: `chujing-ca.pem` and `chujing-ca.key` (0600).
/// Refuses to replace existing files unless `force`.
pub fn init(out: &Path, common_name: &str, force: bool) -> Result<CaFiles, TlsError> {
    let files = CaFiles {
        cert: out.join(CA_CERT_FILE),
        key: out.join(CA_KEY_FILE),
    };
    if !force {
        for path in [&files.cert, &files.key] {
            if path.exists() {
                return Err(TlsError::Exists {
                    path: path.display().to_string(),
                });
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|source| TlsError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let (cert_pem, key_pem) = generate(common_name)?;
    write_file(&files.key, key_pem.as_bytes(), 0o600)?;
    write_file(&files.cert, cert_pem.as_bytes(), 0o644)?;
    Ok(files)
}

/// A fresh CA as (certificate PEM, PKCS#8 key PEM).
pub fn generate(common_name: &str) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(|e| TlsError::KeyGen(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "chujing egress proxy");
    params.distinguished_name = dn;
    // pathlen 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(now.saturating_sub(3600));
    params.not_after = epoch + std::time::Duration::from_secs(now + CA_VALIDITY_DAYS * 86_400);
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::KeyGen(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let fail = |source| TlsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(fail)?;
    // `mode` applies only when the file is created; a file replaced with --force keeps its
    // old permissions unless they are set again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(fail)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(fail)
}

/// How to make clients trust the CA, printed by `ca init`.
pub fn trust_instructions(files: &CaFiles) -> String {
    let cert = files.cert.display();
    let key = files.key.display();
    format!(
        r#"Created the chujing interception CA:
  certificate  {cert}
  private key  {key}   (mode 0600: keep it secret; anyone holding it can impersonate any site to your clients)

Use it in the proxy configuration:
  [tls_intercept]
  ca_cert = "{cert}"
  ca_key  = "{key}"

Make clients trust it (only the certificate, never the key):
  Debian/Ubuntu:  sudo cp {cert} /usr/local/share/ca-certificates/chujing-ca.crt && sudo update-ca-certificates
  RHEL/Fedora:    sudo cp {cert} /etc/pki/ca-trust/source/anchors/chujing-ca.pem && sudo update-ca-trust
  macOS:          sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}
  Windows:        certutil -addstore -f Root {cert}
  curl:           curl --proxy http://PROXY:PORT --cacert {cert} https://example.com/
  Java:           keytool -importcert -noprompt -alias chujing-ca -file {cert} -cacerts -storepass changeit
  Node.js:        export NODE_EXTRA_CA_CERTS={cert}
  Python:         export REQUESTS_CA_BUNDLE={cert}  (requests; for the ssl module: SSL_CERT_FILE={cert})
  Go:             export SSL_CERT_FILE={cert}   (or install it in the system store)

Apps that pin certificates will fail through interception: list their hosts under
[tls_intercept] bypass (they are then decided on destination alone and audited as uninspected).
See certs/README.md.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ca_loads_and_rejects_a_foreign_key() {
        let (cert, key) = generate("test CA").unwrap();
        let ca = CertificateAuthority::from_pem(&cert, &key).unwrap();
        assert!(!ca.certificate_der().is_empty());
        let (_, other_key) = generate("other").unwrap();
        let err = CertificateAuthority::from_pem(&cert, &other_key).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
        let err = CertificateAuthority::from_pem("garbage", &key).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn a_leaf_certificate_is_not_accepted_as_ca() {
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["leaf.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let err = CertificateAuthority::from_pem(&leaf.pem(), &key.serialize_pem()).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn init_writes_a_private_key_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = init(dir.path(), "chujing test", false).unwrap();
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        CertificateAuthority::load(&files.cert, &files.key).unwrap();
        let before = std::fs::read(&files.key).unwrap();
        let err = init(dir.path(), "chujing test", false).unwrap_err();
        assert!(matches!(err, TlsError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&files.key).unwrap(), before, "untouched");
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        init(dir.path(), "chujing test", true).unwrap();
        assert_ne!(std::fs::read(&files.key).unwrap(), before, "replaced");
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "--force restores 0600");
        let text = trust_instructions(&files);
        for needle in [
            "--cacert",
            "keytool",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }
}
