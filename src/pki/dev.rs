//! The development/training PKI (`mynakyukyu-admin dev-pki --out DIR`).
//!
//! File names are a contract (other tools and scripts rely on them):
//! `ca.pem`/`ca.key` (fire-department CA), `server.pem`/`server.key` (localhost, 127.0.0.1),
//! `server-revoked.*` (a server certificate on the CRL),
//! `unit.pem`/`unit.key`, `unit-expired.*`, `unit-revoked.*`, `crl.pem`, `crl-expired.pem`, `crl-soon.pem`, `other-ca.pem`,
//! `other-unit.*` (a foreign CA and a unit under it), `jpki-ca.pem`/`jpki-ca.key`.

use super::{
    CertAuthority, IssuedCert, LeafKind, PkiError, certificate_pem, issue_leaf, write_public,
    write_secret,
};
use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use std::path::Path;
use time::{Duration, OffsetDateTime};

pub const DEPARTMENT: &str = "131001 東京消防庁（訓練）";
pub const UNIT: &str = "TRAINING-UNIT";
/// Names the simulator's server certificate answers to; the extra address is the
/// simulator's inner address in the IPsec test namespaces.
pub const SERVER_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "::1", "10.10.2.1"];

pub const SERIAL_UNIT: u64 = 0x1001;
pub const SERIAL_UNIT_EXPIRED: u64 = 0x1002;
pub const SERIAL_UNIT_REVOKED: u64 = 0x1003;
pub const SERIAL_SERVER: u64 = 0x2001;
pub const SERIAL_SERVER_REVOKED: u64 = 0x2003;
pub const SERIAL_OTHER_UNIT: u64 = 0x3001;

fn write_leaf(dir: &Path, name: &str, leaf: &IssuedCert) -> Result<(), PkiError> {
    write_public(
        &dir.join(format!("{name}.pem")),
        certificate_pem(&leaf.cert_der).as_bytes(),
    )?;
    write_secret(&dir.join(format!("{name}.key")), leaf.key_pem.as_bytes())
}

fn write_ca(dir: &Path, name: &str, ca: &CertAuthority) -> Result<(), PkiError> {
    write_public(
        &dir.join(format!("{name}.pem")),
        ca.certificate_pem().as_bytes(),
    )?;
    write_secret(&dir.join(format!("{name}.key")), ca.key_pem().as_bytes())
}

/// Create the whole development PKI in `dir` (created if missing; files replaced).
pub fn generate(dir: &Path) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let now = OffsetDateTime::now_utc();
    let ca = CertAuthority::generate(DEPARTMENT, "Fire Department CA (development)")?;
    write_ca(dir, "ca", &ca)?;

    // the simulator's certificate, and one on the CRL that tablets given the CRL refuse
    for (name, serial) in [
        ("server", SERIAL_SERVER),
        ("server-revoked", SERIAL_SERVER_REVOKED),
    ] {
        let leaf = issue_leaf(
            &ca,
            LeafKind::Server {
                names: &SERVER_NAMES,
            },
            serial,
            now - Duration::days(1),
            now + Duration::days(825),
        )?;
        write_leaf(dir, name, &leaf)?;
    }

    let unit_kind = || LeafKind::Unit {
        department: DEPARTMENT,
        unit: UNIT,
    };
    let unit = issue_leaf(
        &ca,
        unit_kind(),
        SERIAL_UNIT,
        now - Duration::days(1),
        now + Duration::days(365),
    )?;
    write_leaf(dir, "unit", &unit)?;
    let expired = issue_leaf(
        &ca,
        unit_kind(),
        SERIAL_UNIT_EXPIRED,
        now - Duration::days(400),
        now - Duration::days(35),
    )?;
    write_leaf(dir, "unit-expired", &expired)?;
    let revoked = issue_leaf(
        &ca,
        unit_kind(),
        SERIAL_UNIT_REVOKED,
        now - Duration::days(1),
        now + Duration::days(365),
    )?;
    write_leaf(dir, "unit-revoked", &revoked)?;

    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(30),
        crl_number: SerialNumber::from(1u64.to_be_bytes().to_vec()),
        issuing_distribution_point: None,
        revoked_certs: [SERIAL_UNIT_REVOKED, SERIAL_SERVER_REVOKED]
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial.to_be_bytes().to_vec()),
                revocation_time: now - Duration::hours(2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .to_vec(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca.issuer())?;
    write_public(&dir.join("crl.pem"), crl.pem()?.as_bytes())?;
    // the same CA's CRL, past its next update: a tablet must not trust it
    let stale = CertificateRevocationListParams {
        this_update: now - Duration::days(40),
        next_update: now - Duration::days(10),
        crl_number: SerialNumber::from(0u64.to_be_bytes().to_vec()),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca.issuer())?;
    write_public(&dir.join("crl-expired.pem"), stale.pem()?.as_bytes())?;
    // and one whose next update is five days away: the warning before the fleet's date
    let soon = CertificateRevocationListParams {
        this_update: now - Duration::days(25),
        next_update: now + Duration::days(5),
        crl_number: SerialNumber::from(2u64.to_be_bytes().to_vec()),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(ca.issuer())?;
    write_public(&dir.join("crl-soon.pem"), soon.pem()?.as_bytes())?;

    let other = CertAuthority::generate("Some Other Authority", "Foreign CA (not trusted)")?;
    write_public(
        &dir.join("other-ca.pem"),
        other.certificate_pem().as_bytes(),
    )?;
    let other_unit = issue_leaf(
        &other,
        unit_kind(),
        SERIAL_OTHER_UNIT,
        now - Duration::days(1),
        now + Duration::days(365),
    )?;
    write_leaf(dir, "other-unit", &other_unit)?;

    let jpki = CertAuthority::generate(
        "Mynakyukyu Training",
        "Test JPKI User Authentication CA (training only)",
    )?;
    write_ca(dir, "jpki-ca", &jpki)?;
    Ok(())
}

/// Whether `dir` already holds a complete development PKI.
/// The development PKI in `dir`, made if it is missing or incomplete. Several drills may
/// start at once on a fresh training dir: each makes its PKI in a directory of its own and
/// renames it into place, so no drill ever reads one CA's certificate beside another
/// CA's CRL; the first rename wins and the others use it.
pub fn ensure(dir: &Path) -> Result<(), PkiError> {
    if is_complete(dir) {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PkiError::Io { path, source }
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pki".into());
    let fresh = dir.with_file_name(format!(".{name}.new-{}-{stamp}", std::process::id()));
    generate(&fresh)?;
    if dir.exists() && !is_complete(dir) {
        // one an older version made: set aside (another drill may have done so already)
        let aside = dir.with_file_name(format!(".{name}.old-{}-{stamp}", std::process::id()));
        if std::fs::rename(dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    match std::fs::rename(&fresh, dir) {
        Ok(()) => Ok(()),
        Err(_) if is_complete(dir) => {
            let _ = std::fs::remove_dir_all(&fresh);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            Err(io(dir)(e))
        }
    }
}

pub fn is_complete(dir: &Path) -> bool {
    [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "server-revoked.pem",
        "unit.pem",
        "unit.key",
        "unit-expired.pem",
        "unit-expired.key",
        "unit-revoked.pem",
        "unit-revoked.key",
        "crl.pem",
        "crl-expired.pem",
        "crl-soon.pem",
        "other-ca.pem",
        "other-unit.pem",
        "other-unit.key",
        "jpki-ca.pem",
        "jpki-ca.key",
    ]
    .iter()
    .all(|f| dir.join(f).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Validity, inspect, is_signed_by, pem_certificates, read_text};

    #[test]
    fn dev_pki_has_every_file_with_the_promised_properties() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        generate(&dir).unwrap();
        assert!(is_complete(&dir));
        let der = |name: &str| {
            pem_certificates(&read_text(&dir.join(name)).unwrap())
                .pop()
                .unwrap()
        };
        let ca = der("ca.pem");
        let now = OffsetDateTime::now_utc();
        for name in [
            "server.pem",
            "unit.pem",
            "unit-expired.pem",
            "unit-revoked.pem",
        ] {
            assert!(is_signed_by(&der(name), &ca), "{name}");
        }
        assert!(!is_signed_by(&der("other-unit.pem"), &ca));
        assert!(is_signed_by(&der("other-unit.pem"), &der("other-ca.pem")));
        assert_eq!(
            inspect(&der("unit-expired.pem"), now).unwrap().validity,
            Validity::Expired
        );
        assert_eq!(
            inspect(&der("unit.pem"), now).unwrap().validity,
            Validity::Valid
        );
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key", "unit.key", "jpki-ca.key"] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} readable by others");
        }
        assert!(
            read_text(&dir.join("crl.pem"))
                .unwrap()
                .contains("BEGIN X509 CRL")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
