//! The hub's storage through sqlx's `Any` driver: SQLite embedded by default (`serve` needs
//! no set-up), PostgreSQL for a prefecture that runs two hubs on one database (every
//! event is also a `NOTIFY`, so a hub wakes the streams of the other). The same SQL for
//! both (`$n` parameters, `ON CONFLICT`, `RETURNING`), a schema each. Runtime queries, no
//! compile-time checked macros, so building needs no database.
//!
//! What is in it: hospitals, staff (Argon2id password hashes, TOTP secrets sealed under the
//! master key), sessions (the SHA-256 of each token, never the token), trusted
//! fire-department CAs, cases (sealed, each under its own key), events (ids and kinds only:
//! what the pages and tablets replay from `Last-Event-ID`), the audit trail and per-case
//! counts (no clinical content in any of the last three). `secure_delete` overwrites what a
//! delete frees and the WAL is truncated after a case is destroyed, so a destroyed case
//! leaves no bytes in the files.

use super::HubError;
use super::seal::SealKey;
use crate::handoff::{Case, HospitalCode, Packet};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::{AnyPoolOptions, AnyRow};
use std::path::Path;

/// The database file in the data dir.
pub const DB_FILE: &str = "hub.sqlite3";

/// The channel every event is announced on (PostgreSQL).
pub const NOTIFY_CHANNEL: &str = "mynakyukyu_hub_events";

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS hospitals (code TEXT PRIMARY KEY, name TEXT NOT NULL, departments TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS staff (id INTEGER PRIMARY KEY AUTOINCREMENT, hospital TEXT NOT NULL REFERENCES hospitals(code), login TEXT NOT NULL UNIQUE, name TEXT NOT NULL, password_hash TEXT NOT NULL, totp_sealed BLOB NOT NULL, last_step INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, locks INTEGER NOT NULL DEFAULT 0, locked_until_ms INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, staff_id INTEGER NOT NULL REFERENCES staff(id), csrf TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS trusted_cas (fingerprint TEXT PRIMARY KEY, pem TEXT NOT NULL, added_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cases (id TEXT PRIMARY KEY, unit TEXT NOT NULL, stage TEXT NOT NULL, key_sealed BLOB NOT NULL, body_sealed BLOB NOT NULL, asked_ms INTEGER NOT NULL, ended_ms INTEGER, rev INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS case_hospitals (case_id TEXT NOT NULL, hospital TEXT NOT NULL, PRIMARY KEY (case_id, hospital))",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, audience TEXT NOT NULL, kind TEXT NOT NULL, at_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_audience ON events (audience, seq)",
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, hospital TEXT, case_id TEXT, action TEXT NOT NULL, version INTEGER)",
    "CREATE TABLE IF NOT EXISTS case_stats (case_id TEXT PRIMARY KEY, unit TEXT NOT NULL, asked_ms INTEGER NOT NULL, hospitals_asked INTEGER NOT NULL, declines INTEGER NOT NULL, time_to_acceptance_ms INTEGER, outcome TEXT NOT NULL)",
];

const POSTGRES_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS hospitals (code TEXT PRIMARY KEY, name TEXT NOT NULL, departments TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS staff (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, hospital TEXT NOT NULL REFERENCES hospitals(code), login TEXT NOT NULL UNIQUE, name TEXT NOT NULL, password_hash TEXT NOT NULL, totp_sealed BYTEA NOT NULL, last_step BIGINT NOT NULL DEFAULT 0, failures BIGINT NOT NULL DEFAULT 0, locks BIGINT NOT NULL DEFAULT 0, locked_until_ms BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, staff_id BIGINT NOT NULL REFERENCES staff(id), csrf TEXT NOT NULL, expires_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS trusted_cas (fingerprint TEXT PRIMARY KEY, pem TEXT NOT NULL, added_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cases (id TEXT PRIMARY KEY, unit TEXT NOT NULL, stage TEXT NOT NULL, key_sealed BYTEA NOT NULL, body_sealed BYTEA NOT NULL, asked_ms BIGINT NOT NULL, ended_ms BIGINT, rev BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS case_hospitals (case_id TEXT NOT NULL, hospital TEXT NOT NULL, PRIMARY KEY (case_id, hospital))",
    "CREATE TABLE IF NOT EXISTS events (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, case_id TEXT NOT NULL, audience TEXT NOT NULL, kind TEXT NOT NULL, at_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_audience ON events (audience, seq)",
    "CREATE TABLE IF NOT EXISTS audit (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, hospital TEXT, case_id TEXT, action TEXT NOT NULL, version BIGINT)",
    "CREATE TABLE IF NOT EXISTS case_stats (case_id TEXT PRIMARY KEY, unit TEXT NOT NULL, asked_ms BIGINT NOT NULL, hospitals_asked BIGINT NOT NULL, declines BIGINT NOT NULL, time_to_acceptance_ms BIGINT, outcome TEXT NOT NULL)",
];

/// Which database a store speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What the hub keeps of one case, sealed as one value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseBody {
    pub case: Case,
    pub packet: Option<Packet>,
    /// The tablet's incident id (echoed back; ties the hub's case to the tablet's records).
    pub incident_id: String,
    /// When each packet version was made (ms since the epoch): an ETA counts from it.
    #[serde(default)]
    pub version_at_ms: Vec<(u32, i64)>,
}

impl CaseBody {
    /// When the ambulance is expected: the newest ETA, counted from when it was given.
    pub fn eta_at_ms(&self) -> Option<i64> {
        let mut eta = self
            .case
            .disclosure
            .eta_minutes
            .map(|m| self.case.asked_at_ms + i64::from(m) * 60_000);
        for (version, change) in &self.case.changes {
            if let crate::handoff::Change::Eta { minutes } = change
                && let Some((_, at)) = self.version_at_ms.iter().find(|(v, _)| v == version)
            {
                eta = Some(at + i64::from(*minutes) * 60_000);
            }
        }
        eta
    }
}

/// One case as read back.
#[derive(Clone, Debug)]
pub struct StoredCase {
    pub id: String,
    pub unit: String,
    pub rev: i64,
    pub body: CaseBody,
}

/// A hospital as the hub knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hospital {
    pub code: HospitalCode,
    pub name: String,
    pub departments: Vec<String>,
}

/// A staff member's sign-in record (its `Debug` leaves out the hash and the sealed secret).
#[derive(Clone)]
pub struct StaffRow {
    pub id: i64,
    pub hospital: HospitalCode,
    pub login: String,
    pub name: String,
    pub password_hash: String,
    pub totp_sealed: Vec<u8>,
    pub last_step: i64,
    pub failures: i64,
    pub locks: i64,
    pub locked_until_ms: i64,
}

impl std::fmt::Debug for StaffRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffRow")
            .field("id", &self.id)
            .field("hospital", &self.hospital)
            .field("login", &self.login)
            .field("failures", &self.failures)
            .field("locks", &self.locks)
            .field("locked_until_ms", &self.locked_until_ms)
            .finish_non_exhaustive()
    }
}

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub staff: StaffRow,
    pub csrf: String,
}

/// One event a page or tablet is told of (no content: it re-reads what it may see).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub case_id: String,
    pub kind: String,
}

/// An audit row (who, what, which case and version; never clinical content).
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub hospital: Option<String>,
    pub case_id: Option<String>,
    pub action: String,
    pub version: Option<i64>,
}

/// The counts a department keeps per case for its 搬送困難事案 statistics.
#[derive(Clone, Debug, Serialize)]
pub struct CaseStats {
    pub case_id: String,
    pub unit: String,
    pub asked_ms: i64,
    pub hospitals_asked: i64,
    pub declines: i64,
    pub time_to_acceptance_ms: Option<i64>,
    pub outcome: String,
}

/// The hub's database.
#[derive(Clone)]
pub struct HubStore {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

/// The audience name of a unit's tablet and of a hospital's pages in the events table.
pub fn unit_audience(unit: &str) -> String {
    format!("unit:{unit}")
}
pub fn hospital_audience(code: &HospitalCode) -> String {
    format!("hospital:{}", code.0)
}

impl HubStore {
    /// Open (creating) the embedded SQLite database in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<HubStore, HubError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| HubError::Storage(format!("{}: {e}", data_dir.display())))?;
        let url = format!("sqlite://{}?mode=rwc", data_dir.join(DB_FILE).display());
        let store = Self::open_url(&url).await?;
        // the database holds sealed values only, but its files are still the owner's
        use std::os::unix::fs::PermissionsExt;
        for f in [DB_FILE, "hub.sqlite3-wal", "hub.sqlite3-shm"] {
            let p = data_dir.join(f);
            if p.exists() {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(store)
    }

    /// Open a database by URL: `sqlite://PATH?mode=rwc` or `postgres://…` (created tables
    /// where missing).
    pub async fn open_url(url: &str) -> Result<HubStore, HubError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(HubError::Storage(
                "the database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for readers beside the writer; secure_delete so that what a
                        // delete frees is overwritten, not left in free pages
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA secure_delete = ON",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 5000",
                        ] {
                            sqlx::Executor::execute(&mut *conn, pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let schema = match backend {
            Backend::Sqlite => SQLITE_SCHEMA,
            Backend::Postgres => POSTGRES_SCHEMA,
        };
        for statement in schema {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(HubStore {
            pool,
            backend,
            url: url.to_string(),
        })
    }

    /// Every row of `query`, each made into a `T` by `row`.
    async fn all<'q, T>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        row: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, HubError> {
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(row).collect::<Result<Vec<_>, _>>()?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // --- hospitals, staff, CAs ---

    pub async fn add_hospital(&self, h: &Hospital) -> Result<(), HubError> {
        sqlx::query("INSERT INTO hospitals (code, name, departments) VALUES ($1, $2, $3) ON CONFLICT(code) DO UPDATE SET name = excluded.name, departments = excluded.departments")
            .bind(&h.code.0)
            .bind(&h.name)
            .bind(h.departments.join("\n"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn hospitals(&self) -> Result<Vec<Hospital>, HubError> {
        self.all(
            sqlx::query("SELECT code, name, departments FROM hospitals ORDER BY code"),
            |r| {
                Ok(Hospital {
                    code: HospitalCode(r.try_get("code")?),
                    name: r.try_get("name")?,
                    departments: r
                        .try_get::<String, _>("departments")?
                        .split('\n')
                        .filter(|d| !d.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            },
        )
        .await
    }

    pub async fn hospital(&self, code: &HospitalCode) -> Result<Option<Hospital>, HubError> {
        Ok(self
            .hospitals()
            .await?
            .into_iter()
            .find(|h| &h.code == code))
    }

    pub async fn add_staff(
        &self,
        hospital: &HospitalCode,
        login: &str,
        name: &str,
        password_hash: &str,
        totp_sealed: &[u8],
    ) -> Result<(), HubError> {
        sqlx::query("INSERT INTO staff (hospital, login, name, password_hash, totp_sealed) VALUES ($1, $2, $3, $4, $5)")
            .bind(&hospital.0)
            .bind(login)
            .bind(name)
            .bind(password_hash)
            .bind(totp_sealed)
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    HubError::Admin(format!("a staff member with login {login:?} exists already"))
                }
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    HubError::Admin(format!("no hospital with code {:?}: add it first", hospital.0))
                }
                _ => HubError::from(e),
            })?;
        Ok(())
    }

    fn staff_row(r: &AnyRow) -> Result<StaffRow, sqlx::Error> {
        Ok(StaffRow {
            id: r.try_get("id")?,
            hospital: HospitalCode(r.try_get("hospital")?),
            login: r.try_get("login")?,
            name: r.try_get("name")?,
            password_hash: r.try_get("password_hash")?,
            totp_sealed: r.try_get("totp_sealed")?,
            last_step: r.try_get("last_step")?,
            failures: r.try_get("failures")?,
            locks: r.try_get("locks")?,
            locked_until_ms: r.try_get("locked_until_ms")?,
        })
    }

    pub async fn staff_by_login(&self, login: &str) -> Result<Option<StaffRow>, HubError> {
        let r = sqlx::query("SELECT * FROM staff WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(Self::staff_row).transpose()?)
    }

    pub async fn staff_count(&self) -> Result<i64, HubError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM staff")
            .fetch_one(&self.pool)
            .await
            .map_err(HubError::from)
    }

    /// Records a failed sign-in: after `max` failures in a row the account locks for the
    /// next step of `steps_ms` (the last step repeats).
    pub async fn sign_in_failed(
        &self,
        staff: &StaffRow,
        now_ms: i64,
        max: i64,
        steps_ms: &[i64],
    ) -> Result<(), HubError> {
        // counted in the database, not from the row read before: guesses at once from many
        // addresses each count
        let (failures, locks): (i64, i64) = sqlx::query_as(
            "UPDATE staff SET failures = failures + 1 WHERE id = $1 RETURNING failures, locks",
        )
        .bind(staff.id)
        .fetch_one(&self.pool)
        .await?;
        if failures >= max {
            let step = steps_ms
                .get(locks as usize)
                .or(steps_ms.last())
                .copied()
                .unwrap_or(0);
            sqlx::query("UPDATE staff SET failures = 0, locks = locks + 1, locked_until_ms = $1 WHERE id = $2 AND failures >= $3")
                .bind(now_ms + step)
                .bind(staff.id)
                .bind(max)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A good sign-in: failures cleared, the TOTP step used up.
    pub async fn sign_in_succeeded(&self, staff: &StaffRow, step: i64) -> Result<(), HubError> {
        let changed = sqlx::query(
            "UPDATE staff SET failures = 0, locks = 0, last_step = $1 WHERE id = $2 AND last_step < $3",
        )
        .bind(step)
        .bind(staff.id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        if changed.rows_affected() == 0 {
            // another sign-in used this code first
            return Err(HubError::Replayed);
        }
        Ok(())
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        staff_id: i64,
        csrf: &str,
        expires_ms: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, staff_id, csrf, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(staff_id)
        .bind(csrf)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionRow>, HubError> {
        let r = sqlx::query("SELECT staff.*, sessions.csrf AS csrf FROM sessions JOIN staff ON staff.id = sessions.staff_id WHERE token_hash = $1 AND expires_ms > $2")
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(SessionRow {
                staff: Self::staff_row(&r)?,
                csrf: r.try_get("csrf")?,
            })),
        }
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<(), HubError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn trust_ca(
        &self,
        fingerprint: &str,
        pem: &str,
        now_ms: i64,
    ) -> Result<(), HubError> {
        sqlx::query("INSERT INTO trusted_cas (fingerprint, pem, added_ms) VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING")
            .bind(fingerprint)
            .bind(pem)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn trusted_cas(&self) -> Result<Vec<String>, HubError> {
        sqlx::query_scalar("SELECT pem FROM trusted_cas ORDER BY added_ms")
            .fetch_all(&self.pool)
            .await
            .map_err(HubError::from)
    }

    // --- cases ---

    fn seal_body(master: &SealKey, id: &str, body: &CaseBody) -> (Vec<u8>, Vec<u8>) {
        let case_key = SealKey::generate();
        // a CaseBody is plain data: serialising it cannot fail
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(body).expect("case body to JSON"));
        (
            master.seal(id.as_bytes(), case_key.bytes()),
            case_key.seal(id.as_bytes(), &plain),
        )
    }

    fn open_body(
        master: &SealKey,
        id: &str,
        key_sealed: &[u8],
        body_sealed: &[u8],
    ) -> Result<CaseBody, HubError> {
        let key = master
            .open(id.as_bytes(), key_sealed)
            .and_then(|k| SealKey::from_slice(&k))
            .ok_or_else(|| HubError::Sealed(id.to_string()))?;
        let plain = key
            .open(id.as_bytes(), body_sealed)
            .ok_or_else(|| HubError::Sealed(id.to_string()))?;
        serde_json::from_slice(&plain).map_err(|_| HubError::Sealed(id.to_string()))
    }

    pub async fn insert_case(
        &self,
        master: &SealKey,
        id: &str,
        unit: &str,
        body: &CaseBody,
    ) -> Result<(), HubError> {
        let (key_sealed, body_sealed) = Self::seal_body(master, id, body);
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO cases (id, unit, stage, key_sealed, body_sealed, asked_ms, rev) VALUES ($1, $2, $3, $4, $5, $6, 1)")
            .bind(id)
            .bind(unit)
            .bind(stage_name(&body.case))
            .bind(key_sealed)
            .bind(body_sealed)
            .bind(body.case.asked_at_ms)
            .execute(&mut *tx)
            .await?;
        for h in &body.case.candidates {
            sqlx::query("INSERT INTO case_hospitals (case_id, hospital) VALUES ($1, $2)")
                .bind(id)
                .bind(&h.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn case(&self, master: &SealKey, id: &str) -> Result<Option<StoredCase>, HubError> {
        let r =
            sqlx::query("SELECT id, unit, rev, key_sealed, body_sealed FROM cases WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = r else { return Ok(None) };
        let key_sealed: Vec<u8> = r.try_get("key_sealed")?;
        let body_sealed: Vec<u8> = r.try_get("body_sealed")?;
        Ok(Some(StoredCase {
            id: r.try_get("id")?,
            unit: r.try_get("unit")?,
            rev: r.try_get("rev")?,
            body: Self::open_body(master, id, &key_sealed, &body_sealed)?,
        }))
    }

    /// Writes a changed case if nobody changed it since `rev` was read (two hubs on one
    /// database, or two answers at once): false means read again and retry.
    pub async fn update_case(
        &self,
        master: &SealKey,
        stored: &StoredCase,
        ended_ms: Option<i64>,
    ) -> Result<bool, HubError> {
        let (key_sealed, body_sealed) = Self::seal_body(master, &stored.id, &stored.body);
        let done = sqlx::query("UPDATE cases SET stage = $1, key_sealed = $2, body_sealed = $3, rev = rev + 1, ended_ms = COALESCE($4, ended_ms) WHERE id = $5 AND rev = $6")
            .bind(stage_name(&stored.body.case))
            .bind(key_sealed)
            .bind(body_sealed)
            .bind(ended_ms)
            .bind(&stored.id)
            .bind(stored.rev)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The ids of the cases `hospital` was asked about (visibility is the case's to say).
    pub async fn cases_of_hospital(
        &self,
        hospital: &HospitalCode,
    ) -> Result<Vec<String>, HubError> {
        sqlx::query_scalar("SELECT case_hospitals.case_id FROM case_hospitals JOIN cases ON cases.id = case_hospitals.case_id WHERE hospital = $1 ORDER BY cases.asked_ms DESC")
            .bind(&hospital.0)
            .fetch_all(&self.pool)
            .await
            .map_err(HubError::from)
    }

    /// Destroys a case: its row and its case key, the list of its candidates; its counts
    /// stay (no clinical content). The WAL is checkpointed and truncated so that no old page
    /// holding the sealed body is left in it.
    pub async fn destroy_case(&self, stored: &StoredCase, outcome: &str) -> Result<(), HubError> {
        let case = &stored.body.case;
        let declines = case
            .answers
            .iter()
            .flatten()
            .filter(|a| matches!(a.answer, crate::handoff::Answer::Decline { .. }))
            .count() as i64;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO case_stats (case_id, unit, asked_ms, hospitals_asked, declines, time_to_acceptance_ms, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_id) DO NOTHING")
            .bind(&stored.id)
            .bind(&stored.unit)
            .bind(case.asked_at_ms)
            .bind(case.hospitals_asked() as i64)
            .bind(declines)
            .bind(case.time_to_acceptance_ms())
            .bind(outcome)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM cases WHERE id = $1")
            .bind(&stored.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM case_hospitals WHERE case_id = $1")
            .bind(&stored.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Cases due for destruction at `now_ms`: arrived more than `retention_ms` ago, closed
    /// (withdrawn), or asked more than `stale_ms` ago and never arrived.
    pub async fn due_for_destruction(
        &self,
        now_ms: i64,
        retention_ms: i64,
        stale_ms: i64,
    ) -> Result<Vec<String>, HubError> {
        sqlx::query_scalar("SELECT id FROM cases WHERE (stage = 'arrived' AND ended_ms <= $1) OR stage = 'closed' OR (stage IN ('asking', 'decided') AND asked_ms <= $2)")
            .bind(now_ms - retention_ms)
            .bind(now_ms - stale_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(HubError::from)
    }

    /// Expired sessions, and events older than `events_before_ms` (a stream that was away
    /// longer starts from the page's list, not from replay): neither grows without bound.
    pub async fn prune(&self, now_ms: i64, events_before_ms: i64) -> Result<(), HubError> {
        sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM events WHERE at_ms < $1")
            .bind(events_before_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session_count(&self) -> Result<i64, HubError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn open_case_count(&self) -> Result<i64, HubError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM cases")
            .fetch_one(&self.pool)
            .await
            .map_err(HubError::from)
    }

    pub async fn stats(&self) -> Result<Vec<CaseStats>, HubError> {
        self.all(
            sqlx::query("SELECT * FROM case_stats ORDER BY asked_ms"),
            |r| {
                Ok(CaseStats {
                    case_id: r.try_get("case_id")?,
                    unit: r.try_get("unit")?,
                    asked_ms: r.try_get("asked_ms")?,
                    hospitals_asked: r.try_get("hospitals_asked")?,
                    declines: r.try_get("declines")?,
                    time_to_acceptance_ms: r.try_get("time_to_acceptance_ms")?,
                    outcome: r.try_get("outcome")?,
                })
            },
        )
        .await
    }

    // --- events and audit ---

    pub async fn push_event(
        &self,
        case_id: &str,
        audience: &str,
        kind: &str,
        at_ms: i64,
    ) -> Result<i64, HubError> {
        let seq: i64 = sqlx::query_scalar("INSERT INTO events (case_id, audience, kind, at_ms) VALUES ($1, $2, $3, $4) RETURNING seq")
            .bind(case_id)
            .bind(audience)
            .bind(kind)
            .bind(at_ms)
            .fetch_one(&self.pool)
            .await?;
        if self.backend == Backend::Postgres {
            // the other hubs on this database wake their streams on it
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(seq.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(seq)
    }

    pub async fn events_after(
        &self,
        audience: &str,
        after: i64,
    ) -> Result<Vec<EventRow>, HubError> {
        self.all(sqlx::query("SELECT seq, case_id, kind FROM events WHERE audience = $1 AND seq > $2 ORDER BY seq LIMIT 500")
            .bind(audience)
            .bind(after), |r| {
            Ok(EventRow {
                    seq: r.try_get("seq")?,
                    case_id: r.try_get("case_id")?,
                    kind: r.try_get("kind")?,
                })
        })
        .await
    }

    pub async fn last_event(&self) -> Result<i64, HubError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(HubError::from)
    }

    pub async fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        hospital: Option<&HospitalCode>,
        case_id: Option<&str>,
        action: &str,
        version: Option<u32>,
    ) -> Result<(), HubError> {
        sqlx::query("INSERT INTO audit (at_ms, actor, hospital, case_id, action, version) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(at_ms)
            .bind(actor)
            .bind(hospital.map(|h| h.0.as_str()))
            .bind(case_id)
            .bind(action)
            .bind(version.map(i64::from))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_rows(&self) -> Result<Vec<AuditRow>, HubError> {
        self.all(sqlx::query("SELECT * FROM audit ORDER BY seq"), |r| {
            Ok(AuditRow {
                seq: r.try_get("seq")?,
                at_ms: r.try_get("at_ms")?,
                actor: r.try_get("actor")?,
                hospital: r.try_get("hospital")?,
                case_id: r.try_get("case_id")?,
                action: r.try_get("action")?,
                version: r.try_get("version")?,
            })
        })
        .await
    }
}

fn stage_name(case: &Case) -> &'static str {
    match case.stage {
        crate::handoff::Stage::Asking => "asking",
        crate::handoff::Stage::Decided => "decided",
        crate::handoff::Stage::Arrived => "arrived",
        crate::handoff::Stage::Closed => "closed",
    }
}
