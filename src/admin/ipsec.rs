//! The tablet's side of the IPsec line: the swanctl directory `ipsec-config` lays out, and
//! `ipsec-load`, which hands charon the configuration together with the token PIN the TPM
//! unseals, through a memory file: no PIN on disk, none in a config another process reads.
//!
//! Every value written into strongSwan's configuration (read by a root daemon) is checked
//! against what its field may hold; a value with a newline, a brace or a quote is refused,
//! never escaped into something charon would parse differently.

use super::{AdminError, first_certificate, read, write};
use crate::config::{self, DeviceConfig};
use crate::eligibility::Endpoint;
use crate::keys::{DeviceKeys, KeyProtection};
use std::path::Path;

/// What `ipsec-config` needs besides the device config.
pub struct IpsecOptions<'a> {
    /// The tablet's own addresses for IKE (`%any` on a tablet whose address changes).
    pub local_addrs: &'a str,
    /// The IPsec gateway.
    pub remote_addrs: &'a str,
    /// The gateway's identity, as in its certificate (e.g. `CN=gw.example`).
    pub remote_id: &'a str,
    /// The CA that issued the gateway's certificate; the gateway must chain to it.
    pub gateway_ca: Option<&'a Path>,
}

/// The name strongSwan's pkcs11 plugin knows tpm2-pkcs11 by (`charon.plugins.pkcs11.modules`).
pub const PKCS11_MODULE_NAME: &str = "tpm2";

/// The file name of the gateway CA inside the swanctl directory.
const GATEWAY_CA_NAME: &str = "gateway-ca.pem";

/// A value for strongSwan's settings syntax, or why not.
fn checked<'v>(
    what: &'static str,
    value: &'v str,
    allowed: impl Fn(char) -> bool,
) -> Result<&'v str, AdminError> {
    let refuse = |why| AdminError::UnsafeValue {
        what,
        value: value.to_string(),
        why,
    };
    if value.is_empty() {
        return Err(refuse("it is empty"));
    }
    if value.len() > 256 {
        return Err(refuse("it is longer than 256 bytes"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(refuse(
            "it holds a control character (a newline starts a new setting)",
        ));
    }
    if !value.chars().all(allowed) {
        return Err(refuse(
            "it holds a character its field does not take (quotes, braces, '=', '#' or '\\' would change what charon parses)",
        ));
    }
    Ok(value)
}

/// Addresses and ranges: `192.0.2.1`, `%any`, `2001:db8::1`, `10.0.0.0/8`, comma lists.
fn address_list<'v>(what: &'static str, v: &'v str) -> Result<&'v str, AdminError> {
    checked(what, v, |c| {
        c.is_ascii_alphanumeric() || ".:,%/-_".contains(c)
    })
}

/// An identity inside double quotes: a DN or a name; no quote, backslash or brace.
fn quoted_identity<'v>(what: &'static str, v: &'v str) -> Result<&'v str, AdminError> {
    checked(what, v, |c| !"\"\\{}#".contains(c) && c != '\n')
}

/// A value that only goes into a comment: letters, digits and a little punctuation.
fn comment_word<'v>(what: &'static str, v: &'v str) -> Result<&'v str, AdminError> {
    checked(what, v, |c| c.is_alphanumeric() || " ._-()".contains(c))
}

/// A strongSwan swanctl.conf for this device: IKEv2, certificate authentication with the
/// unit certificate, and traffic selectors that cover only the eligibility endpoint (no
/// other traffic enters the tunnel, and without the tunnel there is no route to it).
/// Paths are relative to a swanctl directory laid out by [`write_ipsec_dir`]. With TPM keys
/// there is no secrets section: `ipsec-load` adds it in memory.
pub fn ipsec_config(data_dir: &Path, o: &IpsecOptions) -> Result<String, AdminError> {
    let cfg = DeviceConfig::load(data_dir)?.ok_or(AdminError::NotInitialised)?;
    let endpoint = Endpoint::parse(&cfg.endpoint)
        .map_err(|_| AdminError::BadEndpoint(cfg.endpoint.clone()))?;
    let ts = match endpoint.host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => format!("{a}/32[tcp/{}]", endpoint.port),
        Ok(std::net::IpAddr::V6(a)) => format!("{a}/128[tcp/{}]", endpoint.port),
        Err(_) => {
            return Err(AdminError::BadEndpoint(format!(
                "{} (the tunnel needs the endpoint as an IP address)",
                cfg.endpoint
            )));
        }
    };
    let unit = comment_word("unit id", &cfg.unit_id)?;
    let dept = comment_word("department", &cfg.department)?;
    let local_addrs = address_list("--local-addrs", o.local_addrs)?;
    let remote_addrs = address_list("--remote-addrs", o.remote_addrs)?;
    let remote_id = quoted_identity("--remote-id", o.remote_id)?;
    let cacerts = if o.gateway_ca.is_some() {
        format!("            cacerts = {GATEWAY_CA_NAME}\n")
    } else {
        String::new()
    };
    // with TPM keys charon signs IKE_AUTH in the TPM too (its pkcs11 plugin, module
    // `tpm2`): the key is named by its CKA_ID, and no key file is laid out
    let keys = DeviceKeys::open(data_dir)?;
    let key_files = match keys.protection() {
        KeyProtection::File => "private/unit.key (a link into the data dir)".to_string(),
        KeyProtection::Tpm => format!(
            "no key file: the unit key stays in the TPM (strongSwan's pkcs11 plugin with a module `{PKCS11_MODULE_NAME}` = tpm2-pkcs11, TPM2_PKCS11_STORE={}/tpm); `mynakyukyu-admin ipsec-load` loads this file with the token's secret, which the TPM unseals",
            data_dir.display()
        ),
    };
    Ok(format!(
        "# Written by mynakyukyu-admin ipsec-config for unit {unit} ({dept}).\n\
# Only the eligibility endpoint is tunnelled; with require_tunnel the app sends nothing\n\
# patient-related unless the route to it is this tunnel (fail closed).\n\
# Files: x509/unit.pem (a link into the data dir, so a renewed certificate is picked up),\n\
# {key_files}, x509ca/{GATEWAY_CA_NAME}.\n\
connections {{\n\
    eligibility {{\n\
        version = 2\n\
        local_addrs = {local_addrs}\n\
        remote_addrs = {remote_addrs}\n\
        proposals = aes256gcm16-prfsha384-ecp384,aes256gcm16-prfsha256-ecp256\n\
        dpd_delay = 10s\n\
        # the gateway assigns the tablet's inner address (its mobile address changes)\n\
        vips = 0.0.0.0\n\
        local {{\n\
            auth = pubkey\n\
            certs = unit.pem\n\
        }}\n\
        remote {{\n\
            auth = pubkey\n\
            id = \"{remote_id}\"\n\
{cacerts}\
        }}\n\
        children {{\n\
            eligibility {{\n\
                remote_ts = {ts}\n\
                esp_proposals = aes256gcm16-ecp384,aes256gcm16-ecp256\n\
                start_action = start\n\
                dpd_action = restart\n\
                close_action = start\n\
            }}\n\
        }}\n\
    }}\n\
}}\n"
    ))
}

/// Lay out a swanctl directory (`SWANCTL_DIR`) for this device in `out`: `swanctl.conf`,
/// the unit certificate and key as links into the data dir, and the gateway CA.
pub fn write_ipsec_dir(data_dir: &Path, o: &IpsecOptions, out: &Path) -> Result<(), AdminError> {
    let conf = ipsec_config(data_dir, o)?;
    let cert = data_dir.join(config::UNIT_CERT_FILE);
    if !cert.is_file() {
        return Err(AdminError::File {
            path: cert,
            message: "no unit certificate installed yet (install-cert first)".into(),
        });
    }
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| AdminError::File {
            path,
            message: e.to_string(),
        }
    };
    for sub in ["x509", "x509ca", "private"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(file_err(&d))?;
    }
    let link = |target: &Path, at: &Path| -> Result<(), AdminError> {
        let target = std::fs::canonicalize(target).map_err(file_err(target))?;
        match std::fs::remove_file(at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(at)(e)),
        }
        std::os::unix::fs::symlink(&target, at).map_err(file_err(at))
    };
    link(&cert, &out.join("x509").join("unit.pem"))?;
    if DeviceKeys::open(data_dir)?.protection() == KeyProtection::File {
        link(
            &data_dir.join(config::UNIT_KEY_FILE),
            &out.join("private").join("unit.key"),
        )?;
    }
    if let Some(ca) = o.gateway_ca {
        first_certificate(ca)?;
        write(&out.join("x509ca").join(GATEWAY_CA_NAME), &read(ca)?)?;
    }
    write(&out.join("swanctl.conf"), conf.as_bytes())
}

/// `ipsec-load`: first the token's secret, which the TPM unseals, in a memory file (memfd)
/// swanctl reads as `/proc/self/fd/N` (`--load-creds`); then the swanctl dir's own
/// connection (`--load-conns`, which loads the certificates it names). With file keys,
/// `--load-all` of the dir alone. `swanctl_args` go to swanctl (e.g. `--uri`).
///
/// Two steps because swanctl reads its credential directories next to the file it is
/// given: the memory file holds only the secrets section.
pub fn load_ipsec(
    data_dir: &Path,
    swanctl_dir: &Path,
    swanctl_args: &[String],
) -> Result<String, AdminError> {
    use std::io::Write;
    let conf_path = swanctl_dir.join("swanctl.conf");
    let conf = String::from_utf8(read(&conf_path)?).map_err(|_| AdminError::File {
        path: conf_path.clone(),
        message: "not UTF-8".into(),
    })?;
    if conf.lines().any(|l| l.trim_start().starts_with("secrets")) {
        return Err(AdminError::File {
            path: conf_path,
            message: "holds a secrets section: the token's secret is never written there (lay the dir out again with ipsec-config)".into(),
        });
    }
    let swanctl = |args: &[&str]| -> Result<String, AdminError> {
        let out = std::process::Command::new("swanctl")
            .args(args)
            .args(swanctl_args)
            .env("SWANCTL_DIR", swanctl_dir)
            .output()
            .map_err(|e| AdminError::Swanctl(format!("cannot run swanctl: {e}")))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(said)
        } else {
            Err(AdminError::Swanctl(said.trim().to_string()))
        }
    };
    let keys = DeviceKeys::open(data_dir)?;
    let mut said = String::new();
    if let Some(pin) = keys.token_secret()? {
        let pin = zeroize::Zeroizing::new(String::from_utf8_lossy(&pin).into_owned());
        if !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AdminError::Swanctl(
                "the unsealed token secret is not hex".into(),
            ));
        }
        let text = zeroize::Zeroizing::new(format!(
            "secrets {{\n    token_unit {{\n        module = {PKCS11_MODULE_NAME}\n        handle = {}\n        pin = {}\n    }}\n}}\n",
            hex::encode(crate::keys::tpm::UNIT_KEY_LABEL),
            pin.as_str()
        ));
        // a memory file without O_CLOEXEC: swanctl inherits it and opens it by number
        let fd = rustix::fs::memfd_create("swanctl-secrets", rustix::fs::MemfdFlags::empty())
            .map_err(|e| AdminError::Swanctl(format!("memfd_create: {e}")))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes())
            .map_err(|e| AdminError::Swanctl(format!("memfd: {e}")))?;
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        said.push_str(&swanctl(&["--load-creds", "--noprompt", "--file", &path])?);
        drop(file);
        if !said.contains("from token") {
            return Err(AdminError::Swanctl(format!(
                "charon did not take the unit key from the TPM token: {}",
                said.trim()
            )));
        }
    }
    // the connection only: `--load-all` would load credentials again from the dir and
    // unload the token key loaded above (the connection loads its own certificates)
    let step: &[&str] = if said.is_empty() {
        &["--load-all", "--noprompt"]
    } else {
        &["--load-conns"]
    };
    said.push_str(&swanctl(step)?);
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_would_start_a_new_setting_is_refused_not_written() {
        type Check = for<'v> fn(&'static str, &'v str) -> Result<&'v str, AdminError>;
        for (f, bad) in [
            (
                address_list as Check,
                "10.0.0.1\n}\nconnections { x { remote_addrs = 6.6.6.6 } }",
            ),
            (address_list, "%any # comment"),
            (quoted_identity, "CN=gw\" \n id = \"evil"),
            (quoted_identity, "CN=gw}"),
            (comment_word, "UNIT-1\nsecrets { }"),
            (comment_word, ""),
        ] {
            let e = f("field", bad).unwrap_err();
            assert!(matches!(e, AdminError::UnsafeValue { .. }), "{bad:?}: {e}");
        }
        assert_eq!(
            address_list("a", "%any,192.0.2.1").unwrap(),
            "%any,192.0.2.1"
        );
        assert_eq!(
            quoted_identity("a", "CN=gw.eligibility.test, O=県").unwrap(),
            "CN=gw.eligibility.test, O=県"
        );
        assert_eq!(
            comment_word("a", "第1救急隊 (A-01)").unwrap(),
            "第1救急隊 (A-01)"
        );
    }
}
