//! The link reset at every phase of both requests, and a request that hangs.

use super::*;

/// Which way a cut counts bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    /// Tablet → server.
    Up,
    /// Server → tablet.
    Down,
}

/// A TCP proxy that resets the connection once, when `Way` has carried `at` bytes since it
/// was armed; it counts bytes either way so a clean run tells the sizes.
struct CutProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Option<(Way, usize)>>>,
    carried: Arc<[AtomicUsize; 2]>,
    cuts: Arc<AtomicUsize>,
}

impl CutProxy {
    async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plan: Arc<Mutex<Option<(Way, usize)>>> = Arc::default();
        let carried: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let cuts = Arc::new(AtomicUsize::new(0));
        let (p, c, n) = (plan.clone(), carried.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, p.clone(), c.clone(), n.clone()));
            }
        });
        CutProxy {
            addr,
            plan,
            carried,
            cuts,
        }
    }

    fn arm(&self, way: Way, at: usize) {
        self.carried[0].store(0, Ordering::SeqCst);
        self.carried[1].store(0, Ordering::SeqCst);
        *self.plan.lock().unwrap() = Some((way, at));
    }

    fn measure(&self) {
        self.carried[0].store(0, Ordering::SeqCst);
        self.carried[1].store(0, Ordering::SeqCst);
        *self.plan.lock().unwrap() = None;
    }

    fn carried(&self, way: Way) -> usize {
        self.carried[way as usize].load(Ordering::SeqCst)
    }
}

type Plan = Arc<Mutex<Option<(Way, usize)>>>;

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    plan: Plan,
    carried: Arc<[AtomicUsize; 2]>,
    cuts: Arc<AtomicUsize>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    {
        let up = one_way(Way::Up, &mut cr, &mut sw, &plan, &carried, &cuts);
        let down = one_way(Way::Down, &mut sr, &mut cw, &plan, &carried, &cuts);
        tokio::select! {
            _ = up => {},
            _ = down => {},
        }
    }
    // reset both sides: a dropped line, not a polite close
    // (a zero linger sends the RST at once: there is nothing to block on)
    #[allow(deprecated)]
    if let (Ok(c), Ok(s)) = (cr.reunite(cw), sr.reunite(sw)) {
        let _ = c.set_linger(Some(Duration::ZERO));
        let _ = s.set_linger(Some(Duration::ZERO));
    }
}

/// Copy one way until either end closes or the plan's cut point is reached.
async fn one_way(
    way: Way,
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    plan: &Plan,
    carried: &[AtomicUsize; 2],
    cuts: &AtomicUsize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let before = carried[way as usize].fetch_add(n, Ordering::SeqCst);
        let mut pass = n;
        let mut reset = false;
        {
            let mut p = plan.lock().unwrap();
            if let Some((w, at)) = *p
                && w == way
                && before + n >= at
            {
                pass = at.saturating_sub(before).min(n);
                reset = true;
                *p = None;
            }
        }
        if to.write_all(&buf[..pass]).await.is_err() {
            return;
        }
        if reset {
            cuts.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

#[test]
fn link_reset_at_every_phase_of_both_requests_resends_once_and_loses_nothing() {
    let proxy: Arc<Mutex<Option<Arc<CutProxy>>>> = Arc::default();
    let slot = proxy.clone();
    let mut rig = Rig::new(move |world, rt| {
        let target = world.proxy.local_addr;
        let cut = Arc::new(rt.block_on(CutProxy::start(target)));
        *slot.lock().unwrap() = Some(cut.clone());
        let pki = world.dir.join("pki");
        let identity = UnitIdentity::from_files(
            &pki.join("unit.pem"),
            &pki.join("unit.key"),
            &pki.join("ca.pem"),
        )
        .unwrap();
        Some(
            EligibilityClient::new(
                Endpoint {
                    host: "127.0.0.1".into(),
                    port: cut.addr.port(),
                },
                tls_config(identity).unwrap(),
                TrainingWorld::client_settings(),
            )
            .unwrap(),
        )
    });
    let proxy = proxy.lock().unwrap().clone().unwrap();

    // one clean incident on a fresh connection: the bytes each step carries either way,
    // and the records one incident leaves
    let clean_before = rig.counts();
    let mut sizes = vec![];
    rig.world.place_card(&rig.patient).unwrap();
    for (step, cmd) in [
        ("qualification", Command::CardPlaced),
        (
            "inquiry",
            Command::Consent(
                ConsentDecision::Unobtainable,
                Some(mynakyukyu::domain::UnobtainableReason::Unconscious),
            ),
        ),
    ] {
        if step == "inquiry" {
            rig.send(Command::ConfirmPhoto);
        }
        rig.rt.block_on(rig.client.disconnect());
        proxy.measure();
        rig.send(cmd);
        sizes.push((step, proxy.carried(Way::Up), proxy.carried(Way::Down)));
    }
    assert_eq!(rig.controller.view().screen, Screen::Summary);
    rig.world.reader.remove();
    rig.send(Command::EndViewing);

    // cut points: in the TLS handshake, in the request, right after it (the server has the
    // request, the answer is lost), in the answer, at its last byte
    let mut cases = 0;
    let clean_after = rig.counts();
    let per_incident = (
        clean_after.0 - clean_before.0,
        clean_after.1 - clean_before.1,
        clean_after.2 - clean_before.2,
    );
    assert_eq!(per_incident.0, 1, "one consent record per incident");
    assert_eq!(per_incident.2, 1, "one inquiry per incident");
    let (mut consent_expected, mut audit_expected, mut inquiries_expected) = clean_after;
    for (step, up, down) in sizes.clone() {
        let mut points = vec![];
        for f in [0.0, 0.1, 0.3, 0.6, 0.9] {
            points.push((Way::Up, 1 + (up as f64 * f) as usize));
        }
        for f in [0.0, 0.1, 0.3, 0.6, 0.9] {
            points.push((Way::Down, 1 + (down as f64 * f) as usize));
        }
        points.push((Way::Down, down)); // the answer's last byte lost
        for (way, at) in points {
            rig.world.place_card(&rig.patient).unwrap();
            rig.rt.block_on(rig.client.disconnect());
            let before = proxy.cuts.load(Ordering::SeqCst);
            if step == "qualification" {
                proxy.arm(way, at);
            }
            let mut vm = rig.send(Command::CardPlaced);
            if step == "inquiry" {
                assert_eq!(vm.screen, Screen::Consent);
                rig.send(Command::ConfirmPhoto);
                rig.rt.block_on(rig.client.disconnect());
                proxy.arm(way, at);
                vm = rig.send(Command::Consent(
                    ConsentDecision::Unobtainable,
                    Some(mynakyukyu::domain::UnobtainableReason::Unconscious),
                ));
            }
            // the crew sees the line is down; the link monitor would say when it is back
            let mut restores = 0;
            while vm.waiting_for_link || vm.offers_retry {
                assert!(restores < 3, "{step} {way:?}@{at}: never recovered: {vm:?}");
                vm = rig.send(Command::LinkRestored);
                restores += 1;
            }
            if step == "qualification" {
                assert_eq!(vm.screen, Screen::Consent, "{step} {way:?}@{at}: {vm:?}");
                rig.send(Command::ConfirmPhoto);
                vm = rig.send(Command::Consent(
                    ConsentDecision::Unobtainable,
                    Some(mynakyukyu::domain::UnobtainableReason::Unconscious),
                ));
            }
            assert_eq!(vm.screen, Screen::Summary, "{step} {way:?}@{at}: {vm:?}");
            assert_eq!(
                proxy.cuts.load(Ordering::SeqCst),
                before + 1,
                "{step} {way:?}@{at}: the cut happened"
            );
            rig.world.reader.remove();
            rig.send(Command::EndViewing);
            consent_expected += per_incident.0;
            audit_expected += per_incident.1;
            inquiries_expected += per_incident.2;
            let (consent, audit, inquiries) = rig.counts();
            assert_eq!(
                consent, consent_expected,
                "{step} {way:?}@{at}: consent once"
            );
            assert_eq!(
                audit, audit_expected,
                "{step} {way:?}@{at}: the same audit records as a clean incident"
            );
            assert_eq!(
                inquiries, inquiries_expected,
                "{step} {way:?}@{at}: the server logged the inquiry once"
            );
            cases += 1;
        }
    }
    reliability_row(
        "link-reset",
        "Faults",
        &format!(
            "the connection reset once (RST both ways) at 11 points of each request on a fresh connection: in the TLS handshake, in the request, in the answer, its last byte (qualification {}↑/{}↓ bytes, inquiry {}↑/{}↓)",
            sizes[0].1, sizes[0].2, sizes[1].1, sizes[1].2
        ),
        cases,
        0,
        &format!(
            "every incident reached the summary with the records of a clean one: 1 consent record, {} audit records, 1 inquiry logged by the server (the resent request carries the same incident id)",
            per_incident.1
        ),
    );
}

#[test]
fn a_hanging_request_never_keeps_the_crew_waiting() {
    use mynakyukyu::sim::Faults;
    let dir = TempDir::new("reliability-hang");
    let rt = common::runtime();
    let today = time::OffsetDateTime::now_utc().date();
    let world = rt
        .block_on(TrainingWorld::start(dir.path(), today))
        .unwrap();
    let mut settings = world.settings();
    let deadline = Duration::from_millis(1500);
    settings.request_deadline = deadline;
    let (mut c, _) = Controller::new(world.ports().unwrap(), settings);
    let patient = world.patient_id("diabetic-insulin").unwrap();
    rt.block_on(c.handle(Command::SignIn {
        crew_id: TRAINING_CREW.into(),
        pin: TRAINING_CREW_PIN.into(),
    }));
    let to_consent = |c: &mut Controller| {
        world.server.set_faults(Faults::default());
        world.place_card(&patient).unwrap();
        rt.block_on(c.handle(Command::CardPlaced));
        rt.block_on(c.handle(Command::ConfirmPhoto));
        assert_eq!(c.view().screen, Screen::Consent);
        // from here on the server takes requests and never answers
        world.server.set_faults(Faults {
            stall: true,
            ..Faults::default()
        });
        rt.block_on(c.dispatch(Command::Consent(ConsentDecision::Verbal, None)));
        assert_eq!(c.session().phase().name(), "awaiting_emergency_info");
    };
    let mut cases = 0;
    // 閲覧終了, the idle purge and sign-out, each while the inquiry hangs: at once
    for (command, phase) in [
        (Command::EndViewing, "ready"),
        (Command::IdleTimeout, "ready"),
        (Command::SignOut, "signed_out"),
    ] {
        to_consent(&mut c);
        let started = Instant::now();
        rt.block_on(c.dispatch(command.clone()));
        let took = started.elapsed();
        let vm = c.view();
        assert_eq!(c.session().phase().name(), phase, "{command:?}");
        assert!(
            !vm.holds_patient_data(),
            "{command:?}: purged from the screen"
        );
        assert!(
            took < deadline / 2,
            "{command:?} waited for the hanging request ({took:?})"
        );
        // the hanging request ends by its deadline; its late outcome changes nothing
        rt.block_on(c.settle());
        assert_eq!(c.session().phase().name(), phase);
        assert!(!c.view().holds_patient_data());
        if phase == "signed_out" {
            rt.block_on(c.handle(Command::SignIn {
                crew_id: TRAINING_CREW.into(),
                pin: TRAINING_CREW_PIN.into(),
            }));
        }
        cases += 1;
    }
    // the total deadline: a request that is never answered counts as a timeout, which
    // keeps the consent and waits for the line
    to_consent(&mut c);
    let started = Instant::now();
    rt.block_on(c.settle());
    let took = started.elapsed();
    assert!(took >= deadline, "gave up before the deadline ({took:?})");
    assert!(
        took < deadline * 4,
        "no total deadline: still waiting after {took:?}"
    );
    let vm = c.view();
    assert!(vm.waiting_for_link, "a timeout waits for the line");
    assert_eq!(vm.screen, Screen::Consent);
    world.server.set_faults(Faults::default());
    rt.block_on(c.handle(Command::LinkRestored));
    assert_eq!(
        c.view().screen,
        Screen::Summary,
        "resent when the line is back"
    );
    cases += 1;
    reliability_row(
        "request-hang",
        "Faults",
        "the simulator takes the emergency-info inquiry and never answers: 閲覧終了, the idle purge and sign-out applied while it hangs; then a request left to its total deadline",
        cases,
        0,
        "each applied at once with the patient purged; the hanging request ended at its deadline as a timeout and was resent when the line came back",
    );
}
