//! The training world: the simulator served on loopback with the development PKI, a delay
//! proxy in front of it (the trainer's "line"), the in-process virtual reader, a training
//! roster and a training store. Everything lives under the training data dir; the client
//! only ever points at 127.0.0.1, so nothing recorded in training reaches a real endpoint.

use super::{DRILL_PIN, DrillError};
use crate::app::reader::VirtualReader;
use crate::app::{Ports, Settings};
use crate::card::{FaceItems, VirtualCard};
use crate::domain::{TerminalId, UnitId};
use crate::eligibility::client::tls_config;
use crate::eligibility::{ClientSettings, EligibilityClient, Endpoint, UnitIdentity};
use crate::kernel_route::KernelRoute;
use crate::roster::{Roster, SignInGate};
use crate::session::Station;
use crate::sim::Faults;
use crate::sim::patients::PatientScenario;
use crate::sim::proxy::DelayProxy;
/// The trainer's line, as the trainer panel sets it.
pub use crate::sim::proxy::LinkState;
use crate::sim::server::{ServeOptions, SimServer};
use crate::store::{Store, StoreKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The crew id and PIN every training roster has (shown on the training sign-in screen).
pub const TRAINING_CREW: &str = "TRAINEE";
/// The contact a drill shows with the explanation reminder.
pub const TRAINING_CONTACT: &str = "訓練消防本部 警防課 TEL 000-0000-0000";
pub const TRAINING_CREW_PIN: &str = "000000";
/// The training crew's name: the button the trainee taps on the sign-in screen.
pub const TRAINING_CREW_NAME: &str = "訓練 隊員";
/// The training unit's call-back number in every training 受入照会.
pub const TRAINING_CALLBACK: &str = "000-0000-0119";

pub struct TrainingWorld {
    pub dir: PathBuf,
    pub server: SimServer,
    pub proxy: DelayProxy,
    pub reader: Arc<VirtualReader>,
    pub store: Arc<Store>,
    /// The training hub: the training hospitals and their scripted answers.
    pub hub: crate::hub::training::TrainingHub,
    /// The trainer's line in front of the hub too: 回線断 cuts both.
    pub hub_proxy: DelayProxy,
    pki_dir: PathBuf,
    roster_key: crate::roster::RosterKey,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DrillError + '_ {
    move |e| DrillError::Setup(format!("{}: {e}", path.display()))
}

/// One drill at a time sets up a training dir (its PKI, store key, roster and counts):
/// drills started together on a fresh tablet each wrote the same files at once, and one
/// could read another's half-made roster or pair two CAs. An exclusive `flock` on a file
/// in the dir, across processes; released when dropped.
struct SetupLock(#[allow(dead_code)] std::fs::File);

impl SetupLock {
    fn take(dir: &Path) -> Result<SetupLock, DrillError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(".setup.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(io(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| DrillError::Setup(format!("{}: {e}", path.display())))?;
        Ok(SetupLock(file))
    }
}

impl TrainingWorld {
    /// Start the world in `dir` (the training data dir), generating the development PKI
    /// and the training roster on first use.
    pub async fn start(dir: &Path, today: time::Date) -> Result<TrainingWorld, DrillError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // drills that start together on one training dir take turns setting it up
        let setup = SetupLock::take(dir)?;
        let pki_dir = dir.join("pki");
        crate::pki::dev::ensure(&pki_dir).map_err(|e| DrillError::Setup(e.to_string()))?;
        let server = SimServer::start(ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            pki_dir: pki_dir.clone(),
            faults: Faults::default(),
            audit_log: None,
            today,
        })
        .await
        .map_err(|e| DrillError::Setup(e.to_string()))?;
        // a training day may see many virtual patients; flag, but never refuse a drill
        server.with_simulator(|s| {
            s.set_rate_limit(crate::sim::PatientRateLimit {
                flag_at: crate::sim::PatientRateLimit::default().flag_at,
                refuse_above: usize::MAX,
            })
        });
        let proxy = DelayProxy::start(server.local_addr, Duration::ZERO)
            .await
            .map_err(|e| DrillError::Setup(format!("line proxy: {e}")))?;
        let key = StoreKey::load_or_create(&dir.join(crate::config::STORE_KEY_FILE))?;
        let roster_key = crate::config::roster_key_of(&key);
        let roster_path = dir.join(crate::config::ROSTER_FILE);
        let mut roster =
            Roster::load(&roster_path).map_err(|e| DrillError::Setup(e.to_string()))?;
        // a training dir from before 6-digit PINs holds the old training PIN: replace it
        let stale = roster.member(TRAINING_CREW).is_some_and(|m| {
            !crate::roster::pin_matches(TRAINING_CREW_PIN, &m.pin_hash, &roster_key)
        });
        if stale {
            let _ = roster.remove(TRAINING_CREW);
        }
        if roster.member(TRAINING_CREW).is_none() {
            roster
                .add(
                    TRAINING_CREW,
                    TRAINING_CREW_NAME,
                    TRAINING_CREW_PIN,
                    true,
                    &roster_key,
                )
                .and_then(|()| roster.save(&roster_path, &roster_key))
                .map_err(|e| DrillError::Setup(e.to_string()))?;
        }
        // counts from before they carried a MAC read as "every id locked": in a training
        // dir they start again
        if !crate::roster::counts_intact(&roster_path, &roster_key) {
            crate::roster::unlock(&roster_path, None, &roster_key)
                .map_err(|e| DrillError::Setup(e.to_string()))?;
        }
        drop(setup);

        // Another drill on the same training dir holds the store for a few seconds at
        // most: wait for it rather than fail.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let store = loop {
            match Store::open(&dir.join(crate::config::STORE_DIR), &key) {
                Ok(s) => break Arc::new(s),
                Err(e)
                    if e.to_string().contains("acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let hub = crate::hub::training::start(&pki_dir)
            .await
            .map_err(|e| DrillError::Setup(format!("training hub: {e}")))?;
        let hub_proxy = DelayProxy::start(hub.hub.tablet_addr, Duration::ZERO)
            .await
            .map_err(|e| DrillError::Setup(format!("hub line proxy: {e}")))?;
        Ok(TrainingWorld {
            hub,
            hub_proxy,
            dir: dir.to_path_buf(),
            server,
            proxy,
            reader: VirtualReader::new(),
            store,
            pki_dir,
            roster_key,
        })
    }

    /// The training roster's key (a subkey of the training store key).
    pub fn roster_key(&self) -> &crate::roster::RosterKey {
        &self.roster_key
    }

    /// The training unit's TLS: its certificate and key, the development CA.
    fn unit_tls(&self) -> Result<rustls::ClientConfig, DrillError> {
        let identity = UnitIdentity::from_files(
            &self.pki_dir.join("unit.pem"),
            &self.pki_dir.join("unit.key"),
            &self.pki_dir.join("ca.pem"),
        )
        .map_err(|e| DrillError::Setup(e.to_string()))?;
        tls_config(identity).map_err(|e| DrillError::Setup(e.to_string()))
    }

    /// A client for the training unit, through the line proxy on loopback.
    pub fn client(&self, settings: ClientSettings) -> Result<EligibilityClient, DrillError> {
        let config = self.unit_tls()?;
        EligibilityClient::new(
            Endpoint {
                host: "127.0.0.1".into(),
                port: self.proxy.local_addr.port(),
            },
            config,
            settings,
        )
        .map_err(|e| DrillError::Setup(e.to_string()))
    }

    /// A hub client for the training unit (the same unit certificate).
    pub fn hub_client(&self) -> Result<crate::hub::client::HubClient, DrillError> {
        let config = self.unit_tls()?;
        Ok(crate::hub::client::HubClient::new(
            config,
            "localhost",
            self.hub_proxy.local_addr.port(),
        ))
    }

    /// Client settings for drills: a dropped line is noticed within about a second.
    pub fn client_settings() -> ClientSettings {
        ClientSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            retries: 1,
            backoff_base: Duration::from_millis(50),
            ..ClientSettings::default()
        }
    }

    /// The controller's parts for training.
    pub fn ports(&self) -> Result<Ports, DrillError> {
        let client = Arc::new(self.client(Self::client_settings())?);
        let gate = SignInGate::open(
            &self.dir.join(crate::config::ROSTER_FILE),
            self.roster_key.clone(),
        )
        .map_err(|e| DrillError::Setup(e.to_string()))?;
        Ok(Ports {
            reader: self.reader.clone(),
            client,
            store: self.store.clone(),
            gate: Arc::new(std::sync::Mutex::new(gate)),
            route: Arc::new(KernelRoute),
            endpoint_addr: Some(self.proxy.local_addr.ip()),
            uploader_wake: None,
            hub: Some(Arc::new(self.hub_client()?)),
            hub_addr: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        })
    }

    pub fn settings(&self) -> Settings {
        let not_after = crate::pki::inspect_pem_file(&self.pki_dir.join("unit.pem"))
            .map(|s| crate::domain::Timestamp(s.not_after_ms));
        Settings {
            station: Station {
                unit: UnitId::new(crate::pki::dev::UNIT),
                terminal: TerminalId::new("TRAINING-TERMINAL"),
            },
            training: true,
            require_tunnel: false,
            unit_certificate_not_after: not_after,
            crl_data_dir: None,
            unsynced_warning_days: crate::upkeep::UNSYNCED_WARNING_DAYS,
            request_deadline: crate::app::REQUEST_DEADLINE,
            idle_lock: Duration::from_secs(300),
            idle_end_viewing: Duration::from_secs(600),
            explanation_contact: TRAINING_CONTACT.into(),
            callback: TRAINING_CALLBACK.into(),
            hub_require_tunnel: false,
        }
    }

    /// The patient id for a scenario's `patient` (an id or a patient-scenario name).
    pub fn patient_id(&self, patient: &str) -> Option<String> {
        self.server.with_simulator(|sim| {
            PatientScenario::ALL
                .iter()
                .find(|s| s.name() == patient)
                .and_then(|s| sim.scenario_patient(*s))
                .or_else(|| sim.patient(patient))
                .map(|p| p.id.clone())
        })
    }

    /// Issue a fresh card to the patient and put it on the virtual reader.
    pub fn place_card(&self, patient_id: &str) -> Result<(), DrillError> {
        self.place(patient_id, super::Carrier::Card)
    }

    /// Issue a fresh credential to the patient and hold it to the virtual reader on the
    /// carrier given: the card, or a phone.
    pub fn place(&self, patient_id: &str, carrier: super::Carrier) -> Result<(), DrillError> {
        use crate::domain::TokenKind;
        let issued = self
            .server
            .with_simulator(|sim| sim.issue_card(patient_id))?;
        let card = VirtualCard::new(
            &issued.auth_certificate_der,
            &issued.ca_certificate_der,
            DRILL_PIN,
            FaceItems::default(),
        )
        .with_auth_key(issued.auth_key_pkcs8);
        let mut card = match carrier {
            super::Carrier::Card => card,
            super::Carrier::Android => card.as_phone(TokenKind::AndroidPhone),
            super::Carrier::Ios | super::Carrier::IosLocked => card.as_phone(TokenKind::IPhone),
        };
        card.owner_unlocked = carrier == super::Carrier::Ios;
        self.reader.place(card);
        Ok(())
    }

    pub fn set_line(&self, state: LinkState) {
        self.proxy.set_state(state);
        self.hub_proxy.set_state(state);
    }

    pub async fn shutdown(self) {
        self.hub.shutdown().await;
        self.server.shutdown().await;
    }
}
