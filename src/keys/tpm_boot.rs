//! What binds the token to this tablet's boot and keeps its enrolment: the TPM's own
//! commands, run as tpm2-tools processes (Debian's `tpm2-tools`, a dependency of the
//! package).
//!
//! Why tpm2-tools and not `tss-esapi` or `systemd-creds`: PKCS#11 has no PCR policy, so
//! something must speak TPM2 itself; tss-esapi would add the TSS headers and bindgen to every
//! build for five commands; systemd-creds (252) reaches only a kernel TPM device, not the
//! swtpm the tests run, and mixes in a host key the kiosk user could not read. tpm2-tools
//! takes the same TCTI string as tpm2-pkcs11, and each secret goes in by stdin or by a file
//! name, never on a command line other users can list.
//!
//! Three things live here:
//! - **The token PIN, sealed to the boot state.** At `init` the PIN is sealed under the
//!   storage root key tpm2-pkcs11 made persistent ([`SRK_HANDLE`]) with a policy of
//!   PCRs ([`DEFAULT_PCRS`]: firmware, option ROMs, boot loader, Secure Boot state). Only
//!   the sealed blob is on disk. A tablet booted from anything else has other PCR values:
//!   the TPM refuses to unseal, and the keys stay shut.
//! - **The enrolment, in an NV index** ([`ENROLMENT_NV_INDEX`]): the SHA-256 of the files
//!   key's public point, written once and write-locked. Deleting it takes the owner
//!   hierarchy's authorisation, which `init` run as root (or `tpm-own` after an `init` as
//!   the kiosk user) sets to a random value only root can read ([`HIERARCHY_AUTH_FILE`]);
//!   the lockout hierarchy gets the same, so only the admin can clear the TPM. A tablet with this index opens TPM keys whose files key matches it, or
//!   nothing: no file keys, no training mode.
//! - **Clearing the TPM** at `wipe`, with that authorisation.

use super::KeyError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

/// The storage root key tpm2-pkcs11 makes persistent at the TCG's SRK handle when it
/// creates its first token; the sealed PIN is its child (no owner authorisation needed to
/// load it, so the kiosk user can unseal after the owner hierarchy has a password).
pub const SRK_HANDLE: &str = "0x81000001";
/// PCRs the PIN is sealed to: 0 firmware, 2 option ROMs, 4 boot loader, 7 Secure Boot
/// policy and the authorities that verified the boot chain. Not 8/9 (kernel and its
/// command line): those change with every kernel update.
pub const DEFAULT_PCRS: &str = "sha256:0,2,4,7";
/// The enrolment record's NV index (owner range).
pub const ENROLMENT_NV_INDEX: &str = "0x01800a17";
/// The sealed PIN's public and private halves and its PCR selection, in the token dir.
pub const SEALED_PUB: &str = "token.pin.pub";
pub const SEALED_PRIV: &str = "token.pin.priv";
pub const SEALED_PCRS: &str = "token.pcrs";
/// The owner and lockout authorisation, root's only, in the system dir.
pub const HIERARCHY_AUTH_FILE: &str = "tpm-hierarchy.auth";

/// The root-owned configuration dir (`/etc/mynakyukyu`; `MYNAKYUKYU_SYSTEM_DIR` in tests):
/// the kiosk user can read it but not write it.
pub fn system_dir() -> PathBuf {
    std::env::var_os("MYNAKYUKYU_SYSTEM_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/mynakyukyu"))
}

/// A TPM command failed; `policy` when the TPM refused a PCR policy (another boot state).
#[derive(Debug)]
struct ToolFailure {
    text: String,
    policy: bool,
}

/// tpm2-tools on the TPM the PKCS#11 module uses.
pub struct TpmTools {
    tcti: Option<String>,
}

impl Default for TpmTools {
    fn default() -> Self {
        Self::new()
    }
}

impl TpmTools {
    pub fn new() -> TpmTools {
        TpmTools {
            tcti: std::env::var("TPM2_PKCS11_TCTI")
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }

    fn run(
        &self,
        tool: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, ToolFailure> {
        let mut c = Command::new(tool);
        if let Some(t) = &self.tcti {
            c.args(["-T", t]);
        }
        c.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("TSS2_LOG", "all+none");
        let mut child = c.spawn().map_err(|e| ToolFailure {
            text: format!("cannot run {tool} (apt-get install tpm2-tools): {e}"),
            policy: false,
        })?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(bytes);
        }
        let out = child.wait_with_output().map_err(|e| ToolFailure {
            text: format!("{tool}: {e}"),
            policy: false,
        })?;
        let stdout = Zeroizing::new(out.stdout);
        if out.status.success() {
            return Ok(stdout);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(ToolFailure {
            // a PCR policy that does not match: TPM_RC_POLICY_FAIL (0x99d) or a PCR value
            // mismatch at the policy check (TPM_RC_VALUE on the policy session)
            policy: err.contains("0x99D")
                || err.contains("0x99d")
                || err.contains("policy check failed"),
            text: format!(
                "{tool}: {}",
                err.lines()
                    .filter(|l| l.starts_with("ERROR"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    fn tool_err(f: ToolFailure) -> KeyError {
        if f.policy {
            KeyError::BootStateChanged
        } else {
            KeyError::Tpm(f.text)
        }
    }

    /// Seal `secret` under the SRK to the current values of `pcrs` (e.g. `sha256:0,7`);
    /// writes only the sealed halves and the selection into `dir`.
    pub fn seal(&self, dir: &Path, secret: &[u8], pcrs: &str) -> Result<(), KeyError> {
        let work = WorkDir::new(dir)?;
        let policy = work.path("policy");
        self.run(
            "tpm2_createpolicy",
            &["--policy-pcr", "-l", pcrs, "-L", &policy],
            None,
        )
        .map_err(Self::tool_err)?;
        // written in the scratch dir first (tpm2-tools makes its files 0660), then moved in
        // as our own 0600 files
        let (public, private) = (work.path("sealed.pub"), work.path("sealed.priv"));
        // no userwithauth: the policy is the only way in
        self.run(
            "tpm2_create",
            &[
                "-C",
                SRK_HANDLE,
                "-L",
                &policy,
                "-a",
                "fixedtpm|fixedparent|noda",
                "-i",
                "-",
                "-u",
                &public,
                "-r",
                &private,
            ],
            Some(secret),
        )
        .map_err(Self::tool_err)?;
        for (from, to) in [(&public, SEALED_PUB), (&private, SEALED_PRIV)] {
            let bytes = std::fs::read(from).map_err(|e| KeyError::File {
                path: PathBuf::from(from),
                reason: e.to_string(),
            })?;
            super::write_private(&dir.join(to), &bytes)?;
        }
        super::write_private(&dir.join(SEALED_PCRS), pcrs.as_bytes())
    }

    /// Unseal what [`TpmTools::seal`] sealed in `dir`: the TPM checks the PCRs.
    pub fn unseal(&self, dir: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let pcrs = super::read_private(&dir.join(SEALED_PCRS))?;
        let pcrs = String::from_utf8_lossy(&pcrs).trim().to_string();
        if !pcrs
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b':')
        {
            return Err(KeyError::Tpm(format!("{SEALED_PCRS}: not a PCR selection")));
        }
        for f in [SEALED_PUB, SEALED_PRIV] {
            // the halves are not secret (only this TPM can load them) but must be files
            // of ours, not links
            super::read_private(&dir.join(f))?;
        }
        let work = WorkDir::new(dir)?;
        let ctx = work.path("sealed.ctx");
        self.run(
            "tpm2_load",
            &[
                "-C",
                SRK_HANDLE,
                "-u",
                &dir.join(SEALED_PUB).to_string_lossy(),
                "-r",
                &dir.join(SEALED_PRIV).to_string_lossy(),
                "-c",
                &ctx,
            ],
            None,
        )
        .map_err(Self::tool_err)?;
        self.run(
            "tpm2_unseal",
            &["-c", &ctx, "-p", &format!("pcr:{pcrs}")],
            None,
        )
        .map_err(Self::tool_err)
    }

    /// The enrolment record, if this TPM has one.
    pub fn enrolment(&self) -> Result<Option<[u8; 32]>, KeyError> {
        match self.run(
            "tpm2_nvread",
            &[ENROLMENT_NV_INDEX, "-C", ENROLMENT_NV_INDEX, "-s", "32"],
            None,
        ) {
            Ok(b) if b.len() == 32 => {
                let mut d = [0u8; 32];
                d.copy_from_slice(&b);
                Ok(Some(d))
            }
            Ok(b) => Err(KeyError::Tpm(format!(
                "enrolment NV index {ENROLMENT_NV_INDEX}: {} bytes, expected 32",
                b.len()
            ))),
            // an index that is not defined: TPM_RC_HANDLE on parameter 1
            Err(f) if f.text.contains("0x18B") || f.text.contains("0x18b") => Ok(None),
            Err(f) => Err(KeyError::Tpm(f.text)),
        }
    }

    /// `init`: record the enrolment in the TPM's NV, written once and write-locked (any
    /// user with the TPM device can do this while the owner hierarchy has no password).
    pub fn record_enrolment(&self, digest: &[u8; 32]) -> Result<(), KeyError> {
        let refuse = |f: ToolFailure| {
            KeyError::Tpm(format!(
                "{} (if the owner hierarchy has a password from an earlier system, clear the TPM in the firmware set-up first)",
                f.text
            ))
        };
        self.run(
            "tpm2_nvdefine",
            &[
                ENROLMENT_NV_INDEX,
                "-C",
                "o",
                "-s",
                "32",
                "-a",
                "ownerwrite|ownerread|authread|writedefine|no_da",
            ],
            None,
        )
        .map_err(refuse)?;
        self.run(
            "tpm2_nvwrite",
            &[ENROLMENT_NV_INDEX, "-C", "o", "-i", "-"],
            Some(digest),
        )
        .map_err(refuse)?;
        self.run("tpm2_nvwritelock", &[ENROLMENT_NV_INDEX, "-C", "o"], None)
            .map_err(refuse)?;
        Ok(())
    }

    /// `init` as root, or `tpm-own`: give the owner and lockout hierarchies a random
    /// authorisation kept 0600 in `auth_dir` (root's), so that no other user can delete the
    /// enrolment record, evict the SRK or clear the TPM.
    pub fn take_ownership(&self, auth_dir: &Path) -> Result<(), KeyError> {
        let auth_file = auth_dir.join(HIERARCHY_AUTH_FILE);
        if std::fs::symlink_metadata(&auth_file).is_ok() {
            return Err(KeyError::Tpm(format!(
                "{} exists: this TPM's hierarchies are owned already",
                auth_file.display()
            )));
        }
        // 16 random bytes as 32 hex characters: a hierarchy's authorisation may not be
        // longer than its name algorithm's digest (SHA-256: 32 bytes)
        let mut secret = Zeroizing::new([0u8; 16]);
        getrandom::fill(secret.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        let hex = Zeroizing::new(hex::encode(secret.as_ref()));
        std::fs::create_dir_all(auth_dir).map_err(|e| KeyError::File {
            path: auth_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        super::write_private(&auth_file, hex.as_bytes())?;
        let new = format!("file:{}", auth_file.display());
        for h in ["o", "l"] {
            if let Err(f) = self.run("tpm2_changeauth", &["-c", h, &new], None) {
                // the owner's may be set already: then the file is not the authorisation
                let _ = super::destroy_private(&auth_file);
                return Err(KeyError::Tpm(format!(
                    "{} (a hierarchy has a password from an earlier system: clear the TPM in the firmware set-up, then enrol again)",
                    f.text
                )));
            }
        }
        Ok(())
    }

    /// `wipe`: TPM2_Clear with the lockout authorisation `enrol` set (platform first, as
    /// a test TPM without firmware allows): a new storage seed, the NV index gone, the
    /// hierarchies' authorisations empty again.
    pub fn clear(&self, auth_dir: &Path) -> Result<String, KeyError> {
        let auth_file = auth_dir.join(HIERARCHY_AUTH_FILE);
        let mut last = String::new();
        let lockout = auth_file
            .is_file()
            .then(|| format!("file:{}", auth_file.display()));
        let attempts: Vec<(&str, Vec<&str>)> = match &lockout {
            Some(a) => vec![("lockout", vec!["-c", "l", a])],
            None => vec![("platform", vec!["-c", "p"]), ("lockout", vec!["-c", "l"])],
        };
        for (name, args) in attempts {
            match self.run("tpm2_clear", &args, None) {
                Ok(_) => {
                    if lockout.is_some() {
                        super::destroy_private(&auth_file)?;
                    }
                    return Ok(format!("the TPM (TPM2_Clear, {name} hierarchy)"));
                }
                Err(f) => last = f.text,
            }
        }
        Err(KeyError::Tpm(format!("TPM2_Clear refused: {last}")))
    }
}

/// A private scratch dir inside the token dir for the tools' policy and context files,
/// removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(parent: &Path) -> Result<WorkDir, KeyError> {
        let mut n = [0u8; 8];
        getrandom::fill(&mut n).map_err(|e| KeyError::Random(e.to_string()))?;
        let d = parent.join(format!(".work-{}", hex::encode(n)));
        super::create_private_dir(&d)?;
        Ok(WorkDir(d))
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
