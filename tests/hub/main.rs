//! The hand-off hub end to end: the hub in this process (or its binary, for the kill
//! test) on loopback with the dev PKI, tablets as `HubClient`s with unit certificates, the
//! inbox spoken to over HTTPS as a browser would (cookies, forms, CSRF tokens), and every
//! attack of issue #25 as a test from the attacker's side.

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod browser;
mod drills;
mod fhir;
mod flow;
mod postgres;
mod provision;
mod retention;

use common::{TempDir, pki};
use mynakyukyu::domain::{ConsentDecision, Sex, UnobtainableReason};
use mynakyukyu::eligibility::UnitIdentity;
use mynakyukyu::handoff::{
    AgeBand, AlertClaim, AlertSource, Complaint, Disclosure, HospitalCode, Jcs, Packet,
    PacketConsent, PacketPatient, SummaryItem, Vitals,
};
use mynakyukyu::hub::client::HubClient;
use mynakyukyu::hub::tablet::{AskRequest, DecideRequest};
use mynakyukyu::hub::{Hub, HubOptions, admin, totp};
use std::collections::HashMap;
use std::time::Duration;

/// Words of the test patient's clinical content: none may be found where it must not be.
pub const CLINICAL_WORDS: [&str; 6] = [
    "ワルファリン錠",
    "心房細動",
    "右大腿骨",
    "山田花子",
    "ヤマダハナコ",
    "胸部痛で自宅にて倒れ",
];

/// A hub on loopback with three hospitals and one staff member each.
pub struct HubFixture {
    pub hub: Option<Hub>,
    pub data: TempDir,
    pub keys: TempDir,
    /// login → TOTP secret
    pub secrets: HashMap<String, Vec<u8>>,
    pub options: HubOptions,
}

/// The unit the dev PKI's `unit.pem` names (its CN).
pub const UNIT: &str = "TRAINING-UNIT";

pub const PASSWORD: &str = "correct horse battery";

impl HubFixture {
    pub async fn start() -> HubFixture {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut HubOptions)) -> HubFixture {
        let data = TempDir::new("hub-data");
        let keys = TempDir::new("hub-keys");
        let mut options = HubOptions::loopback(
            data.path().to_path_buf(),
            keys.path().join("seal.key"),
            pki().to_path_buf(),
        );
        tune(&mut options);
        let store = match &options.database {
            Some(url) => mynakyukyu::hub::store::HubStore::open_url(url)
                .await
                .unwrap(),
            None => mynakyukyu::hub::store::HubStore::open(data.path())
                .await
                .unwrap(),
        };
        let master = mynakyukyu::hub::seal::SealKey::load_or_create(&options.seal_key).unwrap();
        admin::trust_ca(
            &store,
            &std::fs::read_to_string(pki().join("ca.pem")).unwrap(),
        )
        .await
        .unwrap();
        let mut secrets = HashMap::new();
        for (code, name, login) in [
            ("H1", "第一病院", "er1"),
            ("H2", "第二病院", "er2"),
            ("H3", "第三病院", "er3"),
        ] {
            admin::add_hospital(&store, code, name, &["救急科".into()])
                .await
                .unwrap();
            let secret = enrol_staff(&store, &master, code, login, &format!("{name} 当直")).await;
            secrets.insert(login.to_string(), secret);
        }
        store.close().await;
        let hub = Hub::start(options.clone()).await.unwrap();
        HubFixture {
            hub: Some(hub),
            data,
            keys,
            secrets,
            options,
        }
    }

    pub fn hub(&self) -> &Hub {
        self.hub.as_ref().expect("a running hub")
    }

    /// A tablet presenting the dev PKI's `unit` certificate (e.g. "unit", "other-unit").
    pub fn tablet(&self, unit: &str) -> HubClient {
        tablet_at(self.hub().tablet_addr.port(), unit)
    }

    pub fn inbox(&self) -> Inbox {
        Inbox::new(self.hub().inbox_addr.port())
    }

    /// The current TOTP code of `login`, one step after `last` so it is never a replay.
    pub fn code(&self, login: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        format!(
            "{:06}",
            totp::code_at(&self.secrets[login], now / totp::STEP_S)
        )
    }

    /// A signed-in inbox for `login` (waits for the next TOTP step when this one was used).
    pub async fn signed_in(&self, login: &str) -> Inbox {
        let mut inbox = self.inbox();
        for _ in 0..40 {
            let code = self.code(login);
            let (status, _) = inbox.sign_in(login, PASSWORD, &code).await;
            if status == 303 {
                return inbox;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("{login} could not sign in");
    }

    /// The next start listens where this one does.
    pub fn pin_ports(&mut self) {
        let (t, i) = (self.hub().tablet_addr, self.hub().inbox_addr);
        self.options.tablet_listen = t;
        self.options.inbox_listen = i;
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.hub.take() {
            h.shutdown().await;
        }
    }

    /// Stop and start again on the same ports (a page or tablet reconnects to the same
    /// address, as behind a load balancer).
    pub async fn restart(&mut self) {
        self.pin_ports();
        self.stop().await;
        self.hub = Some(Hub::start(self.options.clone()).await.unwrap());
    }
}

/// A staff member of `hospital` with [`PASSWORD`]; their TOTP secret.
pub async fn enrol_staff(
    store: &mynakyukyu::hub::store::HubStore,
    master: &mynakyukyu::hub::seal::SealKey,
    hospital: &str,
    login: &str,
    name: &str,
) -> Vec<u8> {
    let e = admin::add_staff(store, master, hospital, login, name, PASSWORD)
        .await
        .unwrap();
    data_encoding::BASE32_NOPAD
        .decode(e.secret_base32.as_bytes())
        .unwrap()
}

pub fn tablet_at(port: u16, unit: &str) -> HubClient {
    let identity = UnitIdentity::from_files(
        &pki().join(format!("{unit}.pem")),
        &pki().join(format!("{unit}.key")),
        &pki().join("ca.pem"),
    )
    .unwrap();
    HubClient::new(
        mynakyukyu::eligibility::client::tls_config(identity).unwrap(),
        "localhost",
        port,
    )
}

pub fn disclosure() -> Disclosure {
    Disclosure {
        age_band: Some(AgeBand::of_age(84)),
        modifiers: vec![],
        onset_minutes_ago: None,
        sex: Sex::Female,
        complaint: Complaint::AlteredConsciousness,
        vitals: Vitals {
            jcs: Jcs::new(100),
            bp_systolic: Some(168),
            bp_diastolic: Some(92),
            ..Vitals::default()
        },
        alerts: vec![AlertClaim {
            label: "抗凝固薬".into(),
            source: AlertSource::NationalSystem {
                as_of: time::macros::date!(2026 - 11 - 30),
            },
        }],
        eta_minutes: Some(12),
        callback: "090-1234-5678".into(),
    }
}

pub fn ask(candidates: &[&str]) -> AskRequest {
    AskRequest {
        incident_id: "INC-1".into(),
        candidates: candidates
            .iter()
            .map(|c| HospitalCode(c.to_string()))
            .collect(),
        disclosure: disclosure(),
    }
}

pub fn packet() -> Packet {
    Packet {
        patient: PacketPatient {
            name: "山田花子".into(),
            kana: "ヤマダハナコ".into(),
            birth_date: "1942-04-01".into(),
            sex: Sex::Female,
            insured_number: None,
        },
        consent: Some(PacketConsent {
            decision: ConsentDecision::Unobtainable,
            reason: Some(UnobtainableReason::Unconscious),
            at_ms: 1_765_000_000_000,
            recorded_by: "救急隊長 佐藤".into(),
        }),
        medications: vec![SummaryItem {
            text: "ワルファリン錠1mg".into(),
            as_of: Some("2026-11-30".into()),
        }],
        diagnoses: vec![SummaryItem {
            text: "心房細動".into(),
            as_of: Some("2026-10".into()),
        }],
        procedures: vec![SummaryItem {
            text: "右大腿骨頸部骨折 観血的手術".into(),
            as_of: Some("2025-06".into()),
        }],
        summary_as_of_ms: Some(1_765_000_000_000),
        crew_note: "胸部痛で自宅にて倒れているところを家族が発見".into(),
        crew: vec!["佐藤".into(), "鈴木".into()],
    }
}

pub fn decide(hospital: &str) -> DecideRequest {
    DecideRequest {
        hospital: HospitalCode(hospital.into()),
        packet: packet(),
    }
}

/// The inbox as a browser speaks to it: HTTPS (the dev CA trusted), a cookie jar of one,
/// forms.
pub struct Inbox {
    port: u16,
    tls: tokio_rustls::TlsConnector,
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Inbox {
    pub fn new(port: u16) -> Inbox {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(pki().join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(
            mynakyukyu::eligibility::client::crypto_provider(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Inbox {
            port,
            tls: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
            cookie: None,
        }
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.tls.connect(name, tcp).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("localhost:{}", self.port));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c.clone());
        }
        let body = match form {
            Some(f) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                serde_urlencoded_pairs(f)
            }
            None => String::new(),
        };
        let res = sender
            .send_request(
                req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            self.cookie = if pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        let body = if path == "/events" {
            String::new()
        } else {
            String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes())
                .into_owned()
        };
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(form)).await
    }

    pub async fn sign_in(&mut self, login: &str, password: &str, code: &str) -> (u16, String) {
        let p = self
            .post(
                "/sign-in",
                &[("login", login), ("password", password), ("code", code)],
            )
            .await;
        (p.status, p.body)
    }

    /// The CSRF token of the signed-in page.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/").await;
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field on the page");
        page.body[at + 19..at + 19 + 64].to_string()
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every file under `dir`, read whole.
pub fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    common::files(dir)
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
