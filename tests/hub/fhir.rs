//! The pre-arrival packet as FHIR: every packet the hub serves parses and round-trips
//! through an independent R4 model (the `fhir` crate) and validates there; the JP Core /
//! JP-CLINS rules that model does not know are checked here one by one.

use super::*;
use mynakyukyu::handoff::{Answer, Change};
use serde_json::Value;

async fn served_packet(insured: Option<&str>) -> (Value, String) {
    let mut fx = HubFixture::start().await;
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    fx.hub()
        .core
        .answer(&HospitalCode("H1".into()), "er1", &id, Answer::Accept)
        .await
        .unwrap();
    let mut d = decide("H1");
    d.packet.patient.insured_number = insured.map(str::to_string);
    tablet.decide(&id, &d).await.unwrap();
    let mut vitals = disclosure().vitals;
    vitals.heart_rate = Some(112);
    vitals.spo2 = Some(93);
    vitals.temperature_tenths = Some(372);
    vitals.gcs = Some(8);
    tablet
        .update(&id, &Change::Vitals { vitals })
        .await
        .unwrap();
    tablet
        .update(&id, &Change::Eta { minutes: 6 })
        .await
        .unwrap();
    let mut h1 = fx.signed_in("er1").await;
    let page = h1.get(&format!("/cases/{id}/packet.json")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    fx.stop().await;
    (serde_json::from_str(&page.body).unwrap(), id)
}

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect()
}

fn of_type<'a>(bundle: &'a Value, t: &str) -> Vec<&'a Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_parses_round_trips_and_validates_in_an_independent_r4_model() {
    use ::fhir::r4::validate::Validate;
    let (ours, _) = served_packet(None).await;
    let theirs: ::fhir::r4::resources::Bundle =
        serde_json::from_value(ours.clone()).expect("an R4 Bundle");
    let issues = theirs.validate();
    assert!(issues.is_empty(), "{issues:?}");
    // as the polymorphic resource, which writes `resourceType` back
    let any: ::fhir::r4::resources::Resource =
        serde_json::from_value(ours.clone()).expect("an R4 resource");
    let back = serde_json::to_value(&any).unwrap();
    assert_eq!(
        difference(&ours, &back, "Bundle"),
        None,
        "the round trip through the R4 model changed the packet"
    );
    // each entry also reads as the resource type it says it is
    for r in resources(&ours) {
        let any: ::fhir::r4::resources::Resource = serde_json::from_value(r.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", r["resourceType"]));
        assert_eq!(
            difference(r, &serde_json::to_value(&any).unwrap(), "resource"),
            None
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packet_keeps_the_jp_clins_bundle_rules() {
    let (b, _) = served_packet(None).await;
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "document");
    assert!(b["timestamp"].as_str().unwrap().ends_with("+09:00"));
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(
        entries[0]["resource"]["resourceType"], "Composition",
        "the Composition first"
    );
    let uuid = regex_uuid();
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    for u in &urls {
        assert!(uuid(u), "fullUrl {u} is not a urn:uuid");
    }
    let mut unique = urls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), urls.len(), "a fullUrl twice");
    // every reference anywhere resolves inside the bundle
    let mut refs = vec![];
    collect_refs(&b, &mut refs);
    assert!(refs.len() > 20);
    for r in &refs {
        assert!(
            urls.contains(&r.as_str()),
            "reference {r} resolves to no entry"
        );
    }
    // every resource names its profile with a version
    for r in resources(&b) {
        let profiles = r["meta"]["profile"].as_array().unwrap();
        assert!(
            profiles.iter().all(|p| p.as_str().unwrap().contains('|')),
            "{r}"
        );
    }
    let profile_of = |t: &str| {
        of_type(&b, t)[0]["meta"]["profile"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        profile_of("Patient"),
        "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient|1.1.2"
    );
    assert!(profile_of("MedicationStatement").contains("JP_MedicationStatement|"));
    assert!(profile_of("Observation").contains("JP_Observation_VitalSigns|"));
    assert!(profile_of("Encounter").contains("JP_Encounter|"));
    // every time is +09:00
    let mut times = vec![];
    collect_times(&b, &mut times);
    assert!(times.len() > 5);
    for t in times {
        assert!(t.ends_with("+09:00"), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packet_says_what_it_should_and_nothing_it_must_not() {
    let (b, _) = served_packet(None).await;
    let text = b.to_string();
    // the patient: name and kana, birth date, sex; no identifier at all by default
    let patient = of_type(&b, "Patient")[0];
    assert!(patient.get("identifier").is_none(), "{patient}");
    assert_eq!(patient["name"][0]["text"], "山田花子");
    assert_eq!(patient["name"][1]["text"], "ヤマダハナコ");
    assert_eq!(patient["birthDate"], "1942-04-01");
    assert!(!text.contains("My Number") && !text.contains("個人番号"));
    // consent with its reason
    let consent = of_type(&b, "Consent")[0].to_string();
    assert!(consent.contains("同意取得困難") && consent.contains("意識障害"));
    // claims-derived things say so; claims diagnoses are unconfirmed; the complaint is there
    for m in of_type(&b, "MedicationStatement") {
        assert!(m["note"][0]["text"].as_str().unwrap().contains("レセプト"));
        assert_eq!(m["effectiveDateTime"], "2026-11-30");
    }
    let conditions = of_type(&b, "Condition");
    assert!(
        conditions
            .iter()
            .any(|c| c["code"]["text"] == "主訴: 意識障害")
    );
    assert!(conditions.iter().any(|c| c["code"]["text"] == "心房細動"
        && c["verificationStatus"]["coding"][0]["code"] == "unconfirmed"));
    assert_eq!(of_type(&b, "Procedure")[0]["performedDateTime"], "2025-06");
    assert_eq!(of_type(&b, "Flag")[0]["code"]["text"], "抗凝固薬");
    // the newest vitals, in LOINC; JCS as a local code beside GCS
    let obs = of_type(&b, "Observation");
    let code = |o: &&Value| o["code"]["coding"][0]["code"].as_str().unwrap().to_string();
    let codes: Vec<String> = obs.iter().map(code).collect();
    for c in ["85354-9", "8867-4", "59408-5", "8310-5", "9269-2", "JCS"] {
        assert!(codes.contains(&c.to_string()), "{c} missing from {codes:?}");
    }
    let hr = obs.iter().find(|o| code(o) == "8867-4").unwrap();
    assert_eq!(hr["valueQuantity"]["value"], 112.0);
    // the planned arrival and two provenances: the national system's (as of the summary)
    // and the crew's
    assert_eq!(of_type(&b, "Encounter")[0]["status"], "planned");
    assert!(of_type(&b, "Encounter")[0]["period"]["start"].is_string());
    let prov = of_type(&b, "Provenance");
    assert_eq!(prov.len(), 2);
    assert!(text.contains("オンライン資格確認等システム"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insured_number_is_there_only_when_the_tablet_sent_it() {
    let (b, _) = served_packet(Some("12345678")).await;
    let patient = of_type(&b, "Patient")[0];
    assert_eq!(patient["identifier"][0]["value"], "12345678");
    assert_eq!(
        patient["identifier"][0]["system"],
        mynakyukyu::handoff::fhir::CS_INSURED
    );
}

fn regex_uuid() -> impl Fn(&str) -> bool {
    |s: &str| {
        let Some(u) = s.strip_prefix("urn:uuid:") else {
            return false;
        };
        let parts: Vec<&str> = u.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && u.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn collect_times(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x.as_str() {
                    Some(s)
                        if s.contains('T')
                            && [
                                "timestamp",
                                "date",
                                "dateTime",
                                "recorded",
                                "start",
                                "effectiveDateTime",
                                "dateAsserted",
                            ]
                            .contains(&k.as_str()) =>
                    {
                        out.push(s.to_string())
                    }
                    _ => collect_times(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_times(x, out)),
        _ => {}
    }
}

/// The first place where `a` and `b` differ, as a path and both values.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = difference(va, vb, &format!("{path}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| difference(va, vb, &format!("{path}[{i}]"))),
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path}: ours {a} / theirs {b}")),
    }
}
