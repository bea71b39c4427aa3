//! The audit trail as an admin reads it, to answer a citizen who asks who viewed their data
//! (Mynaportal shows that someone did). Every record kind is a row: audit entries (checks,
//! failed lookups, inquiries, views), consent decisions including refusals, corrections
//! (訂正) and the written-explanation records. Times are JST, patients are found by the
//! individual insured number or, for 医療扶助, the 受給者番号.
//!
//! CSV goes through the `csv` crate with every field quoted (RFC 4180), and a field that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading
//! `'`. A bundle is one tablet's whole chain as JSON; `audit merge` checks each bundle's
//! chain and answers from all of them at once.

use super::AdminError;
use crate::config;
use crate::domain::{AuditAction, PatientRef, RecordBody, Timestamp};
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
    /// The individual insured number (empty for 医療扶助).
    pub insured_number: String,
    /// 医療扶助: the 受給者番号 (the audit key where there is no insured number).
    pub recipient_number: String,
    pub consent: String,
    pub identity_method: String,
    pub identity_check: String,
    /// What was read: `card`, `android_phone`, `iphone` (empty before a read, and in
    /// records made before phones were supported).
    pub token: String,
    /// What happened: `view:emergency_summary`, `consent:verbal`,
    /// `correction:unobtainable->verbal`, `explanation:handed`,
    /// `qualification_failed:no_coverage` …
    pub action: String,
    /// The card's certificate fingerprint on a failed lookup.
    pub card: String,
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

fn numbers(p: Option<&PatientRef>) -> (String, String) {
    match p {
        Some(p) => (
            p.insured_number.expose().clone(),
            p.public_assistance
                .as_ref()
                .map(|a| a.recipient_number.expose().clone())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
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
        insured_number: String::new(),
        recipient_number: String::new(),
        consent: String::new(),
        identity_method: String::new(),
        identity_check: String::new(),
        token: String::new(),
        action: String::new(),
        card: String::new(),
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
            row.action = format!("consent:{}", json_label(&c.decision));
        }
        RecordBody::ConsentCorrection(c) => {
            row.record = "consent_correction".into();
            row.consent = json_label(&c.to);
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
    }
    let h = stored.record.body.header();
    row.at = jst(h.at);
    row.crew_id = h.operator.0.clone();
    row.unit_id = h.unit.0.clone();
    row.terminal_id = h.terminal.0.clone();
    row.incident_id = h.incident.0.clone();
    (row.insured_number, row.recipient_number) = numbers(h.patient);
    row
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

/// This tablet's whole chain, for `audit merge` at the fire department.
pub fn audit_bundle(data_dir: &Path) -> Result<AuditBundle, AdminError> {
    let cfg = config::DeviceConfig::load(data_dir)
        .map_err(|e| AdminError::File {
            path: data_dir.join(config::CONFIG_FILE),
            message: e.to_string(),
        })?
        .ok_or(AdminError::NotInitialised)?;
    let store = config::open_store(data_dir)?;
    Ok(AuditBundle {
        unit_id: cfg.unit_id,
        terminal_id: cfg.terminal_id,
        exported_at: jst(Timestamp::now()),
        records: store.records()?,
    })
}

/// The rows of several tablets' bundles, each chain checked first, merged by time.
pub fn audit_merge(
    bundles: &[PathBuf],
    filter: &AuditFilter<'_>,
) -> Result<Vec<AuditRow>, MergeError> {
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
        ];
        let _ = w.write_record(fields.map(|f| neutralise(f)));
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
            insured_number: "12345678-01".into(),
            recipient_number: String::new(),
            consent: "consented".into(),
            identity_method: "myna_card".into(),
            identity_check: "photo".into(),
            token: "card".into(),
            action: "view:emergency_summary".into(),
            card: String::new(),
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
