//! Synthetic patients: deterministic from a seed, Japanese content, scenario patients first.
//!
//! Each patient has a medical history as events dated in days before "today"; the emergency
//! summary and the full data are cut from it with the MHLW windows at answer time, so the
//! windows themselves are tested rather than baked into the data.

use crate::domain::{
    ClinicalEntry, Coverage, CoverageStatus, DialysisSession, DrugClass, EmergencyInfo,
    EmergencySummary, FullData, HealthCheck, HealthCheckValue, Medication, PatientRef,
    PublicAssistance, Sensitive, Sex, Surgery, Visit,
};
use serde::Serialize;
use time::{Date, Duration};

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
}

impl PatientScenario {
    pub const ALL: [PatientScenario; 9] = [
        PatientScenario::OptOut,
        PatientScenario::InvalidCoverage,
        PatientScenario::RevokedCard,
        PatientScenario::ElderlyWarfarin,
        PatientScenario::Child,
        PatientScenario::Pregnant,
        PatientScenario::DiabeticInsulin,
        PatientScenario::Dialysis,
        PatientScenario::PublicAssistance,
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
            status: if self.scenario == Some(PatientScenario::InvalidCoverage) {
                CoverageStatus::MostRecentValid
            } else {
                CoverageStatus::Current
            },
        }
    }

    /// The emergency summary and full data as of `today`, with the MHLW windows.
    pub fn emergency_info(&self, today: Date) -> EmergencyInfo {
        let mut summary = EmergencySummary::default();
        let mut full = FullData::default();
        let day = |days_ago: i64| today - Duration::days(days_ago);
        const MONTHS_3: i64 = 92;
        const DAYS_45: i64 = 45;
        const DAYS_100: i64 = 100;
        const YEARS_5: i64 = 5 * 365 + 1;
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
                    if *days_ago <= MONTHS_3 {
                        summary.visits.push(v.clone());
                    }
                    if *days_ago <= YEARS_5 {
                        full.visits.push(v);
                    }
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
                        if *days_ago <= DAYS_45 {
                            summary.e_prescriptions.push(m.clone());
                        }
                        if *days_ago <= DAYS_100 {
                            full.e_prescriptions.push(m);
                        }
                    } else {
                        if *days_ago <= MONTHS_3 {
                            summary.medications.push(m.clone());
                        }
                        if *days_ago <= YEARS_5 {
                            full.medications.push(m);
                        }
                    }
                }
                HistoryEntry::Surgery {
                    days_ago,
                    procedure,
                    hospital,
                } => {
                    if *days_ago <= YEARS_5 {
                        let s = Surgery {
                            date: day(*days_ago),
                            procedure: procedure.to_string(),
                            hospital: hospital.to_string(),
                        };
                        summary.surgeries.push(s.clone());
                        full.surgeries.push(s);
                    }
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
                    if *days_ago <= MONTHS_3 {
                        summary.clinical.push(c.clone());
                    }
                    if *days_ago <= YEARS_5 {
                        full.clinical.push(c);
                    }
                }
                HistoryEntry::Dialysis { days_ago, hospital } => {
                    let d = DialysisSession {
                        date: day(*days_ago),
                        hospital: hospital.to_string(),
                    };
                    if *days_ago <= MONTHS_3 {
                        summary.dialysis.push(d.clone());
                    }
                    if *days_ago <= YEARS_5 {
                        full.dialysis.push(d);
                    }
                }
                HistoryEntry::HealthCheck {
                    days_ago,
                    systolic,
                    hba1c_tenths,
                    ldl,
                } => {
                    if *days_ago <= YEARS_5 {
                        summary.health_check_dates.push(day(*days_ago));
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

const SURNAMES: [(&str, &str); 24] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
];

const MALE_NAMES: [(&str, &str); 12] = [
    ("太郎", "タロウ"),
    ("健一", "ケンイチ"),
    ("誠", "マコト"),
    ("大輔", "ダイスケ"),
    ("翔太", "ショウタ"),
    ("浩二", "コウジ"),
    ("博", "ヒロシ"),
    ("茂", "シゲル"),
    ("蓮", "レン"),
    ("悠真", "ユウマ"),
    ("勇", "イサム"),
    ("和夫", "カズオ"),
];

const FEMALE_NAMES: [(&str, &str); 12] = [
    ("花子", "ハナコ"),
    ("陽子", "ヨウコ"),
    ("恵子", "ケイコ"),
    ("美咲", "ミサキ"),
    ("由美", "ユミ"),
    ("幸子", "サチコ"),
    ("結衣", "ユイ"),
    ("さくら", "サクラ"),
    ("和子", "カズコ"),
    ("直美", "ナオミ"),
    ("葵", "アオイ"),
    ("トメ", "トメ"),
];

const INSURERS: [(&str, &str); 6] = [
    ("全国健康保険協会 東京支部", "01130012"),
    ("○○区国民健康保険", "138115"),
    ("東京都後期高齢者医療広域連合", "39131014"),
    ("関東電機健康保険組合", "06139876"),
    ("○○市国民健康保険", "138214"),
    ("神奈川県後期高齢者医療広域連合", "39141013"),
];

const HOSPITALS: [&str; 8] = [
    "都立中央総合病院",
    "さくら内科クリニック",
    "みなと循環器病院",
    "東都大学医学部附属病院",
    "あおば整形外科",
    "市民病院",
    "ひまわり小児科",
    "かもめ産婦人科医院",
];

const DEPARTMENTS: [&str; 7] = [
    "内科",
    "循環器内科",
    "整形外科",
    "脳神経外科",
    "消化器内科",
    "糖尿病内科",
    "腎臓内科",
];

/// Drugs the simulator dispenses, with the classes the crew acts on.
pub static DRUGS: [Drug; 16] = [
    Drug {
        name: "ワーファリン錠1mg",
        class: DrugClass::Anticoagulant,
        dose: "1日1回 3錠",
    },
    Drug {
        name: "エリキュース錠5mg",
        class: DrugClass::Anticoagulant,
        dose: "1日2回 1錠",
    },
    Drug {
        name: "リクシアナ錠30mg",
        class: DrugClass::Anticoagulant,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "バイアスピリン錠100mg",
        class: DrugClass::Antiplatelet,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "クロピドグレル錠75mg",
        class: DrugClass::Antiplatelet,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ノボラピッド注フレックスペン",
        class: DrugClass::Insulin,
        dose: "毎食直前 6単位",
    },
    Drug {
        name: "トレシーバ注フレックスタッチ",
        class: DrugClass::Insulin,
        dose: "1日1回 12単位",
    },
    Drug {
        name: "メトホルミン塩酸塩錠250mg",
        class: DrugClass::OralAntidiabetic,
        dose: "1日2回 2錠",
    },
    Drug {
        name: "ジャヌビア錠50mg",
        class: DrugClass::OralAntidiabetic,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "デパケンR錠200mg",
        class: DrugClass::Antiepileptic,
        dose: "1日2回 2錠",
    },
    Drug {
        name: "イーケプラ錠500mg",
        class: DrugClass::Antiepileptic,
        dose: "1日2回 1錠",
    },
    Drug {
        name: "アムロジピン錠5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ロスバスタチン錠2.5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ランソプラゾールOD錠15mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "カロナール錠200mg",
        class: DrugClass::Other,
        dose: "頓用 2錠",
    },
    Drug {
        name: "葉酸錠5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
];

const SURGERIES: [&str; 5] = [
    "経皮的冠動脈ステント留置術",
    "人工股関節置換術",
    "腹腔鏡下胆嚢摘出術",
    "白内障手術（水晶体再建術）",
    "内シャント造設術",
];

const CLINICAL: [&str; 5] = [
    "心電図検査",
    "頭部CT撮影",
    "血液検査（HbA1c）",
    "胸部エックス線撮影",
    "点滴注射",
];

/// A small deterministic generator (SplitMix64): same seed, same population, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn drug(name: &str) -> &'static Drug {
    DRUGS
        .iter()
        .find(|d| d.name == name)
        .unwrap_or(&DRUGS[DRUGS.len() - 2])
}

/// The synthetic population: the scenario patients P0001–P0008, then ordinary ones.
pub fn population(seed: u64, count: usize, today: Date) -> Vec<Patient> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(count.max(PatientScenario::ALL.len()));
    for (i, scenario) in PatientScenario::ALL.into_iter().enumerate() {
        out.push(scenario_patient(&mut rng, i + 1, scenario, today));
    }
    while out.len() < count {
        let n = out.len() + 1;
        out.push(ordinary_patient(&mut rng, n, today));
    }
    out
}

fn person(rng: &mut Rng, n: usize, sex: Sex, age: i32, today: Date) -> Patient {
    let (surname, surname_kana) = *rng.pick(&SURNAMES);
    let (given, given_kana) = match sex {
        Sex::Female => *rng.pick(&FEMALE_NAMES),
        _ => *rng.pick(&MALE_NAMES),
    };
    let days_into_year = rng.below(365) as i64;
    let birth_date = Date::from_calendar_date(today.year() - age, time::Month::January, 1)
        .unwrap_or(today)
        - Duration::days(days_into_year);
    let insurer = if age >= 75 {
        INSURERS[2 + 3 * (rng.below(2) as usize)]
    } else {
        *rng.pick(&[INSURERS[0], INSURERS[1], INSURERS[3], INSURERS[4]])
    };
    Patient {
        id: format!("P{n:04}"),
        name: format!("{surname} {given}"),
        kana: format!("{surname_kana} {given_kana}"),
        birth_date,
        sex,
        insurer_name: insurer.0,
        insurer_number: insurer.1,
        insured_number: format!(
            "{:08}-{:02}",
            10_000_000 + rng.below(89_999_999),
            1 + rng.below(4)
        ),
        public_assistance: None,
        scenario: None,
        history: Vec::new(),
    }
}

fn scenario_patient(rng: &mut Rng, n: usize, scenario: PatientScenario, today: Date) -> Patient {
    use HistoryEntry as H;
    let (sex, age) = match scenario {
        PatientScenario::ElderlyWarfarin => (Sex::Female, 86),
        PatientScenario::Child => (Sex::Male, 6),
        PatientScenario::Pregnant => (Sex::Female, 31),
        PatientScenario::DiabeticInsulin => (Sex::Male, 58),
        PatientScenario::Dialysis => (Sex::Male, 71),
        PatientScenario::PublicAssistance => (Sex::Male, 67),
        _ => (
            if n.is_multiple_of(2) {
                Sex::Female
            } else {
                Sex::Male
            },
            45 + n as i32,
        ),
    };
    let mut p = person(rng, n, sex, age, today);
    p.scenario = Some(scenario);
    let h = &mut p.history;
    match scenario {
        PatientScenario::ElderlyWarfarin => {
            h.push(H::Visit {
                days_ago: 12,
                hospital: "みなと循環器病院",
                department: "循環器内科",
                inpatient: false,
            });
            h.push(H::Medication {
                days_ago: 12,
                drug: drug("ワーファリン錠1mg"),
                days: 28,
                hospital: "みなと循環器病院",
                e_prescription: false,
            });
            h.push(H::Medication {
                days_ago: 12,
                drug: drug("アムロジピン錠5mg"),
                days: 28,
                hospital: "みなと循環器病院",
                e_prescription: false,
            });
            h.push(H::Medication {
                days_ago: 30,
                drug: drug("ランソプラゾールOD錠15mg"),
                days: 28,
                hospital: "さくら内科クリニック",
                e_prescription: true,
            });
            h.push(H::Surgery {
                days_ago: 900,
                procedure: "人工股関節置換術",
                hospital: "あおば整形外科",
            });
            h.push(H::Clinical {
                days_ago: 12,
                description: "心電図検査",
                hospital: "みなと循環器病院",
            });
        }
        PatientScenario::DiabeticInsulin => {
            h.push(H::Visit {
                days_ago: 20,
                hospital: "東都大学医学部附属病院",
                department: "糖尿病内科",
                inpatient: false,
            });
            for (d, name) in [
                (20, "ノボラピッド注フレックスペン"),
                (20, "トレシーバ注フレックスタッチ"),
                (20, "メトホルミン塩酸塩錠250mg"),
            ] {
                h.push(H::Medication {
                    days_ago: d,
                    drug: drug(name),
                    days: 30,
                    hospital: "東都大学医学部附属病院",
                    e_prescription: true,
                });
            }
            h.push(H::HealthCheck {
                days_ago: 200,
                systolic: 148,
                hba1c_tenths: 84,
                ldl: 152,
            });
        }
        PatientScenario::Dialysis => {
            for d in [2, 4, 7, 9, 11, 14] {
                h.push(H::Dialysis {
                    days_ago: d,
                    hospital: "市民病院",
                });
            }
            h.push(H::Surgery {
                days_ago: 700,
                procedure: "内シャント造設術",
                hospital: "市民病院",
            });
            h.push(H::Medication {
                days_ago: 14,
                drug: drug("バイアスピリン錠100mg"),
                days: 28,
                hospital: "市民病院",
                e_prescription: false,
            });
            h.push(H::Visit {
                days_ago: 2,
                hospital: "市民病院",
                department: "腎臓内科",
                inpatient: false,
            });
        }
        PatientScenario::Child => {
            h.push(H::Visit {
                days_ago: 40,
                hospital: "ひまわり小児科",
                department: "小児科",
                inpatient: false,
            });
            h.push(H::Medication {
                days_ago: 40,
                drug: drug("デパケンR錠200mg"),
                days: 30,
                hospital: "ひまわり小児科",
                e_prescription: false,
            });
        }
        PatientScenario::Pregnant => {
            h.push(H::Visit {
                days_ago: 9,
                hospital: "かもめ産婦人科医院",
                department: "産婦人科",
                inpatient: false,
            });
            h.push(H::Medication {
                days_ago: 9,
                drug: drug("葉酸錠5mg"),
                days: 30,
                hospital: "かもめ産婦人科医院",
                e_prescription: true,
            });
        }
        PatientScenario::InvalidCoverage => {
            h.push(H::Visit {
                days_ago: 50,
                hospital: "市民病院",
                department: "内科",
                inpatient: false,
            });
            h.push(H::Medication {
                days_ago: 50,
                drug: drug("クロピドグレル錠75mg"),
                days: 30,
                hospital: "市民病院",
                e_prescription: false,
            });
        }
        PatientScenario::PublicAssistance => {
            h.push(H::Visit {
                days_ago: 25,
                hospital: "市民病院",
                department: "呼吸器内科",
                inpatient: false,
            });
            h.push(H::Medication {
                days_ago: 25,
                drug: drug("アムロジピン錠5mg"),
                days: 28,
                hospital: "市民病院",
                e_prescription: false,
            });
        }
        PatientScenario::OptOut | PatientScenario::RevokedCard => {
            ordinary_history(rng, &mut p.history);
        }
    }
    if scenario == PatientScenario::PublicAssistance {
        // 医療扶助: the welfare office pays (法別番号 12); no insurer, no insured number
        p.insurer_name = "福祉事務所（医療扶助）";
        p.insurer_number = "";
        p.insured_number = String::new();
        p.public_assistance = Some((
            format!("12{:06}", 130_000 + rng.below(9_999)),
            format!("{:07}", 1_000_000 + rng.below(8_999_999)),
        ));
    }
    p
}

fn ordinary_patient(rng: &mut Rng, n: usize, today: Date) -> Patient {
    let sex = if rng.chance(50) {
        Sex::Male
    } else {
        Sex::Female
    };
    let age = 1 + rng.below(98) as i32;
    let mut p = person(rng, n, sex, age, today);
    ordinary_history(rng, &mut p.history);
    p
}

fn ordinary_history(rng: &mut Rng, h: &mut Vec<HistoryEntry>) {
    let hospital = *rng.pick(&HOSPITALS[..6]);
    for _ in 0..rng.below(5) {
        h.push(HistoryEntry::Visit {
            days_ago: 1 + rng.below(1500) as i64,
            hospital,
            department: rng.pick::<&str>(&DEPARTMENTS),
            inpatient: rng.chance(10),
        });
    }
    for _ in 0..rng.below(5) {
        h.push(HistoryEntry::Medication {
            days_ago: 1 + rng.below(400) as i64,
            drug: rng.pick(&DRUGS),
            days: [7, 14, 28, 30, 56][rng.below(5) as usize],
            hospital,
            e_prescription: rng.chance(30),
        });
    }
    if rng.chance(15) {
        h.push(HistoryEntry::Surgery {
            days_ago: 30 + rng.below(2500) as i64,
            procedure: rng.pick::<&str>(&SURGERIES),
            hospital,
        });
    }
    for _ in 0..rng.below(3) {
        h.push(HistoryEntry::Clinical {
            days_ago: 1 + rng.below(300) as i64,
            description: rng.pick::<&str>(&CLINICAL),
            hospital,
        });
    }
    if rng.chance(3) {
        for d in [3, 5, 8] {
            h.push(HistoryEntry::Dialysis {
                days_ago: d,
                hospital: "市民病院",
            });
        }
    }
    if rng.chance(40) {
        h.push(HistoryEntry::HealthCheck {
            days_ago: 30 + rng.below(1000) as i64,
            systolic: 105 + rng.below(60) as u16,
            hba1c_tenths: 50 + rng.below(35) as u16,
            ldl: 80 + rng.below(110) as u16,
        });
    }
}

#[cfg(test)]
mod tests {
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
