//! Synthetic patients: deterministic from a seed, Japanese content, scenario patients first.
//!
//! Each patient has a medical history as events dated in days before "today"; the emergency
//! summary and the full data are cut from it at answer time with today's MHLW windows
//! (`domain::SUMMARY_WINDOWS`, `FULL_WINDOWS`, which the answer states too), so the windows
//! themselves are tested rather than baked into the data.

use crate::domain::{
    ClinicalEntry, Coverage, CoverageStatus, DialysisSession, DrugClass, EmergencyInfo,
    EmergencySummary, FULL_WINDOWS, FullData, HealthCheck, HealthCheckValue, Medication,
    PatientRef, PublicAssistance, SUMMARY_WINDOWS, Sensitive, Sex, Surgery, Visit, Window,
};
use serde::Serialize;
use time::{Date, Duration};

mod generate;
mod tables;

pub use generate::population;

/// The default seed: drills and tests see the same population everywhere.
pub const DEFAULT_SEED: u64 = 0x4d59_4e41_4b59_5559;
/// How many patients the simulator holds by default.
pub const DEFAULT_POPULATION: usize = 240;

/// What makes a patient a scenario patient (drills pick them by this name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatientScenario {
    OptOut,
    InvalidCoverage,
    RevokedCard,
    ElderlyWarfarin,
    Child,
    Pregnant,
    DiabeticInsulin,
    Dialysis,
    /// 医療扶助: no health insurance; named by 公費負担者番号 + 受給者番号.
    PublicAssistance,
    /// 医療扶助 that has lapsed: the answer is the most recent valid coverage (直近有効資格),
    /// which is a 医療扶助 one (the case the official document names).
    PublicAssistanceLapsed,
}

impl PatientScenario {
    pub const ALL: [PatientScenario; 10] = [
        PatientScenario::OptOut,
        PatientScenario::InvalidCoverage,
        PatientScenario::RevokedCard,
        PatientScenario::ElderlyWarfarin,
        PatientScenario::Child,
        PatientScenario::Pregnant,
        PatientScenario::DiabeticInsulin,
        PatientScenario::Dialysis,
        PatientScenario::PublicAssistance,
        PatientScenario::PublicAssistanceLapsed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PatientScenario::OptOut => "opt-out",
            PatientScenario::InvalidCoverage => "invalid-coverage",
            PatientScenario::RevokedCard => "revoked-card",
            PatientScenario::ElderlyWarfarin => "elderly-warfarin",
            PatientScenario::Child => "child",
            PatientScenario::Pregnant => "pregnant",
            PatientScenario::DiabeticInsulin => "diabetic-insulin",
            PatientScenario::Dialysis => "dialysis",
            PatientScenario::PublicAssistance => "public-assistance",
            PatientScenario::PublicAssistanceLapsed => "public-assistance-lapsed",
        }
    }
}

/// One entry of a patient's history, dated `days_ago` before the answer date.
#[derive(Clone, Debug)]
pub enum HistoryEntry {
    Visit {
        days_ago: i64,
        hospital: &'static str,
        department: &'static str,
        inpatient: bool,
    },
    Medication {
        days_ago: i64,
        drug: &'static Drug,
        days: u16,
        hospital: &'static str,
        e_prescription: bool,
    },
    Surgery {
        days_ago: i64,
        procedure: &'static str,
        hospital: &'static str,
    },
    Clinical {
        days_ago: i64,
        description: &'static str,
        hospital: &'static str,
    },
    Dialysis {
        days_ago: i64,
        hospital: &'static str,
    },
    HealthCheck {
        days_ago: i64,
        systolic: u16,
        hba1c_tenths: u16,
        ldl: u16,
    },
}

/// A drug as the simulator knows it.
#[derive(Debug)]
pub struct Drug {
    pub name: &'static str,
    pub class: DrugClass,
    pub dose: &'static str,
}

/// A synthetic patient.
#[derive(Clone, Debug)]
pub struct Patient {
    /// "P0001" …; also the virtual card's key.
    pub id: String,
    pub name: String,
    pub kana: String,
    pub birth_date: Date,
    pub sex: Sex,
    pub insurer_name: &'static str,
    pub insurer_number: &'static str,
    /// Empty for a 医療扶助 patient.
    pub insured_number: String,
    /// 医療扶助: (公費負担者番号, 受給者番号).
    pub public_assistance: Option<(String, String)>,
    pub scenario: Option<PatientScenario>,
    pub history: Vec<HistoryEntry>,
}

impl Patient {
    /// The coverage the qualification check answers with.
    pub fn coverage(&self) -> Coverage {
        Coverage {
            patient: PatientRef {
                local_id: Sensitive(self.id.clone()),
                insured_number: Sensitive(self.insured_number.clone()),
                public_assistance: self.public_assistance.as_ref().map(|(payer, recipient)| {
                    Box::new(PublicAssistance {
                        payer_number: Sensitive(payer.clone()),
                        recipient_number: Sensitive(recipient.clone()),
                    })
                }),
            },
            name: Sensitive(self.name.clone()),
            kana: Sensitive(self.kana.clone()),
            birth_date: Sensitive(self.birth_date),
            sex: self.sex,
            insurer_name: Sensitive(self.insurer_name.to_string()),
            insurer_number: Sensitive(self.insurer_number.to_string()),
            status: if matches!(
                self.scenario,
                Some(PatientScenario::InvalidCoverage | PatientScenario::PublicAssistanceLapsed)
            ) {
                CoverageStatus::MostRecentValid
            } else {
                CoverageStatus::Current
            },
        }
    }

    /// The emergency summary and full data as of `today`, with the MHLW windows.
    pub fn emergency_info(&self, today: Date) -> EmergencyInfo {
        let (sw, fw) = (SUMMARY_WINDOWS, FULL_WINDOWS);
        let mut summary = EmergencySummary {
            windows: sw,
            ..EmergencySummary::default()
        };
        let mut full = FullData {
            windows: fw,
            ..FullData::default()
        };
        let day = |days_ago: i64| today - Duration::days(days_ago);
        let within = |w: Option<Window>, days_ago: &i64| w.is_some_and(|w| w.covers(*days_ago));
        /// Into the summary's and the full data's list, where their windows cover it.
        fn cut<T: Clone>(
            entry: T,
            days_ago: i64,
            (summary_window, full_window): (Option<Window>, Option<Window>),
            (summary, full): (&mut Vec<T>, &mut Vec<T>),
        ) {
            if summary_window.is_some_and(|w| w.covers(days_ago)) {
                summary.push(entry.clone());
            }
            if full_window.is_some_and(|w| w.covers(days_ago)) {
                full.push(entry);
            }
        }
        for entry in &self.history {
            match entry {
                HistoryEntry::Visit {
                    days_ago,
                    hospital,
                    department,
                    inpatient,
                } => {
                    let v = Visit {
                        date: day(*days_ago),
                        hospital: hospital.to_string(),
                        department: department.to_string(),
                        inpatient: *inpatient,
                    };
                    cut(
                        v,
                        *days_ago,
                        (sw.visits, fw.visits),
                        (&mut summary.visits, &mut full.visits),
                    );
                }
                HistoryEntry::Medication {
                    days_ago,
                    drug,
                    days,
                    hospital,
                    e_prescription,
                } => {
                    let m = Medication {
                        date: day(*days_ago),
                        drug: drug.name.to_string(),
                        class: drug.class,
                        dose: drug.dose.to_string(),
                        days: *days,
                        prescriber: hospital.to_string(),
                    };
                    if *e_prescription {
                        cut(
                            m,
                            *days_ago,
                            (sw.e_prescriptions, fw.e_prescriptions),
                            (&mut summary.e_prescriptions, &mut full.e_prescriptions),
                        );
                    } else {
                        cut(
                            m,
                            *days_ago,
                            (sw.medications, fw.medications),
                            (&mut summary.medications, &mut full.medications),
                        );
                    }
                }
                HistoryEntry::Surgery {
                    days_ago,
                    procedure,
                    hospital,
                } => {
                    let s = Surgery {
                        date: day(*days_ago),
                        procedure: procedure.to_string(),
                        hospital: hospital.to_string(),
                    };
                    cut(
                        s,
                        *days_ago,
                        (sw.surgeries, fw.surgeries),
                        (&mut summary.surgeries, &mut full.surgeries),
                    );
                }
                HistoryEntry::Clinical {
                    days_ago,
                    description,
                    hospital,
                } => {
                    let c = ClinicalEntry {
                        date: day(*days_ago),
                        description: description.to_string(),
                        hospital: hospital.to_string(),
                    };
                    cut(
                        c,
                        *days_ago,
                        (sw.clinical, fw.clinical),
                        (&mut summary.clinical, &mut full.clinical),
                    );
                }
                HistoryEntry::Dialysis { days_ago, hospital } => {
                    let d = DialysisSession {
                        date: day(*days_ago),
                        hospital: hospital.to_string(),
                    };
                    cut(
                        d,
                        *days_ago,
                        (sw.dialysis, fw.dialysis),
                        (&mut summary.dialysis, &mut full.dialysis),
                    );
                }
                HistoryEntry::HealthCheck {
                    days_ago,
                    systolic,
                    hba1c_tenths,
                    ldl,
                } => {
                    if within(sw.health_checks, days_ago) {
                        summary.health_check_dates.push(day(*days_ago));
                    }
                    if within(fw.health_checks, days_ago) {
                        full.health_checks.push(HealthCheck {
                            date: day(*days_ago),
                            values: vec![
                                value("収縮期血圧", systolic.to_string(), "mmHg"),
                                value(
                                    "HbA1c",
                                    format!("{}.{}", hba1c_tenths / 10, hba1c_tenths % 10),
                                    "%",
                                ),
                                value("LDLコレステロール", ldl.to_string(), "mg/dL"),
                            ],
                        });
                    }
                }
            }
        }
        // newest first everywhere: the crew reads from the top
        summary.visits.sort_by_key(|x| std::cmp::Reverse(x.date));
        summary
            .medications
            .sort_by_key(|x| std::cmp::Reverse(x.date));
        summary
            .e_prescriptions
            .sort_by_key(|x| std::cmp::Reverse(x.date));
        summary.surgeries.sort_by_key(|x| std::cmp::Reverse(x.date));
        summary.clinical.sort_by_key(|x| std::cmp::Reverse(x.date));
        summary.dialysis.sort_by_key(|x| std::cmp::Reverse(x.date));
        summary
            .health_check_dates
            .sort_by_key(|d| std::cmp::Reverse(*d));
        full.visits.sort_by_key(|x| std::cmp::Reverse(x.date));
        full.medications.sort_by_key(|x| std::cmp::Reverse(x.date));
        full.e_prescriptions
            .sort_by_key(|x| std::cmp::Reverse(x.date));
        full.surgeries.sort_by_key(|x| std::cmp::Reverse(x.date));
        full.clinical.sort_by_key(|x| std::cmp::Reverse(x.date));
        full.dialysis.sort_by_key(|x| std::cmp::Reverse(x.date));
        full.health_checks
            .sort_by_key(|x| std::cmp::Reverse(x.date));
        EmergencyInfo { summary, full }
    }
}

fn value(item: &str, value: String, unit: &str) -> HealthCheckValue {
    HealthCheckValue {
        item: item.to_string(),
        value,
        unit: unit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::generate::drug;
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 22);

    #[test]
    fn same_seed_same_population() {
        let a = population(DEFAULT_SEED, DEFAULT_POPULATION, TODAY);
        let b = population(DEFAULT_SEED, DEFAULT_POPULATION, TODAY);
        assert_eq!(a.len(), DEFAULT_POPULATION);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.id, &x.name, &x.insured_number),
                (&y.id, &y.name, &y.insured_number)
            );
        }
        let c = population(DEFAULT_SEED + 1, DEFAULT_POPULATION, TODAY);
        assert!(a.iter().zip(&c).any(|(x, y)| x.name != y.name));
    }

    #[test]
    fn scenario_patients_come_first_and_are_unique() {
        let pop = population(DEFAULT_SEED, 50, TODAY);
        for (i, s) in PatientScenario::ALL.iter().enumerate() {
            assert_eq!(pop[i].scenario, Some(*s));
        }
        assert!(
            pop[PatientScenario::ALL.len()..]
                .iter()
                .all(|p| p.scenario.is_none())
        );
        let mut ids: Vec<_> = pop.iter().map(|p| p.id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 50);
    }

    #[test]
    fn summary_windows_cut_history() {
        let p = Patient {
            history: vec![
                HistoryEntry::Medication {
                    days_ago: 80,
                    drug: drug("ワーファリン錠1mg"),
                    days: 28,
                    hospital: "市民病院",
                    e_prescription: false,
                },
                HistoryEntry::Medication {
                    days_ago: 200,
                    drug: drug("アムロジピン錠5mg"),
                    days: 28,
                    hospital: "市民病院",
                    e_prescription: false,
                },
                HistoryEntry::Medication {
                    days_ago: 60,
                    drug: drug("葉酸錠5mg"),
                    days: 28,
                    hospital: "市民病院",
                    e_prescription: true,
                },
                HistoryEntry::Surgery {
                    days_ago: 2000,
                    procedure: "人工股関節置換術",
                    hospital: "市民病院",
                },
            ],
            ..population(DEFAULT_SEED, 9, TODAY)[8].clone()
        };
        let info = p.emergency_info(TODAY);
        // medications 3 months: the 80-day one only
        assert_eq!(info.summary.medications.len(), 1);
        assert_eq!(info.summary.medications[0].drug, "ワーファリン錠1mg");
        // e-prescriptions 45 days in the summary, 100 days in the full data
        assert!(info.summary.e_prescriptions.is_empty());
        assert_eq!(info.full.e_prescriptions.len(), 1);
        // full data 5 years
        assert_eq!(info.full.medications.len(), 2);
        assert!(info.summary.surgeries.is_empty());
        assert!(info.full.surgeries.is_empty());
    }

    #[test]
    fn warfarin_patient_raises_the_anticoagulant_alert() {
        let pop = population(DEFAULT_SEED, 9, TODAY);
        let p = pop
            .iter()
            .find(|p| p.scenario == Some(PatientScenario::ElderlyWarfarin))
            .unwrap();
        let alerts = p.emergency_info(TODAY).summary.alerts();
        assert_eq!(
            alerts.first(),
            Some(&crate::domain::Alert::Drug(DrugClass::Anticoagulant))
        );
        assert!(crate::domain::age_on(p.birth_date, TODAY) >= 85);
    }

    #[test]
    fn invalid_coverage_patient_is_answered_with_most_recent_valid() {
        let pop = population(DEFAULT_SEED, 9, TODAY);
        assert_eq!(pop[1].coverage().status, CoverageStatus::MostRecentValid);
        assert_eq!(pop[0].coverage().status, CoverageStatus::Current);
    }
}
