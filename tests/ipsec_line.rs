//! The provisioned app's controller on the real line: run by `scripts/ipsec-e2e` (root)
//! inside the tablet's network namespace, with the simulator behind a strongSwan gateway in
//! another namespace. Ignored by plain `cargo test`: without that setup there is no tunnel.
//!
//! `MYNA_LINE_DATA` is the provisioned data dir (`mynakyukyu-admin init`, `install-cert`,
//! `crew add`), `MYNA_LINE_PKI` the dev PKI whose test JPKI CA issues the patient's card,
//! `MYNA_LINE_CREW`/`MYNA_LINE_PIN` a roster member. The timed run (`timed_incidents`)
//! reads the card through a pcscd the script started in this namespace (vpcd on this
//! namespace's loopback) and renders a frame of the app window after every step.

use mynakyukyu::app::reader::{PcscReader, PresenceWatch, VirtualReader};
use mynakyukyu::app::view::{Screen, ViewModel};
use mynakyukyu::app::{Command, Controller};
use mynakyukyu::card::pcsc_reader::Pcsc;
use mynakyukyu::card::{Transport, apdu, virtual_card::JPKI_AID, vpcd};
use mynakyukyu::domain::ConsentDecision;
use mynakyukyu::sim::patients::{DEFAULT_POPULATION, DEFAULT_SEED, PatientScenario, population};
use mynakyukyu::ui::headless::HeadlessWindow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run scripts/ipsec-e2e)"))
}

/// Where the patient's card sits: the in-process virtual reader, or vpcd behind pcscd.
#[derive(PartialEq)]
enum CardPath {
    Virtual,
    Pcsc,
}

/// The provisioned device's controller with a virtual card for a synthetic patient,
/// signed in; for the timed run, the tablet's PC/SC reader and a rendered window.
struct Line {
    rt: tokio::runtime::Runtime,
    controller: Controller,
    views: Vec<ViewModel>,
    /// the frame after every step (timed run), with its render time in ms
    window: Option<HeadlessWindow>,
    last_frame_ms: f64,
    /// command APDUs the card answered (PC/SC path)
    apdus: Arc<AtomicUsize>,
    _presence: Option<(PresenceWatch, tokio::sync::mpsc::Receiver<bool>)>,
    /// the tablet's store and patient client, for the upload after an incident
    store: Arc<mynakyukyu::store::Store>,
    client: Arc<mynakyukyu::eligibility::EligibilityClient>,
}

impl Line {
    fn open(require_tunnel: bool) -> Line {
        Line::open_with(require_tunnel, CardPath::Virtual)
    }

    fn open_with(require_tunnel: bool, path: CardPath) -> Line {
        let data = PathBuf::from(env("MYNA_LINE_DATA"));
        let pki = PathBuf::from(env("MYNA_LINE_PKI"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let mut device = mynakyukyu::app::device::open(&data).expect("provisioned device");
        assert!(
            device.settings.require_tunnel,
            "provisioned: tunnel required"
        );
        device.settings.require_tunnel = require_tunnel;
        let today = time::OffsetDateTime::now_utc().date();
        let patients = population(DEFAULT_SEED, DEFAULT_POPULATION, today);
        let patient = patients
            .iter()
            .find(|p| p.scenario == Some(PatientScenario::ElderlyWarfarin))
            .unwrap();
        let (card, _) = mynakyukyu::sim::patient_card(&pki, &patient.id, "1234", today).unwrap();
        let mut apdus = Arc::new(AtomicUsize::new(0));
        let mut presence = None;
        if path == CardPath::Pcsc {
            apdus = vpcd::keep_inserted(card, "127.0.0.1:35963");
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let (reader, watch) = PcscReader::watch(tx);
            let placed = rt.block_on(tokio::time::timeout(Duration::from_secs(15), rx.recv()));
            assert_eq!(placed, Ok(Some(true)), "the presence watch saw the card");
            device.ports.reader = reader;
            presence = Some((watch, rx));
        } else {
            let reader = VirtualReader::new();
            reader.place(card);
            device.ports.reader = reader;
        }
        let (store, client) = (device.ports.store.clone(), device.ports.client.clone());
        let (controller, _) = Controller::new(device.ports, device.settings);
        let window = (path == CardPath::Pcsc).then(|| HeadlessWindow::new(1280, 800).unwrap());
        let mut line = Line {
            rt,
            controller,
            views: vec![],
            window,
            last_frame_ms: 0.0,
            apdus,
            _presence: presence,
            store,
            client,
        };
        line.step(Command::SignIn {
            crew_id: env("MYNA_LINE_CREW"),
            pin: env("MYNA_LINE_PIN"),
        });
        line
    }

    fn step(&mut self, cmd: Command) -> &ViewModel {
        self.rt.block_on(self.controller.handle(cmd));
        let vm = self.controller.view();
        if let Some(w) = &self.window {
            let t = Instant::now();
            w.render(&vm, false);
            self.last_frame_ms = t.elapsed().as_secs_f64() * 1e3;
        }
        eprintln!(
            "{:?}: screen {:?}, tunnel {}, notice {}",
            self.views.len(),
            vm.screen,
            vm.status.tunnel,
            vm.notice
        );
        self.views.push(vm);
        self.views.last().unwrap()
    }

    /// Card placed, photo confirmed, verbal consent, exactly as the screens would; the
    /// machine time of card → identity screen and consent → summary (frames included when
    /// rendered), in ms.
    fn incident(&mut self) -> Timing {
        let before = self.apdus.load(Ordering::Relaxed);
        let t = Instant::now();
        self.step(Command::CardPlaced);
        let card_ms = t.elapsed().as_secs_f64() * 1e3;
        let card_frame_ms = self.last_frame_ms;
        self.step(Command::ConfirmPhoto);
        let t = Instant::now();
        self.step(Command::Consent(ConsentDecision::Verbal, None));
        Timing {
            card_ms,
            consent_ms: t.elapsed().as_secs_f64() * 1e3,
            card_frame_ms,
            summary_frame_ms: self.last_frame_ms,
            apdus: self.apdus.load(Ordering::Relaxed) - before,
        }
    }
}

struct Timing {
    card_ms: f64,
    consent_ms: f64,
    card_frame_ms: f64,
    summary_frame_ms: f64,
    apdus: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    quantile(&mut v, 0.5)
}

fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The floor's two measured parts on this line: a bare APDU round trip through pcscd+vpcd,
/// and one round trip to the simulator (a TCP handshake to its port, over whatever route
/// the namespace has), both medians in ms.
fn apdu_and_line_rtt(endpoint: &str) -> (f64, f64) {
    let pcsc = Pcsc::establish().unwrap();
    let reader = pcsc.readers().unwrap().into_iter().next().unwrap();
    let mut c = pcsc.connect(&reader).unwrap();
    let select = apdu::select_df(&JPKI_AID);
    let apdu: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            c.transmit(&select).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    drop(c);
    let rtt: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let s = std::net::TcpStream::connect(endpoint).unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            drop(s);
            ms
        })
        .collect();
    (median(apdu), median(rtt))
}

fn incident() -> Vec<ViewModel> {
    let mut line = Line::open(true);
    line.incident();
    line.views
}

/// For `scripts/bench`: `MYNA_LINE_INCIDENTS` incidents (after one warm-up) on this line,
/// through pcscd+vpcd with frames rendered, `require_tunnel` as `MYNA_LINE_REQUIRE_TUNNEL`
/// says; one JSON line of medians, p95s and the physical floor (APDUs × bare APDU round
/// trip + one round trip per request to `MYNA_LINE_ENDPOINT` + the frame) appended to
/// `MYNA_LINE_TIMINGS`.
#[test]
#[ignore = "a benchmark run by scripts/bench through scripts/ipsec-e2e"]
fn timed_incidents() {
    let n: usize = env("MYNA_LINE_INCIDENTS").parse().unwrap();
    let require = env("MYNA_LINE_REQUIRE_TUNNEL") == "1";
    let mut line = Line::open_with(require, CardPath::Pcsc);
    line.incident();
    line.step(Command::EndViewing);
    let (apdu_ms, rtt_ms) = apdu_and_line_rtt(&env("MYNA_LINE_ENDPOINT"));
    let runs: Vec<Timing> = (0..n)
        .map(|_| {
            let t = line.incident();
            assert_eq!(line.views.last().unwrap().screen, Screen::Summary);
            line.step(Command::EndViewing);
            t
        })
        .collect();
    let q = |f: fn(&Timing) -> f64, p: f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        quantile(&mut v, p)
    };
    let apdus = runs[0].apdus;
    let card_floor = apdus as f64 * apdu_ms + rtt_ms + q(|t| t.card_frame_ms, 0.5);
    let consent_floor = rtt_ms + q(|t| t.summary_frame_ms, 0.5);
    let row = serde_json::json!({
        "label": env("MYNA_LINE_LABEL"),
        "incidents": n,
        "route": line.views.last().unwrap().status.tunnel,
        "apdus": apdus, "apdu_ms": apdu_ms, "rtt_ms": rtt_ms,
        "card_p50": q(|t| t.card_ms, 0.5), "card_p95": q(|t| t.card_ms, 0.95),
        "card_floor": card_floor,
        "consent_p50": q(|t| t.consent_ms, 0.5), "consent_p95": q(|t| t.consent_ms, 0.95),
        "consent_floor": consent_floor,
    });
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env("MYNA_LINE_TIMINGS"))
        .unwrap();
    writeln!(f, "{row}").unwrap();
}

#[test]
#[ignore = "needs the namespaces and tunnel of scripts/ipsec-e2e"]
fn summary_through_the_tunnel() {
    let mut line = Line::open(true);
    line.incident();
    let last = line.views.last().unwrap();
    assert_eq!(last.screen, Screen::Summary, "{last:?}");
    assert!(last.has_patient);
    assert_eq!(last.status.tunnel, "IPsec");
    assert!(!last.summary.is_empty());
    // the incident's records, each signed by the unit key in the TPM, are taken by the
    // server, which verifies every signature against the tablet's certificate
    let uploader = mynakyukyu::sync::Uploader::new(
        line.store.clone(),
        line.client.clone(),
        Default::default(),
    );
    let sent = line
        .rt
        .block_on(uploader.sync_once())
        .expect("records accepted with the TPM-held unit key's signatures");
    assert!(sent >= 3, "consent, check and view records: {sent}");
    line.rt.block_on(uploader.check_head()).unwrap();
    eprintln!("uploaded {sent} records signed by the TPM-held unit key");
}

#[test]
#[ignore = "needs the namespaces of scripts/ipsec-e2e, with the tunnel down"]
fn refused_with_the_tunnel_down() {
    let views = incident();
    let last = views.last().unwrap();
    assert_ne!(last.screen, Screen::Summary);
    assert!(!last.has_patient, "nothing about the patient came back");
    assert!(
        views.iter().any(|v| v
            .notice
            .contains("専用回線（IPsec）が確立していないため送信しません")),
        "{views:?}"
    );
    assert_eq!(last.status.tunnel, "トンネル外");
}
