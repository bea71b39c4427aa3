//! What the benchmarks share: where fragments go, and quantiles.
#![allow(dead_code)]

use mynakyukyu::eligibility::client::tls_config;
use mynakyukyu::eligibility::{ClientSettings, EligibilityClient, Endpoint, UnitIdentity};
use mynakyukyu::sim::Faults;
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
    let server = SimServer::start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        pki_dir: pki.to_path_buf(),
        faults: Faults::default(),
        audit_log: None,
        today: time::OffsetDateTime::now_utc().date(),
    })
    .await
    .expect("simulator start");
    // one bench unit asks for many patients on purpose
    server.with_simulator(|s| {
        s.set_rate_limit(mynakyukyu::sim::PatientRateLimit {
            flag_at: 100_000,
            refuse_above: 100_000,
        })
    });
    server
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

/// The runtime the app uses: two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The training world (simulator behind its delay proxy, dev PKI, store) in `dir`, started
/// on the app's runtime, with today's date and the id of the warfarin scenario's patient.
pub fn training_world(
    dir: &Path,
) -> (
    tokio::runtime::Runtime,
    mynakyukyu::drill::world::TrainingWorld,
    time::Date,
    String,
) {
    let rt = runtime();
    let today = time::OffsetDateTime::now_utc().date();
    let world = rt
        .block_on(mynakyukyu::drill::world::TrainingWorld::start(dir, today))
        .expect("training world");
    let patient = world
        .patient_id("elderly-warfarin")
        .expect("the scenario patient");
    (rt, world, today, patient)
}

/// Resident memory of this process, in MiB.
pub fn rss_mib() -> f64 {
    mynakyukyu::cli::resident_memory_kib().0.unwrap_or(0) as f64 / 1024.0
}

/// Machine time of one incident, in ms: card presence → the identity+consent frame, and
/// the consent tap → the summary frame; and the render time of those two frames.
pub struct Incident {
    pub card_ms: f64,
    pub consent_ms: f64,
    pub consent_frame_ms: f64,
    pub summary_frame_ms: f64,
}

/// The app's controller and its window on the software renderer (1280×800), driven by
/// commands as the screens would send them, a frame rendered after every step.
pub struct AppRig {
    pub rt: tokio::runtime::Runtime,
    pub controller: mynakyukyu::app::Controller,
    pub window: mynakyukyu::ui::headless::HeadlessWindow,
}

impl AppRig {
    /// Signed in as the training crew, at Ready.
    pub fn signed_in(
        rt: tokio::runtime::Runtime,
        controller: mynakyukyu::app::Controller,
    ) -> AppRig {
        use mynakyukyu::drill::world::{TRAINING_CREW, TRAINING_CREW_PIN};
        let window = mynakyukyu::ui::headless::HeadlessWindow::new(1280, 800).expect("window");
        let mut rig = AppRig {
            rt,
            controller,
            window,
        };
        let (screen, _) = rig.step(mynakyukyu::app::Command::SignIn {
            crew_id: TRAINING_CREW.into(),
            pin: TRAINING_CREW_PIN.into(),
        });
        assert_eq!(screen, mynakyukyu::app::view::Screen::Ready);
        rig
    }

    /// One command, then the frame the screen would show: the screen and the frame's time.
    pub fn step(&mut self, cmd: mynakyukyu::app::Command) -> (mynakyukyu::app::view::Screen, f64) {
        self.rt.block_on(self.controller.handle(cmd));
        let vm = self.controller.view();
        let t = std::time::Instant::now();
        self.window.render(&vm, false);
        (vm.screen, t.elapsed().as_secs_f64() * 1e3)
    }

    /// Card presence, the photo confirmed, 同意取得困難, the summary, end of viewing. The
    /// card must be in the reader.
    pub fn incident(&mut self) -> Incident {
        use mynakyukyu::app::Command;
        use mynakyukyu::app::view::Screen;
        let t = std::time::Instant::now();
        let (screen, consent_frame_ms) = self.step(Command::CardPlaced);
        let card_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(screen, Screen::Consent, "card → identity+consent");
        self.step(Command::ConfirmPhoto);
        let t = std::time::Instant::now();
        let (screen, summary_frame_ms) = self.step(Command::Consent(
            mynakyukyu::domain::ConsentDecision::Unobtainable,
        ));
        let consent_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(screen, Screen::Summary, "consent → summary");
        assert_eq!(self.step(Command::EndViewing).0, Screen::Ready);
        Incident {
            card_ms,
            consent_ms,
            consent_frame_ms,
            summary_frame_ms,
        }
    }
}
