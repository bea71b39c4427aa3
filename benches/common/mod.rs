//! What the benchmarks share: where fragments go, and quantiles.
#![allow(dead_code)]

use mynakyukyu::eligibility::client::tls_config;
use mynakyukyu::eligibility::wire::Faults;
use mynakyukyu::eligibility::{ClientSettings, EligibilityClient, Endpoint, UnitIdentity};
use mynakyukyu::sim::server::{ServeOptions, SimServer};
use std::path::{Path, PathBuf};

/// `cargo bench -- --list` (and cargo's own probing) must not run the benchmark.
pub fn listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// Where the Markdown fragment goes: `$BENCH_OUT`, else `target/bench`.
pub fn out_dir() -> PathBuf {
    let dir = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&dir).expect("bench output dir");
    dir
}

/// The `p` quantile (nearest rank) of `v`; NaN for no samples.
pub fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A client presenting the dev PKI's valid unit certificate to `localhost:port`.
pub fn client(pki: &Path, port: u16) -> EligibilityClient {
    let identity = UnitIdentity::from_files(
        &pki.join("unit.pem"),
        &pki.join("unit.key"),
        &pki.join("ca.pem"),
    )
    .expect("dev PKI unit certificate");
    EligibilityClient::new(
        Endpoint {
            host: "localhost".into(),
            port,
        },
        tls_config(identity).expect("TLS config"),
        ClientSettings::default(),
    )
    .expect("client")
}

/// The simulator on a free loopback port with the dev PKI in `pki`, no faults.
pub async fn start_sim(pki: &Path) -> SimServer {
    SimServer::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        pki_dir: pki.to_path_buf(),
        faults: Faults::default(),
        audit_log: None,
        today: time::OffsetDateTime::now_utc().date(),
    })
    .await
    .expect("simulator start")
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

/// pcscd serving the vpcd readers: the one already running, or one started here and
/// stopped by PID when this is dropped.
pub struct Pcscd(Option<std::process::Child>);

impl Pcscd {
    pub fn ensure() -> Pcscd {
        if !vpcd_readers().is_empty() {
            return Pcscd(None);
        }
        let child = std::process::Command::new("pcscd")
            .arg("--foreground")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pcscd (scripts/setup installs it)");
        let t = std::time::Instant::now();
        while vpcd_readers().is_empty() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "no vpcd readers"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Pcscd(Some(child))
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(mut p) = self.0.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// A count a bench uses, overridable with the environment variable `name` (quick runs).
pub fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
