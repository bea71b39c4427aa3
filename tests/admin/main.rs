//! `mynakyukyu-admin` end to end on a temp data dir: enrolment, the dev CA signing the CSR,
//! installing the certificate (and refusing wrong ones with the reason), status, the
//! roster, the audit export and verify, wipe.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod enrol;
mod leaflet;

pub use common::{TempDir, pki};
pub use mynakyukyu::domain::Timestamp;
pub use std::io::Write;
pub use std::path::Path;
pub use std::process::{Command, Output, Stdio};

fn admin(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn admin_stdin(data: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn init(data: &Path) {
    let ca = pki().join("ca.pem");
    let o = admin(
        data,
        &[
            "init",
            "--unit-id",
            "UNIT-07",
            "--department",
            "131001",
            "--endpoint",
            "https://10.10.2.1:8443",
            "--server-ca",
            ca.to_str().unwrap(),
            // these tests cover file keys; tests/tpm.rs covers the TPM
            "--allow-file-keys",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

fn sign(csr: &Path, ca_dir: &Path, days: i64, out: &Path) {
    let o = admin(
        csr.parent().unwrap(),
        &[
            "dev-pki",
            "sign",
            csr.to_str().unwrap(),
            "--dir",
            ca_dir.to_str().unwrap(),
            &format!("--days={days}"),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}
