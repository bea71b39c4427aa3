//! The patient's coverage (資格情報) and emergency medical information (救急用サマリー, 全量版).
//!
//! Item lists follow the MHLW emergency-summary definition. How far back each section
//! reaches is not ours to say: the official documents leave the summary's content to MHLW
//! and hospitals choose their own periods, so every answer states each section's window
//! ([`SectionWindows`]) and the screen shows what the answer says; a section whose window
//! is missing reads 「期間不明」, never a guess. [`SUMMARY_WINDOWS`] and [`FULL_WINDOWS`]
//! are today's values (visits 3 months, e-prescriptions 45 days, medications 3 months,
//! surgery 5 years, clinical 3 months, dialysis 3 months; the full data 5 years,
//! e-prescriptions 100 days), which the simulator cuts its answers with and sends.

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

/// The unit of a look-back window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowUnit {
    Days,
    Months,
    Years,
}

/// How far back a section reaches, as the answer states it: `{"length": 3, "unit":
/// "months"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub length: u16,
    pub unit: WindowUnit,
}

impl Window {
    pub const fn days(length: u16) -> Window {
        Window {
            length,
            unit: WindowUnit::Days,
        }
    }
    pub const fn months(length: u16) -> Window {
        Window {
            length,
            unit: WindowUnit::Months,
        }
    }
    pub const fn years(length: u16) -> Window {
        Window {
            length,
            unit: WindowUnit::Years,
        }
    }

    /// 「3か月」「45日」「5年」.
    pub fn label_ja(self) -> String {
        let unit = match self.unit {
            WindowUnit::Days => "日",
            WindowUnit::Months => "か月",
            WindowUnit::Years => "年",
        };
        format!("{}{unit}", self.length)
    }

    /// Whether an entry `days_ago` days old falls inside the window (a month counts as
    /// 92/3 days, so 3 months are 92; a year as 365¼).
    pub fn covers(self, days_ago: i64) -> bool {
        let n = i64::from(self.length);
        let days = match self.unit {
            WindowUnit::Days => n,
            WindowUnit::Months => n * 92 / 3,
            WindowUnit::Years => n * 365 + n / 4,
        };
        days_ago <= days
    }
}

/// What a section's window says on screen: the answer's window, or 「期間不明」.
pub fn window_label_ja(window: Option<Window>) -> String {
    window.map_or_else(|| "期間不明".to_string(), Window::label_ja)
}

/// Each section's window, as the answer states it; `None` where it did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SectionWindows {
    #[serde(default)]
    pub visits: Option<Window>,
    #[serde(default)]
    pub e_prescriptions: Option<Window>,
    #[serde(default)]
    pub medications: Option<Window>,
    #[serde(default)]
    pub surgeries: Option<Window>,
    #[serde(default)]
    pub clinical: Option<Window>,
    #[serde(default)]
    pub dialysis: Option<Window>,
    #[serde(default)]
    pub health_checks: Option<Window>,
}

/// Today's summary windows (the summary's health checks carry only their dates).
pub const SUMMARY_WINDOWS: SectionWindows = SectionWindows {
    visits: Some(Window::months(3)),
    e_prescriptions: Some(Window::days(45)),
    medications: Some(Window::months(3)),
    surgeries: Some(Window::years(5)),
    clinical: Some(Window::months(3)),
    dialysis: Some(Window::months(3)),
    health_checks: Some(Window::years(5)),
};

/// Today's full-data windows.
pub const FULL_WINDOWS: SectionWindows = SectionWindows {
    visits: Some(Window::years(5)),
    e_prescriptions: Some(Window::days(100)),
    medications: Some(Window::years(5)),
    surgeries: Some(Window::years(5)),
    clinical: Some(Window::years(5)),
    dialysis: Some(Window::years(5)),
    health_checks: Some(Window::years(5)),
};

/// The emergency summary (救急用サマリー): a fixed set of items in a fixed order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EmergencySummary {
    /// How far back each section reaches, as the answer states it.
    #[serde(default)]
    pub windows: SectionWindows,
    /// 受診歴.
    pub visits: Vec<Visit>,
    /// 電子処方箋.
    pub e_prescriptions: Vec<Medication>,
    /// 薬剤情報.
    pub medications: Vec<Medication>,
    /// 手術情報.
    pub surgeries: Vec<Surgery>,
    /// 診療情報.
    pub clinical: Vec<ClinicalEntry>,
    /// 透析.
    pub dialysis: Vec<DialysisSession>,
    /// 特定健診の実施日.
    pub health_check_dates: Vec<Date>,
}

/// The full data (全量版): the same categories over longer windows, and health checks with
/// their values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FullData {
    /// How far back each section reaches, as the answer states it.
    #[serde(default)]
    pub windows: SectionWindows,
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
    /// Surgery within the summary's surgery window (as the answer states it).
    RecentSurgery(Option<Window>),
}

impl Alert {
    pub fn label_ja(&self) -> String {
        match self {
            Alert::Drug(class) => class.label_ja().to_string(),
            Alert::Dialysis => "透析".to_string(),
            Alert::RecentSurgery(Some(w)) => format!("手術歴（{}以内）", w.label_ja()),
            Alert::RecentSurgery(None) => "手術歴（期間不明）".to_string(),
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
            alerts.push(Alert::RecentSurgery(self.windows.surgeries));
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

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn windows_read_as_the_answer_states_them_and_cut_at_their_length() {
        assert_eq!(Window::months(3).label_ja(), "3か月");
        assert_eq!(Window::days(45).label_ja(), "45日");
        assert_eq!(Window::years(5).label_ja(), "5年");
        assert_eq!(window_label_ja(None), "期間不明");
        assert!(Window::months(3).covers(92) && !Window::months(3).covers(93));
        assert!(Window::days(45).covers(45) && !Window::days(45).covers(46));
        assert!(Window::years(5).covers(1826) && !Window::years(5).covers(1827));
        // an answer without windows (an older server) reads as unknown, never as 3 months
        let s: EmergencySummary = serde_json::from_str(
            r#"{"visits":[],"e_prescriptions":[],"medications":[],"surgeries":[],
                "clinical":[],"dialysis":[],"health_check_dates":[]}"#,
        )
        .unwrap();
        assert_eq!(s.windows, SectionWindows::default());
        let w: SectionWindows =
            serde_json::from_str(r#"{"visits":{"length":6,"unit":"months"}}"#).unwrap();
        assert_eq!(w.visits, Some(Window::months(6)));
        assert_eq!(w.surgeries, None);
    }
}
