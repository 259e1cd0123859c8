//! Database access: every SQL statement loglake runs is in this module.
//!
//! One code path serves PostgreSQL and the embedded SQLite default through sqlx's `Any`
//! driver. The two dialects differ only in how a timestamp or JSON value is written, so each
//! statement is written once with `$n` placeholders and the few typed values go through
//! [`Dialect::ts`]/[`Dialect::json`]. Migrations are compiled into the binary (one folder per
//! dialect under `migrations/`) so a deployed binary never depends on the source tree.
//!
//! The pipeline is synchronous (rayon does the parallel work); a small current-thread tokio
//! runtime owned here drives sqlx, so async never leaks into the stages.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};

use crate::detectors::SavedModel;
use crate::records::EvaluationRow;
use crate::secrets::redact_url;

pub mod alerts;
pub mod api;
mod connect;
mod detections;
pub mod feedback;
mod insert;
mod lease;
mod retention;
mod runs;
pub mod status;
pub mod tokens;
mod wal;
use connect::probe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A placeholder that takes a timestamp written by [`format_ts`].
    fn ts(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("CAST(${n} AS TIMESTAMPTZ)"),
            Dialect::Sqlite => format!("${n}"),
        }
    }
    fn date(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("CAST(${n} AS DATE)"),
            Dialect::Sqlite => format!("${n}"),
        }
    }
    fn json(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("CAST(${n} AS JSONB)"),
            Dialect::Sqlite => format!("${n}"),
        }
    }
    /// The strings of parameter `n`, a JSON array of strings, as a one-column subquery: many
    /// ids in one statement and one parameter.
    fn json_strings(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("SELECT jsonb_array_elements_text(CAST(${n} AS JSONB))"),
            Dialect::Sqlite => format!("SELECT value FROM json_each(${n})"),
        }
    }
    /// A timestamp column as milliseconds since the epoch.
    fn epoch_millis(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST(EXTRACT(EPOCH FROM {column}) * 1000 AS BIGINT)"),
            Dialect::Sqlite => {
                format!("CAST(ROUND((julianday({column}) - 2440587.5) * 86400000) AS BIGINT)")
            }
        }
    }
    /// A column read back as text, whatever its type in this dialect.
    fn text(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({column} AS TEXT)"),
            Dialect::Sqlite => column.to_string(),
        }
    }
}

/// Timestamps as UTC text both dialects read: `2026-11-20 14:05:00.000` (+ zone for Postgres).
pub fn format_ts(dialect: Dialect, ts: DateTime<Utc>) -> String {
    let base = ts.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    match dialect {
        Dialect::Postgres => format!("{base}+00:00"),
        Dialect::Sqlite => base,
    }
}

/// An anomaly as compared across runs: (id, entity, detector, score, reason).
pub type AnomalyFingerprint = (String, String, String, f64, String);

/// Pool options; for SQLite, what every connection of the pool is set up with (a PRAGMA
/// holds for the connection that ran it only):
/// - a busy timeout instead of an immediate "database is locked" when two stages overlap;
/// - temporary tables and statement journals in memory: 05-detect's multi-row upserts keep a
///   statement journal, which on disk cost as many page writes as the database itself
///   (21,000 of 49,600 writes for 12,721 anomalies);
/// - 16 KiB pages for a database file not yet written (an existing one keeps its pages): an
///   anomaly's row is about 2 KB, evidence and all, and with SQLite's default 4 KiB pages
///   inserting a million HDFS lines' 12,721 anomalies took 0.20–0.21 s against 0.16 s
///   (`sqlite3` shell, the same rows and indexes).
fn pool_options(dialect: Dialect) -> AnyPoolOptions {
    let options = AnyPoolOptions::new();
    if dialect != Dialect::Sqlite {
        return options;
    }
    options.after_connect(|conn, _| {
        Box::pin(async move {
            for pragma in [
                "PRAGMA page_size=16384",
                "PRAGMA busy_timeout=30000",
                "PRAGMA temp_store=MEMORY",
            ] {
                sqlx::query(pragma).execute(&mut *conn).await?;
            }
            Ok(())
        })
    })
}

/// Turn off SQLite's count of the memory it has allocated, once, before its first connection.
/// With the count on (the bundled library's default), every allocation and free SQLite makes
/// takes a process-wide mutex to update it: a fifth of the time 05-detect's anomaly rows spent
/// inside SQLite. loglake never asks SQLite how much memory it holds.
///
/// `sqlite3_config` may only be called before SQLite initialises: the first connection does
/// that, and a later call is refused with `SQLITE_MISUSE`, which is harmless here (the count
/// stays on; nothing else changes).
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; called once, before this process
        // opens its first SQLite connection (`Database::connect` is the only way in).
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite's memory statistics stay on (it was initialised already)"
            );
        }
    });
}

pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    runtime: tokio::runtime::Runtime,
    display_url: String,
    /// The SQLite URL a connection of its own is opened with (see [`wal`]).
    sqlite_url: Option<String>,
    /// The URL connections of their own are opened with (leases, see [`lease`]).
    connect_url: String,
    /// Leases held, each on a connection of its own, released when the database is dropped.
    leases: std::sync::Mutex<Vec<(String, lease::Held)>>,
    checkpointer: wal::Checkpointer,
}

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "incidents and evaluations",
        include_str!("../../migrations/postgres/0002_incidents_evaluations.sql"),
    ),
    (
        3,
        "skipped runs, analyst views, reader role",
        include_str!("../../migrations/postgres/0003_operations.sql"),
    ),
    (
        4,
        "anomalies.service, indexes, severity checks, JSONB model documents",
        include_str!("../../migrations/postgres/0004_analyst_schema.sql"),
    ),
    (
        5,
        "anomalies.incident_id references incidents",
        include_str!("../../migrations/postgres/0005_incident_foreign_key.sql"),
    ),
    (
        6,
        "alerts sent per incident and receiver",
        include_str!("../../migrations/postgres/0006_alerts.sql"),
    ),
    (
        7,
        "operator feedback",
        include_str!("../../migrations/postgres/0007_feedback.sql"),
    ),
    (
        8,
        "window of a verdict",
        include_str!("../../migrations/postgres/0008_feedback_window.sql"),
    ),
    (
        9,
        "API tokens",
        include_str!("../../migrations/postgres/0009_api_tokens.sql"),
    ),
    (
        10,
        "provisional verdicts",
        include_str!("../../migrations/postgres/0010_provisional.sql"),
    ),
    (
        11,
        "detectors' findings as votes of the ensemble's verdict",
        include_str!("../../migrations/postgres/0011_votes.sql"),
    ),
];
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "incidents and evaluations",
        include_str!("../../migrations/sqlite/0002_incidents_evaluations.sql"),
    ),
    (
        3,
        "skipped runs, analyst views",
        include_str!("../../migrations/sqlite/0003_operations.sql"),
    ),
    (
        4,
        "anomalies.service, indexes, severity checks",
        include_str!("../../migrations/sqlite/0004_analyst_schema.sql"),
    ),
    (
        5,
        "anomalies.incident_id references incidents",
        include_str!("../../migrations/sqlite/0005_incident_foreign_key.sql"),
    ),
    (
        6,
        "alerts sent per incident and receiver",
        include_str!("../../migrations/sqlite/0006_alerts.sql"),
    ),
    (
        7,
        "operator feedback",
        include_str!("../../migrations/sqlite/0007_feedback.sql"),
    ),
    (
        8,
        "window of a verdict",
        include_str!("../../migrations/sqlite/0008_feedback_window.sql"),
    ),
    (
        9,
        "API tokens",
        include_str!("../../migrations/sqlite/0009_api_tokens.sql"),
    ),
    (
        10,
        "provisional verdicts",
        include_str!("../../migrations/sqlite/0010_provisional.sql"),
    ),
    (
        11,
        "detectors' findings as votes of the ensemble's verdict",
        include_str!("../../migrations/sqlite/0011_votes.sql"),
    ),
];

impl Database {
    /// Connect to `url`, or to the embedded SQLite file when `url` is empty.
    pub fn connect(url: &str, default_sqlite: &Path, max_connections: u32) -> Result<Self> {
        let url = if url.trim().is_empty() {
            if let Some(parent) = default_sqlite.parent() {
                std::fs::create_dir_all(parent)?;
            }
            format!("sqlite://{}", default_sqlite.display())
        } else {
            url.trim().to_string()
        };
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            anyhow::bail!(
                "unsupported database URL {} (use postgres://… or sqlite://…, or leave it empty for the embedded SQLite file)",
                redact_url(&url)
            );
        };
        // A sqlite:// URL whose file does not exist yet is created, as users expect.
        let connect_url = if dialect == Dialect::Sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.clone()
        };
        sqlx::any::install_default_drivers();
        if dialect == Dialect::Sqlite {
            sqlite_without_memory_statistics();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the database runtime")?;
        let display_url = redact_url(&url);
        runtime
            .block_on(probe(&connect_url))
            .with_context(|| format!("connecting to the database at {display_url}"))?;
        let pool = runtime
            .block_on(
                pool_options(dialect)
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .connect(&connect_url),
            )
            .with_context(|| format!("connecting to the database at {display_url} (is it running, and is the URL right?)"))?;
        if dialect == Dialect::Sqlite {
            // WAL lets report/SQL readers work while a stage writes (it is kept in the file).
            runtime.block_on(async {
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&pool)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })?;
        }
        Ok(Self {
            pool,
            dialect,
            runtime,
            display_url,
            sqlite_url: (dialect == Dialect::Sqlite).then(|| connect_url.clone()),
            connect_url,
            leases: Default::default(),
            checkpointer: wal::Checkpointer::default(),
        })
    }

    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// Apply pending migrations (idempotent).
    pub fn migrate(&self) -> Result<()> {
        self.migrate_up_to(i64::MAX)
    }

    /// Apply the migrations numbered up to `version` (tests build older schemas with it).
    fn migrate_up_to(&self, version: i64) -> Result<()> {
        let set = match self.dialect {
            Dialect::Postgres => POSTGRES_MIGRATIONS,
            Dialect::Sqlite => SQLITE_MIGRATIONS,
        };
        let migrations = set
            .iter()
            .filter(|(v, _, _)| *v <= version)
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    Cow::Borrowed(*d),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        self.runtime
            .block_on(migrator.run(&self.pool))
            .with_context(|| format!("applying migrations to {}", self.display_url))?;
        Ok(())
    }

    /// Register a saved model (its file at `path`) in the `models` table; idempotent.
    pub fn register_model(&self, m: &SavedModel, path: &str) -> Result<()> {
        let d = self.dialect;
        let sql = format!(
            "INSERT INTO models (model_version, source, granularity, detector, created_at, train_from, \
             train_to, train_rows, features, params, threshold, path) \
             VALUES ($1, $2, $3, $4, {}, {}, {}, $8, {}, {}, $11, $12) \
             ON CONFLICT (model_version) DO NOTHING",
            d.ts(5),
            d.date(6),
            d.date(7),
            d.json(9),
            d.json(10)
        );
        self.runtime.block_on(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(m.model_version.clone())
                .bind(m.source.clone())
                .bind(m.granularity.as_str())
                .bind(m.detector.clone())
                .bind(format_ts(d, m.created_at))
                .bind(m.train_from.to_string())
                .bind(m.train_to.to_string())
                .bind(m.train_rows as i64)
                .bind(serde_json::to_string(&m.features).unwrap_or_default())
                .bind(m.params.to_string())
                .bind(m.threshold)
                .bind(path.to_string())
                .execute(&self.pool),
        )?;
        Ok(())
    }

    /// Insert or update evaluation rows (keyed by source, dates, labels, detector, granularity).
    pub fn upsert_evaluations(&self, rows: &[EvaluationRow]) -> Result<()> {
        let d = self.dialect;
        let insert = format!(
            "INSERT INTO evaluations (source, date_from, date_to, labels, detector, granularity, run_id, \
             evaluated_at, entities, positives, flagged, true_positives, precision, recall, f1, roc_auc, pr_auc) \
             VALUES ($1, {}, {}, $4, $5, $6, $7, {}, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (source, date_from, date_to, labels, detector, granularity) DO UPDATE SET \
             run_id = excluded.run_id, evaluated_at = excluded.evaluated_at, entities = excluded.entities, \
             positives = excluded.positives, flagged = excluded.flagged, \
             true_positives = excluded.true_positives, precision = excluded.precision, \
             recall = excluded.recall, f1 = excluded.f1, roc_auc = excluded.roc_auc, pr_auc = excluded.pr_auc",
            d.date(2),
            d.date(3),
            d.ts(8)
        );
        self.runtime
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                for r in rows {
                    let m = &r.metrics;
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                        .bind(r.source.clone())
                        .bind(r.date_from.to_string())
                        .bind(r.date_to.to_string())
                        .bind(r.labels.clone())
                        .bind(r.detector.clone())
                        .bind(r.granularity.clone())
                        .bind(r.run_id.clone())
                        .bind(format_ts(d, r.evaluated_at))
                        .bind(m.entities as i64)
                        .bind(m.positives as i64)
                        .bind(m.flagged as i64)
                        .bind(m.true_positives as i64)
                        .bind(m.precision)
                        .bind(m.recall)
                        .bind(m.f1)
                        .bind(m.roc_auc)
                        .bind(m.pr_auc)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(())
            })
            .with_context(|| format!("writing evaluations to {}", self.display_url))?;
        Ok(())
    }

    pub fn top_anomalies(&self, source: &str, limit: i64) -> Result<Vec<[String; 5]>> {
        let sql = format!(
            "SELECT {}, granularity, detector, severity, reason FROM anomalies WHERE source = $1 AND NOT vote \
             ORDER BY score / CASE WHEN threshold = 0 THEN 1 ELSE threshold END DESC, anomaly_id LIMIT $2",
            self.dialect.text("window_start")
        );
        let rows: Vec<AnyRow> = self.runtime.block_on(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(source.to_string())
                .bind(limit)
                .fetch_all(&self.pool),
        )?;
        rows.iter()
            .map(|r| {
                Ok([
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ])
            })
            .collect()
    }

    /// Incidents of `source` with batch dates in `from..=to`, most severe and largest first,
    /// every column as text: incident id, service, started, ended, severity, anomalies,
    /// repeats, detectors, status, title.
    pub fn incidents_between(
        &self,
        source: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<[String; 10]>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT incident_id, service, {}, {}, severity, {}, {}, detectors, status, title \
             FROM incidents WHERE source = $1 AND (batch_date BETWEEN {d2} AND {d3} \
             OR incident_id IN (SELECT incident_id FROM anomalies WHERE source = $1 \
             AND batch_date BETWEEN {d2} AND {d3})) \
             ORDER BY max_score_ratio DESC, anomalies DESC, started_at",
            d.text("started_at"),
            d.text("ended_at"),
            d.text("anomalies"),
            d.text("repeats"),
            d2 = d.date(2),
            d3 = d.date(3)
        );
        let rows: Vec<AnyRow> = self.runtime.block_on(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(source.to_string())
                .bind(from.to_string())
                .bind(to.to_string())
                .fetch_all(&self.pool),
        )?;
        rows.iter()
            .map(|r| {
                let mut out: [String; 10] = Default::default();
                for (i, v) in out.iter_mut().enumerate() {
                    *v = match r.try_get::<String, _>(i) {
                        Ok(s) => s,
                        // SQLite keeps integers as integers whatever the cast.
                        Err(_) => r.try_get::<i64, _>(i)?.to_string(),
                    };
                }
                Ok(out)
            })
            .collect()
    }

    /// All anomaly rows of a source as comparable tuples (tests and the idempotence check).
    pub fn anomaly_fingerprint(&self, source: &str) -> Result<Vec<AnomalyFingerprint>> {
        let rows: Vec<AnyRow> = self.runtime.block_on(
            sqlx::query(
                "SELECT anomaly_id, entity_key, detector, score, reason FROM anomalies WHERE source = $1 \
                 ORDER BY anomaly_id",
            )
            .bind(source.to_string())
            .fetch_all(&self.pool),
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect()
    }

    /// Count of pipeline runs by status for a source (tests, report).
    pub fn run_counts(&self, source: &str) -> Result<Vec<(String, i64)>> {
        let rows: Vec<AnyRow> = self.runtime.block_on(
            sqlx::query(
                "SELECT status, COUNT(*) FROM pipeline_runs WHERE source = $1 GROUP BY status ORDER BY status",
            )
            .bind(source.to_string())
            .fetch_all(&self.pool),
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Run a read-only query returning one integer (tests and examples of user SQL).
    pub fn query_i64(&self, sql: &str) -> Result<i64> {
        let row: AnyRow = self
            .runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.pool))?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Run one statement that returns no rows (administration, tests); returns rows affected.
    pub fn execute(&self, sql: &str) -> Result<u64> {
        let done = self
            .runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.pool))?;
        Ok(done.rows_affected())
    }

    /// Run a read-only query and return every value as text (NULL as an empty string): for
    /// the HTML report's tables, tests, and examples of user SQL.
    pub fn query_strings(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&self.pool))
            .with_context(|| format!("querying {}", self.display_url))?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                            v.unwrap_or_default()
                        } else if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                            v.map(|v| v.to_string()).unwrap_or_default()
                        } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
                            v.map(|v| v.to_string()).unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .collect()
            })
            .collect())
    }

    pub fn close(self) {
        self.wait_for_checkpoint();
        self.runtime.block_on(self.pool.close());
    }
}

#[cfg(test)]
mod tests;
