//! The pre-arrival packet (搬送決定 → the chosen hospital only): who the patient is, the
//! consent the crew recorded, what the national system's summary said, and what the crew
//! entered, each with where it came from. This is the hub's stored form; the hub renders it
//! for people (the inbox page) and as FHIR R4 for the hospital's systems.

use crate::domain::{ConsentDecision, Sex, UnobtainableReason};
use serde::{Deserialize, Serialize};

/// The largest packet the hub takes (a summary is a few KiB; this leaves room for long
/// medication lists and refuses a runaway one).
pub const MAX_PACKET_BYTES: usize = 64 * 1024;

/// The patient as the chosen hospital needs them to register the arrival: name, kana, birth
/// date, sex. Never the My Number (no field for it); the insured number only where the
/// department's setting allows it (`insured_number`, off by default on the tablet).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketPatient {
    pub name: String,
    pub kana: String,
    /// YYYY-MM-DD.
    pub birth_date: String,
    pub sex: Sex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_number: Option<String>,
}

impl std::fmt::Debug for PacketPatient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacketPatient(<redacted>)")
    }
}

/// The consent behind the viewing: 口頭同意 or 同意取得困難 (with its reason), when, by whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PacketConsent {
    pub decision: ConsentDecision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<UnobtainableReason>,
    /// ms since the epoch.
    pub at_ms: i64,
    pub recorded_by: String,
}

/// One line of the summary (a medication, a diagnosis, a procedure) with the date the
/// national system gave for it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryItem {
    pub text: String,
    /// YYYY-MM-DD or YYYY-MM, as the claims gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

impl std::fmt::Debug for SummaryItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SummaryItem(<redacted>)")
    }
}

impl PacketPatient {
    /// The patient no card identified (氏名不詳): the hospital registers an unknown patient.
    pub fn unidentified(sex: Sex) -> PacketPatient {
        PacketPatient {
            name: "氏名不詳".into(),
            kana: "シメイフショウ".into(),
            birth_date: String::new(),
            sex,
            insured_number: None,
        }
    }
}

/// What the crew sends with 搬送決定.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    pub patient: PacketPatient,
    /// The consent behind the viewing; none when no card was read (nothing was viewed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<PacketConsent>,
    /// From the national system (claims-derived).
    #[serde(default)]
    pub medications: Vec<SummaryItem>,
    #[serde(default)]
    pub diagnoses: Vec<SummaryItem>,
    #[serde(default)]
    pub procedures: Vec<SummaryItem>,
    /// When the national system answered (ms since the epoch).
    pub summary_as_of_ms: Option<i64>,
    /// The crew's own words (observations, what happened).
    #[serde(default)]
    pub crew_note: String,
    /// The crew members' names.
    #[serde(default)]
    pub crew: Vec<String>,
}

impl Packet {
    /// The packet for a patient no card identified: 氏名不詳, nothing from the national
    /// system, no consent (nothing was viewed).
    pub fn unidentified(sex: Sex, crew: Vec<String>) -> Packet {
        Packet {
            patient: PacketPatient::unidentified(sex),
            consent: None,
            medications: vec![],
            diagnoses: vec![],
            procedures: vec![],
            summary_as_of_ms: None,
            crew_note: String::new(),
            crew,
        }
    }

    /// Every free text of the packet (for the tests that look for it where it must not be).
    pub fn free_texts(&self) -> Vec<&str> {
        let mut t = vec![
            self.patient.name.as_str(),
            self.patient.kana.as_str(),
            self.crew_note.as_str(),
        ];
        t.extend(self.consent.iter().map(|c| c.recorded_by.as_str()));
        for list in [&self.medications, &self.diagnoses, &self.procedures] {
            t.extend(list.iter().map(|i| i.text.as_str()));
        }
        t.extend(self.crew.iter().map(String::as_str));
        t
    }
}
