//! The audit trail as an admin reads it, to answer a citizen who asks who viewed their data
//! (Mynaportal shows that someone did). Every record kind is a row: audit entries (checks,
//! failed lookups, inquiries, views), consent decisions including refusals, corrections
//! (訂正) and the written-explanation records. Times are JST, patients are found by the
//! individual insured number or, for 医療扶助, the 受給者番号. Each row carries the items the
//! official document on emergency viewing lists for the log: 対象患者情報 (the patient's id
//! and numbers), 種別 (which view, or what the inquiry fetched), who, when, from where, and
//! under what consent (with the reason where it was unobtainable).
//!
//! CSV goes through the `csv` crate with every field quoted (RFC 4180), and a field that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading
//! `'`. A bundle is one tablet's whole chain as JSON, signed: every record's chain link
//! and the bundle itself (unit, terminal, time, first and last link) by the unit key, with
//! the unit certificate beside them. `audit merge` checks each bundle against the
//! department's CA (the certificate issued by it for the bundle's unit, every signature by
//! its key), then the chain, and answers from all of them at once. A hash chain alone is
//! no proof: whoever deletes a row can hash the rest again; he cannot sign them again.

use super::AdminError;
use crate::config;
use crate::domain::{AuditAction, HandoffEvent, InfoKind, PatientRef, RecordBody, Timestamp};
use crate::store::{self, StoredRecord};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One line of the answer: who did what, when, to which patient, under what consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// JST, RFC 3339 with +09:00.
    pub at: String,
    /// audit / consent / consent_correction / explanation
    pub record: String,
    pub crew_id: String,
    pub unit_id: String,
    pub terminal_id: String,
    pub incident_id: String,
    /// 患者ID: the patient's id in the national answer (対象患者情報, with the numbers).
    pub patient_id: String,
    /// The individual insured number (empty for 医療扶助).
    pub insured_number: String,
    /// 医療扶助: the 受給者番号 (the audit key where there is no insured number).
    pub recipient_number: String,
    pub consent: String,
    /// Why consent was unobtainable (`unconscious`, `cannot_communicate`,
    /// `lacks_capacity`, `other`), on 同意取得困難 consent and correction rows.
    pub consent_reason: String,
    pub identity_method: String,
    pub identity_check: String,
    /// What was read: `card`, `android_phone`, `iphone` (empty before a read, and in
    /// records made before phones were supported).
    pub token: String,
    /// What happened: `view:emergency_summary`, `consent:verbal`,
    /// `correction:unobtainable->verbal`, `explanation:handed`,
    /// `qualification_failed:no_coverage` …
    pub action: String,
    /// 種別: what was viewed (`emergency_summary`, `full_data`) on a view row, what was
    /// fetched on an inquiry row (`emergency_summary+full_data`: one inquiry fetches both).
    pub kind: String,
    /// The card's certificate fingerprint on a failed lookup.
    pub card: String,
    /// The hub's case id on a hand-off row (受入照会 … 到着).
    #[serde(default)]
    pub handoff_case: String,
    /// The hospitals of a hand-off row: every one asked (`+`-joined; their number is the
    /// request's 照会回数), or the one that answered or was chosen.
    #[serde(default)]
    pub hospitals: String,
    pub seq: u64,
}

/// Filters of `audit export` and `audit merge`.
#[derive(Default)]
pub struct AuditFilter<'a> {
    /// Matches the insured number or, for 医療扶助, the 受給者番号.
    pub insured_number: Option<&'a str>,
    pub since: Option<time::Date>,
    pub until: Option<time::Date>,
}

/// One tablet's whole audit chain, as `audit export --format bundle` writes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditBundle {
    pub unit_id: String,
    pub terminal_id: String,
    pub exported_at: String,
    pub records: Vec<StoredRecord>,
    /// The unit certificate (PEM) whose key made the signatures.
    #[serde(default)]
    pub unit_certificate: String,
    /// One per record, in order: base64 DER ECDSA P-256 over
    /// `domain::chain_signing_message(seq, hash)` (as uploads are signed).
    #[serde(default)]
    pub signatures: Vec<String>,
    /// Over [`bundle_message`]: so a bundle cut short, or relabelled, does not verify.
    #[serde(default)]
    pub bundle_signature: String,
}

/// What a bundle's own signature covers: its unit, terminal and export time, and the
/// first and last link of its chain (with the count).
pub fn bundle_message(b: &AuditBundle) -> Vec<u8> {
    let mut m = b"mynakyukyu audit bundle v1\0".to_vec();
    for part in [&b.unit_id, &b.terminal_id, &b.exported_at] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&(b.records.len() as u64).to_be_bytes());
    if let (Some(first), Some(last)) = (b.records.first(), b.records.last()) {
        m.extend_from_slice(&first.seq.to_be_bytes());
        m.extend_from_slice(first.prev_hash.as_bytes());
        m.push(0);
        m.extend_from_slice(&last.seq.to_be_bytes());
        m.extend_from_slice(last.hash.as_bytes());
    }
    m
}

#[derive(Debug, Error)]
pub enum MergeError {
    #[error("{path}: not an audit bundle: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: audit chain broken at record seq {seq}: {reason}")]
    Broken {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error("{path}: not signed by a unit of this department: {reason}")]
    NotSigned { path: PathBuf, reason: String },
    #[error(
        "{path}: the unit key's signature does not verify at record seq {seq} (edited after export)"
    )]
    BadSignature { path: PathBuf, seq: u64 },
    #[error(
        "{path}: the bundle's own signature does not verify (records removed, added or relabelled after export)"
    )]
    BadBundleSignature { path: PathBuf },
    #[error("the department's unit CA {path}: {reason}")]
    UnitCa { path: PathBuf, reason: String },
}

fn json_label<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn jst(t: Timestamp) -> String {
    t.in_jst()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.0.to_string())
}

/// The patient's id, insured number and 受給者番号, as far as the record has them.
fn numbers(p: Option<&PatientRef>) -> (String, String, String) {
    match p {
        Some(p) => (
            p.local_id.expose().clone(),
            p.insured_number.expose().clone(),
            p.public_assistance
                .as_ref()
                .map(|a| a.recipient_number.expose().clone())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new(), String::new()),
    }
}

/// The row for one stored record.
pub fn row(stored: &StoredRecord) -> AuditRow {
    let mut row = AuditRow {
        at: String::new(),
        record: String::new(),
        crew_id: String::new(),
        unit_id: String::new(),
        terminal_id: String::new(),
        incident_id: String::new(),
        patient_id: String::new(),
        insured_number: String::new(),
        recipient_number: String::new(),
        consent: String::new(),
        consent_reason: String::new(),
        identity_method: String::new(),
        identity_check: String::new(),
        token: String::new(),
        action: String::new(),
        kind: String::new(),
        card: String::new(),
        handoff_case: String::new(),
        hospitals: String::new(),
        seq: stored.seq,
    };
    match &stored.record.body {
        RecordBody::Audit(a) => {
            row.record = "audit".into();
            row.consent = a.consent.map(|c| json_label(&c)).unwrap_or_default();
            row.identity_method = json_label(&a.identity_method);
            row.identity_check = a.identity_check.map(|c| json_label(&c)).unwrap_or_default();
            row.token = a.token.map(|t| t.name().to_string()).unwrap_or_default();
            row.card = a.card.clone().unwrap_or_default();
            row.kind = match a.action {
                AuditAction::View { kind } => json_label(&kind),
                AuditAction::EmergencyInfoInquiry => {
                    [InfoKind::EmergencySummary, InfoKind::FullData]
                        .map(|k| json_label(&k))
                        .join("+")
                }
                _ => String::new(),
            };
            row.action = match a.action {
                AuditAction::View { kind } => format!("view:{}", json_label(&kind)),
                AuditAction::QualificationFailed { reason } => {
                    format!("qualification_failed:{}", json_label(&reason))
                }
                // tagged enum: its JSON is {"action": "<name>"}
                other => serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v["action"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{other:?}")),
            };
        }
        RecordBody::Consent(c) => {
            row.record = "consent".into();
            row.consent = json_label(&c.decision);
            row.consent_reason = c.reason.map(|r| json_label(&r)).unwrap_or_default();
            row.action = format!("consent:{}", json_label(&c.decision));
        }
        RecordBody::ConsentCorrection(c) => {
            row.record = "consent_correction".into();
            row.consent = json_label(&c.to);
            row.consent_reason = c.reason.map(|r| json_label(&r)).unwrap_or_default();
            row.action = format!("correction:{}->{}", json_label(&c.from), json_label(&c.to));
        }
        RecordBody::Explanation(x) => {
            row.record = "explanation".into();
            row.consent = "unobtainable".into();
            row.action = if x.handed {
                "explanation:handed".into()
            } else {
                "explanation:not_yet_handed".into()
            };
        }
        RecordBody::Handoff(x) => {
            row.record = "handoff".into();
            handoff_row(&mut row, &x.event);
        }
    }
    let h = stored.record.body.header();
    row.at = jst(h.at);
    row.crew_id = h.operator.0.clone();
    row.unit_id = h.unit.0.clone();
    row.terminal_id = h.terminal.0.clone();
    row.incident_id = h.incident.0.clone();
    (row.patient_id, row.insured_number, row.recipient_number) = numbers(h.patient);
    row
}

/// A hand-off step as a row: `action` says which step, `kind` its detail (照会回数, the
/// hospital's answer time in JST, the packet's version and hash, the version of an update).
fn handoff_row(row: &mut AuditRow, event: &HandoffEvent) {
    match event {
        HandoffEvent::Asked { case_id, hospitals } => {
            row.handoff_case = case_id.clone();
            row.hospitals = hospitals.join("+");
            row.action = "handoff:asked".into();
            row.kind = format!("照会回数 {}", hospitals.len());
        }
        HandoffEvent::NotSent { hospitals } => {
            row.hospitals = hospitals.join("+");
            row.action = "handoff:not_sent".into();
        }
        HandoffEvent::Answered {
            case_id,
            hospital,
            answer,
            answered_at_ms,
            late,
        } => {
            row.handoff_case = case_id.clone();
            row.hospitals = hospital.clone();
            row.action = format!(
                "handoff:{}:{answer}",
                if *late { "late_answer" } else { "answer" }
            );
            row.kind = format!("answered {}", jst(Timestamp(*answered_at_ms)));
        }
        HandoffEvent::Decided {
            case_id,
            hospital,
            packet_version,
            packet_sha256,
        } => {
            row.handoff_case = case_id.clone();
            row.hospitals = hospital.clone();
            row.action = "handoff:decided".into();
            row.kind = format!("packet v{packet_version} sha256:{packet_sha256}");
        }
        HandoffEvent::Updated {
            case_id,
            version,
            change,
        } => {
            row.handoff_case = case_id.clone();
            row.action = format!("handoff:update:{change}");
            row.kind = format!("packet v{version}");
        }
        HandoffEvent::Withdrawn { case_id } => {
            row.handoff_case = case_id.clone();
            row.action = "handoff:withdrawn".into();
        }
    }
}

fn record_time(stored: &StoredRecord) -> Timestamp {
    stored.record.body.header().at
}

fn keep(stored: &StoredRecord, row: &AuditRow, filter: &AuditFilter<'_>) -> bool {
    if filter
        .insured_number
        .is_some_and(|n| n != row.insured_number && n != row.recipient_number)
    {
        return false;
    }
    let day = record_time(stored).in_jst().map(|t| t.date());
    !(filter.since.is_some_and(|s| day.is_none_or(|d| d < s))
        || filter.until.is_some_and(|u| day.is_none_or(|d| d > u)))
}

/// Every record of this tablet matching the filter, oldest first.
pub fn audit_export(
    data_dir: &Path,
    filter: &AuditFilter<'_>,
) -> Result<Vec<AuditRow>, AdminError> {
    let store = config::open_store(data_dir)?;
    Ok(store
        .records()?
        .iter()
        .filter_map(|r| {
            let row = row(r);
            keep(r, &row, filter).then_some(row)
        })
        .collect())
}

/// One incident's hand-off, for the department's 搬送困難事案 figures: how many hospitals
/// were asked (照会回数), in how many requests, and how long from the first request to
/// the first 受入可 and to 搬送決定.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffSummary {
    pub incident_id: String,
    /// JST.
    pub first_request_at: String,
    /// 照会回数: hospitals asked, over every request of the incident.
    pub hospitals_asked: usize,
    pub requests: usize,
    /// Seconds from the first request to the first 受入可 that was not late (empty: none).
    pub seconds_to_acceptance: Option<i64>,
    /// Seconds from the first request to 搬送決定 (empty: no decision).
    pub seconds_to_decision: Option<i64>,
    pub decided_hospital: String,
    /// Requests never sent (the line stayed down past the bound).
    pub not_sent: usize,
}

/// Every incident with a hand-off, oldest first.
pub fn handoff_report(data_dir: &Path) -> Result<Vec<HandoffSummary>, AdminError> {
    let store = config::open_store(data_dir)?;
    let mut out: Vec<(Timestamp, HandoffSummary)> = vec![];
    for stored in store.records()? {
        let RecordBody::Handoff(h) = &stored.record.body else {
            continue;
        };
        let i = match out.iter().position(|(_, s)| s.incident_id == h.incident.0) {
            Some(i) => i,
            None => {
                out.push((
                    h.at,
                    HandoffSummary {
                        incident_id: h.incident.0.clone(),
                        first_request_at: String::new(),
                        hospitals_asked: 0,
                        requests: 0,
                        seconds_to_acceptance: None,
                        seconds_to_decision: None,
                        decided_hospital: String::new(),
                        not_sent: 0,
                    },
                ));
                out.len() - 1
            }
        };
        let (first, s) = &mut out[i];
        let since = |first: Timestamp, at_ms: i64| (at_ms - first.0).max(0) / 1000;
        match &h.event {
            HandoffEvent::Asked { hospitals, .. } => {
                if s.requests == 0 {
                    *first = h.at;
                    s.first_request_at = jst(h.at);
                }
                s.requests += 1;
                s.hospitals_asked += hospitals.len();
            }
            HandoffEvent::Answered {
                answer,
                answered_at_ms,
                late,
                ..
            } if answer == "accept" && !late && s.seconds_to_acceptance.is_none() => {
                s.seconds_to_acceptance = Some(since(*first, *answered_at_ms));
            }
            HandoffEvent::Decided { hospital, .. } => {
                s.seconds_to_decision = Some(since(*first, h.at.0));
                s.decided_hospital = hospital.clone();
            }
            HandoffEvent::NotSent { .. } => s.not_sent += 1,
            _ => {}
        }
    }
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// This tablet's whole chain, for `audit merge` at the fire department.
pub fn audit_bundle(data_dir: &Path) -> Result<AuditBundle, AdminError> {
    let cfg = config::DeviceConfig::load(data_dir)
        .map_err(|e| AdminError::File {
            path: data_dir.join(config::CONFIG_FILE),
            message: e.to_string(),
        })?
        .ok_or(AdminError::NotInitialised)?;
    let cert_path = data_dir.join(config::UNIT_CERT_FILE);
    let unit_certificate = std::fs::read_to_string(&cert_path).map_err(|e| AdminError::File {
        path: cert_path.clone(),
        message: format!("a bundle carries the unit certificate: {e}"),
    })?;
    let keys = crate::keys::DeviceKeys::open(data_dir)?;
    let store = config::open_store_with(data_dir, &keys)?;
    let records = store.records()?;
    let sign = |msg: &[u8]| -> Result<String, AdminError> {
        use base64::Engine;
        Ok(base64::engine::general_purpose::STANDARD.encode(keys.sign_with_unit_key(msg)?))
    };
    let signatures = records
        .iter()
        .map(|r| sign(&crate::domain::chain_signing_message(r.seq, &r.hash)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bundle = AuditBundle {
        unit_id: cfg.unit_id,
        terminal_id: cfg.terminal_id,
        exported_at: jst(Timestamp::now()),
        records,
        unit_certificate,
        signatures,
        bundle_signature: String::new(),
    };
    bundle.bundle_signature = sign(&bundle_message(&bundle))?;
    Ok(bundle)
}

/// A bundle's signatures, against the department's unit CA: the certificate must be one it
/// issued, for the bundle's unit; every record's and the bundle's signature by its key.
fn verify_bundle(path: &Path, b: &AuditBundle, unit_ca_der: &[u8]) -> Result<(), MergeError> {
    use base64::Engine;
    let not_signed = |reason: &str| MergeError::NotSigned {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let der = crate::pki::pem_certificates(&b.unit_certificate)
        .into_iter()
        .next()
        .ok_or_else(|| {
            not_signed("no unit certificate (exported by an older version: export it again)")
        })?;
    if !crate::pki::is_signed_by(&der, unit_ca_der) {
        return Err(not_signed(
            "its unit certificate was not issued by the department's unit CA",
        ));
    }
    let (cn, point) =
        crate::pki::subject_cn_and_key(&der).map_err(|e| not_signed(&e.to_string()))?;
    if cn != b.unit_id {
        return Err(not_signed(&format!(
            "its unit certificate is unit {cn:?}'s, the bundle says {:?}",
            b.unit_id
        )));
    }
    if b.signatures.len() != b.records.len() {
        return Err(not_signed("not every record is signed"));
    }
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point);
    let verifies = |msg: &[u8], sig: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(sig)
            .is_ok_and(|s| key.verify(msg, &s).is_ok())
    };
    for (r, sig) in b.records.iter().zip(&b.signatures) {
        if !verifies(&crate::domain::chain_signing_message(r.seq, &r.hash), sig) {
            return Err(MergeError::BadSignature {
                path: path.to_path_buf(),
                seq: r.seq,
            });
        }
    }
    if !verifies(&bundle_message(b), &b.bundle_signature) {
        return Err(MergeError::BadBundleSignature {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The rows of several tablets' bundles, each chain checked first, merged by time.
pub fn audit_merge(
    bundles: &[PathBuf],
    unit_ca: &Path,
    filter: &AuditFilter<'_>,
) -> Result<Vec<AuditRow>, MergeError> {
    let ca_err = |reason: String| MergeError::UnitCa {
        path: unit_ca.to_path_buf(),
        reason,
    };
    let ca_pem = std::fs::read_to_string(unit_ca).map_err(|e| ca_err(e.to_string()))?;
    let ca_der = crate::pki::pem_certificates(&ca_pem)
        .into_iter()
        .next()
        .ok_or_else(|| ca_err("no certificate in it".into()))?;
    let mut all: Vec<(Timestamp, AuditRow)> = vec![];
    for path in bundles {
        let text = std::fs::read(path).map_err(|e| MergeError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let bundle: AuditBundle =
            serde_json::from_slice(&text).map_err(|e| MergeError::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        verify_bundle(path, &bundle, &ca_der)?;
        if let Some(broken) = store::verify_records(&bundle.records).first_broken {
            return Err(MergeError::Broken {
                path: path.clone(),
                seq: broken.seq,
                reason: broken.reason,
            });
        }
        for r in &bundle.records {
            let row = row(r);
            if keep(r, &row, filter) {
                all.push((record_time(r), row));
            }
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.unit_id.cmp(&b.1.unit_id)));
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// A field a spreadsheet would run as a formula is given a leading `'`.
fn neutralise(field: &str) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_string()
    }
}

/// RFC 4180 CSV, every field quoted, formulas neutralised, with a header line.
pub fn audit_csv(rows: &[AuditRow]) -> String {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(vec![]);
    let header = [
        "at",
        "record",
        "crew_id",
        "unit_id",
        "terminal_id",
        "incident_id",
        "insured_number",
        "recipient_number",
        "consent",
        "identity_method",
        "identity_check",
        "token",
        "action",
        "card",
        "seq",
        "kind",
        "handoff_case",
        "hospitals",
    ];
    // Writing to a Vec cannot fail; a failure would only lose the line, never panic.
    let _ = w.write_record(header);
    for r in rows {
        let seq = r.seq.to_string();
        let fields = [
            &r.at,
            &r.record,
            &r.crew_id,
            &r.unit_id,
            &r.terminal_id,
            &r.incident_id,
            &r.insured_number,
            &r.recipient_number,
            &r.consent,
            &r.identity_method,
            &r.identity_check,
            &r.token,
            &r.action,
            &r.card,
            &seq,
            &r.kind,
            &r.handoff_case,
            &r.hospitals,
        ];
        let _ = w.write_record(fields.map(|f| neutralise(f)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The hand-off report as CSV: every field quoted, formulas neutralised (hospital codes
/// come from the hub).
pub fn handoffs_csv(report: &[HandoffSummary]) -> String {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(vec![]);
    let _ = w.write_record([
        "incident_id",
        "first_request_at",
        "hospitals_asked",
        "requests",
        "seconds_to_acceptance",
        "seconds_to_decision",
        "decided_hospital",
        "not_sent",
    ]);
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in report {
        let fields = [
            r.incident_id.clone(),
            r.first_request_at.clone(),
            r.hospitals_asked.to_string(),
            r.requests.to_string(),
            opt(r.seconds_to_acceptance),
            opt(r.seconds_to_decision),
            r.decided_hospital.clone(),
            r.not_sent.to_string(),
        ];
        let _ = w.write_record(fields.iter().map(|f| neutralise(f)));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_every_field_quoted() {
        let row = AuditRow {
            at: "2026-11-23T09:00:00+09:00".into(),
            record: "audit".into(),
            crew_id: "=HYPERLINK(\"http://x\",\"y\")".into(),
            unit_id: "@SUM(A1)".into(),
            terminal_id: "+1".into(),
            incident_id: "-2, \"three\"\nfour".into(),
            patient_id: "P0001".into(),
            insured_number: "12345678-01".into(),
            recipient_number: String::new(),
            consent: "consented".into(),
            consent_reason: String::new(),
            identity_method: "myna_card".into(),
            identity_check: "photo".into(),
            token: "card".into(),
            action: "view:emergency_summary".into(),
            kind: "emergency_summary".into(),
            card: String::new(),
            handoff_case: String::new(),
            hospitals: "=A+B".into(),
            seq: 7,
        };
        let text = audit_csv(&[row]);
        let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[2], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(&rec[3], "'@SUM(A1)");
        assert_eq!(&rec[4], "'+1");
        assert_eq!(&rec[5], "'-2, \"three\"\nfour");
        assert_eq!(&rec[6], "12345678-01");
        assert_eq!(&rec[11], "card");
        assert_eq!(&rec[14], "7");
        // every field quoted, lines end in CRLF
        let first_data_line = text.split("\r\n").nth(1).unwrap();
        assert!(first_data_line.starts_with("\"2026-11-23T09:00:00+09:00\",\"audit\""));
        assert!(text.starts_with("\"at\",\"record\""));
    }

    #[test]
    fn times_are_jst() {
        // 2026-01-01T15:30:00Z is 2026-01-02 00:30 in Japan
        assert_eq!(
            jst(Timestamp(1_767_281_400_000)),
            "2026-01-02T00:30:00+09:00"
        );
    }
}
