//! The hand-off hub (`mynakyukyu-hub`), run by a prefecture or a 地域MC協議会: tablets ask
//! several hospitals at once (受入照会), hospitals answer on their inbox page, the crew
//! decides (搬送決定) and the chosen hospital alone receives the pre-arrival packet and its
//! updates. Protocol h1, docs/HANDOFF.md. The rules are [`crate::handoff::Case`]'s; this
//! module stores cases, serves both faces and pushes what changed.
//!
//! | part | what |
//! |---|---|
//! | [`store`] | SQLite (sqlx): hospitals, staff, sessions, CAs, sealed cases, events, audit, counts |
//! | [`seal`] | the master key outside the data dir, a key per case, ChaCha20-Poly1305 |
//! | [`totp`] | RFC 6238 codes for the inbox's second factor |
//! | [`tablet`] | the tablet API: axum over mutual TLS (unit certificates of trusted CAs), SSE answers |
//! | [`inbox`] | the hospitals' page: sign-in (password + TOTP, lockout), sessions, CSRF, SSE, answers |
//! | [`client`] | the tablet's side of h1 (what the app uses; the tests' tablet) |
//! | [`serve`] | TLS listeners, connection limits, the retention sweep |
//! | [`training`] | the training world's hub: its hospitals and their scripted answers |
//!
//! Pushes go through the events table (ids and kinds only): a page or tablet that
//! reconnects with `Last-Event-ID` replays what it missed, and a notification on this
//! process wakes every stream at once.

pub mod admin;
pub mod client;
pub mod inbox;
mod page;
pub mod seal;
pub mod serve;
pub mod store;
mod stream;
pub mod tablet;
pub mod totp;
pub mod training;

use crate::handoff::{
    Answer, Case, CaseError, Change, Disclosure, Effect, HospitalCode, Packet, Stage, Visibility,
};
use seal::SealKey;
use std::sync::Arc;
use store::{CaseBody, HubStore, StoredCase, hospital_audience, unit_audience};
use thiserror::Error;
use tokio::sync::broadcast;

pub use serve::{Hub, HubOptions};

#[derive(Debug, Error)]
pub enum HubError {
    #[error("master key {0}: {1}")]
    SealKey(String, String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("case {0} does not open with this hub's master key")]
    Sealed(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Admin(String),
    #[error("no such case")]
    NoSuchCase,
    #[error("unknown hospital {0:?}")]
    UnknownHospital(String),
    #[error("that code was used already")]
    Replayed,
    #[error("the case changed under several writers; try again")]
    Contended,
    #[error(transparent)]
    Case(#[from] CaseError),
}

impl From<sqlx::Error> for HubError {
    fn from(e: sqlx::Error) -> HubError {
        HubError::Storage(e.to_string())
    }
}

/// Events are kept this much longer than the longest a case may live.
const EVENT_SLACK_MS: i64 = 3600 * 1000;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A new case id: 128 random bits, hex.
fn new_case_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    hex::encode(b)
}

/// The case's packet, at its current version, as a FHIR R4 document bundle (None before
/// 搬送決定).
pub fn packet_bundle(
    stored: &StoredCase,
    hospitals: &[store::Hospital],
) -> Option<crate::handoff::fhir::Bundle> {
    let packet = stored.body.packet.as_ref()?;
    let chosen = stored.body.case.chosen.as_ref()?;
    let name = hospitals
        .iter()
        .find(|h| &h.code == chosen)
        .map(|h| h.name.as_str())
        .unwrap_or(chosen.0.as_str());
    let made_at_ms = stored
        .body
        .version_at_ms
        .iter()
        .rev()
        .find(|(v, _)| *v == stored.body.case.version)
        .map(|(_, at)| *at)
        .unwrap_or(stored.body.case.asked_at_ms);
    Some(crate::handoff::fhir::bundle(
        &crate::handoff::fhir::PacketContext {
            case_id: &stored.id,
            case: &stored.body.case,
            packet,
            unit: &stored.unit,
            hospital_code: &chosen.0,
            hospital_name: name,
            made_at_ms,
            eta_at_ms: stored.body.eta_at_ms(),
        },
    ))
}

/// What both faces share: the store, the master key, the wake-up for streams.
pub struct HubCore {
    pub store: HubStore,
    master: SealKey,
    wake: broadcast::Sender<i64>,
    /// One writer per case at a time in this process (the `rev` check covers other hubs).
    writing: tokio::sync::Mutex<()>,
    /// Set at shutdown: every stream ends.
    stop: tokio::sync::watch::Sender<bool>,
    /// How often a stream looks for events nobody woke it for (another hub's, should a
    /// notification be lost).
    pub poll_every: std::time::Duration,
}

impl HubCore {
    pub fn new(store: HubStore, master: SealKey, poll_every: std::time::Duration) -> Arc<HubCore> {
        Arc::new(HubCore {
            store,
            master,
            wake: broadcast::channel(1024).0,
            writing: tokio::sync::Mutex::new(()),
            stop: tokio::sync::watch::channel(false).0,
            poll_every,
        })
    }

    /// Ends every stream (at shutdown).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Wake every stream (an event another hub wrote).
    pub fn wake(&self, seq: i64) {
        let _ = self.wake.send(seq);
    }

    /// A receiver woken after every new event.
    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.wake.subscribe()
    }

    pub async fn case(&self, id: &str) -> Result<StoredCase, HubError> {
        self.store
            .case(&self.master, id)
            .await?
            .ok_or(HubError::NoSuchCase)
    }

    /// The case if `unit` asked it (another unit's case does not exist for it).
    pub async fn case_of_unit(&self, unit: &str, id: &str) -> Result<StoredCase, HubError> {
        let c = self.case(id).await?;
        if c.unit != unit {
            return Err(HubError::NoSuchCase);
        }
        Ok(c)
    }

    /// The case and what `hospital` may see of it; a case it may not see does not exist.
    pub async fn case_for_hospital(
        &self,
        hospital: &HospitalCode,
        id: &str,
    ) -> Result<(StoredCase, Visibility), HubError> {
        let c = self.case(id).await?;
        match c.body.case.visibility(hospital) {
            Visibility::Nothing => Err(HubError::NoSuchCase),
            v => Ok((c, v)),
        }
    }

    async fn emit(
        &self,
        case_id: &str,
        unit: &str,
        effects: &[Effect],
        at: i64,
    ) -> Result<(), HubError> {
        let mut last = 0;
        for e in effects {
            match e {
                Effect::Notify(hs) => {
                    for h in hs {
                        last = self
                            .store
                            .push_event(case_id, &hospital_audience(h), "request", at)
                            .await?;
                    }
                }
                Effect::AnswerToTablet(_) => {
                    last = self
                        .store
                        .push_event(case_id, &unit_audience(unit), "answer", at)
                        .await?;
                }
                Effect::Packet { to, .. } => {
                    last = self
                        .store
                        .push_event(case_id, &hospital_audience(to), "packet", at)
                        .await?;
                }
                Effect::Withdraw(hs) => {
                    for h in hs {
                        last = self
                            .store
                            .push_event(case_id, &hospital_audience(h), "withdrawn", at)
                            .await?;
                    }
                }
            }
        }
        if last > 0 {
            let _ = self.wake.send(last);
        }
        Ok(())
    }

    /// An event for the unit only (an acknowledgement), with the wake-up.
    async fn emit_to_unit(
        &self,
        case_id: &str,
        unit: &str,
        kind: &str,
        at: i64,
    ) -> Result<(), HubError> {
        let seq = self
            .store
            .push_event(case_id, &unit_audience(unit), kind, at)
            .await?;
        let _ = self.wake.send(seq);
        Ok(())
    }

    /// A new 受入照会 from `unit`.
    pub async fn ask(
        &self,
        unit: &str,
        incident_id: &str,
        disclosure: Disclosure,
        candidates: Vec<HospitalCode>,
    ) -> Result<String, HubError> {
        let known = self.store.hospitals().await?;
        if let Some(h) = candidates
            .iter()
            .find(|c| !known.iter().any(|k| &k.code == *c))
        {
            return Err(HubError::UnknownHospital(h.0.clone()));
        }
        let at = now_ms();
        let (case, effects) = Case::ask(disclosure, candidates, at)?;
        let id = new_case_id();
        let body = CaseBody {
            case,
            packet: None,
            incident_id: incident_id.to_string(),
            version_at_ms: vec![],
        };
        self.store
            .insert_case(&self.master, &id, unit, &body)
            .await?;
        self.store
            .audit(at, unit, None, Some(&id), "ask", None)
            .await?;
        self.emit(&id, unit, &effects, at).await?;
        Ok(id)
    }

    /// Read, change, write back with the `rev` check, emit: the one way a case changes.
    async fn change(
        &self,
        id: &str,
        step: impl Fn(&mut StoredCase, i64) -> Result<Vec<Effect>, HubError>,
    ) -> Result<StoredCase, HubError> {
        let _one_writer = self.writing.lock().await;
        for _ in 0..5 {
            let mut stored = self.case(id).await?;
            let at = now_ms();
            let effects = step(&mut stored, at)?;
            let ended =
                matches!(stored.body.case.stage, Stage::Arrived | Stage::Closed).then_some(at);
            if self.store.update_case(&self.master, &stored, ended).await? {
                stored.rev += 1;
                let unit = stored.unit.clone();
                self.emit(id, &unit, &effects, at).await?;
                return Ok(stored);
            }
        }
        Err(HubError::Contended)
    }

    /// A hospital's answer, given by staff member `by`.
    pub async fn answer(
        &self,
        hospital: &HospitalCode,
        by: &str,
        id: &str,
        answer: Answer,
    ) -> Result<StoredCase, HubError> {
        self.case_for_hospital(hospital, id).await?;
        let kind = match &answer {
            Answer::Accept => "answer:accept",
            Answer::Decline { .. } => "answer:decline",
            Answer::CallUs { .. } => "answer:call_us",
        };
        let stored = self
            .change(id, |s, at| {
                Ok(s.body.case.answer(hospital, answer.clone(), by, at)?)
            })
            .await?;
        self.store
            .audit(now_ms(), by, Some(hospital), Some(id), kind, None)
            .await?;
        Ok(stored)
    }

    /// 搬送決定 by `unit` for `hospital`, with the packet for it alone.
    pub async fn decide(
        &self,
        unit: &str,
        id: &str,
        hospital: &HospitalCode,
        packet: Packet,
    ) -> Result<StoredCase, HubError> {
        self.case_of_unit(unit, id).await?;
        let stored = self
            .change(id, |s, at| {
                let effects = s.body.case.decide(hospital, at)?;
                s.body.packet = Some(packet.clone());
                s.body.version_at_ms.push((1, at));
                Ok(effects)
            })
            .await?;
        self.store
            .audit(now_ms(), unit, Some(hospital), Some(id), "decide", Some(1))
            .await?;
        Ok(stored)
    }

    /// A change after the decision (ETA, vitals, 到着).
    pub async fn update(
        &self,
        unit: &str,
        id: &str,
        change: Change,
    ) -> Result<StoredCase, HubError> {
        self.case_of_unit(unit, id).await?;
        let stored = self
            .change(id, |s, at| {
                let effects = s.body.case.update(change.clone())?;
                s.body.version_at_ms.push((s.body.case.version, at));
                Ok(effects)
            })
            .await?;
        let version = stored.body.case.version;
        self.store
            .audit(
                now_ms(),
                unit,
                stored.body.case.chosen.as_ref(),
                Some(id),
                "update",
                Some(version),
            )
            .await?;
        Ok(stored)
    }

    /// The crew withdraws the request: every candidate loses it, and the case is destroyed
    /// now (only its counts stay).
    pub async fn close(&self, unit: &str, id: &str) -> Result<(), HubError> {
        self.case_of_unit(unit, id).await?;
        let stored = self.change(id, |s, _| Ok(s.body.case.close()?)).await?;
        self.store
            .audit(now_ms(), unit, None, Some(id), "close", None)
            .await?;
        self.store.destroy_case(&stored, "closed").await
    }

    /// The chosen hospital read `version`.
    pub async fn acknowledge(
        &self,
        hospital: &HospitalCode,
        by: &str,
        id: &str,
        version: u32,
    ) -> Result<StoredCase, HubError> {
        self.case_for_hospital(hospital, id).await?;
        let stored = self
            .change(id, |s, _| {
                s.body.case.acknowledge(hospital, version)?;
                Ok(vec![])
            })
            .await?;
        self.store
            .audit(
                now_ms(),
                by,
                Some(hospital),
                Some(id),
                "acknowledge",
                Some(version),
            )
            .await?;
        self.emit_to_unit(id, &stored.unit, "acknowledged", now_ms())
            .await?;
        Ok(stored)
    }

    /// Destroys what retention says is due; returns how many. Expired sessions and events
    /// older than the longest a case lives go too.
    pub async fn sweep(&self, retention_ms: i64, stale_ms: i64) -> Result<usize, HubError> {
        let now = now_ms();
        self.store
            .prune(now, now - stale_ms.max(retention_ms) - EVENT_SLACK_MS)
            .await?;
        let due = self
            .store
            .due_for_destruction(now, retention_ms, stale_ms)
            .await?;
        let _one_writer = self.writing.lock().await;
        let mut n = 0;
        for id in due {
            let Some(stored) = self.store.case(&self.master, &id).await? else {
                continue;
            };
            let outcome = match stored.body.case.stage {
                Stage::Arrived => "arrived",
                Stage::Closed => "closed",
                _ => "abandoned",
            };
            self.store.destroy_case(&stored, outcome).await?;
            self.store
                .audit(now, "hub", None, Some(&id), "destroy", None)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    pub(crate) fn master(&self) -> &SealKey {
        &self.master
    }
}
