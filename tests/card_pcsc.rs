//! The card read through the real PC/SC stack: pcscd + vsmartcard-vpcd + our virtual card
//! (the `mynakyukyu-sim card` binary), and OpenSC reading the same card. One test, because
//! the two vpcd slots are shared by everything here; pcscd is started and stopped by PID
//! unless one is already serving the vpcd readers.

mod common;

use common::*;
use mynakyukyu::card::pcsc_reader::{Pcsc, PcscCard};
use mynakyukyu::card::{CardError, jpki};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// OpenSC's PKCS#11 module (Debian's path).
const OPENSC_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
/// The id OpenSC's JPKI emulation gives the user-authentication key.
const OPENSC_AUTH_KEY_ID: &str = "01";

fn card(patient: &str, slot: u16, extra: &[&str], cert_out: &Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_mynakyukyu-sim"))
            .args(["card", "--patient", patient, "--vpcd"])
            .arg(format!("127.0.0.1:{}", 35963 + slot))
            .arg("--pki")
            .arg(pki())
            .arg("--cert-out")
            .arg(cert_out)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Wait for a card in `reader` and connect, riding out pcscd's ~400 ms presence polling.
fn connect(pcsc: &Pcsc, reader: Option<&str>) -> PcscCard {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(name) = pcsc.wait_for_card(reader, Duration::from_secs(5))
            && let Ok(c) = pcsc.connect(&name)
        {
            return c;
        }
        assert!(Instant::now() < deadline, "no card in {reader:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_gone(pcsc: &Pcsc, reader: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pcsc
        .wait_for_card(Some(reader), Duration::from_millis(50))
        .is_ok()
    {
        assert!(Instant::now() < deadline, "card never left {reader}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_virtual_card_reads_through_pcscd_like_a_real_one() {
    let ours = pcscd(2);
    let pcsc = Pcsc::establish().unwrap();
    let readers = vpcd_readers();
    let (slot0, slot1) = (readers[0].clone(), readers[1].clone());
    let dir = TempDir::new("card");
    let cert: PathBuf = dir.path().join("card.der");

    // 1. read the auth certificate end to end: the very bytes the card holds
    {
        let _card = card("P0004", 0, &[], &cert);
        let mut c = connect(&pcsc, Some(&slot0));
        let read = jpki::read_auth_certificate(&mut c).unwrap();
        assert_eq!(read.der, std::fs::read(&cert).unwrap());
        // SELECT AP, EF 0006 by its short id, SELECT EF 000A, the certificate's reads
        assert_eq!(read.apdus, 3 + read.der.len().div_ceil(256));
        assert_eq!(read.token, mynakyukyu::domain::TokenKind::Card);

        // PIN fallback through pcscd: tries left, a wrong PIN, the right one, a signed challenge
        use mynakyukyu::card::jpki::{PinOutcome, PinState};
        assert_eq!(
            jpki::auth_pin_state(&mut c).unwrap(),
            PinState::TriesLeft(3)
        );
        assert_eq!(
            jpki::verify_auth_pin(&mut c, "0000", false).unwrap(),
            PinOutcome::Wrong { tries_left: 2 }
        );
        assert_eq!(
            jpki::verify_auth_pin(&mut c, "1234", false).unwrap(),
            PinOutcome::Verified
        );
        let sig = jpki::sign_challenge(&mut c, b"challenge-42").unwrap();
        assert!(mynakyukyu::pki::verify_card_signature(
            &read.der,
            b"challenge-42",
            &sig
        ));
        drop(c);

        // 1b. the CLI's card-info names the token and the APDUs (3 + ⌈n/256⌉)
        let out = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
            .args(["card-info", "--reader", &slot0, "--timeout", "10"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("token:      card"), "{text}");
        assert!(
            text.contains(&format!("apdus:      {}", read.apdus)),
            "{text}"
        );

        // 2. OpenSC, an independent JPKI implementation, reads the same certificate
        let pem = dir.path().join("opensc.pem");
        let out = Command::new("pkcs15-tool")
            .args(["--reader", "0", "--read-certificate", "01", "-o"])
            .arg(&pem)
            .output()
            .expect("opensc installed by scripts/setup");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = mynakyukyu::pki::pem_certificates(&std::fs::read_to_string(&pem).unwrap());
        assert_eq!(der.first(), Some(&read.der), "OpenSC read other bytes");

        // 2b. OpenSC signs with the card's authentication key (pkcs11-tool through
        // opensc-pkcs11 and pcscd, the PIN given to OpenSC), and our verifier, the one
        // the simulator uses on the PIN path, accepts the signature
        let message = dir.path().join("challenge.bin");
        let signature = dir.path().join("challenge.sig");
        std::fs::write(&message, b"a server challenge for OpenSC").unwrap();
        let out = Command::new("pkcs11-tool")
            .args([
                "--module",
                OPENSC_PKCS11,
                "--slot-index",
                "0",
                "--login",
                "--pin",
                "1234",
                "--sign",
                "--mechanism",
                "SHA256-RSA-PKCS",
                "--id",
                OPENSC_AUTH_KEY_ID,
                "--input-file",
            ])
            .arg(&message)
            .arg("--output-file")
            .arg(&signature)
            .output()
            .expect("pkcs11-tool (opensc)");
        assert!(
            out.status.success(),
            "pkcs11-tool --sign: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let opensc_sig = std::fs::read(&signature).unwrap();
        assert_eq!(opensc_sig.len(), 256, "RSA-2048");
        assert!(
            mynakyukyu::pki::verify_card_signature(
                &read.der,
                b"a server challenge for OpenSC",
                &opensc_sig
            ),
            "our verifier refused OpenSC's signature"
        );
        assert!(!mynakyukyu::pki::verify_card_signature(
            &read.der,
            b"another message",
            &opensc_sig
        ));
        common::reliability_row(
            "opensc-signs",
            "Security",
            "OpenSC (pkcs11-tool, opensc-pkcs11, pcscd) signs with the virtual card's RSA-2048 authentication key after the PIN; our verifier checks it against the card certificate",
            1,
            0,
            "PKCS#1 v1.5 SHA-256 signature of 256 bytes accepted for its message, refused for another",
        );
    }
    wait_gone(&pcsc, &slot0);

    // 3. a card that is not a My Number card
    {
        let _card = card("P0004", 0, &["--not-jpki"], &cert);
        let mut c = connect(&pcsc, Some(&slot0));
        assert!(matches!(
            jpki::read_auth_certificate(&mut c),
            Err(CardError::NotMyNumberCard)
        ));
    }
    wait_gone(&pcsc, &slot0);

    // 4. removed mid-read: a clean error, then a clean read when it comes back
    {
        let _card = card("P0005", 0, &["--remove-after", "3"], &cert);
        let mut c = connect(&pcsc, Some(&slot0));
        let err = jpki::read_auth_certificate(&mut c).unwrap_err();
        assert!(matches!(err, CardError::Removed), "{err}");
        assert_eq!(
            err.card_failure(),
            mynakyukyu::session::CardFailure::RemovedDuringRead
        );
    }
    wait_gone(&pcsc, &slot0);
    {
        let _card = card("P0005", 0, &[], &cert);
        let mut c = connect(&pcsc, Some(&slot0));
        let read = jpki::read_auth_certificate(&mut c).unwrap();
        assert_eq!(read.der, std::fs::read(&cert).unwrap());
    }
    wait_gone(&pcsc, &slot0);

    // 5. waiting with no card is cancellable from another thread
    {
        let waiter = Pcsc::establish().unwrap();
        let canceller = waiter.canceller();
        let started = Instant::now();
        let handle =
            std::thread::spawn(move || waiter.wait_for_card(None, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(300));
        canceller.cancel();
        let result = handle.join().unwrap();
        assert!(matches!(result, Err(CardError::Cancelled)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    // 6. two readers, the card in the second: found without naming the reader
    {
        let _card = card("P0006", 1, &[], &cert);
        let name = pcsc.wait_for_card(None, Duration::from_secs(10)).unwrap();
        assert_eq!(name, slot1);
        let mut c = pcsc.connect(&name).unwrap();
        assert_eq!(
            jpki::read_auth_certificate(&mut c).unwrap().der,
            std::fs::read(&cert).unwrap()
        );
    }

    // 6b. a phone instead of the card, through pcscd, driven as the tablet drives it (the
    //     tablet's watch takes any reader: the card of 6 must be gone from the second)
    wait_gone(&pcsc, &slot1);
    phone_through_pcscd(&pcsc, &slot0);

    // 7. the reader stack appears while the app waits (only with a pcscd of our own, which
    //    we may stop): pcscd down, waiting starts, pcscd and a card come up, the card is found
    if let Some(guard) = ours {
        drop(guard);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !vpcd_readers().is_empty() {
            assert!(Instant::now() < deadline, "pcscd did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        let waiting = std::thread::spawn(|| {
            mynakyukyu::card::pcsc_reader::wait_for_card_anywhere(None, Duration::from_secs(20))
                .map(|(_, name)| name)
        });
        std::thread::sleep(Duration::from_millis(700));
        let daemon = pcscd(2).expect("pcscd restarted");
        let card7 = card("P0007", 0, &[], &cert);
        let found = waiting.join().unwrap();
        assert_eq!(found.unwrap(), slot0);
        drop(card7);
        wait_gone(&Pcsc::establish().unwrap(), &slot0);

        // 8. pcscd killed (SIGKILL) in the middle of a read, during the 1st, 2nd and 3rd
        //    APDU of a slow card, then started again: a typed error, then a whole read
        let mut daemon = Some(daemon);
        let mut errors = vec![];
        for kill_after in [150u64, 450, 750] {
            let _slow = card("P0008", 0, &["--slow-ms", "250"], &cert);
            let (connected_tx, connected) = std::sync::mpsc::channel();
            let slot = slot0.clone();
            let reading = std::thread::spawn(move || {
                let pcsc = Pcsc::establish().unwrap();
                let mut c = connect(&pcsc, Some(&slot));
                connected_tx.send(()).unwrap();
                jpki::read_auth_certificate(&mut c).map(|r| r.der)
            });
            connected.recv().unwrap();
            std::thread::sleep(Duration::from_millis(kill_after));
            drop(daemon.take());
            let result = reading.join().expect("the read did not panic");
            let err = result.expect_err("a read cut by pcscd's death cannot succeed");
            let failure = err.card_failure();
            assert_ne!(
                failure,
                mynakyukyu::session::CardFailure::NotMyNumberCard,
                "{err}"
            );
            errors.push(format!("{err}"));
            daemon = Some(pcscd(2).expect("pcscd restarted"));
            let pcsc = Pcsc::establish().unwrap();
            let mut c = connect(&pcsc, Some(&slot0));
            let read = jpki::read_auth_certificate(&mut c).unwrap();
            assert_eq!(
                read.der,
                std::fs::read(&cert).unwrap(),
                "whole after restart"
            );
            drop(c);
            drop(_slow);
            wait_gone(&pcsc, &slot0);
        }
        errors.dedup();
        reliability_row(
            "pcscd-restart",
            "Faults",
            "pcscd killed (SIGKILL) during the 1st, 2nd and 3rd APDU of a read from a slow virtual card (250 ms per APDU), then started again",
            3,
            0,
            &format!(
                "each read ended with a typed error ({}), no panic; after the restart a fresh context read the whole certificate, byte for byte",
                errors.join("; ")
            ),
        );
    }
}

/// The tablet's controller with its `PcscReader` (pcscd's presence watch feeding it, as in
/// the app) and the training simulator, a phone-mode virtual card in vpcd's first slot.
fn phone_through_pcscd(pcsc: &Pcsc, slot0: &str) {
    use mynakyukyu::app::reader::PcscReader;
    use mynakyukyu::app::view::Screen;
    use mynakyukyu::app::{Command as C, Controller};
    use mynakyukyu::domain::{ConsentDecision, IdentityCheck, RecordBody, TokenKind};
    use mynakyukyu::drill::world::{TRAINING_CREW, TRAINING_CREW_PIN, TrainingWorld};

    let dir = TempDir::new("card-phone");
    let rt = common::runtime();
    let today = time::OffsetDateTime::now_utc().date();
    let world = rt
        .block_on(TrainingWorld::start(dir.path(), today))
        .unwrap();
    let patient = world.patient_id("diabetic-insulin").unwrap();
    let phone = |extra: &[&str]| {
        let mut args = vec![
            "card",
            "--patient",
            &patient,
            "--vpcd",
            "127.0.0.1:35963",
            "--phone",
            "android",
        ];
        args.extend_from_slice(extra);
        Killed(
            Command::new(env!("CARGO_BIN_EXE_mynakyukyu-sim"))
                .args(&args)
                .arg("--pki")
                .arg(dir.path().join("pki"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (tx, mut presence) = tokio::sync::mpsc::channel(8);
    let (reader, _watch) = PcscReader::watch(tx);
    let mut ports = world.ports().unwrap();
    ports.reader = reader;
    let (mut c, _) = Controller::new(ports, world.settings());
    rt.block_on(c.handle(C::SignIn {
        crew_id: TRAINING_CREW.into(),
        pin: TRAINING_CREW_PIN.into(),
    }));
    // what the watch says, as the app turns it into commands
    let mut next_presence = |c: &mut Controller, want: bool| {
        let seen = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(15), presence.recv()).await
        });
        assert_eq!(seen, Ok(Some(want)), "presence");
        rt.block_on(c.handle(if want { C::CardPlaced } else { C::CardRemoved }));
    };

    // 1. a conscious patient's Android phone: PIN asked first, certificate, inquiry
    {
        let _phone = phone(&[]);
        next_presence(&mut c, true);
        let vm = c.view();
        assert_eq!(
            (vm.phase, vm.screen),
            ("phone_pin", Screen::Phone),
            "{} {:?}",
            vm.notice,
            c.journal()
        );
        assert!(!vm.holds_patient_data(), "nothing is read before the PIN");
        rt.block_on(c.handle(C::EnterPin {
            pin: "0000".into(),
            confirm_last_try: false,
        }));
        assert_eq!(c.view().phase, "phone_pin");
        assert!(
            c.view().pin.message.contains("残り2回"),
            "{}",
            c.view().pin.message
        );
        rt.block_on(c.handle(C::EnterPin {
            pin: "1234".into(),
            confirm_last_try: false,
        }));
        let vm = c.view();
        assert_eq!(vm.phase, "identity_and_consent");
        assert!(vm.has_patient);
        assert_eq!(vm.identity_confirmed, "スマホの暗証番号で本人確認済み");
        assert!(!vm.photo_offered && !vm.unobtainable_offered);
        rt.block_on(c.handle(C::Consent(ConsentDecision::Verbal, None)));
        assert_eq!(c.view().phase, "viewing_summary");
        let logged = world
            .server
            .with_simulator(|s| s.audit_log().last().cloned());
        let logged = logged.expect("the simulator logged the inquiry");
        assert_eq!(logged.token, TokenKind::AndroidPhone);
        assert_eq!(logged.identity_check, IdentityCheck::Pin);
        assert!(
            logged.card_signature_verified,
            "the phone signed the challenge"
        );
        let tokens: Vec<_> = world
            .store
            .records()
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.record.body {
                RecordBody::Audit(a) => Some(a.token),
                _ => None,
            })
            .collect();
        assert!(!tokens.is_empty());
        assert!(
            tokens.iter().all(|t| *t == Some(TokenKind::AndroidPhone)),
            "{tokens:?}"
        );
        rt.block_on(c.handle(C::EndViewing));
    }
    next_presence(&mut c, false);
    wait_gone(pcsc, slot0);

    // 2. the phone pulled away after its PIN, in the middle of the certificate's read:
    //    SELECT AP and EF 0006; then SELECT AP, SELECT PIN EF, tries, VERIFY, SELECT EF 000A
    //    and it is gone before the first READ BINARY
    {
        let _phone = phone(&["--remove-after", "7"]);
        next_presence(&mut c, true);
        assert_eq!(c.view().phase, "phone_pin");
        rt.block_on(c.handle(C::EnterPin {
            pin: "1234".into(),
            confirm_last_try: false,
        }));
        let vm = c.view();
        assert_eq!(vm.phase, "ready");
        assert_eq!(
            vm.notice,
            mynakyukyu::session::Notice::CardRemovedDuringRead.message_ja()
        );
        assert!(
            !vm.holds_patient_data(),
            "a pulled phone leaves nothing on screen"
        );
        assert!(c.session().incident().is_none());
        next_presence(&mut c, false);
        common::reliability_row(
            "phone-pulled-mid-read",
            "Faults",
            "an Android phone (virtual, phone mode, through pcscd + vpcd) pulled away after its smartphone PIN, before the certificate's first READ BINARY",
            1,
            0,
            "the crew sees 「読み取り中にカードが外れました」 on the ready screen; no patient data in the view model or the session; nothing recorded",
        );
    }
    wait_gone(pcsc, slot0);
    rt.block_on(world.shutdown());
}
