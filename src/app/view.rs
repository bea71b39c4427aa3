//! The view model: everything the screens show, as plain strings and flags, rebuilt from the
//! session after every event. The UI layer copies it into Slint's `Api` global; drills and
//! tests read it directly. When the session purges a patient, the next view model carries
//! no patient data, so the screen's copy is purged too.

use crate::domain::{
    Alert, ConsentDecision, CoverageStatus, DrugClass, EmergencyInfo, IdentityCheck, Medication,
    Timestamp, age_on, window_label_ja,
};
use crate::session::{Notice, Phase, Session};
use std::fmt;
use time::Date;

pub mod handoff;

/// The six screens (plus About, which the UI handles alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Screen {
    #[default]
    SignIn,
    Ready,
    /// An Android phone on the reader: its smartphone PIN (or that it cannot be used).
    Phone,
    /// Identity + consent on one screen.
    Consent,
    Summary,
    FullData,
    /// 搬送先照会: the complaint and the times.
    HandoffFindings,
    /// The vitals' steppers (before the request, and a new set after 搬送決定).
    HandoffVitals,
    HandoffHospitals,
    /// The answers as they come, 搬送決定, and the updates after it.
    HandoffAnswers,
}

impl Screen {
    pub fn name(self) -> &'static str {
        match self {
            Screen::SignIn => "sign-in",
            Screen::Ready => "ready",
            Screen::Phone => "phone",
            Screen::Consent => "consent",
            Screen::Summary => "summary",
            Screen::FullData => "full-data",
            Screen::HandoffFindings => "handoff-findings",
            Screen::HandoffVitals => "handoff-vitals",
            Screen::HandoffHospitals => "handoff-hospitals",
            Screen::HandoffAnswers => "handoff-answers",
        }
    }
}

/// Green / amber / red on the status strip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Level {
    #[default]
    Ok,
    Warn,
    Error,
}

/// The status strip on every screen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusStrip {
    pub training: bool,
    pub line: String,
    pub line_level: Level,
    pub tunnel: String,
    pub tunnel_level: Level,
    pub server: String,
    pub server_level: Level,
    pub certificate: String,
    pub certificate_level: Level,
    pub queued: usize,
    pub last_sync: String,
    pub sync_level: Level,
}

/// One line of a summary or full-data section.
#[derive(Clone, PartialEq, Eq)]
pub struct Row {
    pub date: String,
    pub text: String,
    pub detail: String,
    /// The crew acts on this (bleeding risk, glucose, dialysis, surgery).
    pub alert: bool,
}

/// One category, with its look-back window.
#[derive(Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub window: String,
    pub rows: Vec<Row>,
}

/// The coverage answer as the consent screen shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientView {
    pub name: String,
    pub kana: String,
    pub birth: String,
    pub age: String,
    pub sex: String,
    pub insurer: String,
    /// Set when the answer is the most recent valid coverage, not the current one.
    pub coverage_note: String,
    /// 医療扶助: 公費負担者番号 and 受給者番号 (empty otherwise).
    pub public_payer: String,
    pub recipient: String,
    /// The individual insured number, or 「なし（医療扶助）」.
    pub insured_number: String,
}

/// Today's date in Japan (UTC+9): ages and dates on screen are JST, whatever the tablet's
/// clock zone.
pub fn today_jst(now: Timestamp) -> Date {
    now.jst_date()
}

/// Under the summary and the full data: where the data comes from and what an empty
/// section means (DESIGN §2: claims data lags and can be incomplete).
pub const CLAIMS_CAVEAT: &str = "レセプト（診療報酬請求）に基づく情報です。数週間の遅れや欠けがあり得ます。「該当なし」は既往がないことを意味しません。";

/// The PIN fallback's answers, on the screen where the PIN was entered. None of them
/// points to 同意取得困難: a blocked PIN is no reason to view without consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinNotice {
    Wrong {
        tries_left: u8,
    },
    Blocked,
    LastTry,
    Format,
    Card(Notice),
    /// The phone's smartphone PIN is blocked: the phone cannot be used today.
    PhoneBlocked,
    /// The phone did not answer as it should after its PIN or unlock.
    PhoneNotConfirmed,
}

impl PinNotice {
    pub fn message_ja(self) -> String {
        match self {
            PinNotice::Wrong { tries_left } => {
                format!("暗証番号が違います（残り{tries_left}回）")
            }
            PinNotice::Blocked => {
                "暗証番号がロックされています。顔写真で本人確認するか、終了してください".into()
            }
            PinNotice::LastTry => {
                "残り1回です。間違えるとカードがロックされます。確認してもう一度押してください"
                    .into()
            }
            PinNotice::Format => "暗証番号は4桁の数字です".into(),
            PinNotice::Card(n) => n.message_ja().into(),
            PinNotice::PhoneBlocked => {
                "スマートフォンの暗証番号がロックされています。カードがあればカードを置くか、終了してください"
                    .into()
            }
            PinNotice::PhoneNotConfirmed => {
                "スマートフォンで本人確認できませんでした。終了して、もう一度かざしてください".into()
            }
        }
    }
}

/// The PIN fallback when the photo cannot be checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinView {
    pub message: String,
    /// One try is left: the next PIN needs the crew's explicit confirmation.
    pub confirm_last_try: bool,
    pub blocked: bool,
}

#[derive(Clone, Default, PartialEq)]
pub struct ViewModel {
    pub screen: Screen,
    pub phase: &'static str,
    pub crew: String,
    pub status: StatusStrip,
    /// A progress line ("読み取り中…"); empty when nothing is under way.
    pub busy: String,
    pub notice: String,
    pub notice_is_error: bool,
    pub offers_retry: bool,
    pub sign_in_error: String,
    /// The roster's crew as the sign-in screen lists them (signed out only).
    pub crew_list: Vec<crate::roster::CrewEntry>,
    pub patient: PatientView,
    pub has_patient: bool,
    pub identity_confirmed: String,
    /// A phone is on the reader: 「スマートフォン（Android）」 (empty for a card).
    pub phone: String,
    /// The phone cannot be read without its owner: one line and 終了.
    pub phone_unusable: bool,
    /// The photo check is offered (a card; a phone has no photo).
    pub photo_offered: bool,
    /// 同意取得困難 is offered (never with a phone).
    pub unobtainable_offered: bool,
    pub consent: String,
    /// The decision as first chosen, when it was corrected (訂正): 「同意取得困難 → 口頭同意あり」.
    pub consent_correction: String,
    /// The decisions a correction may change to (labels), while viewing.
    pub corrections: Vec<ConsentDecision>,
    /// Viewing under 同意取得困難: the written explanation (傷病者用説明書) is still owed.
    pub explanation_owed: bool,
    /// The explanation was recorded as handed.
    pub explanation_handed: bool,
    /// Whom the patient or family may ask (the department's contact), with the reminder.
    pub explanation_contact: String,
    /// On the consent screen: the answer ended the case (opt-out, refusal, failure).
    pub case_closed: bool,
    pub waiting_for_link: bool,
    pub pin: PinView,
    pub alerts: Vec<String>,
    pub last_visit: String,
    pub summary: Vec<Section>,
    pub full: Vec<Section>,
    /// The tablet has a hub to ask (「搬送先照会」 offered).
    pub hub_available: bool,
    pub handoff: handoff::HandoffView,
}

impl fmt::Debug for ViewModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Patient fields are never printed.
        f.debug_struct("ViewModel")
            .field("screen", &self.screen)
            .field("phase", &self.phase)
            .field("busy", &self.busy)
            .field("notice", &self.notice)
            .field("has_patient", &self.has_patient)
            .finish_non_exhaustive()
    }
}

impl ViewModel {
    /// Whether any patient data is in this view model (for the purge tests).
    pub fn holds_patient_data(&self) -> bool {
        self.has_patient
            || !self.patient.name.is_empty()
            || !self.summary.is_empty()
            || !self.full.is_empty()
            || !self.alerts.is_empty()
            || !self.last_visit.is_empty()
            || !self.patient.recipient.is_empty()
            || !self.patient.insured_number.is_empty()
    }
}

pub fn date_ja(d: Date) -> String {
    format!("{}年{}月{}日", d.year(), d.month() as u8, d.day())
}

fn short_date(d: Date) -> String {
    format!("{}/{:02}/{:02}", d.year(), d.month() as u8, d.day())
}

fn acts_on(class: DrugClass) -> bool {
    !matches!(class, DrugClass::Other)
}

fn medication_rows(meds: &[Medication]) -> Vec<Row> {
    meds.iter()
        .map(|m| Row {
            date: short_date(m.date),
            text: if acts_on(m.class) {
                format!("【{}】{}", m.class.label_ja(), m.drug)
            } else {
                m.drug.clone()
            },
            detail: format!("{} × {}日 — {}", m.dose, m.days, m.prescriber),
            alert: acts_on(m.class),
        })
        .collect()
}

fn visit_rows(info: &[crate::domain::Visit]) -> Vec<Row> {
    info.iter()
        .map(|v| Row {
            date: short_date(v.date),
            text: format!("{} {}", v.hospital, v.department),
            detail: if v.inpatient {
                "入院".into()
            } else {
                "外来".into()
            },
            alert: false,
        })
        .collect()
}

fn surgery_rows(list: &[crate::domain::Surgery]) -> Vec<Row> {
    list.iter()
        .map(|x| Row {
            date: short_date(x.date),
            text: x.procedure.clone(),
            detail: x.hospital.clone(),
            alert: true,
        })
        .collect()
}

fn clinical_rows(list: &[crate::domain::ClinicalEntry]) -> Vec<Row> {
    list.iter()
        .map(|x| Row {
            date: short_date(x.date),
            text: x.description.clone(),
            detail: x.hospital.clone(),
            alert: false,
        })
        .collect()
}

fn dialysis_rows(list: &[crate::domain::DialysisSession]) -> Vec<Row> {
    list.iter()
        .map(|x| Row {
            date: short_date(x.date),
            text: "人工腎臓（透析）".into(),
            detail: x.hospital.clone(),
            alert: true,
        })
        .collect()
}

/// The emergency summary's sections, in the MHLW order, with their windows.
pub fn summary_sections(info: &EmergencyInfo) -> Vec<Section> {
    let s = &info.summary;
    vec![
        Section {
            title: "受診歴".into(),
            window: window_label_ja(s.windows.visits),
            rows: visit_rows(&s.visits),
        },
        Section {
            title: "電子処方箋".into(),
            window: window_label_ja(s.windows.e_prescriptions),
            rows: medication_rows(&s.e_prescriptions),
        },
        Section {
            title: "薬剤情報".into(),
            window: window_label_ja(s.windows.medications),
            rows: medication_rows(&s.medications),
        },
        Section {
            title: "手術情報".into(),
            window: window_label_ja(s.windows.surgeries),
            rows: surgery_rows(&s.surgeries),
        },
        Section {
            title: "診療情報".into(),
            window: window_label_ja(s.windows.clinical),
            rows: clinical_rows(&s.clinical),
        },
        Section {
            title: "透析".into(),
            window: window_label_ja(s.windows.dialysis),
            rows: dialysis_rows(&s.dialysis),
        },
        Section {
            title: "特定健診".into(),
            window: window_label_ja(s.windows.health_checks),
            rows: s
                .health_check_dates
                .iter()
                .map(|d| Row {
                    date: short_date(*d),
                    text: "特定健診 実施".into(),
                    detail: String::new(),
                    alert: false,
                })
                .collect(),
        },
    ]
}

/// The full data's sections: the same categories over 5 years, health checks with values.
pub fn full_sections(info: &EmergencyInfo) -> Vec<Section> {
    let f = &info.full;
    vec![
        Section {
            title: "受診歴".into(),
            window: window_label_ja(f.windows.visits),
            rows: visit_rows(&f.visits),
        },
        Section {
            title: "電子処方箋".into(),
            window: window_label_ja(f.windows.e_prescriptions),
            rows: medication_rows(&f.e_prescriptions),
        },
        Section {
            title: "薬剤情報".into(),
            window: window_label_ja(f.windows.medications),
            rows: medication_rows(&f.medications),
        },
        Section {
            title: "手術情報".into(),
            window: window_label_ja(f.windows.surgeries),
            rows: surgery_rows(&f.surgeries),
        },
        Section {
            title: "診療情報".into(),
            window: window_label_ja(f.windows.clinical),
            rows: clinical_rows(&f.clinical),
        },
        Section {
            title: "透析".into(),
            window: window_label_ja(f.windows.dialysis),
            rows: dialysis_rows(&f.dialysis),
        },
        Section {
            title: "特定健診".into(),
            window: window_label_ja(f.windows.health_checks),
            rows: f
                .health_checks
                .iter()
                .map(|h| Row {
                    date: short_date(h.date),
                    text: "特定健診".into(),
                    detail: h
                        .values
                        .iter()
                        .map(|v| format!("{} {}{}", v.item, v.value, v.unit))
                        .collect::<Vec<_>>()
                        .join("、"),
                    alert: false,
                })
                .collect(),
        },
    ]
}

fn busy_text(phase: Phase, waiting_for_link: bool) -> &'static str {
    match phase {
        _ if waiting_for_link => "回線待ち — 記録は保持され、回線復旧後に自動で再送します",
        Phase::ReadingCard => "カードを読み取り中… カードを動かさないでください",
        Phase::CheckingQualification => "資格を確認中…",
        Phase::AwaitingEmergencyInfo => "救急用サマリーを照会中…",
        _ => "",
    }
}

fn notice_is_error(n: Notice) -> bool {
    !matches!(
        n,
        Notice::LockedAfterIdle
            | Notice::ViewingEndedAfterIdle
            | Notice::WaitingForLink
            | Notice::OptedOut
            | Notice::RefusalRecorded
    )
}

/// The screen for a phase: card → consent → summary, never more than three in the path.
pub fn screen_for(session: &Session) -> Screen {
    match session.phase() {
        Phase::SignedOut => Screen::SignIn,
        Phase::Ready | Phase::ReadingCard | Phase::CheckingQualification => Screen::Ready,
        Phase::PhonePin | Phase::PhoneUnusable => Screen::Phone,
        Phase::IdentityAndConsent
        | Phase::AwaitingEmergencyInfo
        | Phase::Refused
        | Phase::OptedOut => Screen::Consent,
        Phase::Failed if session.coverage().is_some() => Screen::Consent,
        Phase::Failed => Screen::Ready,
        Phase::ViewingSummary => Screen::Summary,
        Phase::ViewingFullData => Screen::FullData,
    }
}

/// Build the view model from the session; `status`, `pin` and `sign_in_error` are the
/// controller's own state.
pub fn build(
    session: &Session,
    today: Date,
    status: &StatusStrip,
    pin: &PinView,
    sign_in_error: &str,
) -> ViewModel {
    let phase = session.phase();
    let notice = session.notice();
    let incident = session.incident();
    let mut vm = ViewModel {
        screen: screen_for(session),
        phase: phase.name(),
        crew: session.operator().map(|o| o.0.clone()).unwrap_or_default(),
        status: status.clone(),
        busy: busy_text(phase, session.waiting_for_link()).into(),
        notice: notice
            .map(|n| n.message_ja().to_string())
            .unwrap_or_default(),
        notice_is_error: notice.is_some_and(notice_is_error),
        offers_retry: phase == Phase::Failed && notice.is_some_and(|n| n.offers_retry()),
        sign_in_error: sign_in_error.to_string(),
        waiting_for_link: session.waiting_for_link(),
        case_closed: matches!(phase, Phase::Refused | Phase::OptedOut | Phase::Failed),
        phone_unusable: phase == Phase::PhoneUnusable,
        photo_offered: true,
        unobtainable_offered: true,
        explanation_owed: session.explanation_owed(),
        pin: pin.clone(),
        ..ViewModel::default()
    };
    if let Some(c) = session.coverage() {
        let birth = *c.birth_date.expose();
        vm.has_patient = true;
        vm.patient = PatientView {
            name: c.name.expose().clone(),
            kana: c.kana.expose().clone(),
            birth: date_ja(birth),
            age: format!("{}歳", age_on(birth, today)),
            sex: c.sex.label_ja().into(),
            insurer: c.insurer_name.expose().clone(),
            coverage_note: match c.status {
                CoverageStatus::Current => String::new(),
                CoverageStatus::MostRecentValid => {
                    "現在有効な資格はありません — 直近で有効だった資格を表示しています".into()
                }
            },
            public_payer: c
                .patient
                .public_assistance
                .as_ref()
                .map(|p| p.payer_number.expose().clone())
                .unwrap_or_default(),
            recipient: c
                .patient
                .public_assistance
                .as_ref()
                .map(|p| p.recipient_number.expose().clone())
                .unwrap_or_default(),
            insured_number: if c.patient.insured_number.expose().is_empty() {
                "なし（医療扶助）".into()
            } else {
                c.patient.insured_number.expose().clone()
            },
        };
    }
    if let Some(i) = incident {
        let phone = i.token.filter(|t| t.is_phone());
        vm.identity_confirmed = match (i.identity_check, phone) {
            (Some(IdentityCheck::Photo), _) => "顔写真で本人確認済み".into(),
            (Some(IdentityCheck::Pin), None) => "暗証番号で本人確認済み".into(),
            (Some(IdentityCheck::Pin), Some(_)) => "スマホの暗証番号で本人確認済み".into(),
            (Some(IdentityCheck::PhoneBiometric), _) => "iPhoneの生体認証で本人確認済み".into(),
            (None, _) => String::new(),
        };
        if let Some(t) = phone {
            vm.phone = t.label_ja().into();
            vm.photo_offered = false;
            vm.unobtainable_offered = false;
            if phase == Phase::IdentityAndConsent && i.identity_check.is_none() {
                if !pin.message.is_empty() {
                    // the phone did not sign: said where the crew looks, not in a PIN pad
                    vm.notice = pin.message.clone();
                    vm.notice_is_error = true;
                } else if vm.busy.is_empty() {
                    vm.busy = "スマートフォンで本人確認中…".into();
                }
            }
        }
        vm.consent = match (i.consent, i.unobtainable_reason) {
            (Some(d), Some(why)) => format!("{}（{}）", d.label_ja(), why.short_label_ja()),
            (Some(d), None) => d.label_ja().into(),
            (None, _) => String::new(),
        };
        if let (Some(from), Some(to)) = (i.corrected_from, i.consent) {
            vm.consent_correction = format!("訂正: {} → {}", from.label_ja(), to.label_ja());
        }
        if matches!(phase, Phase::ViewingSummary | Phase::ViewingFullData) {
            vm.corrections = [
                ConsentDecision::Verbal,
                ConsentDecision::Unobtainable,
                ConsentDecision::Refused,
            ]
            .into_iter()
            .filter(|d| Some(*d) != i.consent)
            .collect();
            vm.explanation_handed =
                i.consent == Some(ConsentDecision::Unobtainable) && i.explanation_recorded;
        }
    }
    if let Some(info) = session.emergency_info() {
        vm.alerts = info.summary.alerts().iter().map(Alert::label_ja).collect();
        vm.last_visit = info
            .summary
            .visits
            .iter()
            .max_by_key(|v| v.date)
            .map(|v| format!("{} {}（{}）", date_ja(v.date), v.hospital, v.department))
            .unwrap_or_else(|| match info.summary.windows.visits {
                Some(w) => format!("{}以内の受診なし", w.label_ja()),
                None => "受診なし（期間不明）".into(),
            });
        vm.summary = summary_sections(info);
        vm.full = full_sections(info);
    }
    vm
}

#[cfg(test)]
mod tests;
