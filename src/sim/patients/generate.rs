//! A deterministic population from a seed: the scenario patients first (the drills' cases),
//! then ordinary ones, each with a history drawn from the tables.

use super::tables::*;
use super::*;

/// A small deterministic generator (SplitMix64): same seed, same population, no dependency.
pub(super) struct Rng(u64);

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

pub(super) fn drug(name: &str) -> &'static Drug {
    DRUGS
        .iter()
        .find(|d| d.name == name)
        .unwrap_or(&DRUGS[DRUGS.len() - 2])
}

/// The synthetic population: the scenario patients first (P0001–P0010, in the order of
/// `PatientScenario::ALL`), then ordinary ones.
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

pub(super) fn person(rng: &mut Rng, n: usize, sex: Sex, age: i32, today: Date) -> Patient {
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

pub(super) fn scenario_patient(
    rng: &mut Rng,
    n: usize,
    scenario: PatientScenario,
    today: Date,
) -> Patient {
    use HistoryEntry as H;
    let (sex, age) = match scenario {
        PatientScenario::ElderlyWarfarin => (Sex::Female, 86),
        PatientScenario::Child => (Sex::Male, 6),
        PatientScenario::Pregnant => (Sex::Female, 31),
        PatientScenario::DiabeticInsulin => (Sex::Male, 58),
        PatientScenario::Dialysis => (Sex::Male, 71),
        PatientScenario::PublicAssistance => (Sex::Male, 67),
        PatientScenario::PublicAssistanceLapsed => (Sex::Female, 74),
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
        PatientScenario::PublicAssistanceLapsed => {
            // seen while 医療扶助 was in force; nothing since it lapsed
            h.push(H::Visit {
                days_ago: 70,
                hospital: "みなと中央病院",
                department: "循環器内科",
                inpatient: true,
            });
            h.push(H::Medication {
                days_ago: 70,
                drug: drug("エリキュース錠5mg"),
                days: 30,
                hospital: "みなと中央病院",
                e_prescription: false,
            });
        }
        PatientScenario::OptOut | PatientScenario::RevokedCard => {
            ordinary_history(rng, &mut p.history);
        }
    }
    if matches!(
        scenario,
        PatientScenario::PublicAssistance | PatientScenario::PublicAssistanceLapsed
    ) {
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

pub(super) fn ordinary_patient(rng: &mut Rng, n: usize, today: Date) -> Patient {
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

pub(super) fn ordinary_history(rng: &mut Rng, h: &mut Vec<HistoryEntry>) {
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
