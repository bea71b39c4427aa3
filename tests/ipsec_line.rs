//! The provisioned app's controller on the real line: run by `scripts/ipsec-e2e` (root)
//! inside the tablet's network namespace, with the simulator behind a strongSwan gateway in
//! another namespace. Ignored by plain `cargo test`: without that setup there is no tunnel.
//!
//! `MYNA_LINE_DATA` is the provisioned data dir (`mynakyukyu-admin init`, `install-cert`,
//! `crew add`), `MYNA_LINE_PKI` the dev PKI whose test JPKI CA issues the patient's card,
//! `MYNA_LINE_CREW`/`MYNA_LINE_PIN` a roster member.

use mynakyukyu::app::reader::VirtualReader;
use mynakyukyu::app::view::{Screen, ViewModel};
use mynakyukyu::app::{Command, Controller};
use mynakyukyu::domain::ConsentDecision;
use mynakyukyu::sim::patients::{DEFAULT_POPULATION, DEFAULT_SEED, PatientScenario, population};
use std::path::PathBuf;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run scripts/ipsec-e2e)"))
}

/// The provisioned device's controller with a virtual card for a synthetic patient in
/// place of the PC/SC reader, signed in.
struct Line {
    rt: tokio::runtime::Runtime,
    controller: Controller,
    views: Vec<ViewModel>,
}

impl Line {
    fn open(require_tunnel: bool) -> Line {
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
        let reader = VirtualReader::new();
        reader.place(card);
        device.ports.reader = reader;
        let (controller, _) = Controller::new(device.ports, device.settings);
        let mut line = Line {
            rt,
            controller,
            views: vec![],
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
    /// machine time of card → identity screen and consent → summary, in ms.
    fn incident(&mut self) -> (f64, f64) {
        let t = std::time::Instant::now();
        self.step(Command::CardPlaced);
        let card = t.elapsed().as_secs_f64() * 1e3;
        self.step(Command::ConfirmPhoto);
        let t = std::time::Instant::now();
        self.step(Command::Consent(ConsentDecision::Verbal));
        (card, t.elapsed().as_secs_f64() * 1e3)
    }
}

fn incident() -> Vec<ViewModel> {
    let mut line = Line::open(true);
    line.incident();
    line.views
}

/// For `scripts/bench`: `MYNA_LINE_INCIDENTS` incidents (after one warm-up) on this line,
/// with `require_tunnel` as `MYNA_LINE_REQUIRE_TUNNEL` says; one JSON line of medians and
/// p95s appended to `MYNA_LINE_TIMINGS`.
#[test]
#[ignore = "a benchmark run by scripts/bench through scripts/ipsec-e2e"]
fn timed_incidents() {
    let n: usize = env("MYNA_LINE_INCIDENTS").parse().unwrap();
    let require = env("MYNA_LINE_REQUIRE_TUNNEL") == "1";
    let mut line = Line::open(require);
    line.incident();
    line.step(Command::EndViewing);
    let (mut card, mut consent) = (vec![], vec![]);
    for _ in 0..n {
        let (c, s) = line.incident();
        assert_eq!(line.views.last().unwrap().screen, Screen::Summary);
        line.step(Command::EndViewing);
        card.push(c);
        consent.push(s);
    }
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let row = serde_json::json!({
        "label": env("MYNA_LINE_LABEL"),
        "incidents": n,
        "route": line.views.last().unwrap().status.tunnel,
        "card_p50": q(&mut card, 0.5), "card_p95": q(&mut card, 0.95),
        "consent_p50": q(&mut consent, 0.5), "consent_p95": q(&mut consent, 0.95),
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
    let views = incident();
    let last = views.last().unwrap();
    assert_eq!(last.screen, Screen::Summary, "{last:?}");
    assert!(last.has_patient);
    assert_eq!(last.status.tunnel, "IPsec");
    assert!(!last.summary.is_empty());
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
