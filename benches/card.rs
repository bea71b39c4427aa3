//! Card read benchmark through pcscd + vsmartcard-vpcd: from card presence reported to the
//! certificate parsed, ours vs OpenSC (`pkcs15-tool --read-certificate`) reading the same
//! certificate from the same virtual card in the same run, with the APDUs each sent
//! (counted on the card). Starts pcscd if none serves the vpcd readers, stops it by PID.
//! Beside it, in the same run: the read as it was before phones (no EF 0006), and an
//! Android phone (phone mode, a phone's delay per APDU) read behind its smartphone PIN.
//! Run: `cargo bench --bench card` (or `scripts/bench`).

mod common;

use mynakyukyu::card::pcsc_reader::Pcsc;
use mynakyukyu::card::{FaceItems, VirtualCard, jpki, vpcd};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const N: usize = 50;
/// Phone reads: each APDU is [`mynakyukyu::card::virtual_card::PHONE_APDU_MS`] late.
const PHONE_N: usize = 10;

fn main() {
    if common::listing() {
        return;
    }
    let out_dir = common::out_dir();
    let _pcscd = common::pcscd(2);
    let reader = common::vpcd_readers()[0].clone();

    let ca = mynakyukyu::pki::JpkiTestCa::generate().unwrap();
    let issued = mynakyukyu::sim::issue_patient_card(&ca, 3, 1).unwrap();
    let cert = issued.auth_certificate_der.clone();
    let counter = vpcd::keep_inserted(
        VirtualCard::new(
            &issued.auth_certificate_der,
            &issued.ca_certificate_der,
            "1234",
            FaceItems::default(),
        ),
        "127.0.0.1:35963",
    );
    let pcsc = Pcsc::establish().unwrap();
    // presence as the app sees it
    let t = Instant::now();
    pcsc.wait_for_card(Some(&reader), Duration::from_secs(10))
        .unwrap();
    let presence_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut ours = Vec::new();
    let mut ours_apdus = 0;
    let mut before_phones = Vec::new();
    let mut before_phones_apdus = 0;
    let mut theirs = Vec::new();
    let mut theirs_apdus = 0;
    let tmp_dir = common::TempDir::new("bench-card");
    let tmp = tmp_dir.path().join("card.pem");
    for i in 0..N {
        // ours and the read before phones in turn first: the one after OpenSC's process
        // pays for pcscd taking the card back
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for ours_now in order {
            if ours_now {
                // ours: presence reported → connect → read → parse
                pcsc.wait_for_card(Some(&reader), Duration::from_secs(5))
                    .unwrap();
                let before = counter.load(Ordering::Relaxed);
                let t = Instant::now();
                let mut c = pcsc.connect(&reader).unwrap();
                let read = jpki::read_auth_certificate(&mut c).unwrap();
                mynakyukyu::pki::inspect(&read.der, time::OffsetDateTime::now_utc()).unwrap();
                ours.push(t.elapsed().as_secs_f64() * 1e3);
                drop(c);
                assert_eq!(read.der, cert);
                assert_eq!(read.token, mynakyukyu::domain::TokenKind::Card);
                ours_apdus = counter.load(Ordering::Relaxed) - before;
            } else {
                // the read before phones: SELECT AP, SELECT EF 000A, READ BINARY (no EF 0006)
                pcsc.wait_for_card(Some(&reader), Duration::from_secs(5))
                    .unwrap();
                let before = counter.load(Ordering::Relaxed);
                let t = Instant::now();
                let mut c = pcsc.connect(&reader).unwrap();
                jpki::select_jpki(&mut c).unwrap();
                let der = jpki::read_certificate_ef(&mut c, [0x00, 0x0A]).unwrap();
                mynakyukyu::pki::inspect(&der, time::OffsetDateTime::now_utc()).unwrap();
                before_phones.push(t.elapsed().as_secs_f64() * 1e3);
                drop(c);
                assert_eq!(der, cert);
                before_phones_apdus = counter.load(Ordering::Relaxed) - before;
            }
        }
        // OpenSC: the same certificate, the same card
        let before = counter.load(Ordering::Relaxed);
        let t = Instant::now();
        let out = Command::new("pkcs15-tool")
            .args(["--reader", "0", "--read-certificate", "01", "-o"])
            .arg(&tmp)
            .output()
            .expect("opensc");
        theirs.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        theirs_apdus = counter.load(Ordering::Relaxed) - before;
    }
    drop(tmp_dir);

    // an Android phone in the second reader: the token read, then its smartphone PIN and
    // the certificate in one card session, as the app does
    let phone_reader = common::vpcd_readers()[1].clone();
    let phone_counter = vpcd::keep_inserted(
        VirtualCard::new(
            &issued.auth_certificate_der,
            &issued.ca_certificate_der,
            "1234",
            FaceItems::default(),
        )
        .as_phone(mynakyukyu::domain::TokenKind::AndroidPhone),
        "127.0.0.1:35964",
    );
    let mut phone = Vec::new();
    let mut phone_apdus = 0;
    for _ in 0..PHONE_N {
        pcsc.wait_for_card(Some(&phone_reader), Duration::from_secs(10))
            .unwrap();
        let before = phone_counter.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut c = pcsc.connect(&phone_reader).unwrap();
        assert!(matches!(
            jpki::read_auth_certificate(&mut c),
            Err(mynakyukyu::card::CardError::PhonePinRequired)
        ));
        drop(c);
        let mut c = pcsc.connect(&phone_reader).unwrap();
        let (outcome, der) = jpki::read_phone_certificate(&mut c, "1234", false).unwrap();
        assert_eq!(outcome, jpki::PinOutcome::Verified);
        let der = der.unwrap();
        mynakyukyu::pki::inspect(&der, time::OffsetDateTime::now_utc()).unwrap();
        phone.push(t.elapsed().as_secs_f64() * 1e3);
        drop(c);
        assert_eq!(der, cert);
        phone_apdus = phone_counter.load(Ordering::Relaxed) - before;
    }
    let (p50, p95) = (
        common::quantile(&mut phone, 0.5),
        common::quantile(&mut phone, 0.95),
    );
    let (b50, b95) = (
        common::quantile(&mut before_phones, 0.5),
        common::quantile(&mut before_phones, 0.95),
    );
    let (o50, o95) = (
        common::quantile(&mut ours, 0.5),
        common::quantile(&mut ours, 0.95),
    );
    let (t50, t95) = (
        common::quantile(&mut theirs, 0.5),
        common::quantile(&mut theirs, 0.95),
    );
    let md = format!(
        "## Card read through pcscd + vsmartcard-vpcd (ours vs OpenSC, same virtual card)\n\n\
Command: `cargo bench --bench card` (release). {N} reads each, alternating. Ours: from card presence reported by pcscd to the certificate parsed (connect, SELECT AP, READ BINARY of EF 0006 by its short EF id, SELECT EF, READ BINARY ×⌈n/256⌉, x509 parse). \"Before phones\": the same without EF 0006, as the read was before the smartphone work (the same functions, in the same loop, each of the two first in every other round). OpenSC: `pkcs15-tool --read-certificate 01` as a process (includes its start and card detection). APDUs counted on the card. The virtual card sets TCP_QUICKACK after every read (without it the recipe measured ~44 ms per APDU). OpenSC's figure includes starting the process and its card detection, so the time ratio overstates our lead; the APDU ratio does not. The first presence detection took {presence_ms:.0} ms (pcscd polls vpcd every ~400 ms; that is the daemon, not the app).\n\n\
| reader | median | p95 | APDUs per read | certificate bytes |\n|---|---|---|---|---|\n\
| ours | {o50:.2} ms | {o95:.2} ms | {ours_apdus} | {} |\n\
| ours before phones (no EF 0006) | {b50:.2} ms | {b95:.2} ms | {before_phones_apdus} | {} |\n\
| ratio ours/before phones | {:.3} | {:.3} | {:.2} | |\n\
| OpenSC pkcs15-tool | {t50:.2} ms | {t95:.2} ms | {theirs_apdus} | {} |\n\
| ratio ours/OpenSC | {:.3} | {:.3} | {:.2} | |\n",
        cert.len(),
        cert.len(),
        o50 / b50,
        o95 / b95,
        ours_apdus as f64 / before_phones_apdus.max(1) as f64,
        cert.len(),
        o50 / t50,
        o95 / t95,
        ours_apdus as f64 / theirs_apdus.max(1) as f64,
    );
    let md = format!(
        "{md}\nAn Android phone (the virtual card in phone mode in the second reader, each answer {} ms late as the training phone answers; not a figure measured on a phone): presence → the token read (SELECT AP, EF 0006: a phone), then in a second connection the smartphone PIN (SELECT AP, SELECT EF 0018, tries, VERIFY) and the certificate (SELECT EF, READ BINARY ×⌈n/256⌉), x509 parse. {PHONE_N} reads.\n\n\
| phone | median | p95 | APDUs per read |\n|---|---|---|---|\n\
| Android phone, PIN and certificate | {p50:.1} ms | {p95:.1} ms | {phone_apdus} |\n",
        mynakyukyu::card::virtual_card::PHONE_APDU_MS,
    );
    std::fs::write(out_dir.join("card.md"), &md).unwrap();
    println!("{md}");
}
