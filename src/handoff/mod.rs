//! The hand-off to the receiving hospital (受入照会 → 搬送決定 → pre-arrival packet), as a
//! pure state machine: the vocabulary of protocol h1 (docs/HANDOFF.md) and one case as the
//! hub holds it. No sockets, no storage, no clock: the hub and the tablet wrap it, so every
//! rule is a plain unit test, as with [`crate::session`].
//!
//! The rules it keeps:
//! - a request carries only what a hospital needs to decide ([`Disclosure`]): an age band,
//!   never a birth date; no name, no insured number, no card data (the types have no field
//!   for them);
//! - up to [`MAX_CANDIDATES`] hospitals at once, each named once;
//! - 搬送決定 only for a hospital that answered 受入可; then the packet goes to it alone and
//!   every other candidate sees the case closed and loses the request;
//! - an answer after the decision, or from a hospital not asked, is never a decision (a
//!   late answer is kept as late; a replayed one changes nothing);
//! - updates after the decision are numbered versions the chosen hospital acknowledges;
//! - vitals outside plausible ranges are refused before they leave (a typo like BP 1200).

pub mod crew;
pub mod fhir;
mod packet;
mod vitals;

pub use packet::{MAX_PACKET_BYTES, Packet, PacketConsent, PacketPatient, SummaryItem};
pub use vitals::{Jcs, VitalError, Vitals};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How many hospitals one request may ask at once.
pub const MAX_CANDIDATES: usize = 5;

/// A hospital as the hub knows it (医療機関コード or the hub's own code).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HospitalCode(pub String);

/// The age band a request carries instead of the birth date: 「80代」, 「10歳未満」.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeBand {
    /// The band's lower bound in years (0, 10, … 90; 90 means 90 and over).
    pub from: u8,
}

impl AgeBand {
    pub fn of_age(age: i32) -> AgeBand {
        AgeBand {
            from: (age.clamp(0, 90) / 10 * 10) as u8,
        }
    }

    /// 「年代不明」 when not known.
    pub fn label_of(band: Option<AgeBand>) -> String {
        band.map(AgeBand::label_ja)
            .unwrap_or_else(|| "年代不明".into())
    }

    pub fn label_ja(self) -> String {
        match self.from {
            0 => "10歳未満".into(),
            90.. => "90歳以上".into(),
            n => format!("{n}代"),
        }
    }
}

/// The chief complaint (主訴) from the fixed presets the crew taps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complaint {
    ChestPain,
    Dyspnoea,
    AlteredConsciousness,
    SuspectedStroke,
    Trauma,
    AbdominalPain,
    CardiacArrest,
    Fever,
    Other,
}

impl Complaint {
    pub fn label_ja(self) -> &'static str {
        match self {
            Complaint::ChestPain => "胸痛",
            Complaint::Dyspnoea => "呼吸困難",
            Complaint::AlteredConsciousness => "意識障害",
            Complaint::SuspectedStroke => "脳卒中疑い",
            Complaint::Trauma => "外傷",
            Complaint::AbdominalPain => "腹痛",
            Complaint::CardiacArrest => "CPA",
            Complaint::Fever => "発熱",
            Complaint::Other => "その他",
        }
    }
}

/// What the crew adds to the complaint with one tap each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modifier {
    Sudden,
    Worsening,
    Fall,
    Alcohol,
}

impl Modifier {
    pub const ALL: [Modifier; 4] = [
        Modifier::Sudden,
        Modifier::Worsening,
        Modifier::Fall,
        Modifier::Alcohol,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Modifier::Sudden => "突然発症",
            Modifier::Worsening => "増悪中",
            Modifier::Fall => "転倒",
            Modifier::Alcohol => "飲酒",
        }
    }
}

impl Complaint {
    pub const ALL: [Complaint; 9] = [
        Complaint::ChestPain,
        Complaint::Dyspnoea,
        Complaint::AlteredConsciousness,
        Complaint::SuspectedStroke,
        Complaint::Trauma,
        Complaint::AbdominalPain,
        Complaint::CardiacArrest,
        Complaint::Fever,
        Complaint::Other,
    ];
}

/// Where an alert comes from: the national system's answer (as of its date), or the crew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum AlertSource {
    NationalSystem { as_of: time::Date },
    Crew,
}

/// An alert class (抗凝固薬, インスリン, 透析 …) with its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertClaim {
    pub label: String,
    #[serde(flatten)]
    pub source: AlertSource,
}

/// What every candidate sees: what it needs to decide, nothing that names the patient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disclosure {
    /// None: not known (no card, and the crew could not estimate it).
    #[serde(default)]
    pub age_band: Option<AgeBand>,
    pub sex: crate::domain::Sex,
    pub complaint: Complaint,
    #[serde(default)]
    pub modifiers: Vec<Modifier>,
    /// Minutes from onset to the request (None: 不明).
    #[serde(default)]
    pub onset_minutes_ago: Option<u16>,
    #[serde(default)]
    pub vitals: Vitals,
    #[serde(default)]
    pub alerts: Vec<AlertClaim>,
    pub eta_minutes: Option<u16>,
    /// The unit's call-back number.
    pub callback: String,
}

/// A hospital's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// 受入可.
    Accept,
    /// 受入不可, with the reason code.
    Decline { reason: DeclineReason },
    /// 要電話: call this number.
    CallUs { phone: String },
}

/// Why a hospital declined (the codes a department counts in its 搬送困難事案 figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    BedsFull,
    InTreatment,
    NoSpecialist,
    EquipmentUnavailable,
    Other,
}

impl DeclineReason {
    pub const ALL: [DeclineReason; 5] = [
        DeclineReason::BedsFull,
        DeclineReason::InTreatment,
        DeclineReason::NoSpecialist,
        DeclineReason::EquipmentUnavailable,
        DeclineReason::Other,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            DeclineReason::BedsFull => "満床",
            DeclineReason::InTreatment => "処置中（手術中・患者対応中）",
            DeclineReason::NoSpecialist => "専門外",
            DeclineReason::EquipmentUnavailable => "設備・機器が使えない",
            DeclineReason::Other => "その他",
        }
    }

    /// The code on the wire (and in a form).
    pub fn code(self) -> &'static str {
        match self {
            DeclineReason::BedsFull => "beds_full",
            DeclineReason::InTreatment => "in_treatment",
            DeclineReason::NoSpecialist => "no_specialist",
            DeclineReason::EquipmentUnavailable => "equipment_unavailable",
            DeclineReason::Other => "other",
        }
    }

    pub fn from_code(code: &str) -> Option<DeclineReason> {
        DeclineReason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl Answer {
    pub fn label_ja(&self) -> String {
        match self {
            Answer::Accept => "受入可".into(),
            Answer::Decline { reason } => format!("受入不可（{}）", reason.label_ja()),
            Answer::CallUs { phone } => format!("要電話 {phone}"),
        }
    }
}

/// An answer as the case keeps it: who, when (ms since the epoch), and whether it came
/// after the decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub answer: Answer,
    pub by: String,
    pub at_ms: i64,
    pub late: bool,
}

/// A change after 搬送決定.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Vitals { vitals: Vitals },
    Eta { minutes: u16 },
    Arrived,
}

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Asking,
    Decided,
    Arrived,
    /// Withdrawn by the crew before a decision, or ended.
    Closed,
}

/// What one hospital may see of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Not asked, or no longer (another hospital was chosen, the case closed).
    Nothing,
    /// The request: the disclosure and the answers it gave.
    Request,
    /// The chosen hospital: the request, the packet and its versions.
    Packet,
}

/// Why the case refused a step. The case is unchanged.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CaseError {
    #[error("a request names 1 to {MAX_CANDIDATES} hospitals, each once")]
    Candidates,
    #[error("hospital {0:?} was not asked in this case")]
    NotACandidate(HospitalCode),
    #[error("hospital {0:?} has already given this answer")]
    Replayed(HospitalCode),
    #[error("搬送決定 needs a hospital that answered 受入可; {0:?} did not")]
    NotAccepted(HospitalCode),
    #[error("the case is {0:?}: that step does not apply")]
    WrongStage(Stage),
    #[error("only the chosen hospital acknowledges a version")]
    NotChosen,
    #[error("version {0} does not exist yet")]
    NoSuchVersion(u32),
    #[error(transparent)]
    Vitals(#[from] VitalError),
}

/// What the hub must do after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Push the request to these hospitals' pages.
    Notify(Vec<HospitalCode>),
    /// Push this answer to the tablet.
    AnswerToTablet(HospitalCode),
    /// The full packet (this version) to the chosen hospital only.
    Packet { to: HospitalCode, version: u32 },
    /// These hospitals lose the request now (their pages show the case closed).
    Withdraw(Vec<HospitalCode>),
}

/// One case at the hub: the request, each candidate's answers, the decision, the versions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    pub disclosure: Disclosure,
    pub candidates: Vec<HospitalCode>,
    /// Per candidate, in candidate order: its answers, oldest first.
    pub answers: Vec<Vec<AnswerRecord>>,
    pub stage: Stage,
    pub chosen: Option<HospitalCode>,
    /// The packet's version: 1 at the decision, +1 per change.
    pub version: u32,
    pub changes: Vec<(u32, Change)>,
    /// The highest version the chosen hospital acknowledged.
    pub acknowledged: u32,
    pub asked_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl Case {
    /// A new request to `candidates`; refused before anything leaves when the candidates or
    /// the vitals are wrong.
    pub fn ask(
        disclosure: Disclosure,
        candidates: Vec<HospitalCode>,
        at_ms: i64,
    ) -> Result<(Case, Vec<Effect>), CaseError> {
        let mut unique = candidates.clone();
        unique.sort();
        unique.dedup();
        if candidates.is_empty()
            || candidates.len() > MAX_CANDIDATES
            || unique.len() != candidates.len()
        {
            return Err(CaseError::Candidates);
        }
        disclosure.vitals.check()?;
        let case = Case {
            disclosure,
            answers: vec![vec![]; candidates.len()],
            candidates: candidates.clone(),
            stage: Stage::Asking,
            chosen: None,
            version: 0,
            changes: vec![],
            acknowledged: 0,
            asked_at_ms: at_ms,
            decided_at_ms: None,
        };
        Ok((case, vec![Effect::Notify(candidates)]))
    }

    fn index(&self, hospital: &HospitalCode) -> Result<usize, CaseError> {
        self.candidates
            .iter()
            .position(|c| c == hospital)
            .ok_or_else(|| CaseError::NotACandidate(hospital.clone()))
    }

    /// A hospital's answer. After the decision it is kept as late and never decides
    /// anything; the same answer again changes nothing.
    pub fn answer(
        &mut self,
        hospital: &HospitalCode,
        answer: Answer,
        by: &str,
        at_ms: i64,
    ) -> Result<Vec<Effect>, CaseError> {
        let i = self.index(hospital)?;
        // one in flight at the decision still arrives: kept as late, below
        if self.stage == Stage::Closed {
            return Err(CaseError::WrongStage(self.stage));
        }
        if self.answers[i].last().is_some_and(|a| a.answer == answer) {
            return Err(CaseError::Replayed(hospital.clone()));
        }
        self.answers[i].push(AnswerRecord {
            answer,
            by: by.to_string(),
            at_ms,
            late: self.stage != Stage::Asking,
        });
        Ok(vec![Effect::AnswerToTablet(hospital.clone())])
    }

    /// The hospital's answer in force (its latest).
    pub fn answer_of(&self, hospital: &HospitalCode) -> Option<&AnswerRecord> {
        self.index(hospital)
            .ok()
            .and_then(|i| self.answers[i].last())
    }

    /// 搬送決定: only a hospital whose answer in force is 受入可. The packet goes to it; every
    /// other candidate loses the request.
    pub fn decide(
        &mut self,
        hospital: &HospitalCode,
        at_ms: i64,
    ) -> Result<Vec<Effect>, CaseError> {
        if self.stage != Stage::Asking {
            return Err(CaseError::WrongStage(self.stage));
        }
        self.index(hospital)?;
        if self.answer_of(hospital).map(|a| &a.answer) != Some(&Answer::Accept) {
            return Err(CaseError::NotAccepted(hospital.clone()));
        }
        self.stage = Stage::Decided;
        self.chosen = Some(hospital.clone());
        self.version = 1;
        self.decided_at_ms = Some(at_ms);
        let others = self
            .candidates
            .iter()
            .filter(|c| *c != hospital)
            .cloned()
            .collect();
        Ok(vec![
            Effect::Packet {
                to: hospital.clone(),
                version: 1,
            },
            Effect::Withdraw(others),
        ])
    }

    /// A new ETA, new vitals, or 到着: a new version for the chosen hospital.
    pub fn update(&mut self, change: Change) -> Result<Vec<Effect>, CaseError> {
        if self.stage != Stage::Decided {
            return Err(CaseError::WrongStage(self.stage));
        }
        if let Change::Vitals { vitals } = &change {
            vitals.check()?;
        }
        if change == Change::Arrived {
            self.stage = Stage::Arrived;
        }
        self.version += 1;
        self.changes.push((self.version, change));
        let to = self.chosen.clone().ok_or(CaseError::NotChosen)?;
        Ok(vec![Effect::Packet {
            to,
            version: self.version,
        }])
    }

    /// The chosen hospital read version `version`.
    pub fn acknowledge(&mut self, hospital: &HospitalCode, version: u32) -> Result<(), CaseError> {
        if self.chosen.as_ref() != Some(hospital) {
            return Err(CaseError::NotChosen);
        }
        if version == 0 || version > self.version {
            return Err(CaseError::NoSuchVersion(version));
        }
        self.acknowledged = self.acknowledged.max(version);
        Ok(())
    }

    /// The crew withdraws the request before deciding (no hospital, or the patient refused
    /// transport): every candidate loses it.
    pub fn close(&mut self) -> Result<Vec<Effect>, CaseError> {
        if self.stage != Stage::Asking {
            return Err(CaseError::WrongStage(self.stage));
        }
        self.stage = Stage::Closed;
        Ok(vec![Effect::Withdraw(self.candidates.clone())])
    }

    /// What `hospital` may see now.
    pub fn visibility(&self, hospital: &HospitalCode) -> Visibility {
        if !self.candidates.contains(hospital) {
            return Visibility::Nothing;
        }
        match (&self.stage, &self.chosen) {
            (Stage::Asking, _) => Visibility::Request,
            (Stage::Decided | Stage::Arrived, Some(c)) if c == hospital => Visibility::Packet,
            _ => Visibility::Nothing,
        }
    }

    /// 照会回数 for the department's statistics: how many hospitals were asked.
    pub fn hospitals_asked(&self) -> usize {
        self.candidates.len()
    }

    /// From the request to the first 受入可 that came in time, in ms.
    pub fn time_to_acceptance_ms(&self) -> Option<i64> {
        self.answers
            .iter()
            .flatten()
            .filter(|a| a.answer == Answer::Accept && !a.late)
            .map(|a| a.at_ms - self.asked_at_ms)
            .min()
    }
}

#[cfg(test)]
mod tests;
