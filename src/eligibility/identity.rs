//! The unit's TLS identity and what it trusts: the unit certificate with its key (a file's
//! DER or a signer in the TPM), the pinned server CA, the server CA's CRL (read again when
//! its file changes, and no session resumed from before the change), and the rustls client
//! configuration built from them (TLS 1.3 only, ring as the provider).

use super::error::ClientError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The identity material of the unit: its certificate chain, key, and the pinned server CA.
pub struct UnitIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    /// The unit key: a PEM key's DER (file keys), or a signer inside the TPM.
    pub key: crate::keys::UnitTlsKey,
    pub server_ca: Vec<CertificateDer<'static>>,
    /// CRLs of the server CA: a revoked server certificate is refused. Empty: no
    /// revocation check (the CA's CRL has not been installed).
    pub server_crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
    /// Where the CRLs came from: re-read at a handshake after the file changed
    /// (`install-crl` while the app runs).
    pub server_crl_file: Option<std::path::PathBuf>,
}

impl UnitIdentity {
    /// Load from PEM files (unit cert [+ chain], unit key, server CA).
    pub fn from_files(cert: &Path, key: &Path, server_ca: &Path) -> Result<Self, ClientError> {
        let key = crate::keys::UnitTlsKey::Der(
            PrivateKeyDer::from_pem_file(key)
                .map_err(|e| ClientError::Setup(format!("unit key {}: {e}", key.display())))?,
        );
        Self::with_key(cert, key, server_ca)
    }

    /// The unit certificate and server CA from PEM files, with a key held elsewhere (the
    /// TPM's signer).
    pub fn with_key(
        cert: &Path,
        key: crate::keys::UnitTlsKey,
        server_ca: &Path,
    ) -> Result<Self, ClientError> {
        let setup = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
            ClientError::Setup(format!("{what} {}: {e}", p.display()))
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| setup("unit certificate", cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup("unit certificate", cert, &e))?;
        let server_ca = CertificateDer::pem_file_iter(server_ca)
            .map_err(|e| setup("server CA", server_ca, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup("server CA", server_ca, &e))?;
        if chain.is_empty() || server_ca.is_empty() {
            return Err(ClientError::Setup("empty certificate file".into()));
        }
        Ok(UnitIdentity {
            chain,
            key,
            server_ca,
            server_crls: vec![],
            server_crl_file: None,
        })
    }

    /// Also check the server's certificate against the CRLs in this PEM file (re-read when
    /// it changes; a CRL past its next update is refused).
    pub fn with_server_crls(mut self, crl: &Path) -> Result<Self, ClientError> {
        self.server_crls = read_crls(crl)?;
        self.server_crl_file = Some(crl.to_path_buf());
        Ok(self)
    }
}

fn read_crls(
    crl: &Path,
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, ClientError> {
    let setup = |e: &dyn std::fmt::Display| {
        ClientError::Setup(format!("server CRL {}: {e}", crl.display()))
    };
    let crls = rustls::pki_types::CertificateRevocationListDer::pem_file_iter(crl)
        .map_err(|e| setup(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(&e))?;
    if crls.is_empty() {
        return Err(setup(&"no CRL in the file"));
    }
    Ok(crls)
}

fn crl_verifier(
    roots: &Arc<rustls::RootCertStore>,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, ClientError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), crypto_provider())
        .with_crls(crls)
        // a CRL past its next update says nothing about today: refuse, do not trust it
        .enforce_revocation_expiration()
        .build()
        .map_err(|e| ClientError::Setup(format!("server CRL: {e}")))
}

/// A file's size and modification time (`None`: it cannot be read).
type FileStamp = Option<(u64, std::time::SystemTime)>;

/// The server verifier with the CRL file re-read when its size or modification time
/// changes, so a CRL installed while the app runs applies at the next handshake. A CRL file
/// that no longer reads refuses the handshake (fail closed).
#[derive(Debug)]
struct ReloadingCrlVerifier {
    roots: Arc<rustls::RootCertStore>,
    file: std::path::PathBuf,
    current: std::sync::RwLock<(FileStamp, Arc<rustls::client::WebPkiServerVerifier>)>,
}

impl ReloadingCrlVerifier {
    fn stamp(&self) -> FileStamp {
        let m = std::fs::metadata(&self.file).ok()?;
        Some((m.len(), m.modified().ok()?))
    }

    fn verifier(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        let stamp = self.stamp();
        {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            if cur.0 == stamp && stamp.is_some() {
                return Ok(cur.1.clone());
            }
        }
        let fresh = read_crls(&self.file)
            .and_then(|crls| crl_verifier(&self.roots, crls))
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        tracing::info!(file = %self.file.display(), "server CRL re-read");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (stamp, fresh.clone());
        Ok(fresh)
    }
}

impl rustls::client::danger::ServerCertVerifier for ReloadingCrlVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS session resumption skips the server's certificate, so sessions from before a CRL
/// change must not be resumed: the cache starts empty whenever the CRL file changed.
#[derive(Debug)]
struct CrlAwareSessions {
    crl: Arc<ReloadingCrlVerifier>,
    inner: std::sync::Mutex<(FileStamp, Arc<rustls::client::ClientSessionMemoryCache>)>,
}

impl CrlAwareSessions {
    fn cache(&self) -> Arc<rustls::client::ClientSessionMemoryCache> {
        let stamp = self.crl.stamp();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != stamp {
            *g = (
                stamp,
                Arc::new(rustls::client::ClientSessionMemoryCache::new(32)),
            );
        }
        g.1.clone()
    }
}

impl rustls::client::ClientSessionStore for CrlAwareSessions {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.cache().set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.cache().kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.cache().set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.cache().tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.cache().remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.cache().insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.cache().take_tls13_ticket(name)
    }
}

/// The rustls provider everything here uses (ring).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 only, client auth with the unit certificate, only the provisioned CA trusted.
pub fn tls_config(identity: UnitIdentity) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in identity.server_ca {
        roots
            .add(ca)
            .map_err(|e| ClientError::Setup(format!("server CA: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    let mut sessions = None;
    let builder = if identity.server_crls.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let roots = Arc::new(roots);
        let first = crl_verifier(&roots, identity.server_crls)?;
        match identity.server_crl_file {
            Some(file) => {
                let reloading = ReloadingCrlVerifier {
                    roots,
                    current: std::sync::RwLock::new((None, first)),
                    file,
                };
                let stamp = reloading.stamp();
                reloading
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .0 = stamp;
                let reloading = Arc::new(reloading);
                sessions = Some(Arc::new(CrlAwareSessions {
                    crl: reloading.clone(),
                    inner: std::sync::Mutex::new((
                        stamp,
                        Arc::new(rustls::client::ClientSessionMemoryCache::new(32)),
                    )),
                }));
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(reloading)
            }
            None => builder.with_webpki_verifier(first),
        }
    };
    let mut config = match identity.key {
        crate::keys::UnitTlsKey::Der(key) => builder
            .with_client_auth_cert(identity.chain, key)
            .map_err(|e| ClientError::Setup(format!("unit certificate/key: {e}")))?,
        crate::keys::UnitTlsKey::Signer(key) => {
            let certified = rustls::sign::CertifiedKey::new(identity.chain, key);
            builder.with_client_cert_resolver(Arc::new(OneClientCert(Arc::new(certified))))
        }
    };
    if let Some(store) = sessions {
        config.resumption = rustls::client::Resumption::store(store);
    }
    Ok(config)
}

/// The unit certificate with a key rustls cannot hold itself (the TPM's): always offered.
#[derive(Debug)]
struct OneClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OneClientCert {
    fn resolve(
        &self,
        _root_hints: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes)?;
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}
