//! What the benchmarks share beyond the tests' support (included from tests/common, one
//! copy for both): where fragments go, quantiles, the app on the software renderer.
#![allow(dead_code)]

#[path = "../../tests/common/mod.rs"]
pub mod support;

// each bench uses a part of it
#[allow(unused_imports)]
pub use support::{Killed, SimProcess, TempDir, pcscd, runtime, vpcd_readers};

use mynakyukyu::eligibility::{ClientSettings, EligibilityClient};
use mynakyukyu::sim::Faults;
use mynakyukyu::sim::server::SimServer;
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

/// A client presenting the dev PKI's valid unit certificate to `localhost:port`, with the
/// app's settings.
pub fn bench_client(pki: &Path, port: u16) -> EligibilityClient {
    support::client_in(
        pki,
        port,
        "localhost",
        "unit",
        "ca.pem",
        ClientSettings::default(),
    )
}

/// The simulator on a free loopback port with the dev PKI in `pki`, no faults, and no
/// per-patient rate limit (one bench unit asks for many patients on purpose).
pub async fn start_bench_sim(pki: &Path) -> SimServer {
    let server = support::start_sim_in(pki, Faults::default()).await;
    server.with_simulator(|s| {
        s.set_rate_limit(mynakyukyu::sim::PatientRateLimit {
            flag_at: 100_000,
            refuse_above: 100_000,
        })
    });
    server
}

/// A count a bench uses, overridable with the environment variable `name` (quick runs).
pub fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
#[cfg(feature = "ui")]
pub struct AppRig {
    pub rt: tokio::runtime::Runtime,
    pub controller: mynakyukyu::app::Controller,
    pub window: mynakyukyu::ui::headless::HeadlessWindow,
}

#[cfg(feature = "ui")]
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
            Some(mynakyukyu::domain::UnobtainableReason::Unconscious),
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
