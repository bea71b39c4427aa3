//! Consent decisions and audit entries: what the law says must be recorded for every view.

use super::{IncidentId, OperatorId, PatientRef, ServiceFailure, TerminalId, Timestamp, UnitId};
use serde::{Deserialize, Serialize};

/// The crew's consent decision, each an explicit choice on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentDecision {
    /// 口頭同意あり: the patient agreed verbally.
    Verbal,
    /// 同意取得困難: the patient cannot give consent (unconscious etc.).
    Unobtainable,
    /// 拒否: a conscious patient refused; an ambulance crew must not view.
    Refused,
}

impl ConsentDecision {
    /// The consent state an inquiry may carry, or `None` for a refusal (which never inquires).
    pub fn inquiry_state(self) -> Option<ConsentState> {
        match self {
            ConsentDecision::Verbal => Some(ConsentState::Consented),
            ConsentDecision::Unobtainable => Some(ConsentState::Unobtainable),
            ConsentDecision::Refused => None,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            ConsentDecision::Verbal => "口頭同意あり",
            ConsentDecision::Unobtainable => "同意取得困難",
            ConsentDecision::Refused => "拒否",
        }
    }
}

/// Why the crew judged consent unobtainable (同意取得困難の理由). The FDMA allows viewing
/// without consent only 「意識不明等のため同意を得ることが困難である場合に限り」, so the
/// record says which case it was; chosen from this fixed list as large buttons, never typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnobtainableReason {
    /// 意識障害.
    Unconscious,
    /// 意思疎通困難（重篤・言語等）.
    CannotCommunicate,
    /// 判断能力（小児・認知症等）.
    LacksCapacity,
    /// その他.
    Other,
}

impl UnobtainableReason {
    pub const ALL: [UnobtainableReason; 4] = [
        UnobtainableReason::Unconscious,
        UnobtainableReason::CannotCommunicate,
        UnobtainableReason::LacksCapacity,
        UnobtainableReason::Other,
    ];

    /// The head of the label, for a narrow line on screen (「意思疎通困難」).
    pub fn short_label_ja(self) -> &'static str {
        match self {
            UnobtainableReason::Unconscious => "意識障害",
            UnobtainableReason::CannotCommunicate => "意思疎通困難",
            UnobtainableReason::LacksCapacity => "判断能力",
            UnobtainableReason::Other => "その他",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            UnobtainableReason::Unconscious => "意識障害",
            UnobtainableReason::CannotCommunicate => "意思疎通困難（重篤・言語等）",
            UnobtainableReason::LacksCapacity => "判断能力（小児・認知症等）",
            UnobtainableReason::Other => "その他",
        }
    }
}

/// The consent state carried by an emergency-info inquiry and recorded in the audit log:
/// 「同意あり」 or 「同意取得困難」.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    Consented,
    Unobtainable,
}

impl ConsentState {
    pub fn label_ja(self) -> &'static str {
        match self {
            ConsentState::Consented => "同意あり",
            ConsentState::Unobtainable => "同意取得困難",
        }
    }
}

/// How the patient was identified (本人確認の方法), as the audit log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMethod {
    /// マイナ保険証: the card was read.
    MynaCard,
    /// 被保険者番号等: lookup by insurance number (hospital scope, kept open in the protocol).
    InsuredNumber,
    /// 4情報: lookup by name, birth date, sex and address (hospital scope, likewise).
    FourItems,
}

impl IdentityMethod {
    pub fn label_ja(self) -> &'static str {
        match self {
            IdentityMethod::MynaCard => "マイナ保険証",
            IdentityMethod::InsuredNumber => "被保険者番号等",
            IdentityMethod::FourItems => "4情報",
        }
    }
}

/// How the crew confirmed that the card belongs to the patient in front of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityCheck {
    /// 目視確認: the card photo matches the patient.
    Photo,
    /// The patient entered the card's PIN (fallback when the photo cannot be checked), or
    /// the smartphone PIN of an Android phone's スマホ用電子証明書.
    Pin,
    /// An iPhone's owner unlocked the certificate with Face ID / Touch ID on the phone
    /// itself before holding it to the reader; the phone's signature proves it.
    PhoneBiometric,
}

impl IdentityCheck {
    /// Whether the card (or phone) must sign the server's challenge for this check: every
    /// check but the crew's own look at the photo.
    pub fn needs_card_signature(self) -> bool {
        !matches!(self, IdentityCheck::Photo)
    }
}

/// What held the JPKI application the reader talked to (EF 0006, the token information).
/// A phone's スマホ用電子証明書 answers the same protocol as the plastic card, but has no
/// photo and unlocks only for its owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `JPKIAPICCTOKEN2`: the My Number card itself.
    #[default]
    Card,
    /// `JPKIAPGPSETOKEN`: an Android phone's secure element; even the user-authentication
    /// certificate needs the 4-digit smartphone PIN.
    AndroidPhone,
    /// An iPhone: readable only after its owner authenticated on the phone.
    IPhone,
}

impl TokenKind {
    pub fn is_phone(self) -> bool {
        !matches!(self, TokenKind::Card)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            TokenKind::Card => "カード",
            TokenKind::AndroidPhone => "スマートフォン（Android）",
            TokenKind::IPhone => "スマートフォン（iPhone）",
        }
    }

    /// The short name in logs, exports and drill reports.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Card => "card",
            TokenKind::AndroidPhone => "android_phone",
            TokenKind::IPhone => "iphone",
        }
    }
}

/// The kind of information viewed (閲覧した情報の種類).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoKind {
    /// 救急用サマリー
    EmergencySummary,
    /// 全量版
    FullData,
}

impl InfoKind {
    pub fn label_ja(self) -> &'static str {
        match self {
            InfoKind::EmergencySummary => "救急用サマリー",
            InfoKind::FullData => "全量版",
        }
    }
}

/// A consent decision as recorded (同意記録), including refusals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub at: Timestamp,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    pub patient: PatientRef,
    pub decision: ConsentDecision,
    /// With 同意取得困難 (and only then): why. Absent from records made before reasons
    /// were recorded, and left out of the JSON when absent, so their chain hashes hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<UnobtainableReason>,
}

/// 訂正: the crew corrects a consent decision within the incident. The first record stays as
/// it was; this one is appended after it, and both are kept and uploaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentCorrection {
    pub at: Timestamp,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    pub patient: PatientRef,
    pub from: ConsentDecision,
    pub to: ConsentDecision,
    /// With a correction to 同意取得困難 (and only then): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<UnobtainableReason>,
}

/// After a viewing under 同意取得困難 the patient or family gets the written explanation
/// (傷病者用説明書). `handed: false` is recorded when the viewing ends before the crew said
/// it was handed, so the record shows the explanation is still owed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplanationRecord {
    pub at: Timestamp,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    pub patient: PatientRef,
    pub handed: bool,
}

/// One step of a hand-off to a receiving hospital (受入照会 → 搬送決定 → 到着), as the tablet
/// records it: hospital codes, answers, times, the packet's version and hash. Never the
/// complaint, the vitals or anything of the patient: the packet itself is dropped with the
/// viewing, and a stolen tablet must not hold a clinical word.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum HandoffEvent {
    /// 受入照会 sent to these hospitals (照会回数 = their number).
    Asked {
        case_id: String,
        hospitals: Vec<String>,
    },
    /// The request could not be sent before the bound: nothing left the tablet.
    NotSent { hospitals: Vec<String> },
    /// A hospital's answer (`accept`, `decline:<reason>`, `call_us`), when the hospital gave
    /// it, and whether it came after 搬送決定.
    Answered {
        case_id: String,
        hospital: String,
        answer: String,
        answered_at_ms: i64,
        late: bool,
    },
    /// 搬送決定: the packet (version 1) went to this hospital alone.
    Decided {
        case_id: String,
        hospital: String,
        packet_version: u32,
        /// SHA-256 of the packet's JSON as sent, hex.
        packet_sha256: String,
    },
    /// A new version after 搬送決定: `eta`, `vitals` or `arrived`.
    Updated {
        case_id: String,
        version: u32,
        change: String,
    },
    /// The crew left the flow before 搬送決定: the hub withdrew the request.
    Withdrawn { case_id: String },
}

/// A hand-off step with who, when, where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffRecord {
    pub at: Timestamp,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    #[serde(flatten)]
    pub event: HandoffEvent,
}

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditAction {
    /// The qualification check answered with this patient's coverage.
    QualificationCheck,
    /// The qualification check answered that the patient opted out (no patient data).
    QualificationOptOut,
    /// The qualification check failed for a reason the crew saw (not a lost link, which is
    /// resent): who, when, which card (`AuditEntry::card`) and why.
    QualificationFailed { reason: ServiceFailure },
    /// An emergency-info inquiry was made (once per incident, however often it is retried).
    EmergencyInfoInquiry,
    /// Information of this kind was shown on screen.
    View { kind: InfoKind },
}

/// One line of the audit log, with the items DESIGN.md §2 lists: operator, date-time,
/// terminal, patient, consent state, identity method, kind of information viewed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub incident: IncidentId,
    pub operator: OperatorId,
    pub unit: UnitId,
    pub terminal: TerminalId,
    /// None only for an opt-out answer, which reveals no patient.
    pub patient: Option<PatientRef>,
    /// None before a consent decision (the qualification check needs none).
    pub consent: Option<ConsentState>,
    pub identity_method: IdentityMethod,
    /// None before the crew confirmed the identity.
    pub identity_check: Option<IdentityCheck>,
    /// What was read: the card or a phone (none before the read; absent in records made
    /// before phones were supported, which keeps their bytes, and so their chain hashes,
    /// as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenKind>,
    /// The card's certificate fingerprint ([`super::CardCredential::fingerprint`]), on a
    /// failed qualification check where no patient is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    #[serde(flatten)]
    pub action: AuditAction,
}

/// A record the tablet keeps and uploads: an audit entry or a consent decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "entry", rename_all = "snake_case")]
pub enum RecordBody {
    Audit(AuditEntry),
    Consent(ConsentRecord),
    ConsentCorrection(ConsentCorrection),
    Explanation(ExplanationRecord),
    Handoff(HandoffRecord),
}

/// What every record says about itself: when, which incident, who, on which device, and
/// which patient (none for an opt-out answer or a failed lookup).
pub struct RecordHeader<'a> {
    pub at: Timestamp,
    pub incident: &'a IncidentId,
    pub operator: &'a OperatorId,
    pub unit: &'a UnitId,
    pub terminal: &'a TerminalId,
    pub patient: Option<&'a PatientRef>,
}

impl RecordBody {
    pub fn header(&self) -> RecordHeader<'_> {
        let h = |at, incident, operator, unit, terminal, patient| RecordHeader {
            at,
            incident,
            operator,
            unit,
            terminal,
            patient,
        };
        match self {
            RecordBody::Audit(a) => h(
                a.at,
                &a.incident,
                &a.operator,
                &a.unit,
                &a.terminal,
                a.patient.as_ref(),
            ),
            RecordBody::Consent(c) => h(
                c.at,
                &c.incident,
                &c.operator,
                &c.unit,
                &c.terminal,
                Some(&c.patient),
            ),
            RecordBody::ConsentCorrection(c) => h(
                c.at,
                &c.incident,
                &c.operator,
                &c.unit,
                &c.terminal,
                Some(&c.patient),
            ),
            RecordBody::Explanation(x) => h(
                x.at,
                &x.incident,
                &x.operator,
                &x.unit,
                &x.terminal,
                Some(&x.patient),
            ),
            RecordBody::Handoff(x) => h(x.at, &x.incident, &x.operator, &x.unit, &x.terminal, None),
        }
    }
}

/// A record with its unique id, the idempotency key of the upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(flatten)]
    pub body: RecordBody,
}

/// The hash that links a record into the audit chain: SHA-256 over the previous record's
/// hash, the sequence number and the record. The tablet's store and the server compute it
/// the same way, so the server can hold the tablet to its chain.
pub fn chain_hash(prev_hash: &str, seq: u64, record: &Record) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    // serialising a `Record` cannot fail (strings, numbers and enums only)
    h.update(serde_json::to_vec(record).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Why a link of the audit chain does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFault {
    /// Its sequence number is not the one after the link before it.
    Gap,
    /// It does not name the hash of the link before it.
    PrevHash,
    /// Its hash is not the hash of its content and link.
    Content,
}

impl LinkFault {
    pub fn reason(self) -> &'static str {
        match self {
            LinkFault::Gap => "a record before this one is missing",
            LinkFault::PrevHash => "previous-hash link does not match",
            LinkFault::Content => "record content does not match its hash",
        }
    }
}

/// The one check of a chain link, for the store, the admin's merge and the server alike:
/// the record at `seq` must follow `after_seq` (when there is a link before it), name
/// `after_hash` as its previous hash (the link before, or the chain's anchor), and carry
/// the hash of its own content and link.
pub fn check_link(
    after_seq: Option<u64>,
    after_hash: Option<&str>,
    seq: u64,
    prev_hash: &str,
    record: &Record,
    hash: &str,
) -> Result<(), LinkFault> {
    if after_seq.is_some_and(|s| s.checked_add(1) != Some(seq)) {
        return Err(LinkFault::Gap);
    }
    if after_hash.is_some_and(|h| h != prev_hash) {
        return Err(LinkFault::PrevHash);
    }
    if chain_hash(prev_hash, seq, record) != hash {
        return Err(LinkFault::Content);
    }
    Ok(())
}

/// What the unit key signs for each record: a domain label, the sequence number and the
/// chain hash (which covers the record and everything before it).
pub fn chain_signing_message(seq: u64, hash: &str) -> Vec<u8> {
    let mut m = b"mynakyukyu audit chain v2\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash.as_bytes());
    m
}

/// A record as uploaded: its link in the chain and the unit key's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedRecord {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub record: Record,
    /// Base64 DER ECDSA-P256-SHA256 by the unit key over [`chain_signing_message`].
    pub signature: String,
}

/// The chain head a server holds for a device key: the last sequence number and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHeadAck {
    pub seq: u64,
    pub hash: String,
}

/// What the patient's card signs on the PIN path: the eligibility system's reference (a
/// random, expiring, unit-bound nonce it issued) and the incident. The system checks the
/// signature against the card certificate the reference was issued for.
pub fn pin_challenge(qualification: &super::QualificationRef, incident: &IncidentId) -> Vec<u8> {
    let mut m = b"mynakyukyu pin challenge v2\0".to_vec();
    m.extend_from_slice(qualification.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(incident.as_str().as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Sensitive;

    fn record(reason: Option<UnobtainableReason>) -> ConsentRecord {
        ConsentRecord {
            at: Timestamp(1),
            incident: IncidentId::new("I-1"),
            operator: OperatorId::new("EMT-1"),
            unit: UnitId::new("U-1"),
            terminal: TerminalId::new("T-1"),
            patient: PatientRef {
                local_id: Sensitive("P0001".into()),
                insured_number: Sensitive("1".into()),
                public_assistance: None,
            },
            decision: ConsentDecision::Unobtainable,
            reason,
        }
    }

    /// Records stored before reasons existed read back, and serialise to the very bytes they
    /// had (their chain hashes are over those bytes).
    #[test]
    fn a_record_without_a_reason_keeps_its_old_bytes() {
        let old = serde_json::to_string(&record(None)).unwrap();
        assert!(!old.contains("reason"), "{old}");
        let back: ConsentRecord = serde_json::from_str(&old).unwrap();
        assert_eq!(back, record(None));
        let new = serde_json::to_string(&record(Some(UnobtainableReason::Unconscious))).unwrap();
        assert!(new.contains(r#""reason":"unconscious""#), "{new}");
    }
}
