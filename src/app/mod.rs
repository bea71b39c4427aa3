//! The app controller: the session state machine wired to the real parts. It runs on a tokio
//! worker, takes the crew's commands (from the UI, a drill, or a test), carries out the
//! session's effects (card reads on the blocking pool, requests through the eligibility
//! client, records into the store) and publishes a fresh [`view::ViewModel`] after every
//! event. It knows nothing of Slint: the UI layer subscribes to the view model.

pub mod device;
pub mod line;
pub mod reader;
pub mod view;

use crate::card::CardError;
use crate::card::jpki::PinOutcome;
use crate::domain::{
    ConsentDecision, IdentityCheck, IncidentId, OperatorId, RecordBody, Timestamp,
};
use crate::eligibility::EligibilityClient;
use crate::eligibility::wire::QualificationResponse;
use crate::roster::SignInGate;
use crate::session::{Effect, Event, Notice, Phase, ServiceFailure, Session, Station};
use crate::store::Store;
use line::{LinkProbe, RouteCheck, TunnelState};
use reader::CardReader;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};
use view::{Level, PinView, StatusStrip, ViewModel};

/// What the crew (or the road) does.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    SignIn {
        crew_id: String,
        pin: String,
    },
    SignOut,
    /// The reader reports a card.
    CardPlaced,
    CardRemoved,
    /// 顔写真と本人が一致.
    ConfirmPhoto,
    /// PIN fallback: the patient's PIN, entered on the tablet.
    EnterPin {
        pin: String,
        confirm_last_try: bool,
    },
    Consent(ConsentDecision),
    ViewFullData,
    BackToSummary,
    EndViewing,
    Retry,
    /// The line is known to be down / back (drills; on a tablet the link monitor says so).
    LinkLost,
    LinkRestored,
    IdleTimeout,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // PINs never reach a log.
        f.write_str(self.name())
    }
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::SignIn { .. } => "sign_in",
            Command::SignOut => "sign_out",
            Command::CardPlaced => "card_placed",
            Command::CardRemoved => "card_removed",
            Command::ConfirmPhoto => "confirm_photo",
            Command::EnterPin { .. } => "enter_pin",
            Command::Consent(_) => "consent",
            Command::ViewFullData => "view_full_data",
            Command::BackToSummary => "back_to_summary",
            Command::EndViewing => "end_viewing",
            Command::Retry => "retry",
            Command::LinkLost => "link_lost",
            Command::LinkRestored => "link_restored",
            Command::IdleTimeout => "idle_timeout",
        }
    }
}

/// How this tablet behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub station: Station,
    pub training: bool,
    /// Refuse patient-related requests unless the route to the endpoint is the tunnel.
    pub require_tunnel: bool,
    /// Days the unit certificate has left (negative: expired), for the status strip.
    pub unit_certificate_days_left: Option<i64>,
    pub cache_ttl: Duration,
    pub idle_lock: Duration,
    pub idle_end_viewing: Duration,
}

/// The parts the controller drives.
pub struct Ports {
    pub reader: Arc<dyn CardReader>,
    pub client: Arc<EligibilityClient>,
    pub store: Arc<Store>,
    /// Shared so that the PIN check (Argon2id, tens of ms) runs on the blocking pool.
    pub gate: Arc<std::sync::Mutex<SignInGate>>,
    pub route: Arc<dyn RouteCheck>,
    /// The endpoint's address, for the route check.
    pub endpoint_addr: Option<IpAddr>,
    /// Woken after every append so that the uploader sends at once.
    pub uploader_wake: Option<Arc<Notify>>,
}

/// One line of the controller's journal (drill debriefs): no patient data.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub at_ms: f64,
    pub what: String,
    /// A session event (not a note).
    pub event: bool,
    pub phase: &'static str,
    pub notice: Option<&'static str>,
}

pub struct Controller {
    session: Session,
    ports: Ports,
    settings: Settings,
    view: watch::Sender<ViewModel>,
    status: StatusStrip,
    pin: PinView,
    sign_in_error: String,
    incident_seq: u64,
    started: Instant,
    last_touch: Instant,
    journal: Vec<JournalEntry>,
    /// Records appended (training only: the drill debrief lists them).
    recorded: Vec<RecordBody>,
    store_errors: Vec<String>,
    tunnel: TunnelState,
    probe: Option<LinkProbe>,
}

/// Keep the journal bounded on a tablet that runs for days.
const JOURNAL_CAP: usize = 2000;

impl Controller {
    pub fn new(ports: Ports, settings: Settings) -> (Controller, watch::Receiver<ViewModel>) {
        let (view, rx) = watch::channel(ViewModel::default());
        let mut c = Controller {
            session: Session::new(settings.station.clone()),
            ports,
            settings,
            view,
            status: StatusStrip::default(),
            pin: PinView::default(),
            sign_in_error: String::new(),
            incident_seq: 0,
            started: Instant::now(),
            last_touch: Instant::now(),
            journal: vec![],
            recorded: vec![],
            store_errors: vec![],
            tunnel: TunnelState::Unknown,
            probe: None,
        };
        c.tunnel = c.check_route();
        c.refresh_status();
        c.publish();
        (c, rx)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn view(&self) -> ViewModel {
        self.view.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<ViewModel> {
        self.view.subscribe()
    }

    pub fn store(&self) -> Arc<Store> {
        self.ports.store.clone()
    }

    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    pub fn recorded(&self) -> &[RecordBody] {
        &self.recorded
    }

    pub fn store_errors(&self) -> &[String] {
        &self.store_errors
    }

    /// Milliseconds since the controller started (the journal's clock).
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1e3
    }

    /// Add a line to the journal (a drill step, a trainer action).
    pub fn note(&mut self, what: String) {
        self.journal_push(what, false);
    }

    fn journal_push(&mut self, what: String, event: bool) {
        let notice = self.session.notice().map(|n| n.message_en());
        self.journal.push(JournalEntry {
            at_ms: self.elapsed_ms(),
            what,
            event,
            phase: self.session.phase().name(),
            notice,
        });
        if self.journal.len() > JOURNAL_CAP {
            self.journal.drain(..JOURNAL_CAP / 2);
        }
    }

    fn publish(&mut self) {
        let today = time::OffsetDateTime::now_utc().date();
        let vm = view::build(
            &self.session,
            today,
            &self.status,
            &self.pin,
            &self.sign_in_error,
        );
        self.view.send_replace(vm);
    }

    fn check_route(&self) -> TunnelState {
        match self.ports.endpoint_addr {
            Some(addr) => self.ports.route.route_to(addr),
            None => TunnelState::Unknown,
        }
    }

    /// Re-read the store's sync state and the route for the status strip.
    pub fn refresh_status(&mut self) {
        let s = &mut self.status;
        s.training = self.settings.training;
        let link_up = self.session.link_up() && self.probe.as_ref().is_none_or(|p| p.reachable);
        (s.line, s.line_level) = if link_up {
            ("回線 正常".into(), Level::Ok)
        } else {
            ("回線 断".into(), Level::Error)
        };
        (s.server, s.server_level) = match &self.probe {
            None => ("サーバー確認中".into(), Level::Warn),
            Some(p) if p.reachable => ("サーバー可".into(), Level::Ok),
            Some(_) => ("サーバー応答なし".into(), Level::Error),
        };
        s.tunnel = self.tunnel.label_ja().into();
        s.tunnel_level = match self.tunnel {
            TunnelState::Tunnel | TunnelState::Loopback => Level::Ok,
            TunnelState::Direct if self.settings.require_tunnel => Level::Error,
            _ => Level::Warn,
        };
        (s.certificate, s.certificate_level) = match self.settings.unit_certificate_days_left {
            None => ("証明書 なし".into(), Level::Error),
            Some(d) if d < 0 => ("証明書 期限切れ".into(), Level::Error),
            Some(d) if d < 30 => (format!("証明書 {d}日"), Level::Warn),
            Some(d) => (format!("証明書 {d}日"), Level::Ok),
        };
        match self.ports.store.sync_state() {
            Ok(state) => {
                s.queued = state.queued;
                s.last_sync = state
                    .last_success
                    .map(|t| format!("{}送信", clock(t)))
                    .unwrap_or_default();
                s.sync_level = if state.queued == 0 {
                    Level::Ok
                } else if state.last_error.is_some() {
                    Level::Warn
                } else {
                    Level::Ok
                };
            }
            Err(e) => {
                tracing::error!(error = %e, "store sync state unreadable");
                s.last_sync = "記録の状態を読めません".into();
                s.sync_level = Level::Error;
            }
        }
    }

    /// Carry out one command; the view model is published after every event.
    pub async fn handle(&mut self, command: Command) {
        self.last_touch = Instant::now();
        let name = command.name();
        tracing::debug!(command = name, "command");
        let event = match command {
            Command::SignIn { crew_id, pin } => self.sign_in(crew_id, pin).await,
            Command::SignOut => Some(Event::CrewSignedOut),
            Command::CardPlaced => {
                self.incident_seq += 1;
                self.pin = PinView::default();
                Some(Event::CardDetected {
                    incident: IncidentId(format!(
                        "{}-{}-{:04}",
                        self.settings.station.terminal.0,
                        Timestamp::now().0,
                        self.incident_seq
                    )),
                })
            }
            Command::CardRemoved => Some(Event::CardRemoved),
            Command::ConfirmPhoto => Some(Event::IdentityConfirmed {
                check: IdentityCheck::Photo,
            }),
            Command::EnterPin {
                pin,
                confirm_last_try,
            } => self.enter_pin(pin, confirm_last_try).await,
            Command::Consent(decision) => Some(Event::ConsentChosen { decision }),
            Command::ViewFullData => Some(Event::ViewFullData),
            Command::BackToSummary => Some(Event::BackToSummary),
            Command::EndViewing => Some(Event::EndViewing),
            Command::Retry => Some(Event::Retry),
            Command::LinkLost => Some(Event::LinkLost),
            Command::LinkRestored => Some(Event::LinkRestored),
            Command::IdleTimeout => Some(Event::IdleTimeout),
        };
        if let Some(event) = event {
            self.apply(event).await;
        }
        self.refresh_status();
        self.publish();
    }

    async fn sign_in(&mut self, crew_id: String, pin: String) -> Option<Event> {
        if self.session.phase() != Phase::SignedOut {
            return None;
        }
        let gate = self.ports.gate.clone();
        let checked = tokio::task::spawn_blocking(move || {
            gate.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .sign_in(crew_id.trim(), &pin, Timestamp::now())
        })
        .await
        .unwrap_or_else(|e| {
            Err(crate::roster::RosterError::Hash(format!(
                "PIN check task: {e}"
            )))
        });
        match checked {
            Ok(ok) => {
                self.sign_in_error.clear();
                Some(Event::CrewSignedIn {
                    operator: OperatorId::new(&ok.crew_id),
                    viewing_permission: ok.can_view,
                })
            }
            Err(e) => {
                self.sign_in_error = e.message_ja();
                self.note(format!("sign-in refused: {e}"));
                None
            }
        }
    }

    async fn enter_pin(&mut self, pin: String, confirm_last_try: bool) -> Option<Event> {
        if self.session.phase() != Phase::IdentityAndConsent {
            return None;
        }
        let reader = self.ports.reader.clone();
        let outcome =
            tokio::task::spawn_blocking(move || reader.verify_pin(&pin, confirm_last_try))
                .await
                .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
        self.pin = PinView::default();
        let (event, note) = match outcome {
            Ok(PinOutcome::Verified) => (
                Some(Event::IdentityConfirmed {
                    check: IdentityCheck::Pin,
                }),
                "pin: verified".to_string(),
            ),
            Ok(PinOutcome::Wrong { tries_left }) => {
                self.pin.message = format!("暗証番号が違います（残り{tries_left}回）");
                (None, format!("pin: wrong, tries left: {tries_left}"))
            }
            Ok(PinOutcome::Blocked) => {
                self.pin.blocked = true;
                self.pin.message =
                    "暗証番号がロックされています。同意取得困難で進めるか終了してください".into();
                (None, "pin: blocked".into())
            }
            Err(CardError::LastTryNeedsConfirmation) => {
                self.pin.confirm_last_try = true;
                self.pin.message =
                    "残り1回です。間違えるとカードがロックされます。確認してもう一度押してください"
                        .into();
                (None, "pin: one try left, crew confirms the last try".into())
            }
            Err(CardError::PinFormat) => {
                self.pin.message = "暗証番号は4桁の数字です".into();
                (None, "pin: not 4 digits".into())
            }
            Err(e) => {
                self.pin.message = Notice::from_card_failure(e.card_failure())
                    .message_ja()
                    .to_string();
                (None, format!("pin: {e}"))
            }
        };
        self.note(note);
        event
    }

    /// Apply an event and every event its effects lead to.
    async fn apply(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let name = event.name();
            match self.session.handle(Timestamp::now(), event) {
                Ok(effects) => {
                    self.journal_push(name.to_string(), true);
                    self.publish();
                    for effect in effects {
                        queue.extend(self.execute(effect).await);
                    }
                }
                Err(e) => {
                    tracing::debug!(event = name, error = %e, "event not applied");
                    self.note(format!("{name} not applied: {e}"));
                }
            }
        }
    }

    /// Patient-related requests go out only through the tunnel where that is required.
    fn tunnel_refuses(&mut self) -> bool {
        if !self.settings.require_tunnel {
            return false;
        }
        self.tunnel = self.check_route();
        if self.tunnel == TunnelState::Tunnel {
            false
        } else {
            tracing::warn!(route = ?self.tunnel, "patient request refused: route is not the tunnel");
            true
        }
    }

    async fn execute(&mut self, effect: Effect) -> Vec<Event> {
        match effect {
            Effect::ReadCard { incident } => {
                let reader = self.ports.reader.clone();
                let read = tokio::task::spawn_blocking(move || reader.read_credential())
                    .await
                    .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
                match read {
                    Ok(credential) => vec![Event::CardReadOk {
                        incident,
                        credential,
                    }],
                    Err(e) => {
                        tracing::warn!(error = %e, "card read failed");
                        vec![Event::CardReadFailed {
                            incident,
                            failure: e.card_failure(),
                        }]
                    }
                }
            }
            Effect::SendQualification(request) => {
                if self.tunnel_refuses() {
                    return vec![Event::QualificationFailed {
                        incident: request.incident,
                        failure: ServiceFailure::TunnelRequired,
                    }];
                }
                match self.ports.client.qualification(&request).await {
                    Ok(QualificationResponse::Coverage {
                        qualification_ref,
                        coverage,
                    }) => vec![Event::QualificationAnswered {
                        incident: request.incident,
                        qualification: qualification_ref,
                        coverage,
                    }],
                    Ok(QualificationResponse::OptOut) => vec![Event::QualificationOptOut {
                        incident: request.incident,
                    }],
                    Err(e) => {
                        tracing::warn!(error = %e, "qualification failed");
                        vec![Event::QualificationFailed {
                            incident: request.incident,
                            failure: e.service_failure(),
                        }]
                    }
                }
            }
            Effect::SendEmergencyInquiry(inquiry) => {
                if self.tunnel_refuses() {
                    return vec![Event::EmergencyInfoFailed {
                        incident: inquiry.incident,
                        failure: ServiceFailure::TunnelRequired,
                    }];
                }
                match self.ports.client.emergency_info(&inquiry).await {
                    Ok(info) => {
                        let expires = Timestamp(
                            Timestamp::now().0 + self.settings.cache_ttl.as_millis() as i64,
                        );
                        if let Err(e) =
                            self.ports
                                .store
                                .cache_put(&inquiry.incident, &info, expires)
                        {
                            tracing::error!(error = %e, "cache write failed");
                            self.store_errors.push(e.to_string());
                        }
                        vec![Event::EmergencyInfoAnswered {
                            incident: inquiry.incident,
                            info,
                        }]
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "emergency-info inquiry failed");
                        vec![Event::EmergencyInfoFailed {
                            incident: inquiry.incident,
                            failure: e.service_failure(),
                        }]
                    }
                }
            }
            Effect::AppendConsentRecord(record) => {
                self.append(RecordBody::Consent(record));
                vec![]
            }
            Effect::AppendAudit(entry) => {
                self.append(RecordBody::Audit(entry));
                vec![]
            }
            Effect::PurgePatientData { incident } => {
                self.pin = PinView::default();
                if let Err(e) = self.ports.store.purge_incident(&incident) {
                    tracing::error!(error = %e, "purge failed");
                    self.store_errors.push(e.to_string());
                }
                vec![]
            }
        }
    }

    fn append(&mut self, body: RecordBody) {
        match self.ports.store.append(body.clone(), Timestamp::now()) {
            Ok(_) => {
                if let Some(w) = &self.ports.uploader_wake {
                    w.notify_one();
                }
            }
            Err(e) => {
                // Nothing is acknowledged that was not written: the crew sees it on screen.
                tracing::error!(error = %e, "record append failed");
                self.store_errors.push(e.to_string());
            }
        }
        if self.settings.training {
            self.recorded.push(body);
        }
    }

    /// A health probe arrived: tell the session when the line went or came back.
    pub async fn link_probe(&mut self, probe: LinkProbe) {
        let reachable = probe.reachable;
        self.probe = Some(probe);
        self.tunnel = self.check_route();
        if reachable && !self.session.link_up() {
            self.apply(Event::LinkRestored).await;
        } else if !reachable && self.session.link_up() {
            self.apply(Event::LinkLost).await;
        }
        self.refresh_status();
        self.publish();
    }

    fn idle_limit(&self) -> Option<Duration> {
        match self.session.phase() {
            Phase::SignedOut => None,
            Phase::Ready => Some(self.settings.idle_lock),
            _ => Some(self.settings.idle_end_viewing),
        }
    }

    /// Run until the command channel closes: commands, link probes, idle timers, and a
    /// status refresh every few seconds.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut link: Option<watch::Receiver<Option<LinkProbe>>>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            let idle_at = self
                .idle_limit()
                .map(|d| tokio::time::Instant::from_std(self.last_touch + d));
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                changed = async { match link.as_mut() {
                    Some(l) => l.changed().await.map(|_| l.borrow_and_update().clone()),
                    None => std::future::pending().await,
                } } => match changed {
                    Ok(Some(probe)) => self.link_probe(probe).await,
                    Ok(None) => {}
                    Err(_) => link = None, // the monitor is gone; keep serving the crew
                },
                _ = async { match idle_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                } } => self.handle(Command::IdleTimeout).await,
                _ = tick.tick() => {
                    self.refresh_status();
                    self.publish();
                }
            }
        }
    }
}

fn clock(t: Timestamp) -> String {
    t.in_jst()
        .map(|d| format!("{:02}:{:02}", d.hour(), d.minute()))
        .unwrap_or_default()
}
