//! What the integration tests and the benches share (benches include this file): temp
//! dirs, a dev PKI, a simulator in process or as a child, clients with a chosen unit
//! certificate, pcscd with the vpcd readers, children killed by PID.
#![allow(dead_code)]

pub mod chromium;
pub mod postgres;
pub mod tpm;

use mynakyukyu::domain::{
    AuditAction, AuditEntry, IdentityMethod, IncidentId, OperatorId, RecordBody, TerminalId,
    Timestamp, UnitId,
};
use mynakyukyu::eligibility::client::tls_config;
use mynakyukyu::eligibility::{ClientSettings, EligibilityClient, Endpoint, UnitIdentity};
use mynakyukyu::sim::Faults;
use mynakyukyu::sim::server::{ServeOptions, SimServer};
use std::path::Path;
use std::sync::OnceLock;

/// A test's own directory, removed when dropped (the `tempfile` crate's, named after the
/// test so a leftover one says whose it is).
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("mynakyukyu-{tag}-"))
                .tempdir()
                .expect("a temporary directory"),
        )
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// One development PKI per test process (generation costs a few ms, but keep it simple).
pub fn pki() -> &'static Path {
    static PKI: OnceLock<TempDir> = OnceLock::new();
    PKI.get_or_init(|| {
        let d = TempDir::new("pki");
        mynakyukyu::pki::dev::generate(d.path()).unwrap();
        d
    })
    .path()
}

/// The simulator in this process on a free loopback port, with the shared dev PKI.
pub async fn start_sim(faults: Faults) -> SimServer {
    start_sim_in(pki(), faults).await
}

/// The simulator in this process on a free loopback port, with the dev PKI in `pki_dir`.
pub async fn start_sim_in(pki_dir: &Path, faults: Faults) -> SimServer {
    SimServer::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        pki_dir: pki_dir.to_path_buf(),
        faults,
        audit_log: None,
        today: time::OffsetDateTime::now_utc().date(),
    })
    .await
    .expect("simulator start")
}

/// A client presenting `unit` (e.g. "unit", "unit-expired") and pinning `server_ca`.
pub fn client_with(
    port: u16,
    host: &str,
    unit: &str,
    server_ca: &str,
    settings: ClientSettings,
) -> EligibilityClient {
    client_in(pki(), port, host, unit, server_ca, settings)
}

/// `client_with` for the dev PKI in `dir`.
pub fn client_in(
    dir: &Path,
    port: u16,
    host: &str,
    unit: &str,
    server_ca: &str,
    settings: ClientSettings,
) -> EligibilityClient {
    let identity = UnitIdentity::from_files(
        &dir.join(format!("{unit}.pem")),
        &dir.join(format!("{unit}.key")),
        &dir.join(server_ca),
    )
    .expect("dev PKI unit certificate");
    EligibilityClient::new(
        Endpoint {
            host: host.to_string(),
            port,
        },
        tls_config(identity).expect("TLS config"),
        settings,
    )
    .expect("client")
}

pub fn client(port: u16) -> EligibilityClient {
    client_with(port, "localhost", "unit", "ca.pem", fast_settings())
}

/// Short timeouts and backoff so failure tests finish quickly.
pub fn fast_settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: std::time::Duration::from_secs(2),
        request_timeout: std::time::Duration::from_secs(2),
        retries: 2,
        backoff_base: std::time::Duration::from_millis(10),
        max_response_bytes: 1024 * 1024,
        total_deadline: std::time::Duration::from_secs(20),
    }
}

/// An audit record without patient data (an opt-out answer), for store and upload tests.
pub fn opt_out_audit(incident: &str, at: i64) -> RecordBody {
    RecordBody::Audit(AuditEntry {
        at: Timestamp(at),
        incident: IncidentId::new(incident),
        operator: OperatorId::new("EMT-1"),
        unit: UnitId::new("U-1"),
        terminal: TerminalId::new("T-1"),
        patient: None,
        consent: None,
        identity_method: IdentityMethod::MynaCard,
        identity_check: None,
        token: None,
        card: None,
        action: AuditAction::QualificationOptOut,
    })
}

/// One row of docs/RELIABILITY.md. The test script's reliability stage sets
/// `MYNA_RELIABILITY_OUT` and renders the rows; without it this does nothing. Call it after
/// the test's assertions, so that a row means the test ran and held.
pub fn reliability_row(id: &str, area: &str, what: &str, times: usize, lost: usize, result: &str) {
    let Some(path) = std::env::var_os("MYNA_RELIABILITY_OUT") else {
        return;
    };
    let row = serde_json::json!({
        "id": id, "area": area, "what": what, "times": times, "lost": lost, "result": result,
        "test": std::thread::current().name().unwrap_or("?"),
    });
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("reliability rows file");
    writeln!(f, "{row}").expect("reliability row");
}

/// The simulator binary as a child process on a free loopback port, killed when dropped.
pub struct SimProcess {
    child: Killed,
    pub addr: std::net::SocketAddr,
    pub port: u16,
}

impl SimProcess {
    /// With the shared dev PKI and the default limits.
    pub fn start() -> SimProcess {
        SimProcess::start_with(pki(), &[])
    }

    /// With the dev PKI in `pki_dir` and more `serve` arguments.
    pub fn start_with(pki_dir: &Path, args: &[&str]) -> SimProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mynakyukyu-sim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--pki"])
            .arg(pki_dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mynakyukyu-sim");
        let stdout = child.stdout.take().expect("stdout");
        let child = Killed(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the listening line");
        let addr: std::net::SocketAddr = line
            .trim()
            .rsplit('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        SimProcess {
            child,
            port: addr.port(),
            addr,
        }
    }

    /// The simulator's process id (a bench reads its memory).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// A child process stopped by PID when dropped: SIGTERM first (Xvfb then removes its lock
/// and socket, pcscd its socket), SIGKILL if it lingers, and reaped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The vpcd driver's readers that pcscd serves now.
pub fn vpcd_readers() -> Vec<String> {
    mynakyukyu::card::pcsc_reader::Pcsc::establish()
        .and_then(|p| p.readers())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.starts_with("Virtual PCD"))
        .collect()
}

/// pcscd serving (at least) `readers` vpcd readers: the one already running (None), or one
/// started here and stopped by PID when the guard drops.
pub fn pcscd(readers: usize) -> Option<Killed> {
    if vpcd_readers().len() >= readers {
        return None;
    }
    let child = std::process::Command::new("pcscd")
        .arg("--foreground")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pcscd (scripts/setup installs it)");
    let guard = Killed(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while vpcd_readers().len() < readers {
        assert!(
            std::time::Instant::now() < deadline,
            "pcscd did not show the vpcd readers"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Some(guard)
}

/// `mynakyukyu-admin --data-dir DATA ARGS…`, its environment set by `env` (a TPM or none).
pub fn admin_with(
    data: &Path,
    args: &[&str],
    env: &dyn Fn(&mut std::process::Command),
) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"));
    env(&mut c);
    c.arg("--data-dir").arg(data).args(args).output().unwrap()
}

/// Stdout and stderr of a command, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Enrol a tablet as an admin does: `init` (with `init_extra`), the dev CA signs the CSR
/// (the certificate beside the data dir), `install-cert`.
pub fn enrol(
    data: &Path,
    endpoint: &str,
    init_extra: &[&str],
    env: &dyn Fn(&mut std::process::Command),
) {
    let ca = pki().join("ca.pem");
    let mut init = vec![
        "init",
        "--unit-id",
        "UNIT-T",
        "--department",
        "131001",
        "--endpoint",
        endpoint,
        "--server-ca",
        ca.to_str().unwrap(),
    ];
    init.extend_from_slice(init_extra);
    let cert = data.with_extension("pem");
    let csr = data.join("unit.csr");
    let steps: [Vec<&str>; 3] = [
        init,
        vec![
            "dev-pki",
            "sign",
            csr.to_str().unwrap(),
            "--dir",
            pki().to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
        ],
        vec!["install-cert", cert.to_str().unwrap()],
    ];
    for args in &steps {
        let o = admin_with(data, args, env);
        assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    }
}

/// `mynakyukyu-admin audit export --format json` of a data dir, as an admin reads it.
pub fn audit_export_json(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["audit", "export", "--format", "json"])
        .output()
        .expect("mynakyukyu-admin runs");
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).expect("the export is JSON")
}

/// No TPM reachable: the admin CLI falls back to what `--allow-file-keys` allows.
pub fn no_tpm(c: &mut std::process::Command) {
    c.env_remove("TPM2_PKCS11_TCTI");
}

/// The runtime the app uses: two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Records as the uploader sends them: each with its chain link, signed by `client`'s key.
pub fn chained(
    client: &EligibilityClient,
    stored: &[mynakyukyu::store::StoredRecord],
) -> Vec<mynakyukyu::domain::ChainedRecord> {
    stored
        .iter()
        .map(|s| mynakyukyu::domain::ChainedRecord {
            seq: s.seq,
            prev_hash: s.prev_hash.clone(),
            hash: s.hash.clone(),
            record: s.record.clone(),
            signature: client.sign_chain_link(s.seq, &s.hash).unwrap(),
        })
        .collect()
}

/// A hand-made chain of `n` records from `start` (what a store would append); `tag` makes
/// the records differ from another chain's at the same places.
pub fn chain_of(
    client: &EligibilityClient,
    start: u64,
    prev: &str,
    n: usize,
    tag: &str,
) -> Vec<mynakyukyu::domain::ChainedRecord> {
    let mut prev = prev.to_string();
    let mut out = vec![];
    for i in 0..n as u64 {
        let seq = start + i;
        let record = mynakyukyu::domain::Record {
            id: format!("R-{tag}-{seq}"),
            body: opt_out_audit("I-chain", seq as i64),
        };
        let hash = mynakyukyu::domain::chain_hash(&prev, seq, &record);
        out.push(mynakyukyu::domain::ChainedRecord {
            seq,
            prev_hash: prev.clone(),
            hash: hash.clone(),
            signature: client.sign_chain_link(seq, &hash).unwrap(),
            record,
        });
        prev = hash;
    }
    out
}

/// `cp -a`: a copy of a data dir as a thief (or a restore) would take it.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
}

/// Every file under `dir` (what a thief who copies the data dir holds).
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
