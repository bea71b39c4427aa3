//! The app controller: the session state machine wired to the real parts. It runs on a tokio
//! worker, takes the crew's commands (from the UI, a drill, or a test), carries out the
//! session's effects and publishes a fresh [`view::ViewModel`] after every event. It knows
//! nothing of Slint: the UI layer subscribes to the view model.
//!
//! The controller never waits for the card, the network or the disk: card reads and PIN
//! checks run on the blocking pool, requests (with the route check and a total deadline)
//! on tasks of their own, records on a store-writer thread that keeps their order. Each
//! outcome comes back to the loop as an [`Outcome`] and becomes a session event, so
//! 閲覧終了, a card removed, sign-out or the idle purge take effect at once even while a
//! request hangs; the session ignores the late answer by its incident id. A request waits
//! for the records queued before it (a barrier on the writer), so a consent record is on
//! disk before the inquiry that carries it leaves the tablet.

mod crl_watch;
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
use crate::session::Effect as E;
use crate::session::{Event, Notice, Phase, ServiceFailure, Session, Station};
use crate::store::Store;
use line::{LinkProbe, RouteCheck, TunnelState};
use reader::CardReader;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot, watch};
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
    /// PIN fallback: the patient's PIN, entered on the tablet (on an Android phone: the
    /// smartphone PIN, before anything is read).
    EnterPin {
        pin: String,
        confirm_last_try: bool,
    },
    /// The patient cannot type the phone's PIN (unconscious etc.).
    PatientCannotEnterPin,
    Consent(ConsentDecision),
    /// 訂正 of the consent decision while viewing.
    CorrectConsent(ConsentDecision),
    /// 傷病者用説明書を渡した.
    ExplanationHanded,
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
            Command::PatientCannotEnterPin => "patient_cannot_enter_pin",
            Command::Consent(_) => "consent",
            Command::CorrectConsent(_) => "correct_consent",
            Command::ExplanationHanded => "explanation_handed",
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
    /// When the unit certificate ends, for the status strip (days are counted at every
    /// refresh: a tablet runs for weeks).
    pub unit_certificate_not_after: Option<Timestamp>,
    /// The data dir whose server CRL's next update the strip watches (re-read when the file
    /// changes); `None` in training.
    pub crl_data_dir: Option<std::path::PathBuf>,
    /// Records waiting longer than this for the line are a warning on the strip (0: never).
    pub unsynced_warning_days: u32,
    pub idle_lock: Duration,
    pub idle_end_viewing: Duration,
    /// The whole time a request may take, retries included; then it counts as a timeout
    /// (the session waits for the link and resends).
    pub request_deadline: Duration,
}

/// The default total deadline of one request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

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
    /// The roster file, read for the sign-in screen's list while signed out.
    roster_path: std::path::PathBuf,
    /// That list, with the roster's modification time when it was read: read again only
    /// when an admin changed the roster, not at every view model.
    crew_list: Option<(std::time::SystemTime, Vec<crate::roster::CrewEntry>)>,
    incident_seq: u64,
    started: Instant,
    last_touch: Instant,
    journal: Vec<JournalEntry>,
    /// Records appended, kept only for a drill's debrief (`keep_records_for_debrief`): an
    /// app running a whole training shift kept every record here and grew by it.
    recorded: Option<Vec<RecordBody>>,
    store_errors: Vec<String>,
    tunnel: TunnelState,
    probe: Option<LinkProbe>,
    /// Outcomes of work running off the loop.
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    /// Jobs whose outcome has not come back yet (what `settle` waits for).
    in_flight: usize,
    writer: StoreWriter,
    /// The card's signature over the PIN-path challenge of this incident: sent with its
    /// emergency-info inquiry, dropped with the incident.
    card_signature: Option<(IncidentId, Vec<u8>)>,
    /// An Android phone's smartphone PIN, from its verification until the phone signed the
    /// server's challenge (a second card session needs it again); dropped with the
    /// incident, zeroed when dropped, never logged.
    phone_pin: Option<(IncidentId, zeroize::Zeroizing<String>)>,
    /// The incident whose phone is signing the challenge now.
    phone_signing: Option<IncidentId>,
    /// The server CRL's next update, for the strip's warning.
    crl_watch: crl_watch::CrlWatch,
}

/// What work off the loop reports back.
pub enum Outcome {
    /// Session events (a card read, an answer, a failure).
    Events(Vec<Event>),
    /// A PIN check on the card, for this incident, with the card's signature when verified.
    Pin(IncidentId, Result<reader::PinChecked, CardError>),
    /// A smartphone PIN attempt on an Android phone (the PIN comes back to be kept for the
    /// signature when it verified).
    PhonePin(
        IncidentId,
        Result<reader::PhoneRead, CardError>,
        zeroize::Zeroizing<String>,
    ),
    /// A phone's signature over the server's challenge.
    PhoneSigned(IncidentId, Result<Vec<u8>, CardError>),
    /// Where the route to the endpoint goes now.
    Route(TunnelState),
    /// A request's answer (or failure), with the route it was checked against.
    Answer {
        route: Option<TunnelState>,
        events: Vec<Event>,
    },
    /// A record append finished (the error text if it failed).
    Stored(Result<(), String>),
}

enum StoreJob {
    Append(Box<RecordBody>, Timestamp),
    /// Answered once every job queued before it is done.
    Barrier(oneshot::Sender<()>),
}

/// One thread that writes records in the order the session produced them, so that fsyncs
/// never block a runtime worker and a request can wait for the records before it.
struct StoreWriter {
    jobs: Option<std::sync::mpsc::Sender<StoreJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StoreWriter {
    /// Finish the queued writes and let go of the store before the controller is gone, so
    /// whoever opens the store next finds it unlocked and complete.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl StoreWriter {
    fn start(
        store: Arc<Store>,
        wake: Option<Arc<Notify>>,
        outcomes: mpsc::UnboundedSender<Outcome>,
    ) -> StoreWriter {
        let (jobs, rx) = std::sync::mpsc::channel::<StoreJob>();
        let spawned = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in rx {
                    let done = match job {
                        StoreJob::Append(body, now) => store.append(*body, now).map(|_| {
                            if let Some(w) = &wake {
                                w.notify_one();
                            }
                        }),
                        StoreJob::Barrier(tx) => {
                            let _ = tx.send(());
                            continue;
                        }
                    };
                    let _ = outcomes.send(Outcome::Stored(done.map_err(|e| e.to_string())));
                }
            });
        let thread = match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                // Without a thread the jobs' channel is closed: every append then reports
                // an error on screen instead of being silently lost.
                tracing::error!(error = %e, "cannot start the store writer");
                None
            }
        };
        StoreWriter {
            jobs: Some(jobs),
            thread,
        }
    }

    /// Queue a job; false if the writer is gone.
    fn send(&self, job: StoreJob) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Resolves when every job queued so far is done (at once if the writer is gone).
    fn barrier(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.send(StoreJob::Barrier(tx));
        rx
    }
}

/// Keep the journal bounded on a tablet that runs for days.
const JOURNAL_CAP: usize = 2000;

impl Controller {
    pub fn new(ports: Ports, settings: Settings) -> (Controller, watch::Receiver<ViewModel>) {
        let (view, rx) = watch::channel(ViewModel::default());
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let writer = StoreWriter::start(
            ports.store.clone(),
            ports.uploader_wake.clone(),
            outcomes_tx.clone(),
        );
        let roster_path = ports
            .gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .roster_path()
            .to_path_buf();
        let mut c = Controller {
            roster_path,
            crew_list: None,
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
            recorded: None,
            store_errors: vec![],
            tunnel: TunnelState::Unknown,
            probe: None,
            outcomes_tx,
            outcomes,
            in_flight: 0,
            writer,
            card_signature: None,
            phone_pin: None,
            phone_signing: None,
            crl_watch: Default::default(),
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

    /// From now on, keep a copy of every record appended, for a drill's debrief.
    pub fn keep_records_for_debrief(&mut self) {
        self.recorded.get_or_insert_with(Vec::new);
    }

    /// The records appended since `keep_records_for_debrief` (none before it).
    pub fn recorded(&self) -> &[RecordBody] {
        self.recorded.as_deref().unwrap_or_default()
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
        let today = view::today_jst(Timestamp::now());
        let vm = view::build(
            &self.session,
            today,
            &self.status,
            &self.pin,
            &self.sign_in_error,
        );
        let mut vm = vm;
        if vm.screen == view::Screen::SignIn {
            vm.crew_list = self.sign_in_list();
        }
        self.view.send_replace(vm);
    }

    /// The roster's crew for the sign-in screen. An admin's `crew add` shows at the next
    /// view model (the roster's modification time changed); an unreadable roster lists
    /// nobody, and sign-in then says why (the gate reads the roster too).
    fn sign_in_list(&mut self) -> Vec<crate::roster::CrewEntry> {
        let modified = std::fs::metadata(&self.roster_path)
            .and_then(|m| m.modified())
            .ok();
        if let (Some(at), Some((read_at, list))) = (modified, &self.crew_list)
            && at == *read_at
        {
            return list.clone();
        }
        let list = crate::roster::Roster::load(&self.roster_path)
            .map(|r| r.sign_in_list())
            .unwrap_or_default();
        self.crew_list = modified.map(|at| (at, list.clone()));
        list
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
        let now = Timestamp::now();
        let sync = self.ports.store.sync_state();
        let upkeep = crate::upkeep::warnings(&crate::upkeep::Facts {
            now,
            unit_certificate_not_after: self.settings.unit_certificate_not_after,
            server_crl_next_update: self
                .crl_watch
                .next_update(self.settings.crl_data_dir.as_deref()),
            oldest_unsynced: sync.as_ref().ok().and_then(|s| s.oldest_queued_at),
            unsynced_warning_days: self.settings.unsynced_warning_days,
        });
        let level_of = |w: &crate::upkeep::UpkeepWarning| match w.severity {
            crate::upkeep::Severity::Urgent => Level::Error,
            crate::upkeep::Severity::Warn => Level::Warn,
        };
        // the certificate's place shows the more urgent of the certificate and the CRL
        let credential = upkeep.iter().find(|w| {
            matches!(
                w.topic,
                crate::upkeep::Topic::ServerCrl | crate::upkeep::Topic::UnitCertificate
            )
        });
        (s.certificate, s.certificate_level) =
            match (credential, self.settings.unit_certificate_not_after) {
                (Some(w), _) => (w.ja.clone(), level_of(w)),
                (None, None) => ("証明書 なし".into(), Level::Error),
                (None, Some(end)) => (
                    format!(
                        "証明書 {}日",
                        (end.0 - now.0).div_euclid(24 * 60 * 60 * 1000)
                    ),
                    Level::Ok,
                ),
            };
        let unsynced = upkeep
            .iter()
            .find(|w| w.topic == crate::upkeep::Topic::Unsynced);
        match sync {
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
                // records waiting too long: said where the last send is (never deleted)
                if let Some(w) = unsynced {
                    s.last_sync = w.ja.clone();
                    s.sync_level = Level::Warn;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store sync state unreadable");
                s.last_sync = "記録の状態を読めません".into();
                s.sync_level = Level::Error;
            }
        }
    }

    /// Carry out one command and wait until everything it set off has come back (drills,
    /// tests and benches read the result right after). The app's loop uses [`Self::dispatch`].
    pub async fn handle(&mut self, command: Command) {
        self.dispatch(command).await;
        self.settle().await;
    }

    /// Carry out one command without waiting for the work it sets off; the view model is
    /// published after every event.
    pub async fn dispatch(&mut self, command: Command) {
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
            } => {
                if self.session.phase() == Phase::PhonePin {
                    self.enter_phone_pin(pin, confirm_last_try);
                } else {
                    self.enter_pin(pin, confirm_last_try);
                }
                None
            }
            Command::PatientCannotEnterPin => Some(Event::PatientCannotAuthenticate),
            Command::Consent(decision) => Some(Event::ConsentChosen { decision }),
            Command::CorrectConsent(to) => Some(Event::ConsentCorrected { to }),
            Command::ExplanationHanded => Some(Event::ExplanationHanded),
            Command::ViewFullData => Some(Event::ViewFullData),
            Command::BackToSummary => Some(Event::BackToSummary),
            Command::EndViewing => Some(Event::EndViewing),
            Command::Retry => Some(Event::Retry),
            Command::LinkLost => Some(Event::LinkLost),
            Command::LinkRestored => Some(Event::LinkRestored),
            Command::IdleTimeout => Some(Event::IdleTimeout),
        };
        if let Some(event) = event {
            self.apply(event);
        }
        self.refresh_status();
        self.publish();
    }

    /// Wait for every job off the loop and apply what it reports, until none is left.
    pub async fn settle(&mut self) {
        while self.in_flight > 0 {
            let Some(outcome) = self.outcomes.recv().await else {
                break;
            };
            self.absorb(outcome);
        }
        self.refresh_status();
        self.publish();
    }

    /// Apply one outcome of work off the loop.
    fn absorb(&mut self, outcome: Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Events(events) => {
                for event in events {
                    self.apply(event);
                }
            }
            Outcome::Pin(incident, result) => {
                if let Some(event) = self.pin_outcome(incident, result) {
                    self.apply(event);
                }
            }
            Outcome::PhonePin(incident, result, pin) => {
                if let Some(event) = self.phone_pin_outcome(incident, result, pin) {
                    self.apply(event);
                }
            }
            Outcome::PhoneSigned(incident, result) => {
                if let Some(event) = self.phone_signed(incident, result) {
                    self.apply(event);
                }
            }
            Outcome::Route(state) => self.tunnel = state,
            Outcome::Answer { route, events } => {
                if let Some(state) = route {
                    self.tunnel = state;
                }
                for event in events {
                    self.apply(event);
                }
            }
            Outcome::Stored(Ok(())) => {}
            Outcome::Stored(Err(e)) => {
                // Nothing is acknowledged that was not written: the crew sees it on screen.
                tracing::error!(error = %e, "record store failed");
                self.store_errors.push(e);
            }
        }
        self.publish();
    }

    /// Run `job` off the loop; its outcome comes back through the outcome channel. If the
    /// job panics, `fallback` is reported instead, so the session never waits forever.
    fn spawn<F>(&mut self, job: F, fallback: Outcome)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        self.in_flight += 1;
        let tx = self.outcomes_tx.clone();
        let handle = tokio::spawn(job);
        tokio::spawn(async move {
            let outcome = handle.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "controller job failed");
                fallback
            });
            let _ = tx.send(outcome);
        });
    }

    async fn sign_in(&mut self, crew_id: String, pin: String) -> Option<Event> {
        if self.session.phase() != Phase::SignedOut {
            return None;
        }
        // the crew's PIN is zeroed when dropped (after the check, on the blocking pool)
        let pin = zeroize::Zeroizing::new(pin);
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

    fn enter_pin(&mut self, pin: String, confirm_last_try: bool) {
        if self.session.phase() != Phase::IdentityAndConsent {
            return;
        }
        let Some((incident, challenge)) = self.session.incident().and_then(|i| {
            let q = i.qualification.as_ref()?;
            Some((i.id.clone(), crate::domain::pin_challenge(q, &i.id)))
        }) else {
            return;
        };
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        self.spawn(
            async move {
                let checked = tokio::task::spawn_blocking(move || {
                    reader.verify_pin(&pin, confirm_last_try, &challenge)
                })
                .await
                .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
                Outcome::Pin(incident, checked)
            },
            Outcome::Pin(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
            ),
        );
    }

    /// The smartphone PIN of an Android phone: one attempt, then the certificate in the same
    /// card session (`CardReadOk`), on the blocking pool.
    fn enter_phone_pin(&mut self, pin: String, confirm_last_try: bool) {
        let Some(incident) = self.session.incident().map(|i| i.id.clone()) else {
            return;
        };
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        let pin = zeroize::Zeroizing::new(pin);
        self.spawn(
            async move {
                let (checked, pin) = tokio::task::spawn_blocking(move || {
                    (reader.read_phone(&pin, confirm_last_try), pin)
                })
                .await
                .unwrap_or_else(|e| {
                    (
                        Err(CardError::Unresponsive(format!("card task: {e}"))),
                        zeroize::Zeroizing::new(String::new()),
                    )
                });
                Outcome::PhonePin(incident, checked, pin)
            },
            Outcome::PhonePin(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
                zeroize::Zeroizing::new(String::new()),
            ),
        );
    }

    fn phone_pin_outcome(
        &mut self,
        incident: IncidentId,
        outcome: Result<reader::PhoneRead, CardError>,
        pin: zeroize::Zeroizing<String>,
    ) -> Option<Event> {
        if self.session.phase() != Phase::PhonePin
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            // the incident ended (or the phone left) while the phone checked the PIN
            return None;
        }
        self.pin = PinView::default();
        let (event, note) = match outcome {
            Ok(reader::PhoneRead {
                outcome: PinOutcome::Verified,
                credential: Some(credential),
            }) => {
                self.phone_pin = Some((incident.clone(), pin));
                (
                    Some(Event::CardReadOk {
                        incident,
                        credential,
                    }),
                    "phone pin: verified, certificate read".to_string(),
                )
            }
            Ok(reader::PhoneRead {
                outcome: PinOutcome::Verified,
                ..
            }) => {
                self.pin.message = view::PinNotice::PhoneNotConfirmed.message_ja();
                (None, "phone pin: verified but no certificate".into())
            }
            Ok(reader::PhoneRead { outcome, .. }) => (
                None,
                self.pin_refused("phone pin", Ok(outcome), view::PinNotice::PhoneBlocked)
                    .unwrap_or_default(),
            ),
            Err(e)
                if let Some(note) =
                    self.pin_refused("phone pin", Err(&e), view::PinNotice::PhoneBlocked) =>
            {
                (None, note)
            }
            Err(e) => {
                // the phone pulled away (or mute): nothing was read, nothing stays
                tracing::warn!(error = %e, "phone read failed");
                (
                    Some(Event::CardReadFailed {
                        incident,
                        failure: e.card_failure(),
                    }),
                    format!("phone pin: {e}"),
                )
            }
        };
        self.note(note);
        event
    }

    /// On the identity screen with a phone whose owner was not confirmed yet: have the
    /// phone sign the server's challenge at once (no tap: the PIN or the owner's unlock
    /// came before the read).
    fn sign_on_phone(&mut self) {
        let Some(i) = self.session.incident() else {
            return;
        };
        let token = i.token.unwrap_or_default();
        if self.session.phase() != Phase::IdentityAndConsent
            || !token.is_phone()
            || i.identity_check.is_some()
            || self.phone_signing.as_ref() == Some(&i.id)
        {
            return;
        }
        let Some(q) = i.qualification.as_ref() else {
            return;
        };
        let incident = i.id.clone();
        let challenge = crate::domain::pin_challenge(q, &incident);
        let pin = match (token, &self.phone_pin) {
            (crate::domain::TokenKind::AndroidPhone, Some((id, pin))) if *id == incident => {
                Some(pin.clone())
            }
            (crate::domain::TokenKind::AndroidPhone, _) => return,
            _ => None,
        };
        self.phone_signing = Some(incident.clone());
        let reader = self.ports.reader.clone();
        let failed = incident.clone();
        self.spawn(
            async move {
                let signed = tokio::task::spawn_blocking(move || {
                    reader.phone_sign(pin.as_ref().map(|p| p.as_str()), &challenge)
                })
                .await
                .unwrap_or_else(|e| Err(CardError::Unresponsive(format!("card task: {e}"))));
                Outcome::PhoneSigned(incident, signed)
            },
            Outcome::PhoneSigned(
                failed,
                Err(CardError::Unresponsive("card task failed".into())),
            ),
        );
    }

    fn phone_signed(
        &mut self,
        incident: IncidentId,
        signed: Result<Vec<u8>, CardError>,
    ) -> Option<Event> {
        self.phone_signing = None;
        if self.session.phase() != Phase::IdentityAndConsent
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            return None;
        }
        self.phone_pin = None;
        let check = match self.session.incident().and_then(|i| i.token) {
            Some(crate::domain::TokenKind::IPhone) => IdentityCheck::PhoneBiometric,
            _ => IdentityCheck::Pin,
        };
        match signed {
            Ok(sig) => {
                self.card_signature = Some((incident, sig));
                self.note("phone: signed the challenge".into());
                Some(Event::IdentityConfirmed { check })
            }
            Err(e) => {
                tracing::warn!(error = %e, "the phone did not sign the challenge");
                self.pin.message = view::PinNotice::PhoneNotConfirmed.message_ja();
                self.note(format!("phone: not signed: {e}"));
                None
            }
        }
    }

    /// The answers a PIN attempt has alike on the card and on a phone: wrong (tries left),
    /// blocked (`blocked` says what then), one try left to confirm, not 4 digits. Sets the
    /// PIN pad's message and returns the journal's note; `None` for any other answer.
    fn pin_refused(
        &mut self,
        who: &str,
        answer: Result<PinOutcome, &CardError>,
        blocked: view::PinNotice,
    ) -> Option<String> {
        let (notice, note) = match answer {
            Ok(PinOutcome::Wrong { tries_left }) => (
                view::PinNotice::Wrong { tries_left },
                format!("{who}: wrong, tries left: {tries_left}"),
            ),
            Ok(PinOutcome::Blocked) => {
                self.pin.blocked = true;
                (blocked, format!("{who}: blocked"))
            }
            Err(CardError::LastTryNeedsConfirmation) => {
                self.pin.confirm_last_try = true;
                (
                    view::PinNotice::LastTry,
                    format!("{who}: one try left, crew confirms the last try"),
                )
            }
            Err(CardError::PinFormat) => (view::PinNotice::Format, format!("{who}: not 4 digits")),
            Ok(PinOutcome::Verified) | Err(_) => return None,
        };
        self.pin.message = notice.message_ja();
        Some(note)
    }

    fn pin_outcome(
        &mut self,
        incident: IncidentId,
        outcome: Result<reader::PinChecked, CardError>,
    ) -> Option<Event> {
        if self.session.phase() != Phase::IdentityAndConsent
            || self.session.incident().map(|i| &i.id) != Some(&incident)
        {
            // the incident ended while the card was checking the PIN
            return None;
        }
        self.pin = PinView::default();
        let outcome = outcome.map(|checked| {
            if let Some(sig) = checked.signature {
                self.card_signature = Some((incident.clone(), sig));
            }
            checked.outcome
        });
        let (event, note) = match outcome {
            Ok(PinOutcome::Verified) => (
                Some(Event::IdentityConfirmed {
                    check: IdentityCheck::Pin,
                }),
                "pin: verified".to_string(),
            ),
            Ok(outcome) => (
                None,
                self.pin_refused("pin", Ok(outcome), view::PinNotice::Blocked)
                    .unwrap_or_default(),
            ),
            Err(e)
                if let Some(note) = self.pin_refused("pin", Err(&e), view::PinNotice::Blocked) =>
            {
                (None, note)
            }
            Err(e) => {
                self.pin.message =
                    view::PinNotice::Card(Notice::from_card_failure(e.card_failure())).message_ja();
                (None, format!("pin: {e}"))
            }
        };
        self.note(note);
        event
    }

    /// Apply an event and carry out its effects; what they report comes back later as
    /// outcomes.
    fn apply(&mut self, event: Event) {
        let name = event.name();
        match self.session.handle(Timestamp::now(), event) {
            Ok(effects) => {
                self.journal_push(name.to_string(), true);
                self.publish();
                for effect in effects {
                    self.execute(effect);
                }
                self.sign_on_phone();
            }
            Err(e) => {
                tracing::debug!(event = name, error = %e, "event not applied");
                self.note(format!("{name} not applied: {e}"));
            }
        }
    }

    /// The route check for a patient-related request, run on the blocking pool: the route,
    /// and whether it refuses the request.
    async fn tunnel_refuses(
        require_tunnel: bool,
        route: Arc<dyn RouteCheck>,
        addr: Option<IpAddr>,
    ) -> (TunnelState, bool) {
        if !require_tunnel {
            return (TunnelState::Unknown, false);
        }
        let state = match addr {
            Some(addr) => tokio::task::spawn_blocking(move || route.route_to(addr))
                .await
                .unwrap_or(TunnelState::Unknown),
            None => TunnelState::Unknown,
        };
        if state != TunnelState::Tunnel {
            tracing::warn!(route = ?state, "patient request refused: route is not the tunnel");
        }
        (state, state != TunnelState::Tunnel)
    }

    fn execute(&mut self, effect: E) {
        match effect {
            E::ReadCard { incident } => {
                let reader = self.ports.reader.clone();
                let fallback = Outcome::Events(vec![Event::CardReadFailed {
                    incident: incident.clone(),
                    failure: crate::session::CardFailure::Unresponsive,
                }]);
                self.spawn(
                    async move {
                        let read = tokio::task::spawn_blocking(move || reader.read_credential())
                            .await
                            .unwrap_or_else(|e| {
                                Err(CardError::Unresponsive(format!("card task: {e}")))
                            });
                        Outcome::Events(vec![match read {
                            Ok(credential) => Event::CardReadOk {
                                incident,
                                credential,
                            },
                            Err(CardError::PhonePinRequired) => Event::PhoneNeedsPin { incident },
                            Err(e) => {
                                tracing::warn!(error = %e, "card read failed");
                                Event::CardReadFailed {
                                    incident,
                                    failure: e.card_failure(),
                                }
                            }
                        }])
                    },
                    fallback,
                );
            }
            E::SendQualification(request) => {
                let fallback = Outcome::Events(vec![Event::QualificationFailed {
                    incident: request.incident.clone(),
                    failure: ServiceFailure::Protocol,
                }]);
                let incident = request.incident.clone();
                let job = self.request_job(
                    move |client| async move {
                        let incident = request.incident.clone();
                        vec![match client.qualification(&request).await {
                            Ok(QualificationResponse::Coverage {
                                qualification_ref,
                                coverage,
                            }) => Event::QualificationAnswered {
                                incident,
                                qualification: qualification_ref,
                                coverage,
                            },
                            Ok(QualificationResponse::OptOut) => {
                                Event::QualificationOptOut { incident }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "qualification failed");
                                Event::QualificationFailed {
                                    incident,
                                    failure: e.service_failure(),
                                }
                            }
                        }]
                    },
                    move |failure| vec![Event::QualificationFailed { incident, failure }],
                );
                self.spawn(job, fallback);
            }
            E::SendEmergencyInquiry(inquiry) => {
                let fallback = Outcome::Events(vec![Event::EmergencyInfoFailed {
                    incident: inquiry.incident.clone(),
                    failure: ServiceFailure::Protocol,
                }]);
                let incident = inquiry.incident.clone();
                // the PIN path carries the card's own signature over its challenge
                let signature = match &self.card_signature {
                    Some((i, sig))
                        if *i == inquiry.incident
                            && inquiry.identity_check.needs_card_signature() =>
                    {
                        Some(sig.clone())
                    }
                    _ => None,
                };
                let job = self.request_job(
                    move |client| async move {
                        let incident = inquiry.incident.clone();
                        vec![match client
                            .emergency_info_signed(&inquiry, signature.as_deref())
                            .await
                        {
                            Ok(info) => Event::EmergencyInfoAnswered { incident, info },
                            Err(e) => {
                                tracing::warn!(error = %e, "emergency-info inquiry failed");
                                Event::EmergencyInfoFailed {
                                    incident,
                                    failure: e.service_failure(),
                                }
                            }
                        }]
                    },
                    move |failure| {
                        vec![Event::EmergencyInfoFailed {
                            incident: incident.clone(),
                            failure,
                        }]
                    },
                );
                self.spawn(job, fallback);
            }
            E::AppendConsentRecord(record) => self.append(RecordBody::Consent(record)),
            E::AppendConsentCorrection(c) => self.append(RecordBody::ConsentCorrection(c)),
            E::AppendExplanation(x) => self.append(RecordBody::Explanation(x)),
            E::AppendAudit(entry) => self.append(RecordBody::Audit(entry)),
            // The patient's data lives only in the session (and the view model built from
            // it): nothing on disk to purge.
            E::PurgePatientData { .. } => {
                self.pin = PinView::default();
                self.card_signature = None;
                self.phone_pin = None;
            }
        }
    }

    /// A request as a job off the loop: it waits for the records queued before it, checks
    /// the route where the tunnel is required, and gives up after the total deadline.
    /// `failed` turns a refusal or a timeout into the session's failure event.
    fn request_job<Send, Fut, Failed>(
        &self,
        send: Send,
        failed: Failed,
    ) -> impl std::future::Future<Output = Outcome> + 'static + std::marker::Send
    where
        Send: FnOnce(Arc<EligibilityClient>) -> Fut + std::marker::Send + 'static,
        Fut: std::future::Future<Output = Vec<Event>> + std::marker::Send + 'static,
        Failed: FnOnce(ServiceFailure) -> Vec<Event> + std::marker::Send + 'static,
    {
        let client = self.ports.client.clone();
        let route = self.ports.route.clone();
        let addr = self.ports.endpoint_addr;
        let require_tunnel = self.settings.require_tunnel;
        let deadline = self.settings.request_deadline;
        let barrier = self.writer.barrier();
        async move {
            let _ = barrier.await;
            let (state, refused) = Self::tunnel_refuses(require_tunnel, route, addr).await;
            let route = require_tunnel.then_some(state);
            if refused {
                return Outcome::Answer {
                    route,
                    events: failed(ServiceFailure::TunnelRequired),
                };
            }
            let events = match tokio::time::timeout(deadline, send(client)).await {
                Ok(events) => events,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "request deadline passed"
                    );
                    failed(ServiceFailure::Timeout)
                }
            };
            Outcome::Answer { route, events }
        }
    }

    fn store_job(&mut self, job: StoreJob) {
        if self.writer.send(job) {
            self.in_flight += 1;
        } else {
            tracing::error!("store writer gone: record not stored");
            self.store_errors
                .push("store writer gone: record not stored".into());
        }
    }

    fn append(&mut self, body: RecordBody) {
        if let Some(kept) = self.recorded.as_mut() {
            kept.push(body.clone());
        }
        self.store_job(StoreJob::Append(Box::new(body), Timestamp::now()));
    }

    /// A health probe arrived: tell the session when the line went or came back.
    pub async fn link_probe(&mut self, probe: LinkProbe) {
        let reachable = probe.reachable;
        self.probe = Some(probe);
        if let Some(addr) = self.ports.endpoint_addr {
            let route = self.ports.route.clone();
            self.spawn(
                async move {
                    Outcome::Route(
                        tokio::task::spawn_blocking(move || route.route_to(addr))
                            .await
                            .unwrap_or(TunnelState::Unknown),
                    )
                },
                Outcome::Route(TunnelState::Unknown),
            );
        }
        if reachable && !self.session.link_up() {
            self.apply(Event::LinkRestored);
        } else if !reachable && self.session.link_up() {
            self.apply(Event::LinkLost);
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
                    Some(cmd) => self.dispatch(cmd).await,
                    None => break,
                },
                Some(outcome) = self.outcomes.recv() => {
                    self.absorb(outcome);
                    self.refresh_status();
                    self.publish();
                }
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
                } } => self.dispatch(Command::IdleTimeout).await,
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
