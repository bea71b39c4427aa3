//! Debian's chromium, headless, driven over chromedriver (WebDriver) by fantoccini: the
//! driver started on a free port and stopped by PID, a fresh profile per browser, and the
//! dev server certificate's key pinned (`--ignore-certificate-errors-spki-list`: that key
//! and no other certificate error is accepted).

use super::{Killed, TempDir, pki};
use fantoccini::{Client, ClientBuilder};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Chromium {
    _driver: Killed,
    _profile: TempDir,
    pub client: Client,
}

/// base64(SHA-256(SPKI)) of `dir`'s `server.pem`.
pub fn server_spki_pin(dir: &Path) -> String {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls::pki_types::CertificateDer::from_pem_file(dir.join("server.pem")).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(cert.public_key().raw))
}

impl Chromium {
    /// Signs in on the inbox at `inbox_port` as a person would (the form's fields, the
    /// button) and waits until the page's event stream is connected.
    pub async fn sign_in(&self, inbox_port: u16, login: &str, password: &str, code: &str) {
        use fantoccini::Locator;
        let c = &self.client;
        c.goto(&format!("https://localhost:{inbox_port}/sign-in"))
            .await
            .unwrap();
        for (field, value) in [("#login", login), ("#password", password), ("#code", code)] {
            c.find(Locator::Css(field))
                .await
                .unwrap()
                .send_keys(value)
                .await
                .unwrap();
        }
        c.find(Locator::Css("#sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("body[data-connected='1']"))
            .await
            .unwrap_or_else(|e| panic!("{login} signed in, but the page never connected: {e}"));
    }

    /// A browser trusting the server key of the shared dev PKI.
    pub async fn start() -> Option<Chromium> {
        Self::start_for(pki()).await
    }

    /// A browser trusting the server key in `pki_dir`; None when chromedriver is missing
    /// (outside CI; in CI that is a failure).
    pub async fn start_for(pki_dir: &Path) -> Option<Chromium> {
        if Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is missing (scripts/setup installs chromium-driver)"
            );
            eprintln!("skipped: no chromedriver");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Killed(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let profile = TempDir::new("chromium");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--lang=ja",
                    "--window-size=1280,800", "--autoplay-policy=no-user-gesture-required",
                    format!("--ignore-certificate-errors-spki-list={}", server_spki_pin(pki_dir)),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let mut last = None;
        for _ in 0..50 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    return Some(Chromium {
                        _driver: driver,
                        _profile: profile,
                        client,
                    });
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }
}
