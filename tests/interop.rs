//! Independent TLS peers against the simulator binary: curl and `openssl s_client`.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn curl(port: u16, extra: &[&str]) -> (bool, String) {
    let dir = pki();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(extra)
        .arg(format!("https://localhost:{port}/v2/health"))
        .current_dir(dir)
        .output()
        .expect("curl installed by scripts/setup");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn curl_with_the_unit_certificate_gets_200_and_everything_else_is_refused() {
    let sim = SimProcess::start();
    let (ok, text) = curl(sim.port, &["--cert", "unit.pem", "--key", "unit.key"]);
    assert!(ok, "{text}");
    assert!(text.contains("\"status\":\"ok\""), "{text}");

    let (ok, text) = curl(sim.port, &[]);
    assert!(!ok, "no client cert accepted: {text}");
    assert!(text.contains("certificate required"), "{text}");

    let (ok, text) = curl(
        sim.port,
        &["--cert", "unit-expired.pem", "--key", "unit-expired.key"],
    );
    assert!(!ok && text.contains("expired"), "{text}");

    let (ok, text) = curl(
        sim.port,
        &["--cert", "unit-revoked.pem", "--key", "unit-revoked.key"],
    );
    assert!(!ok && text.contains("revoked"), "{text}");

    let (ok, text) = curl(
        sim.port,
        &["--cert", "other-unit.pem", "--key", "other-unit.key"],
    );
    assert!(!ok && text.contains("unknown ca"), "{text}");

    let (ok, text) = curl(
        sim.port,
        &[
            "--tls-max",
            "1.2",
            "--cert",
            "unit.pem",
            "--key",
            "unit.key",
        ],
    );
    assert!(!ok && text.contains("protocol version"), "TLS 1.2: {text}");

    // plaintext HTTP to the TLS port gets nothing
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "3"])
        .arg(format!("http://127.0.0.1:{}/v2/health", sim.port))
        .output()
        .unwrap();
    assert!(!out.status.success());
    common::reliability_row(
        "tls-peers",
        "Bad input",
        "curl against the simulator binary: no client certificate, expired, revoked, unknown-CA unit certificates, TLS 1.2 only, plaintext HTTP",
        6,
        0,
        "each refused (certificate required / expired / revoked / unknown ca / protocol version / no answer); the unit certificate gets 200",
    );
}

#[test]
fn curl_posts_get_problem_details_for_bad_json() {
    let sim = SimProcess::start();
    let (ok, text) = {
        let dir = pki();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(dir.join("ca.pem"))
            .args(["--cert", "unit.pem", "--key", "unit.key", "-d", "{\"broken"])
            .arg(format!("https://localhost:{}/v2/qualification", sim.port))
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    assert!(ok);
    let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["type"], "urn:mynakyukyu:problem:bad-request");
    common::reliability_row(
        "bad-json-in",
        "Bad input",
        "broken JSON posted to the simulator by curl with a valid unit certificate",
        1,
        0,
        "400 with a problem-details body; the server keeps serving",
    );
}

#[test]
fn openssl_s_client_negotiates_tls13_with_the_unit_certificate() {
    let sim = SimProcess::start();
    let dir = pki();
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", sim.port))
        .args([
            "-tls1_3", "-cert", "unit.pem", "-key", "unit.key", "-CAfile", "ca.pem",
        ])
        .args(["-servername", "localhost", "-verify_return_error", "-brief"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.3"), "{text}");
    assert!(text.contains("Verification: OK"), "{text}");

    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", sim.port))
        .args(["-tls1_2", "-CAfile", "ca.pem", "-brief"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "TLS 1.2 accepted: {text}");
}

#[test]
fn the_simulators_limits_answer_curl_with_431_413_and_a_chunked_body_is_read() {
    let sim = SimProcess::start();
    let dir = pki();
    let curl = |extra: &[&str], path: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
            ])
            .arg(dir.join("ca.pem"))
            .args(["--cert", "unit.pem", "--key", "unit.key"])
            .args(extra)
            .arg(format!("https://localhost:{}{path}", sim.port))
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // curl sends `Expect: 100-continue` before a large body; on a loaded machine it can
    // see the interim 100 and then the connection closed under the body it was still
    // sending, before it reads the final status (it printed "100" once in CI). The limit is
    // the server's to show, not curl's race: ask again (at most three times) while curl
    // saw no final status
    let curl = |extra: &[&str], path: &str| {
        let mut got = String::new();
        for _ in 0..3 {
            got = curl(extra, path);
            if got != "100" && got != "000" {
                break;
            }
        }
        got
    };
    // a header section over 16 KiB
    let big_header = format!("x-padding: {}", "a".repeat(20 * 1024));
    assert_eq!(curl(&["-H", &big_header], "/v2/health"), "431");
    // a body over 4 MiB, announced by Content-Length
    let big = dir.join("big-body.json");
    std::fs::write(&big, vec![b' '; 5 * 1024 * 1024]).unwrap();
    let at_big = format!("@{}", big.display());
    assert_eq!(
        curl(
            &[
                "--data-binary",
                &at_big,
                "-H",
                "content-type: application/json"
            ],
            "/v2/records"
        ),
        "413"
    );
    // the same limit on a chunked body, which announces no length
    assert_eq!(
        curl(
            &[
                "--data-binary",
                &at_big,
                "-H",
                "transfer-encoding: chunked",
                "-H",
                "content-type: application/json"
            ],
            "/v2/records"
        ),
        "413"
    );
    // a small chunked request is read like any other (v1 refused chunked with 411)
    assert_eq!(
        curl(
            &["-d", "{\"broken", "-H", "transfer-encoding: chunked"],
            "/v2/qualification"
        ),
        "400"
    );
    let _ = std::fs::remove_file(&big);
}
