//! The pre-arrival packet as FHIR R4 on JP Core: a `Bundle` of type `document` following the
//! JP-CLINS bundle rules (the `Composition` first, every `fullUrl` a `urn:uuid:`, every
//! reference to an entry of the bundle, `meta.profile` with its version, a `timestamp`,
//! every time in +09:00). Built from small serde types of our own that hold only the
//! elements we fill; the tests check every packet against an independent R4 model (the
//! `fhir` crate) and against the profile rules that model does not know.
//!
//! What goes in: JP_Patient (name and kana, birth date, sex; never the My Number; the
//! insured number only when the tablet's department allows it), Consent (口頭同意 /
//! 同意取得困難 with its reason), Flag (each alert), JP_MedicationStatement, JP_Condition
//! (the chief complaint; claims diagnoses `unconfirmed`), JP_Procedure,
//! JP_Observation_VitalSigns (LOINC; JCS as a local code beside GCS), JP_Encounter (the
//! planned arrival), JP_Organization (the hospital, the fire department's unit, the
//! national system), JP_Practitioner (the crew) and two Provenance (what came from the
//! national system and as of when; what the crew entered).

use super::{AlertSource, Case, Change, Packet, Vitals};
use crate::domain::{ConsentDecision, Sex};
use serde::{Deserialize, Serialize};

/// JP Core's release the profiles are pinned to.
pub const JP_CORE_VERSION: &str = "1.1.2";
const JP_CORE: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/";
const FHIR_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";
const FHIR_VERSION: &str = "4.0.1";
/// The code systems of our own (no national code exists for these).
pub const CS_JCS: &str = "urn:mynakyukyu:fhir:jcs";
pub const CS_CONSENT: &str = "urn:mynakyukyu:fhir:consent-decision";
pub const CS_HOSPITAL: &str = "urn:mynakyukyu:fhir:hub-hospital";
pub const CS_UNIT: &str = "urn:mynakyukyu:fhir:fire-unit";
/// Where JP-CLINS puts the insured person's member id (verify against the JP-CLINS
/// release a hospital uses before relying on it; off by default anyway).
pub const CS_INSURED: &str = "http://jpfhir.jp/fhir/ccs/Idsysmem/JP_Insurance_memberID";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub profile: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub reference: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub url: String,
    #[serde(rename = "valueCode")]
    pub value_code: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HumanName {
    pub extension: Vec<Extension>,
    #[serde(rename = "use")]
    pub use_: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
    pub system: String,
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub start: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub code: Concept,
    pub entry: Vec<Reference>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub code: Concept,
    pub value_quantity: Quantity,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    #[serde(rename = "type")]
    pub kind: Concept,
    pub who: Reference,
}

/// The resources of a packet, tagged by `resourceType`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resourceType")]
pub enum Resource {
    #[serde(rename_all = "camelCase")]
    Composition {
        meta: Meta,
        status: String,
        #[serde(rename = "type")]
        kind: Concept,
        subject: Reference,
        encounter: Reference,
        date: String,
        author: Vec<Reference>,
        title: String,
        section: Vec<Section>,
    },
    #[serde(rename_all = "camelCase")]
    Patient {
        meta: Meta,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identifier: Vec<Identifier>,
        name: Vec<HumanName>,
        gender: String,
        /// Absent for a patient not identified (氏名不詳, no card).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        birth_date: String,
    },
    #[serde(rename_all = "camelCase")]
    Consent {
        meta: Meta,
        status: String,
        scope: Concept,
        category: Vec<Concept>,
        patient: Reference,
        date_time: String,
        organization: Vec<Reference>,
        policy_rule: Concept,
    },
    #[serde(rename_all = "camelCase")]
    Flag {
        meta: Meta,
        status: String,
        category: Vec<Concept>,
        code: Concept,
        subject: Reference,
        author: Reference,
    },
    #[serde(rename_all = "camelCase")]
    MedicationStatement {
        meta: Meta,
        status: String,
        medication_codeable_concept: Concept,
        subject: Reference,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effective_date_time: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date_asserted: Option<String>,
        information_source: Reference,
        note: Vec<Annotation>,
    },
    #[serde(rename_all = "camelCase")]
    Condition {
        meta: Meta,
        clinical_status: Concept,
        verification_status: Concept,
        category: Vec<Concept>,
        code: Concept,
        subject: Reference,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        onset_date_time: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        note: Vec<Annotation>,
    },
    #[serde(rename_all = "camelCase")]
    Procedure {
        meta: Meta,
        status: String,
        code: Concept,
        subject: Reference,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        performed_date_time: Option<String>,
        note: Vec<Annotation>,
    },
    #[serde(rename_all = "camelCase")]
    Observation {
        meta: Meta,
        status: String,
        category: Vec<Concept>,
        code: Concept,
        subject: Reference,
        effective_date_time: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_quantity: Option<Quantity>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_integer: Option<i64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        component: Vec<Component>,
    },
    #[serde(rename_all = "camelCase")]
    Encounter {
        meta: Meta,
        status: String,
        class: Coding,
        subject: Reference,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
        service_provider: Reference,
    },
    #[serde(rename_all = "camelCase")]
    Organization {
        meta: Meta,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identifier: Vec<Identifier>,
        name: String,
    },
    #[serde(rename_all = "camelCase")]
    Practitioner { meta: Meta, name: Vec<HumanName> },
    #[serde(rename_all = "camelCase")]
    Provenance {
        meta: Meta,
        target: Vec<Reference>,
        recorded: String,
        agent: Vec<Agent>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub full_url: String,
    pub resource: Resource,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: String,
    pub meta: Meta,
    pub identifier: Identifier,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub entry: Vec<Entry>,
}

/// What the bundle is made from: the case, its packet, who sent it to whom, when.
pub struct PacketContext<'a> {
    pub case_id: &'a str,
    pub case: &'a Case,
    pub packet: &'a Packet,
    pub unit: &'a str,
    pub hospital_code: &'a str,
    pub hospital_name: &'a str,
    /// When this version was made (ms since the epoch).
    pub made_at_ms: i64,
    pub eta_at_ms: Option<i64>,
}

/// A `YYYY-MM-DDThh:mm:ss+09:00` time.
pub fn jst(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+09:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A stable UUID (RFC 9562 version 8) for one resource of one case: the same resource
/// keeps its `fullUrl` across versions, so a hospital's system can match them.
pub fn uuid_for(case_id: &str, name: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{case_id}/{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn jp(profile: &str) -> Meta {
    Meta {
        profile: vec![format!("{JP_CORE}{profile}|{JP_CORE_VERSION}")],
    }
}

fn base(resource: &str) -> Meta {
    Meta {
        profile: vec![format!("{FHIR_BASE}{resource}|{FHIR_VERSION}")],
    }
}

fn coding(system: &str, code: &str, display: &str) -> Concept {
    Concept {
        coding: vec![Coding {
            system: system.into(),
            code: code.into(),
            display: Some(display.into()),
        }],
        text: None,
    }
}

fn text(t: &str) -> Concept {
    Concept {
        coding: vec![],
        text: Some(t.into()),
    }
}

/// A claims date (YYYY-MM-DD or YYYY-MM) as a FHIR partial date, or None if it is not one.
fn fhir_date(d: &str) -> Option<String> {
    let ok = match d.len() {
        7 => time::Date::parse(
            &format!("{d}-01"),
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .is_ok(),
        10 => {
            time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
        }
        _ => false,
    };
    ok.then(|| d.to_string())
}

const CLAIMS_NOTE: &str = "オンライン資格確認等システムの救急用サマリー（レセプト情報由来）";

struct Builder {
    case_id: String,
    entries: Vec<Entry>,
}

impl Builder {
    fn add(&mut self, name: &str, resource: Resource) -> Reference {
        let url = format!("urn:uuid:{}", uuid_for(&self.case_id, name));
        self.entries.push(Entry {
            full_url: url.clone(),
            resource,
        });
        Reference { reference: url }
    }
}

fn quantity(value: f64, unit: &str, code: &str) -> Quantity {
    Quantity {
        value,
        unit: unit.into(),
        system: "http://unitsofmeasure.org".into(),
        code: code.into(),
    }
}

/// The vitals in force: the newest `Vitals` change, else the request's.
fn latest_vitals(case: &Case) -> &Vitals {
    case.changes
        .iter()
        .rev()
        .find_map(|(_, c)| match c {
            Change::Vitals { vitals } => Some(vitals),
            _ => None,
        })
        .unwrap_or(&case.disclosure.vitals)
}

/// The packet of `ctx` as a FHIR R4 document bundle.
pub fn bundle(ctx: &PacketContext) -> Bundle {
    let p = ctx.packet;
    let c = ctx.case;
    let now = jst(ctx.made_at_ms);
    let mut b = Builder {
        case_id: ctx.case_id.to_string(),
        entries: vec![],
    };
    // the Composition is entry 0; it is filled in last, when every reference is known
    b.entries.push(Entry {
        full_url: format!("urn:uuid:{}", uuid_for(ctx.case_id, "composition")),
        resource: Resource::Organization {
            meta: base("Organization"),
            identifier: vec![],
            name: String::new(),
        },
    });
    let mut identifier = vec![];
    if let Some(n) = &p.patient.insured_number {
        identifier.push(Identifier {
            system: CS_INSURED.into(),
            value: n.clone(),
        });
    }
    let name = |t: &str, representation: &str| HumanName {
        extension: vec![Extension {
            url: "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation".into(),
            value_code: representation.into(),
        }],
        use_: "official".into(),
        text: t.into(),
    };
    let patient = b.add(
        "patient",
        Resource::Patient {
            meta: jp("JP_Patient"),
            identifier,
            name: vec![name(&p.patient.name, "IDE"), name(&p.patient.kana, "SYL")],
            gender: match p.patient.sex {
                Sex::Male => "male",
                Sex::Female => "female",
                Sex::NotKnown => "unknown",
            }
            .into(),
            birth_date: p.patient.birth_date.clone(),
        },
    );
    let hospital = b.add(
        "hospital",
        Resource::Organization {
            meta: jp("JP_Organization"),
            identifier: vec![Identifier {
                system: CS_HOSPITAL.into(),
                value: ctx.hospital_code.into(),
            }],
            name: ctx.hospital_name.into(),
        },
    );
    let unit = b.add(
        "unit",
        Resource::Organization {
            meta: jp("JP_Organization"),
            identifier: vec![Identifier {
                system: CS_UNIT.into(),
                value: ctx.unit.into(),
            }],
            name: format!("救急隊 {}", ctx.unit),
        },
    );
    let national = b.add(
        "national-system",
        Resource::Organization {
            meta: jp("JP_Organization"),
            identifier: vec![],
            name: "オンライン資格確認等システム".into(),
        },
    );
    let mut crew = vec![];
    for (i, member) in p.crew.iter().enumerate() {
        crew.push(b.add(
            &format!("crew-{i}"),
            Resource::Practitioner {
                meta: jp("JP_Practitioner"),
                name: vec![HumanName {
                    extension: vec![Extension {
                            url:
                                "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
                                    .into(),
                            value_code: "IDE".into(),
                        }],
                    use_: "official".into(),
                    text: member.clone(),
                }],
            },
        ));
    }
    let encounter = b.add(
        "encounter",
        Resource::Encounter {
            meta: jp("JP_Encounter"),
            status: if c.stage == super::Stage::Arrived {
                "arrived"
            } else {
                "planned"
            }
            .into(),
            class: Coding {
                system: "http://terminology.hl7.org/CodeSystem/v3-ActCode".into(),
                code: "EMER".into(),
                display: Some("emergency".into()),
            },
            subject: patient.clone(),
            period: ctx.eta_at_ms.map(|at| Period { start: jst(at) }),
            service_provider: hospital.clone(),
        },
    );
    // consent (none without a viewing)
    let consent = p.consent.as_ref().map(|pc| {
        let (decision, decision_ja) = match pc.decision {
            ConsentDecision::Verbal => ("verbal", "口頭同意"),
            ConsentDecision::Unobtainable => ("unobtainable", "同意取得困難"),
            ConsentDecision::Refused => ("refused", "拒否"),
        };
        let consent_text = match pc.reason {
            Some(r) => format!("{decision_ja}（{}）記録: {}", r.label_ja(), pc.recorded_by),
            None => format!("{decision_ja} 記録: {}", pc.recorded_by),
        };
        b.add(
            "consent",
            Resource::Consent {
                meta: base("Consent"),
                status: "active".into(),
                scope: coding(
                    "http://terminology.hl7.org/CodeSystem/consentscope",
                    "patient-privacy",
                    "Privacy Consent",
                ),
                category: vec![
                    coding("http://loinc.org", "59284-0", "Patient Consent"),
                    Concept {
                        coding: vec![Coding {
                            system: CS_CONSENT.into(),
                            code: decision.into(),
                            display: Some(decision_ja.into()),
                        }],
                        text: Some(consent_text),
                    },
                ],
                patient: patient.clone(),
                date_time: jst(pc.at_ms),
                organization: vec![unit.clone()],
                policy_rule: text(
                    "マイナ救急：救急時医療情報閲覧（救急隊による閲覧と搬送先への提供）",
                ),
            },
        )
    });
    // alerts
    let mut flags = vec![];
    for (i, a) in c.disclosure.alerts.iter().enumerate() {
        let author = match &a.source {
            AlertSource::NationalSystem { .. } => national.clone(),
            AlertSource::Crew => unit.clone(),
        };
        flags.push(b.add(
            &format!("flag-{i}"),
            Resource::Flag {
                meta: base("Flag"),
                status: "active".into(),
                category: vec![coding(
                    "http://terminology.hl7.org/CodeSystem/flag-category",
                    "clinical",
                    "Clinical",
                )],
                code: text(&a.label),
                subject: patient.clone(),
                author,
            },
        ));
    }
    let as_of = p.summary_as_of_ms.map(jst);
    let mut meds = vec![];
    for (i, m) in p.medications.iter().enumerate() {
        meds.push(b.add(
            &format!("medication-{i}"),
            Resource::MedicationStatement {
                meta: jp("JP_MedicationStatement"),
                status: "unknown".into(),
                medication_codeable_concept: text(&m.text),
                subject: patient.clone(),
                effective_date_time: m.as_of.as_deref().and_then(fhir_date),
                date_asserted: as_of.clone(),
                information_source: national.clone(),
                note: vec![Annotation {
                    text: CLAIMS_NOTE.into(),
                }],
            },
        ));
    }
    let condition_status = |code: &str| {
        coding(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            code,
            code,
        )
    };
    let active = coding(
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "active",
        "Active",
    );
    let mut conditions = vec![b.add(
        "chief-complaint",
        Resource::Condition {
            meta: jp("JP_Condition"),
            clinical_status: active.clone(),
            verification_status: condition_status("provisional"),
            category: vec![coding(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "encounter-diagnosis",
                "Encounter Diagnosis",
            )],
            code: text(&format!("主訴: {}", c.disclosure.complaint.label_ja())),
            subject: patient.clone(),
            onset_date_time: None,
            note: vec![],
        },
    )];
    for (i, d) in p.diagnoses.iter().enumerate() {
        conditions.push(b.add(
            &format!("diagnosis-{i}"),
            Resource::Condition {
                meta: jp("JP_Condition"),
                clinical_status: active.clone(),
                verification_status: condition_status("unconfirmed"),
                category: vec![coding(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                    "Problem List Item",
                )],
                code: text(&d.text),
                subject: patient.clone(),
                onset_date_time: d.as_of.as_deref().and_then(fhir_date),
                note: vec![Annotation {
                    text: CLAIMS_NOTE.into(),
                }],
            },
        ));
    }
    let mut procedures = vec![];
    for (i, d) in p.procedures.iter().enumerate() {
        procedures.push(b.add(
            &format!("procedure-{i}"),
            Resource::Procedure {
                meta: jp("JP_Procedure"),
                status: "completed".into(),
                code: text(&d.text),
                subject: patient.clone(),
                performed_date_time: d.as_of.as_deref().and_then(fhir_date),
                note: vec![Annotation {
                    text: CLAIMS_NOTE.into(),
                }],
            },
        ));
    }
    // vitals
    let v = latest_vitals(c);
    let vital_category = vec![coding(
        "http://terminology.hl7.org/CodeSystem/observation-category",
        "vital-signs",
        "Vital Signs",
    )];
    let mut observations = vec![];
    let mut observe = |b: &mut Builder,
                       name: &str,
                       code: Concept,
                       q: Option<Quantity>,
                       i: Option<i64>,
                       comp: Vec<Component>| {
        observations.push(b.add(
            name,
            Resource::Observation {
                meta: jp("JP_Observation_VitalSigns"),
                status: "final".into(),
                category: vital_category.clone(),
                code,
                subject: patient.clone(),
                effective_date_time: now.clone(),
                value_quantity: q,
                value_integer: i,
                component: comp,
            },
        ));
    };
    if let (Some(s), Some(d)) = (v.bp_systolic, v.bp_diastolic) {
        observe(
            &mut b,
            "vital-bp",
            coding("http://loinc.org", "85354-9", "Blood pressure panel"),
            None,
            None,
            vec![
                Component {
                    code: coding("http://loinc.org", "8480-6", "Systolic blood pressure"),
                    value_quantity: quantity(f64::from(s), "mmHg", "mm[Hg]"),
                },
                Component {
                    code: coding("http://loinc.org", "8462-4", "Diastolic blood pressure"),
                    value_quantity: quantity(f64::from(d), "mmHg", "mm[Hg]"),
                },
            ],
        );
    } else if let Some(s) = v.bp_systolic {
        observe(
            &mut b,
            "vital-bp-systolic",
            coding("http://loinc.org", "8480-6", "Systolic blood pressure"),
            Some(quantity(f64::from(s), "mmHg", "mm[Hg]")),
            None,
            vec![],
        );
    }
    if let Some(h) = v.heart_rate {
        observe(
            &mut b,
            "vital-hr",
            coding("http://loinc.org", "8867-4", "Heart rate"),
            Some(quantity(f64::from(h), "/min", "/min")),
            None,
            vec![],
        );
    }
    if let Some(r) = v.respiratory_rate {
        observe(
            &mut b,
            "vital-rr",
            coding("http://loinc.org", "9279-1", "Respiratory rate"),
            Some(quantity(f64::from(r), "/min", "/min")),
            None,
            vec![],
        );
    }
    if let Some(s) = v.spo2 {
        observe(
            &mut b,
            "vital-spo2",
            coding(
                "http://loinc.org",
                "59408-5",
                "Oxygen saturation in Arterial blood by Pulse oximetry",
            ),
            Some(quantity(f64::from(s), "%", "%")),
            None,
            vec![],
        );
    }
    if let Some(t) = v.temperature_tenths {
        observe(
            &mut b,
            "vital-bt",
            coding("http://loinc.org", "8310-5", "Body temperature"),
            Some(quantity(f64::from(t) / 10.0, "Cel", "Cel")),
            None,
            vec![],
        );
    }
    if let Some(g) = v.gcs {
        observe(
            &mut b,
            "vital-gcs",
            coding("http://loinc.org", "9269-2", "Glasgow coma score total"),
            None,
            Some(i64::from(g)),
            vec![],
        );
    }
    if let Some(j) = v.jcs {
        observe(
            &mut b,
            "vital-jcs",
            coding(CS_JCS, "JCS", "Japan Coma Scale"),
            None,
            Some(i64::from(j.value())),
            vec![],
        );
    }
    // where each thing came from
    let national_made: Vec<Reference> = meds
        .iter()
        .chain(conditions.iter().skip(1))
        .chain(procedures.iter())
        .chain(
            flags
                .iter()
                .zip(&c.disclosure.alerts)
                .filter(|(_, a)| matches!(a.source, AlertSource::NationalSystem { .. }))
                .map(|(f, _)| f),
        )
        .cloned()
        .collect();
    let crew_made: Vec<Reference> = consent
        .iter()
        .chain(conditions.iter().take(1))
        .chain(observations.iter())
        .chain(
            flags
                .iter()
                .zip(&c.disclosure.alerts)
                .filter(|(_, a)| a.source == AlertSource::Crew)
                .map(|(f, _)| f),
        )
        .cloned()
        .collect();
    let author = |who: &Reference| Agent {
        kind: coding(
            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "author",
            "Author",
        ),
        who: who.clone(),
    };
    if !national_made.is_empty() {
        b.add(
            "provenance-national",
            Resource::Provenance {
                meta: base("Provenance"),
                target: national_made,
                recorded: as_of.clone().unwrap_or_else(|| now.clone()),
                agent: vec![author(&national)],
            },
        );
    }
    b.add(
        "provenance-crew",
        Resource::Provenance {
            meta: base("Provenance"),
            target: crew_made,
            recorded: now.clone(),
            agent: vec![author(&unit)],
        },
    );
    // the Composition, first
    let loinc = |code: &str, display: &str| coding("http://loinc.org", code, display);
    let mut section = vec![];
    let mut sec = |title: &str, code: Concept, entry: Vec<Reference>| {
        if !entry.is_empty() {
            section.push(Section {
                title: title.into(),
                code,
                entry,
            });
        }
    };
    sec(
        "同意",
        loinc("59284-0", "Patient Consent"),
        consent.iter().cloned().collect(),
    );
    sec(
        "注意事項",
        loinc("75310-3", "Health concerns Document"),
        flags,
    );
    sec(
        "主訴・傷病名",
        loinc("11450-4", "Problem list - Reported"),
        conditions,
    );
    sec(
        "薬剤",
        loinc("10160-0", "History of Medication use Narrative"),
        meds,
    );
    sec(
        "手術・処置",
        loinc("47519-4", "History of Procedures Document"),
        procedures,
    );
    sec(
        "バイタルサイン",
        loinc("8716-3", "Vital signs"),
        observations,
    );
    let mut authors = vec![unit.clone()];
    authors.extend(crew);
    b.entries[0].resource = Resource::Composition {
        meta: base("Composition"),
        status: "final".into(),
        kind: Concept {
            coding: vec![Coding {
                system: "http://loinc.org".into(),
                code: "18761-7".into(),
                display: Some("Transfer summary note".into()),
            }],
            text: Some("救急搬送 事前情報".into()),
        },
        subject: patient,
        encounter,
        date: now.clone(),
        author: authors,
        title: format!("救急搬送 事前情報（マイナ救急） v{}", c.version),
        section,
    };
    Bundle {
        resource_type: "Bundle".into(),
        meta: base("Bundle"),
        identifier: Identifier {
            system: "urn:ietf:rfc:3986".into(),
            value: format!(
                "urn:uuid:{}",
                uuid_for(ctx.case_id, &format!("bundle-v{}", c.version))
            ),
        },
        kind: "document".into(),
        timestamp: now,
        entry: b.entries,
    }
}
