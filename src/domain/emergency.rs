//! The patient's coverage (資格情報) and emergency medical information (救急用サマリー, 全量版).
//!
//! Item lists and their look-back windows follow the MHLW emergency-summary definition:
//! visits 3 months, e-prescriptions 45 days, medications 3 months, surgery 5 years,
//! clinical 3 months, dialysis 3 months, health-check dates. The full data covers 5 years
//! (e-prescriptions 100 days) and health checks with their values.

use super::{PatientRef, Sensitive, Sex};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::Date;

/// Whether the coverage shown is in force, or the most recent valid one (直近有効であった資格)
/// that the system returns when the card's current coverage has lapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    Current,
    MostRecentValid,
}

/// The qualification answer: who the patient is and how they are insured.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub patient: PatientRef,
    pub name: Sensitive<String>,
    pub kana: Sensitive<String>,
    pub birth_date: Sensitive<Date>,
    pub sex: Sex,
    pub insurer_name: Sensitive<String>,
    pub insurer_number: Sensitive<String>,
    pub status: CoverageStatus,
}

impl fmt::Debug for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Coverage([redacted], status: {:?})", self.status)
    }
}

/// A class of drug that changes what the crew does on the way to hospital.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrugClass {
    Anticoagulant,
    Antiplatelet,
    Insulin,
    OralAntidiabetic,
    Antiepileptic,
    Other,
}

impl DrugClass {
    /// Short label for the alert band.
    pub fn label_ja(self) -> &'static str {
        match self {
            DrugClass::Anticoagulant => "抗凝固薬",
            DrugClass::Antiplatelet => "抗血小板薬",
            DrugClass::Insulin => "インスリン",
            DrugClass::OralAntidiabetic => "糖尿病薬",
            DrugClass::Antiepileptic => "抗てんかん薬",
            DrugClass::Other => "その他",
        }
    }
}

/// A visit to a medical institution (受診歴).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub date: Date,
    pub hospital: String,
    pub department: String,
    pub inpatient: bool,
}

/// A dispensed drug (薬剤情報) or an electronic prescription (電子処方箋).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medication {
    pub date: Date,
    pub drug: String,
    pub class: DrugClass,
    pub dose: String,
    pub days: u16,
    pub prescriber: String,
}

/// A surgery (手術情報).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Surgery {
    pub date: Date,
    pub procedure: String,
    pub hospital: String,
}

/// A clinical act or diagnosis-related entry (診療情報).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalEntry {
    pub date: Date,
    pub description: String,
    pub hospital: String,
}

/// One dialysis session (人工腎臓 / 透析).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialysisSession {
    pub date: Date,
    pub hospital: String,
}

/// One value of a specific health check (特定健診).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckValue {
    pub item: String,
    pub value: String,
    pub unit: String,
}

/// A health check: the summary carries only its date, the full data its values too.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub date: Date,
    pub values: Vec<HealthCheckValue>,
}

/// The emergency summary (救急用サマリー): a fixed set of items in a fixed order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EmergencySummary {
    /// 受診歴, last 3 months.
    pub visits: Vec<Visit>,
    /// 電子処方箋, last 45 days.
    pub e_prescriptions: Vec<Medication>,
    /// 薬剤情報, last 3 months.
    pub medications: Vec<Medication>,
    /// 手術情報, last 5 years.
    pub surgeries: Vec<Surgery>,
    /// 診療情報, last 3 months.
    pub clinical: Vec<ClinicalEntry>,
    /// 透析, last 3 months.
    pub dialysis: Vec<DialysisSession>,
    /// 特定健診の実施日.
    pub health_check_dates: Vec<Date>,
}

/// The full data (全量版): the same categories over 5 years, e-prescriptions 100 days,
/// and health checks with their values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FullData {
    pub visits: Vec<Visit>,
    pub e_prescriptions: Vec<Medication>,
    pub medications: Vec<Medication>,
    pub surgeries: Vec<Surgery>,
    pub clinical: Vec<ClinicalEntry>,
    pub dialysis: Vec<DialysisSession>,
    pub health_checks: Vec<HealthCheck>,
}

/// The emergency-info answer: both views, fetched by one consented inquiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EmergencyInfo {
    pub summary: EmergencySummary,
    pub full: FullData,
}

impl fmt::Debug for EmergencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmergencySummary([redacted])")
    }
}

impl fmt::Debug for FullData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FullData([redacted])")
    }
}

impl fmt::Debug for EmergencyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmergencyInfo([redacted])")
    }
}

/// Something in the summary the crew must see first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    /// A drug of this class was dispensed within the summary window.
    Drug(DrugClass),
    /// Dialysis within the summary window.
    Dialysis,
    /// Surgery within the last 5 years.
    RecentSurgery,
}

impl Alert {
    pub fn label_ja(&self) -> String {
        match self {
            Alert::Drug(class) => class.label_ja().to_string(),
            Alert::Dialysis => "透析".to_string(),
            Alert::RecentSurgery => "手術歴（5年以内）".to_string(),
        }
    }
}

impl EmergencySummary {
    /// The alerts that go to the top of the summary, in a fixed order so the crew's eye
    /// always finds bleeding risk first.
    pub fn alerts(&self) -> Vec<Alert> {
        let order = [
            DrugClass::Anticoagulant,
            DrugClass::Antiplatelet,
            DrugClass::Insulin,
            DrugClass::OralAntidiabetic,
            DrugClass::Antiepileptic,
        ];
        let mut alerts: Vec<Alert> = order
            .into_iter()
            .filter(|class| {
                self.medications
                    .iter()
                    .chain(&self.e_prescriptions)
                    .any(|m| m.class == *class)
            })
            .map(Alert::Drug)
            .collect();
        if !self.dialysis.is_empty() {
            alerts.push(Alert::Dialysis);
        }
        if !self.surgeries.is_empty() {
            alerts.push(Alert::RecentSurgery);
        }
        alerts
    }

    /// The most recent visit, which tells the crew where the patient is known.
    pub fn last_visit(&self) -> Option<&Visit> {
        self.visits.iter().max_by_key(|v| v.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn med(class: DrugClass) -> Medication {
        Medication {
            date: date!(2026 - 11 - 01),
            drug: "薬".into(),
            class,
            dose: "1錠".into(),
            days: 28,
            prescriber: "病院".into(),
        }
    }

    #[test]
    fn alerts_put_bleeding_risk_first_whatever_the_order_of_drugs() {
        let summary = EmergencySummary {
            medications: vec![med(DrugClass::Insulin), med(DrugClass::Anticoagulant)],
            dialysis: vec![DialysisSession {
                date: date!(2026 - 11 - 01),
                hospital: "透析クリニック".into(),
            }],
            ..Default::default()
        };
        assert_eq!(
            summary.alerts(),
            vec![
                Alert::Drug(DrugClass::Anticoagulant),
                Alert::Drug(DrugClass::Insulin),
                Alert::Dialysis
            ]
        );
    }

    #[test]
    fn an_empty_summary_has_no_alerts() {
        assert!(EmergencySummary::default().alerts().is_empty());
    }

    #[test]
    fn emergency_info_debug_is_redacted() {
        let info = EmergencyInfo {
            summary: EmergencySummary {
                medications: vec![med(DrugClass::Anticoagulant)],
                ..Default::default()
            },
            ..Default::default()
        };
        let text = format!("{info:?}");
        assert!(!text.contains('薬'), "{text}");
    }
}
