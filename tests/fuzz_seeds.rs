//! The seed corpus of the libFuzzer targets in tests/fuzz (run by scripts/fuzz): each seed
//! is a real input that goes the whole way (a card read that yields a certificate, a
//! certificate that inspects, a body that decodes, a file that parses), so the fuzzer starts
//! from the deep end. `MYNA_WRITE_SEEDS=1 cargo test --test fuzz_seeds` writes them afresh
//! (the card seeds from a read of the virtual card); without it this checks that every
//! committed seed still goes the whole way, so a format change cannot leave the corpus
//! shallow without a failing test.

use mynakyukyu::card::{FaceItems, ReplayCard, Transport, VirtualCard, jpki};
use mynakyukyu::eligibility::wire;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

fn writing() -> bool {
    std::env::var_os("MYNA_WRITE_SEEDS").is_some()
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("{target}: no seed corpus ({e})"))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{target}: empty seed corpus");
    out
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let d = corpus(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

/// A transport that keeps every answer of the card it wraps.
struct Recorder {
    card: VirtualCard,
    answers: Vec<Vec<u8>>,
}

impl Transport for Recorder {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, mynakyukyu::card::CardError> {
        let a = Transport::transmit(&mut self.card, apdu)?;
        self.answers.push(a.clone());
        Ok(a)
    }
}

fn write_card_seeds() {
    let ca = mynakyukyu::pki::JpkiTestCa::generate().unwrap();
    let issued = mynakyukyu::sim::issue_patient_card(&ca, 1, 1).unwrap();
    let card = || {
        VirtualCard::new(
            &issued.auth_certificate_der,
            &issued.ca_certificate_der,
            "1234",
            FaceItems::default(),
        )
    };
    let mut rec = Recorder {
        card: card(),
        answers: vec![],
    };
    jpki::read_auth_certificate(&mut rec).unwrap();
    write(
        "card_answers",
        "card-read",
        &ReplayCard::frames(&rec.answers),
    );
    let mut rec = Recorder {
        card: card(),
        answers: vec![],
    };
    jpki::read_token(&mut rec).unwrap();
    write("card_answers", "token", &ReplayCard::frames(&rec.answers));
    write(
        "certificate_der",
        "card-auth-cert.der",
        &issued.auth_certificate_der,
    );
    write("certificate_der", "jpki-ca.der", &issued.ca_certificate_der);
}

#[test]
fn card_seeds_read_a_certificate() {
    if writing() {
        write_card_seeds();
    }
    let now = time::OffsetDateTime::now_utc();
    for (name, bytes) in seeds("card_answers") {
        let mut c = ReplayCard::from_frames(&bytes);
        if name.starts_with("token") {
            assert!(jpki::read_token(&mut c).is_ok(), "{name}");
        } else {
            let read =
                jpki::read_auth_certificate(&mut c).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(mynakyukyu::pki::inspect(&read.der, now).is_ok(), "{name}");
        }
    }
    for (name, der) in seeds("certificate_der") {
        assert!(
            mynakyukyu::pki::inspect(&der, now).is_ok(),
            "{name} does not inspect"
        );
    }
}

#[test]
fn protocol_seeds_decode_into_their_types() {
    if writing() {
        let examples: [(&str, serde_json::Value); 5] = [
            (
                "health.json",
                serde_json::json!({"status": "ok", "version": "2"}),
            ),
            ("opt-out.json", serde_json::json!({"result": "opt_out"})),
            (
                "problem.json",
                serde_json::json!({"type": "about:blank", "title": "card revoked", "status": 409, "detail": "the card's certificate is revoked", "code": "card-revoked"}),
            ),
            ("records-head-none.json", serde_json::json!({"head": null})),
            (
                "records-accepted.json",
                serde_json::json!({"accepted": 2, "duplicates": 0, "head": {"seq": 1, "hash": "00".repeat(32)}}),
            ),
        ];
        for (name, v) in examples {
            write("protocol_json", name, v.to_string().as_bytes());
        }
    }
    for (name, body) in seeds("protocol_json") {
        let decodes = match name.as_str() {
            "health.json" => serde_json::from_slice::<wire::Health>(&body).is_ok(),
            "opt-out.json" => serde_json::from_slice::<wire::QualificationResponse>(&body).is_ok(),
            "problem.json" => serde_json::from_slice::<wire::Problem>(&body).is_ok(),
            "records-head-none.json" => serde_json::from_slice::<wire::RecordsHead>(&body).is_ok(),
            "records-accepted.json" => {
                serde_json::from_slice::<wire::RecordsAccepted>(&body).is_ok()
            }
            other => panic!("{other}: a protocol seed without its type here"),
        };
        assert!(decodes, "{name}: {}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn file_seeds_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if writing() {
        // every built-in scenario, and a device config and roster as the admin CLI writes
        for name in mynakyukyu::drill::scenario_names() {
            let text =
                std::fs::read(root.join(format!("src/drill/scenarios/{name}.toml"))).unwrap();
            write("config_toml", &format!("scenario-{name}.toml"), &text);
        }
        write(
            "config_toml",
            "device.toml",
            b"unit_id = \"TOKYO-A1\"\ndepartment = \"131001\"\nterminal_id = \"TOKYO-A1-TAB\"\nendpoint = \"https://10.10.2.1:8443\"\nrequire_tunnel = true\nretention_days = 30\nidle_lock_secs = 300\nidle_end_viewing_secs = 600\nkey_protection = \"tpm\"\n",
        );
        write(
            "config_toml",
            "roster.toml",
            b"[[crew]]\nid = \"EMT-01\"\nname = \"Crew\"\npin_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\"\ncan_view = true\n",
        );
        let ca = mynakyukyu::pki::CertAuthority::generate("Fuzz", "Fuzz CA").unwrap();
        write("admin_files", "ca.pem", ca.certificate_pem().as_bytes());
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "TOKYO-A1");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        write("admin_files", "unit.csr", csr.as_bytes());
    }
    for (name, text) in seeds("config_toml") {
        let text = String::from_utf8(text).unwrap();
        let ok = if name.starts_with("scenario-") {
            mynakyukyu::drill::parse_scenario(&name, &text).is_ok()
        } else if name == "device.toml" {
            toml::from_str::<mynakyukyu::config::DeviceConfig>(&text).is_ok()
        } else {
            mynakyukyu::roster::Roster::parse(&text).is_ok()
        };
        assert!(ok, "{name} does not parse");
    }
    let now = time::OffsetDateTime::now_utc();
    for (name, text) in seeds("admin_files") {
        if name.ends_with(".csr") {
            let ca = mynakyukyu::pki::CertAuthority::generate("Fuzz", "Fuzz CA").unwrap();
            let pem = String::from_utf8(text).unwrap();
            assert!(
                mynakyukyu::admin::sign_csr_pem(&ca, &pem, 30).is_ok(),
                "{name} is not signed"
            );
            continue;
        }
        let certs = mynakyukyu::pki::pem_certificates(&String::from_utf8_lossy(&text));
        assert!(!certs.is_empty(), "{name}: no certificate");
        for der in certs {
            assert!(mynakyukyu::pki::inspect(&der, now).is_ok(), "{name}");
        }
    }
}
