//! Hub administration behind `mynakyukyu-hub`'s subcommands: hospitals, staff (a password
//! hash and a TOTP secret sealed under the master key, shown once as a QR code and an
//! otpauth URI), the fire-department CAs whose unit certificates the tablet face accepts,
//! and a status line for the operator.

use super::seal::SealKey;
use super::store::{Hospital, HubStore};
use super::{HubError, totp};
use crate::handoff::HospitalCode;

/// An Argon2id hash (PHC string) of `password`.
pub fn hash_password(password: &str) -> Result<String, HubError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HubError::Admin(e.to_string()))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| HubError::Admin(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HubError::Admin(e.to_string()))
}

/// Shortest staff password (they are typed on a wall screen's keyboard; the TOTP is the
/// second factor).
pub const MIN_PASSWORD_CHARS: usize = 10;

fn code_ok(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 32
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub async fn add_hospital(
    store: &HubStore,
    code: &str,
    name: &str,
    departments: &[String],
) -> Result<(), HubError> {
    if !code_ok(code) {
        return Err(HubError::Admin(format!(
            "hospital code {code:?}: 1 to 32 letters, digits or '-'"
        )));
    }
    if name.trim().is_empty() {
        return Err(HubError::Admin("the hospital needs a name".into()));
    }
    store
        .add_hospital(&Hospital {
            code: HospitalCode(code.to_string()),
            name: name.trim().to_string(),
            departments: departments.to_vec(),
        })
        .await
}

/// What an admin hands to a new staff member (once: the hub keeps only the sealed secret).
pub struct Enrolment {
    pub secret_base32: String,
    pub uri: String,
    pub qr: Option<String>,
}

pub async fn add_staff(
    store: &HubStore,
    master: &SealKey,
    hospital: &str,
    login: &str,
    name: &str,
    password: &str,
) -> Result<Enrolment, HubError> {
    if !code_ok(login) {
        return Err(HubError::Admin(format!(
            "login {login:?}: 1 to 32 letters, digits or '-'"
        )));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(HubError::Admin(format!(
            "the password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let secret = totp::new_secret();
    let sealed = master.seal(format!("totp:{login}").as_bytes(), &secret);
    store
        .add_staff(
            &HospitalCode(hospital.to_string()),
            login,
            name,
            &hash_password(password)?,
            &sealed,
        )
        .await?;
    let uri = totp::otpauth_uri("Mynakyukyu hub", login, &secret);
    Ok(Enrolment {
        secret_base32: totp::base32(&secret),
        qr: totp::qr_terminal(&uri),
        uri,
    })
}

/// Trust a fire-department CA (a PEM file with one or more CA certificates).
pub async fn trust_ca(store: &HubStore, pem: &str) -> Result<Vec<String>, HubError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut names = vec![];
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| HubError::Admin(format!("not a PEM certificate: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| HubError::Admin(format!("not an X.509 certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(HubError::Admin(format!(
                "{} is not a CA certificate",
                cert.subject()
            )));
        }
        let fingerprint = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(der.as_ref()))
        };
        store
            .trust_ca(
                &fingerprint,
                &crate::pki::certificate_pem(der.as_ref()),
                super::now_ms(),
            )
            .await?;
        names.push(cert.subject().to_string());
    }
    if names.is_empty() {
        return Err(HubError::Admin("no certificate in that file".into()));
    }
    Ok(names)
}

/// One line per fact, for `mynakyukyu-hub status`.
pub async fn status(store: &HubStore) -> Result<String, HubError> {
    let hospitals = store.hospitals().await?;
    let stats = store.stats().await?;
    let mut out = format!(
        "hospitals: {}\nstaff: {}\ntrusted CAs: {}\nopen cases: {}\nended cases counted: {}\n",
        hospitals.len(),
        store.staff_count().await?,
        store.trusted_cas().await?.len(),
        store.open_case_count().await?,
        stats.len()
    );
    for h in hospitals {
        out.push_str(&format!(
            "  {} {} [{}]\n",
            h.code.0,
            h.name,
            h.departments.join(", ")
        ));
    }
    Ok(out)
}

/// The training world's hospitals (codes start with `TRAIN-`). Their names are those the
/// simulator's patients visited, so that a drill after a viewing shows かかりつけ.
pub const TRAINING_HOSPITALS: [(&str, &str, &[&str]); 4] = [
    (
        "TRAIN-1",
        "みなと循環器病院",
        &["救急科", "循環器内科", "脳神経外科"],
    ),
    ("TRAIN-2", "市民病院", &["救急科", "外科"]),
    ("TRAIN-3", "みなと中央病院", &["救命救急センター"]),
    (
        "TRAIN-4",
        "東都大学医学部附属病院",
        &["救急科", "脳神経外科"],
    ),
];

/// The training staff's shared password (training only: the hospitals are not real).
pub const TRAINING_PASSWORD: &str = "training-only-0000";

/// Adds the training hospitals and one staff member each (`er-train-1` …) when missing;
/// returns lines for the trainer (logins, the password, each new TOTP secret).
pub async fn seed_training(store: &HubStore, master: &SealKey) -> Result<Vec<String>, HubError> {
    let mut lines = vec![];
    for (i, (code, name, departments)) in TRAINING_HOSPITALS.iter().enumerate() {
        let departments: Vec<String> = departments.iter().map(|d| d.to_string()).collect();
        add_hospital(store, code, name, &departments).await?;
        let login = format!("er-train-{}", i + 1);
        if store.staff_by_login(&login).await?.is_some() {
            lines.push(format!("training staff {login} ({code}) exists"));
            continue;
        }
        let e = add_staff(
            store,
            master,
            code,
            &login,
            &format!("{name} 当直"),
            TRAINING_PASSWORD,
        )
        .await?;
        lines.push(format!(
            "training staff {login} ({code}): password {TRAINING_PASSWORD}, TOTP secret {}",
            e.secret_base32
        ));
    }
    Ok(lines)
}
