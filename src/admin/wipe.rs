//! Crypto-erase of a tablet (`wipe`): the kiosk stopped through systemd first, the keys
//! destroyed before the files (the TPM's objects, then TPM2_Clear with root's lockout
//! authorisation), every file removed without following a link, and what is left to do.

use super::*;

/// What `wipe` did, and what it could not do.
#[derive(Debug, Default, Serialize)]
pub struct WipeReport {
    /// Keys and files destroyed, in order.
    pub destroyed: Vec<String>,
    /// Problems that make the wipe incomplete or suspicious (a key that was missing, a
    /// symlink refused): the CLI exits non-zero when there are any.
    pub problems: Vec<String>,
    /// What the admin must still do elsewhere.
    pub still_to_do: Vec<String>,
}

/// The app's pid file in the data dir: `wipe` stops a running app before it destroys keys.
pub const APP_PID_FILE: &str = "app.pid";

/// Stop the tablet app that runs on this data dir (SIGTERM, then SIGKILL after 5 s).
fn stop_running_app(data_dir: &Path, report: &mut WipeReport) -> Result<(), AdminError> {
    stop_kiosk_unit(report)?;
    let Ok(text) = std::fs::read_to_string(data_dir.join(APP_PID_FILE)) else {
        return Ok(());
    };
    let Some(pid) = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Ok(());
    };
    let exe = std::fs::read_link(format!("/proc/{}/exe", pid.as_raw_nonzero()))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if !exe.contains("mynakyukyu") {
        return Ok(());
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    // gone, or a zombie waiting for its parent to reap it
    let alive = || {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if alive() {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    report.destroyed.push(format!(
        "stopped the running app (pid {})",
        pid.as_raw_nonzero()
    ));
    Ok(())
}

/// The kiosk unit's name in the package.
pub const KIOSK_UNIT: &str = "mynakyukyu-kiosk.service";

/// On a tablet booted with systemd, stop the kiosk unit through systemd before anything
/// is destroyed: a signal to the app alone would be undone by `Restart=always` mid-wipe.
/// A unit that is active and will not stop (wipe not run as root) refuses the wipe.
/// `MYNAKYUKYU_SYSTEMCTL` names another systemctl (tests on a machine without systemd).
fn stop_kiosk_unit(report: &mut WipeReport) -> Result<(), AdminError> {
    let systemctl = std::env::var_os("MYNAKYUKYU_SYSTEMCTL");
    if systemctl.is_none() && !Path::new("/run/systemd/system").is_dir() {
        return Ok(());
    }
    let systemctl = systemctl.unwrap_or_else(|| "systemctl".into());
    let run = |args: &[&str]| std::process::Command::new(&systemctl).args(args).output();
    match run(&["is-active", "--quiet", KIOSK_UNIT]) {
        Ok(o) if o.status.success() => {}
        _ => return Ok(()),
    }
    match run(&["stop", KIOSK_UNIT]) {
        Ok(o) if o.status.success() => {
            report
                .destroyed
                .push(format!("stopped {KIOSK_UNIT} through systemd"));
            Ok(())
        }
        Ok(o) => Err(AdminError::KioskRunning(
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        )),
        Err(e) => Err(AdminError::KioskRunning(e.to_string())),
    }
}

/// Crypto-erase. Stops a running app; destroys the keys first (the TPM's objects, then the
/// key files: every sealed byte is then unreadable whatever the flash keeps); then removes
/// every file of the device, the training dir and the exports, never following a symlink.
/// A key that should be there and is not is reported, not skipped silently.
pub fn wipe(data_dir: &Path) -> Result<WipeReport, AdminError> {
    let mut report = WipeReport::default();
    stop_running_app(data_dir, &mut report)?;
    let cfg = DeviceConfig::load(data_dir).ok().flatten();
    let serial =
        pki::inspect_pem_file(&data_dir.join(config::UNIT_CERT_FILE)).map(|c| c.serial_hex);
    let enrolled = crate::keys::enrolled_here().ok().flatten();
    let mut unopened = None;
    match DeviceKeys::open(data_dir) {
        Ok(keys) => match keys.destroy() {
            Ok(gone) => report.destroyed.extend(gone),
            Err(e) => report.problems.push(format!("destroying the keys: {e}")),
        },
        Err(e) if cfg.is_some() => unopened = Some(e),
        Err(_) => {}
    }
    // a TPM-enrolled tablet is cleared whatever its data dir holds (a downgraded or
    // half-deleted dir too): a new storage seed, so every blob ever wrapped under the old
    // one, a copy of the data dir taken before this wipe included, can no longer be loaded
    if enrolled.is_some() || cfg.as_ref().map(|c| c.key_protection) == Some(KeyProtection::Tpm) {
        match crate::keys::tpm_boot::TpmTools::new().clear(&crate::keys::tpm_boot::system_dir())
        {
            Ok(what) => report.destroyed.push(what),
            Err(e) => report.problems.push(format!(
                "{e}: a copy of the data dir taken before this wipe could still be opened on this tablet; clear the TPM in the firmware set-up"
            )),
        }
    }
    let tpm_cleared = report.destroyed.iter().any(|d| d.contains("TPM2_Clear"));
    if let Some(e) = unopened
        && !tpm_cleared
    {
        // (keys the TPM no longer opens are gone with its clear: not a problem then)
        report.problems.push(format!(
            "the device keys could not be opened to destroy them: {e}"
        ));
    }
    if cfg.as_ref().map(|c| c.key_protection) == Some(KeyProtection::Tpm)
        && !tpm_cleared
        && !report.destroyed.iter().any(|d| d.contains("TPM objects"))
    {
        report
            .problems
            .push("device.toml says the keys are in the TPM, but no TPM key was destroyed".into());
    }
    // the training store's key (file keys) before its data
    let training = data_dir.join("training");
    match crate::keys::destroy_private(&training.join(config::STORE_KEY_FILE)) {
        Ok(true) => report.destroyed.push("training/store.key".into()),
        Ok(false) => {}
        Err(e) => report.problems.push(e.to_string()),
    }
    for name in [
        config::UNIT_CSR_FILE,
        config::UNIT_CERT_FILE,
        config::UNIT_CHAIN_FILE,
        config::SERVER_CA_FILE,
        config::SERVER_CRL_FILE,
        config::UNIT_CA_FILE,
        config::ROSTER_FILE,
        "roster.failures.json",
        config::CONFIG_FILE,
        APP_PID_FILE,
        // left by keys the TPM would no longer open (destroy() removes them otherwise)
        config::STORE_KEY_FILE,
        crate::keys::MANIFEST_FILE,
    ] {
        match crate::keys::destroy_private(&data_dir.join(name)) {
            Ok(true) => report.destroyed.push(name.to_string()),
            Ok(false) => {}
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    for dir in [
        config::STORE_DIR,
        "training",
        "exports",
        crate::keys::TPM_DIR,
    ] {
        let p = data_dir.join(dir);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => report.problems.push(format!(
                "{}: a symbolic link; removed the link only",
                p.display()
            )),
            Ok(_) => {}
            Err(_) => continue,
        }
        // remove_dir_all removes links it meets, never what they point to
        match std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p)) {
            Ok(()) => report.destroyed.push(format!("{dir}/")),
            Err(e) => report.problems.push(format!("{}: {e}", p.display())),
        }
    }
    if let Some(serial) = serial {
        report.still_to_do.push(format!(
            "revoke the unit certificate (serial {serial}) at the fire-department CA and publish the CRL"
        ));
    } else {
        report
            .still_to_do
            .push("revoke this tablet's unit certificate at the fire-department CA".into());
    }
    if let Some(c) = &cfg {
        report.still_to_do.push(format!(
            "tell the eligibility system's operator that terminal {} of unit {} is retired",
            c.terminal_id, c.unit_id
        ));
    }
    report.still_to_do.push(
        "collect any audit export or bundle taken from this tablet: it names patients' insured numbers"
            .into(),
    );
    Ok(report)
}
