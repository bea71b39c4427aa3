//! The shared vocabulary: pure data types named after the glossary in DESIGN.md §5.
//!
//! Every layer (card, session, eligibility, store, ui) speaks in these types, so none of
//! them has to reach into another to name a patient, a consent decision or an audit entry.
//! Anything that can identify a patient or describe their health implements `Debug` by
//! redacting itself, so a stray `?value` in a tracing call cannot leak it.
//!
//! What is inside: the glossary types: `Coverage`, `EmergencyInfo` (summary + full data),
//! `ConsentDecision`/`ConsentState`, `AuditEntry`, `ConsentRecord`, `ConsentCorrection`,
//! `ExplanationRecord`, `ServiceFailure`, `CardFailure`, `TokenKind`, the two requests
//! (`QualificationRequest`, `EmergencyInquiry`), ids, `PatientRef` (insured number, or
//! 公費負担者番号 + 受給者番号 for 医療扶助; `audit_key`); `Sensitive<T>` and hand-written `Debug` that
//! redact patient data; `json_error_text` (a JSON error as a log may carry it: kind and
//! position, never the rejected value)

mod emergency;
mod ids;
mod records;
mod requests;

pub use emergency::*;
pub use ids::*;
pub use records::*;
pub use requests::*;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A JSON error as a log line may carry it: its kind and where, never its message.
/// serde_json's message quotes the value it rejected (`invalid type: string "…"`, `unknown
/// variant `…``), and in an answer about a patient that value can be a drug or a name.
pub fn json_error_text(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data (a field of the wrong type or value)",
        serde_json::error::Category::Eof => "cut short",
    };
    format!(
        "JSON {kind} error at line {} column {}",
        e.line(),
        e.column()
    )
}

/// Why a request to the eligibility system failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceFailure {
    /// The line is down or the server unreachable: wait for the link, then resend.
    LinkDown,
    /// No answer in time: treated like a lost link.
    Timeout,
    /// The server refused our unit certificate.
    CertificateRefused,
    /// The server's certificate is not the provisioned one.
    ServerCertificateWrong,
    /// The card's certificate is unknown, revoked or expired at the eligibility system.
    CardNotAccepted,
    /// No coverage found for this card.
    NoCoverage,
    /// The answer did not follow the protocol.
    Protocol,
    /// Patient-related requests are refused because the IPsec tunnel is down.
    TunnelRequired,
}

impl ServiceFailure {
    /// Whether the request should wait for the link and be resent automatically.
    pub fn waits_for_link(self) -> bool {
        matches!(self, ServiceFailure::LinkDown | ServiceFailure::Timeout)
    }
}

/// Why a card could not be read, in kinds a crew can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardFailure {
    NoReader,
    ReaderServiceDown,
    NotMyNumberCard,
    RemovedDuringRead,
    Unresponsive,
    ReaderBusy,
    /// The card's certificate is expired or not yet valid.
    CertificateNotValid,
    /// An iPhone its owner has not unlocked: only the owner can (Face ID / Touch ID).
    PhoneLocked,
}

/// Text that must never appear in logs: `Debug` and `Display` print `[redacted]`.
///
/// The value is still serialised as itself, because the wire and the encrypted store need it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Sensitive<T>(pub T);

impl<T> Sensitive<T> {
    /// The value itself, for rendering on screen or sending on the wire.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Sensitive(value)
    }
}

/// A wall-clock instant in milliseconds since the Unix epoch.
///
/// The session state machine never reads the clock; the effects layer passes this in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time from the system clock (effects layer only).
    pub fn now() -> Self {
        let now = time::OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// The instant in Japan Standard Time (UTC+9, no DST), for what crews and admins read.
    pub fn in_jst(self) -> Option<time::OffsetDateTime> {
        let jst = time::UtcOffset::from_hms(9, 0, 0).ok()?;
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .map(|t| t.to_offset(jst))
    }

    /// The calendar date in Japan at this instant: what a crew calls "today", whatever the
    /// machine's clock zone.
    pub fn jst_date(self) -> time::Date {
        self.in_jst()
            .map(|t| t.date())
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().date())
    }

    /// RFC 3339 in UTC, for reports and exports.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
}

/// Sex as recorded on the coverage (the card's DF25 uses 1 / 2 / 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    NotKnown,
}

impl Sex {
    /// How the screen shows it.
    pub fn label_ja(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
            Sex::NotKnown => "不明",
        }
    }
}

/// Whole years of age on `today`, as a crew would say it.
pub fn age_on(birth: time::Date, today: time::Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn sensitive_never_prints_its_value() {
        let name = Sensitive("山田 太郎".to_string());
        assert_eq!(format!("{name:?}"), "[redacted]");
        assert_eq!(format!("{name}"), "[redacted]");
        assert_eq!(name.expose(), "山田 太郎");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"山田 太郎\"");
    }

    #[test]
    fn age_counts_birthdays_not_years() {
        assert_eq!(age_on(date!(1950 - 06 - 15), date!(2026 - 06 - 14)), 75);
        assert_eq!(age_on(date!(1950 - 06 - 15), date!(2026 - 06 - 15)), 76);
        assert_eq!(age_on(date!(2020 - 02 - 29), date!(2021 - 02 - 28)), 0);
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_500).millis_since(Timestamp(500)), 1_000);
    }
}
