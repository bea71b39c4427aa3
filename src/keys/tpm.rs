//! The TPM 2.0 through PKCS#11: tpm2-pkcs11 (Debian's `libtpm2-pkcs11-1`) loaded with the
//! `cryptoki` crate.
//!
//! Why PKCS#11 and not the TSS (`tss-esapi`): one interface serves the app (rustls signs
//! through it), the admin CLI, strongSwan's `pkcs11` plugin and OpenSC's `pkcs11-tool` as an
//! independent peer; cryptoki loads the module at run time, so the build needs no TSS headers;
//! and the same code works with any PKCS#11 token a department may prefer (a smart-card HSM).
//! tpm2-pkcs11 keeps each object as a blob wrapped by the TPM's storage key in its own
//! SQLite store (`TPM2_PKCS11_STORE`, here `<data>/tpm`): the blobs are useless without that
//! very TPM, and the private halves never leave it (CKA_SENSITIVE, not CKA_EXTRACTABLE).
//!
//! The token is set up by `init` with a random SO PIN that is thrown away (only `wipe` and a
//! new `init` touch the token again) and a random user PIN that is never written in clear:
//! the TPM seals it to the boot state ([`super::tpm_boot`]), so the keys open only on this
//! tablet, booted as it was enrolled.

use super::KeyError;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The token's label in the TPM.
pub const TOKEN_LABEL: &str = "mynakyukyu";
/// The unit's client key (救急隊用電子証明書's key): EC P-256, sign only.
pub const UNIT_KEY_LABEL: &str = "unit";
/// The key that wraps the store key: RSA-2048, OAEP with SHA-256 (tpm2-pkcs11 1.9 has no
/// C_GenerateKey for AES keys, and RSA-OAEP decryption happens inside the TPM just the same).
pub const STORE_WRAP_LABEL: &str = "store-wrap";
/// The key that signs the integrity manifest of the data dir's files: EC P-256.
pub const FILES_KEY_LABEL: &str = "files";
/// Where versions before the PIN was sealed kept it in clear; a token dir with it is
/// refused (re-enrol).
pub const LEGACY_PIN_FILE: &str = "token.pin";
/// The SQLite store tpm2-pkcs11 keeps its wrapped objects in.
pub const STORE_DB: &str = "tpm2_pkcs11.sqlite3";

/// DER of the P-256 curve OID, as CKA_EC_PARAMS wants it.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The PKCS#11 module: `MYNAKYUKYU_PKCS11_MODULE`, else tpm2-pkcs11 where Debian puts it.
pub fn module_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MYNAKYUKYU_PKCS11_MODULE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1",
        "/usr/lib/aarch64-linux-gnu/libtpm2_pkcs11.so.1",
        "/usr/lib/libtpm2_pkcs11.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Whether this machine has a TPM the module can reach: a kernel TPM device, or a TCTI
/// named in the environment (a simulator in tests).
pub fn tpm_present() -> bool {
    if module_path().is_none() {
        return false;
    }
    match std::env::var("TPM2_PKCS11_TCTI")
        .ok()
        .filter(|v| !v.is_empty())
    {
        // a device TCTI (the package's `device:/dev/tpmrm0`) names a node that must exist
        Some(t) => match t.strip_prefix("device:") {
            Some(dev) => Path::new(dev.split(',').next().unwrap_or(dev)).exists(),
            None => true,
        },
        None => Path::new("/dev/tpmrm0").exists(),
    }
}

/// One PKCS#11 context per process: C_Initialize reads `TPM2_PKCS11_STORE` once.
fn context() -> Result<&'static Pkcs11, KeyError> {
    static CTX: OnceLock<Result<Pkcs11, String>> = OnceLock::new();
    CTX.get_or_init(|| {
        let path = module_path().ok_or("no PKCS#11 module for the TPM (libtpm2-pkcs11-1)")?;
        let ctx = Pkcs11::new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| format!("C_Initialize: {e}"))?;
        Ok(ctx)
    })
    .as_ref()
    .map_err(|e| KeyError::Tpm(e.clone()))
}

fn tpm(what: &str) -> impl Fn(cryptoki::error::Error) -> KeyError + '_ {
    move |e| KeyError::Tpm(format!("{what}: {e}"))
}

/// The store dir must be the one tpm2-pkcs11 was initialised with.
fn check_store_env(store_dir: &Path) -> Result<(), KeyError> {
    let env = std::env::var_os("TPM2_PKCS11_STORE").map(PathBuf::from);
    let want = std::fs::canonicalize(store_dir).unwrap_or_else(|_| store_dir.to_path_buf());
    let have = env
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    if have.as_ref() != Some(&want) {
        return Err(KeyError::Tpm(format!(
            "TPM2_PKCS11_STORE must name {} (it is {:?}); the binaries set it from --data-dir",
            store_dir.display(),
            env
        )));
    }
    Ok(())
}

fn random_pin() -> Result<AuthPin, KeyError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(AuthPin::from(hex::encode(b)))
}

/// The tablet's token in the TPM, logged in.
pub struct TpmToken {
    /// One logged-in session; PKCS#11 sessions are not for concurrent use, so signing
    /// takes this lock (a TLS handshake signs once).
    session: Mutex<Session>,
}

impl TpmToken {
    /// Set up a new token in the first free slot and its three keys. `store_dir` must be
    /// empty or missing, and `TPM2_PKCS11_STORE` must name it.
    pub fn create(store_dir: &Path, pcrs: &str) -> Result<TpmToken, KeyError> {
        super::create_private_dir(store_dir)?;
        check_store_env(store_dir)?;
        let ctx = context()?;
        let slots = ctx.get_all_slots().map_err(tpm("slots"))?;
        let mut free = None;
        for s in slots {
            let info = ctx.get_token_info(s).map_err(tpm("token info"))?;
            if info.label() == TOKEN_LABEL {
                return Err(KeyError::Tpm(format!(
                    "a token {TOKEN_LABEL:?} exists already in {}; wipe first",
                    store_dir.display()
                )));
            }
            if !info.token_initialized() && free.is_none() {
                free = Some(s);
            }
        }
        let slot = free.ok_or_else(|| KeyError::Tpm("no free PKCS#11 slot".into()))?;
        let so_pin = random_pin()?;
        ctx.init_token(slot, &so_pin, TOKEN_LABEL)
            .map_err(tpm("C_InitToken"))?;
        // the token now lives in another slot id on some modules: look it up again
        let slot = find_slot(ctx)?;
        let user_pin = random_pin()?;
        {
            let so = ctx.open_rw_session(slot).map_err(tpm("session"))?;
            so.login(UserType::So, Some(&so_pin))
                .map_err(tpm("SO login"))?;
            so.init_pin(&user_pin).map_err(tpm("C_InitPIN"))?;
            so.logout().map_err(tpm("SO logout"))?;
        }
        use secrecy::ExposeSecret;
        super::tpm_boot::TpmTools::new().seal(
            store_dir,
            user_pin.expose_secret().as_bytes(),
            pcrs,
        )?;
        let token = TpmToken::login(ctx, slot, &user_pin)?;
        token.generate()?;
        Ok(token)
    }

    /// Open the token `create` set up.
    pub fn open(store_dir: &Path) -> Result<TpmToken, KeyError> {
        check_store_env(store_dir)?;
        if std::fs::symlink_metadata(store_dir.join(LEGACY_PIN_FILE)).is_ok() {
            return Err(KeyError::Tpm(format!(
                "{LEGACY_PIN_FILE} holds the token PIN in clear (an older enrolment): wipe and enrol again"
            )));
        }
        // the TPM unseals the PIN only in the boot state it was sealed to
        let pin = super::tpm_boot::TpmTools::new().unseal(store_dir)?;
        let pin = AuthPin::from(String::from_utf8_lossy(&pin).into_owned());
        let ctx = context()?;
        let slot = find_slot(ctx)?;
        TpmToken::login(ctx, slot, &pin)
    }

    fn login(ctx: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<TpmToken, KeyError> {
        let session = ctx.open_rw_session(slot).map_err(tpm("session"))?;
        match session.login(UserType::User, Some(pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => {
                return Err(KeyError::Tpm(format!(
                    "this TPM cannot open the tablet's token (the data dir was copied to another machine, or the TPM was cleared by a wipe): {e}"
                )));
            }
        }
        Ok(TpmToken {
            session: Mutex::new(session),
        })
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generate(&self) -> Result<(), KeyError> {
        let s = self.session();
        for label in [UNIT_KEY_LABEL, FILES_KEY_LABEL] {
            let public = [
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(label.as_bytes().to_vec()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(label.as_bytes().to_vec()),
            ];
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
                .map_err(tpm("generate EC key"))?;
        }
        let label = STORE_WRAP_LABEL.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Label(label.clone()),
            Attribute::Id(label.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Label(label.clone()),
            Attribute::Id(label),
        ];
        s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
            .map_err(tpm("generate RSA key"))?;
        Ok(())
    }

    fn find(s: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle, KeyError> {
        s.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(tpm("find object"))?
        .into_iter()
        .next()
        .ok_or_else(|| KeyError::Missing(format!("TPM key {label:?}")))
    }

    /// The uncompressed EC point (04 ‖ X ‖ Y) of one of the EC keys.
    pub fn ec_point(&self, label: &str) -> Result<Vec<u8>, KeyError> {
        let s = self.session();
        let public = Self::find(&s, ObjectClass::PUBLIC_KEY, label)?;
        let attrs = s
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(tpm("EC point"))?;
        let Some(Attribute::EcPoint(der)) = attrs.into_iter().next() else {
            return Err(KeyError::Tpm("the public key has no EC point".into()));
        };
        // CKA_EC_POINT is a DER OCTET STRING around the point
        match der.as_slice() {
            [0x04, len, rest @ ..] if *len as usize == rest.len() && rest.first() == Some(&4) => {
                Ok(rest.to_vec())
            }
            [0x04, rest @ ..] if rest.len() == 65 => Ok(rest.to_vec()),
            _ => Err(KeyError::Tpm("unexpected EC point encoding".into())),
        }
    }

    /// ECDSA P-256 over SHA-256(`msg`), the signature as r ‖ s (64 bytes).
    pub fn sign_p256(&self, label: &str, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(msg);
        let s = self.session();
        let key = Self::find(&s, ObjectClass::PRIVATE_KEY, label)?;
        s.sign(&Mechanism::Ecdsa, key, &digest).map_err(tpm("sign"))
    }

    fn oaep() -> Mechanism<'static> {
        use cryptoki::mechanism::MechanismType;
        use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
        Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        ))
    }

    /// RSA-OAEP (SHA-256) under the store-wrapping key: 256 bytes only the TPM can open.
    pub fn wrap(&self, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let s = self.session();
        let key = Self::find(&s, ObjectClass::PUBLIC_KEY, STORE_WRAP_LABEL)?;
        s.encrypt(&Self::oaep(), key, plain).map_err(tpm("wrap"))
    }

    pub fn unwrap(&self, wrapped: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        let s = self.session();
        let key = Self::find(&s, ObjectClass::PRIVATE_KEY, STORE_WRAP_LABEL)?;
        s.decrypt(&Self::oaep(), key, wrapped)
            .map(zeroize::Zeroizing::new)
            .map_err(tpm("unwrap"))
    }

    /// What the token says about a private or secret key's exportability, for `status` and
    /// the tests: (sensitive, extractable, always sensitive, never extractable).
    pub fn key_flags(&self, label: &str) -> Result<KeyFlags, KeyError> {
        let s = self.session();
        let key = Self::find(&s, ObjectClass::PRIVATE_KEY, label)?;
        let attrs = s
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(tpm("key attributes"))?;
        let mut f = KeyFlags::default();
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => f.sensitive = v,
                Attribute::Extractable(v) => f.extractable = v,
                Attribute::AlwaysSensitive(v) => f.always_sensitive = v,
                Attribute::NeverExtractable(v) => f.never_extractable = v,
                _ => {}
            }
        }
        // and ask for the value itself, as an attacker with the PIN would
        f.value_readable = matches!(
            s.get_attributes(key, &[AttributeType::Value]),
            Ok(v) if v.iter().any(|a| matches!(a, Attribute::Value(b) if !b.is_empty()))
        );
        Ok(f)
    }

    /// Destroy every object of the token (wipe). The blobs in the store dir are useless
    /// after this even if the flash keeps them: the objects are gone from the TPM's view.
    pub fn destroy_all(&self) -> Result<usize, KeyError> {
        let s = self.session();
        let objects = s.find_objects(&[]).map_err(tpm("find objects"))?;
        let n = objects.len();
        for o in objects {
            s.destroy_object(o).map_err(tpm("destroy object"))?;
        }
        Ok(n)
    }
}

/// Exportability of a key, as the token reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyFlags {
    pub sensitive: bool,
    pub extractable: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    /// Whether C_GetAttributeValue(CKA_VALUE) gave any bytes.
    pub value_readable: bool,
}

fn find_slot(ctx: &Pkcs11) -> Result<Slot, KeyError> {
    for s in ctx
        .get_slots_with_initialized_token()
        .map_err(tpm("slots"))?
    {
        if ctx.get_token_info(s).map_err(tpm("token info"))?.label() == TOKEN_LABEL {
            return Ok(s);
        }
    }
    Err(KeyError::Missing(format!(
        "TPM token {TOKEN_LABEL:?} (was this tablet enrolled with its TPM, or wiped?)"
    )))
}

/// A signer for rustls and rcgen over the TPM-held unit key.
#[derive(Clone)]
pub struct TpmSigner {
    pub(super) token: Arc<TpmToken>,
    pub(super) label: &'static str,
    /// Uncompressed point.
    pub(super) point: Vec<u8>,
}
