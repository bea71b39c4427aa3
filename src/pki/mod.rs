//! Certificates: issuing with rcgen (the development/training PKI, the test JPKI CA, the
//! virtual cards' certificates) and reading with x509-parser (serial, issuer, validity,
//! who signed what). Private keys are written 0600 and never committed.
//!
//! What is inside: certificates: issuing with rcgen (`pki::dev`: the development/training
//! PKI with its fixed file names; the test JPKI CA; card certificates with an RSA-2048 key
//! — one per process, shared by its training cards, since generating one takes about a
//! second — and `verify_card_signature`, PKCS#1 v1.5 SHA-256 against the card certificate),
//! reading with x509-parser (`inspect`: serial, issuer, validity, days left;
//! `is_signed_by`); private keys written 0600

pub mod dev;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::io::Write;
use std::path::Path;
use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot parse certificate: {0}")]
    Parse(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate in file")]
    NoPem(String),
    #[error("RSA card key: {0}")]
    CardKey(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write a private key (or anything secret) readable by the owner only (0600).
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Write public material (certificates, CRLs).
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(io_err(path))
}

pub fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The DER of every certificate in a PEM text, in order.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// What an admin is told about a CRL before it is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlSummary {
    pub revoked: usize,
    /// RFC 3339; `None` when the CRL names no next update.
    pub next_update: Option<String>,
    /// The next update is in the past: revocations after it are not in this list.
    pub stale: bool,
    /// The earliest next update of the CRLs, ms since the Unix epoch.
    pub next_update_ms: Option<i64>,
}

/// Every CRL in a PEM text must be signed by `ca_der`'s key; a summary of them.
pub fn inspect_crls(pem: &str, ca_der: &[u8], now: OffsetDateTime) -> Result<CrlSummary, PkiError> {
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::pki_types::pem::PemObject;
    let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError::Parse(format!("CRL PEM: {e}")))?;
    if crls.is_empty() {
        return Err(PkiError::Parse("no X509 CRL in the file".into()));
    }
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let mut summary = CrlSummary {
        revoked: 0,
        next_update: None,
        stale: false,
        next_update_ms: None,
    };
    for der in &crls {
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            .map_err(|e| PkiError::Parse(format!("CRL: {e}")))?;
        crl.verify_signature(ca.public_key())
            .map_err(|e| PkiError::Parse(format!("CRL not signed by the server CA: {e}")))?;
        summary.revoked += crl.iter_revoked_certificates().count();
        if let Some(next) = crl.next_update() {
            let next = next.to_datetime();
            summary.stale |= next < now;
            let ms = (next.unix_timestamp_nanos() / 1_000_000) as i64;
            if summary.next_update_ms.is_none_or(|m| ms < m) {
                summary.next_update_ms = Some(ms);
                summary.next_update = next
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok();
            }
        }
    }
    Ok(summary)
}

/// DER to PEM for a certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A certificate authority that can issue: its certificate and its signing key.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    key_pem: String,
}

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in parts {
        dn.push(t.clone(), *v);
    }
    dn
}

impl CertAuthority {
    /// A fresh self-signed CA with a P-256 key.
    pub fn generate(organization: &str, common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&[
            (DnType::CountryName, "JP"),
            (DnType::OrganizationName, organization),
            (DnType::CommonName, common_name),
        ]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(10 * 365);
        let cert_der = params.self_signed(&key)?.der().to_vec();
        let key_pem = key.serialize_pem();
        Ok(CertAuthority {
            issuer: Issuer::new(params, key),
            cert_der,
            key_pem,
        })
    }

    /// Load a CA from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = pem_certificates(cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::NoPem("CA certificate".into()))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(CertAuthority {
            issuer,
            cert_der,
            key_pem: key_pem.to_string(),
        })
    }

    pub fn load_files(cert: &Path, key: &Path) -> Result<Self, PkiError> {
        Self::load(&read_text(cert)?, &read_text(key)?)
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn certificate_pem(&self) -> String {
        certificate_pem(&self.cert_der)
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Sign `params` for `key`'s public half.
    pub fn sign(
        &self,
        params: &CertificateParams,
        key: &impl rcgen::PublicKeyData,
    ) -> Result<Vec<u8>, PkiError> {
        Ok(params.signed_by(key, &self.issuer)?.der().to_vec())
    }
}

/// A leaf certificate and its freshly generated key.
pub struct IssuedCert {
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    pub key_pkcs8_der: Vec<u8>,
    pub serial: Vec<u8>,
}

/// What a leaf is for.
pub enum LeafKind<'a> {
    /// A TLS server reachable under these DNS names and IP addresses.
    Server { names: &'a [&'a str] },
    /// An ambulance unit's client certificate (救急隊用電子証明書).
    Unit { department: &'a str, unit: &'a str },
}

/// Issue a leaf valid from `not_before` to `not_after`.
pub fn issue_leaf(
    ca: &CertAuthority,
    kind: LeafKind<'_>,
    serial: u64,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<IssuedCert, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    match kind {
        LeafKind::Server { names } => {
            params.distinguished_name = dn(&[
                (DnType::CountryName, "JP"),
                (
                    DnType::CommonName,
                    names.first().copied().unwrap_or("server"),
                ),
            ]);
            params.subject_alt_names = names
                .iter()
                .map(|n| match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
                })
                .collect::<Result<_, rcgen::Error>>()?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        LeafKind::Unit { department, unit } => {
            params.distinguished_name = dn(&[
                (DnType::CountryName, "JP"),
                (DnType::OrganizationName, department),
                (DnType::OrganizationalUnitName, unit),
                (DnType::CommonName, unit),
            ]);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    params.not_before = not_before;
    params.not_after = not_after;
    let cert_der = ca.sign(&params, &key)?;
    Ok(IssuedCert {
        cert_der,
        key_pem: key.serialize_pem(),
        key_pkcs8_der: key.serialize_der(),
        serial: serial.to_be_bytes().to_vec(),
    })
}

/// A card's certificate material as the virtual card holds it.
pub struct CardCertificate {
    /// User-authentication certificate (EF 000A), DER.
    pub auth_certificate_der: Vec<u8>,
    /// Its key (EF 0017 on a real card), PKCS#8 DER.
    pub auth_key_pkcs8: Vec<u8>,
    /// The issuing CA certificate (EF 000B), DER.
    pub ca_certificate_der: Vec<u8>,
}

/// The test JPKI CA that issues the virtual cards' certificates. Never a real CA.
pub struct JpkiTestCa {
    ca: CertAuthority,
}

impl JpkiTestCa {
    pub fn generate() -> Result<Self, PkiError> {
        Ok(JpkiTestCa {
            ca: CertAuthority::generate(
                "Mynakyukyu Training",
                "Test JPKI User Authentication CA (training only)",
            )?,
        })
    }

    pub fn from_authority(ca: CertAuthority) -> Self {
        JpkiTestCa { ca }
    }

    pub fn authority(&self) -> &CertAuthority {
        &self.ca
    }

    pub fn certificate_der(&self) -> &[u8] {
        self.ca.certificate_der()
    }

    /// Issue a user-authentication certificate with this serial. The subject is an opaque
    /// serial, as on a real card: the holder's name is never in it. The key is RSA-2048,
    /// as on a real card, so that the card signs PKCS#1 v1.5 and OpenSC can use it.
    pub fn issue_card(&self, serial: u64) -> Result<CardCertificate, PkiError> {
        let pkcs8 = card_key_pkcs8()?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.to_vec()),
            &rcgen::PKCS_RSA_SHA256,
        )?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&[
            (DnType::CountryName, "JP"),
            (DnType::CommonName, &format!("{serial:016X}")),
        ]);
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(365);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(4 * 365);
        Ok(CardCertificate {
            auth_certificate_der: self.ca.sign(&params, &key)?,
            auth_key_pkcs8: key.serialize_der(),
            ca_certificate_der: self.ca.certificate_der().to_vec(),
        })
    }
}

/// The training cards' RSA-2048 key, PKCS#8. Generating one takes about a second, so the
/// cards of one process share it; each card still has its own certificate and serial,
/// which is what names it to the simulator. (A real card's key never leaves the card.)
fn card_key_pkcs8() -> Result<&'static [u8], PkiError> {
    static KEY: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let key =
            rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(|e| e.to_string())?;
        key.to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| PkiError::CardKey(e.clone()))
}

/// Verify a card's PKCS#1 v1.5 SHA-256 signature over `message` (the card was sent the
/// DigestInfo of its SHA-256) with the RSA key of its authentication certificate: what
/// the eligibility system does with a PIN-path signature.
pub fn verify_card_signature(certificate_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
        return false;
    };
    let key = &cert.public_key().subject_public_key.data;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(message, signature)
        .is_ok()
}

/// Validity of a certificate at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Expired,
    NotYetValid,
}

/// What an admin or a crew needs to know about a certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertSummary {
    pub serial_hex: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    /// The end of validity, ms since the Unix epoch.
    pub not_after_ms: i64,
    pub validity: Validity,
}

/// Parse a DER certificate and summarise it as of `now`.
/// The first certificate of a PEM file, inspected now; None if unreadable.
pub fn inspect_pem_file(path: &std::path::Path) -> Option<CertSummary> {
    let pem = std::fs::read_to_string(path).ok()?;
    let der = pem_certificates(&pem).into_iter().next()?;
    inspect(&der, OffsetDateTime::now_utc()).ok()
}

pub fn inspect(der: &[u8], now: OffsetDateTime) -> Result<CertSummary, PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let nb = cert.validity().not_before.to_datetime();
    let na = cert.validity().not_after.to_datetime();
    let validity = if now < nb {
        Validity::NotYetValid
    } else if now > na {
        Validity::Expired
    } else {
        Validity::Valid
    };
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    Ok(CertSummary {
        serial_hex: cert.raw_serial_as_string().replace(':', ""),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: rfc(nb),
        not_after: rfc(na),
        days_left: (na - now).whole_days(),
        not_after_ms: (na.unix_timestamp_nanos() / 1_000_000) as i64,
        validity,
    })
}

/// A certificate's subject CN and its public key's bits (for P-256: the uncompressed point).
pub fn subject_cn_and_key(cert_der: &[u8]) -> Result<(String, Vec<u8>), PkiError> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| PkiError::Parse(e.to_string()))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((cn, cert.public_key().subject_public_key.data.to_vec()))
}

/// Whether `cert_der` carries a valid signature by the key of `ca_der`.
pub fn is_signed_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The certificate's serial number as an unsigned integer, if it fits in 64 bits.
pub fn serial_u64(cert_der: &[u8]) -> Option<u64> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let bytes = cert.raw_serial();
    let bytes = if bytes.len() > 8 && bytes[0] == 0 {
        &bytes[1..]
    } else {
        bytes
    };
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_card_certificates_chain_to_the_test_jpki_ca_only() {
        let ca = JpkiTestCa::generate().unwrap();
        let a = ca.issue_card(0x4d4e_0001_0000_0001).unwrap();
        let b = ca.issue_card(2).unwrap();
        assert_eq!(a.auth_certificate_der[0], 0x30, "DER SEQUENCE");
        assert_ne!(a.auth_certificate_der, b.auth_certificate_der);
        assert!(is_signed_by(&a.auth_certificate_der, ca.certificate_der()));
        let other = JpkiTestCa::generate().unwrap();
        assert!(!is_signed_by(
            &a.auth_certificate_der,
            other.certificate_der()
        ));
        assert_eq!(
            serial_u64(&a.auth_certificate_der),
            Some(0x4d4e_0001_0000_0001)
        );
        let s = inspect(&a.auth_certificate_der, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(s.validity, Validity::Valid);
        assert!(s.days_left > 1000);
        assert!(s.subject.contains("4D4E000100000001"), "{}", s.subject);
    }

    #[test]
    fn a_ca_survives_a_round_trip_through_pem() {
        let ca = CertAuthority::generate("消防本部", "Test CA").unwrap();
        let again = CertAuthority::load(&ca.certificate_pem(), ca.key_pem()).unwrap();
        let now = OffsetDateTime::now_utc();
        let leaf = issue_leaf(
            &again,
            LeafKind::Unit {
                department: "131001",
                unit: "U-01",
            },
            7,
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        )
        .unwrap();
        assert!(is_signed_by(&leaf.cert_der, ca.certificate_der()));
        let s = inspect(&leaf.cert_der, now).unwrap();
        assert!((29..=30).contains(&s.days_left), "{}", s.days_left);
    }

    #[test]
    fn inspect_reports_expired_and_not_yet_valid_distinctly() {
        let ca = CertAuthority::generate("x", "x").unwrap();
        let now = OffsetDateTime::now_utc();
        let unit = |nb, na| {
            issue_leaf(
                &ca,
                LeafKind::Unit {
                    department: "d",
                    unit: "u",
                },
                1,
                nb,
                na,
            )
            .unwrap()
            .cert_der
        };
        let expired = unit(
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        );
        let future = unit(
            now + time::Duration::days(1),
            now + time::Duration::days(10),
        );
        assert_eq!(inspect(&expired, now).unwrap().validity, Validity::Expired);
        assert_eq!(
            inspect(&future, now).unwrap().validity,
            Validity::NotYetValid
        );
        assert!(matches!(
            inspect(b"\x30\x03junk", now),
            Err(PkiError::Parse(_))
        ));
    }

    #[test]
    fn secrets_are_written_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("k.key");
        write_secret(&p, b"secret").unwrap();
        write_secret(&p, b"secret2").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
