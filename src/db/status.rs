//! What `loglake status` asks the database: the last run of each stage, the latest model of
//! each detector, and the open incidents. Read-only.

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Database;

/// The most recent `pipeline_runs` row of one stage of one source.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub source: String,
    pub stage: String,
    pub status: String,
    pub batch_dates: String,
    pub started_at: String,
    pub duration_ms: Option<i64>,
    /// The error of a failed run, the message of a finished one.
    pub note: String,
}

/// The latest model of one detector at one granularity of one source.
#[derive(Debug, Clone, Serialize)]
pub struct LatestModel {
    pub source: String,
    pub granularity: String,
    pub detector: String,
    pub model_version: String,
    pub created_at: String,
    pub train_from: String,
    pub train_to: String,
}

/// Open incidents of one source.
#[derive(Debug, Clone, Serialize)]
pub struct OpenIncidents {
    pub source: String,
    pub open: i64,
    /// The most severe of them, and when the latest started.
    pub worst_severity: String,
    pub latest_started_at: String,
}

impl Database {
    /// The last run of every stage, per source (`source`: only that one).
    pub fn last_runs(&self, source: Option<&str>) -> Result<Vec<LastRun>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT r.source, r.stage, r.status, r.batch_dates, {started}, r.duration_ms, \
             COALESCE(r.error, r.message, '') \
             FROM pipeline_runs r \
             JOIN (SELECT source, stage, MAX(id) AS id FROM pipeline_runs GROUP BY source, stage) l \
             ON r.id = l.id \
             WHERE ($1 = '' OR r.source = $1) ORDER BY r.source, r.stage",
            started = d.text("r.started_at"),
        );
        let rows = self.fetch(&sql, source)?;
        rows.iter()
            .map(|r| {
                Ok(LastRun {
                    source: r.try_get(0)?,
                    stage: r.try_get(1)?,
                    status: r.try_get(2)?,
                    batch_dates: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    duration_ms: r.try_get(5)?,
                    note: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// The latest model of every detector and granularity, per source.
    pub fn latest_models(&self, source: Option<&str>) -> Result<Vec<LatestModel>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT m.source, m.granularity, m.detector, m.model_version, {created}, {from}, {to} \
             FROM models m \
             WHERE ($1 = '' OR m.source = $1) AND NOT EXISTS (\
               SELECT 1 FROM models n WHERE n.source = m.source AND n.granularity = m.granularity \
               AND n.detector = m.detector AND (n.created_at > m.created_at \
               OR (n.created_at = m.created_at AND n.model_version > m.model_version))) \
             ORDER BY m.source, m.granularity, m.detector",
            created = d.text("m.created_at"),
            from = d.text("m.train_from"),
            to = d.text("m.train_to"),
        );
        let rows = self.fetch(&sql, source)?;
        rows.iter()
            .map(|r| {
                Ok(LatestModel {
                    source: r.try_get(0)?,
                    granularity: r.try_get(1)?,
                    detector: r.try_get(2)?,
                    model_version: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    train_from: r.try_get(5)?,
                    train_to: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Open incidents, counted per source.
    pub fn open_incidents(&self, source: Option<&str>) -> Result<Vec<OpenIncidents>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT source, CAST(COUNT(*) AS BIGINT), \
             CAST(MAX(CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) AS BIGINT), \
             MAX({started}) \
             FROM incidents WHERE status = 'open' AND ($1 = '' OR source = $1) \
             GROUP BY source ORDER BY source",
            started = d.text("started_at"),
        );
        let rows = self.fetch(&sql, source)?;
        rows.iter()
            .map(|r| {
                let rank: i64 = r.try_get(2)?;
                Ok(OpenIncidents {
                    source: r.try_get(0)?,
                    open: r.try_get(1)?,
                    // The query ranks low 1 … critical 4.
                    worst_severity: crate::detectors::SEVERITIES[(rank - 1).clamp(0, 3) as usize]
                        .to_string(),
                    latest_started_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    fn fetch(&self, sql: &str, source: Option<&str>) -> Result<Vec<AnyRow>> {
        self.runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .bind(source.unwrap_or_default().to_string())
                    .fetch_all(&self.pool),
            )
            .with_context(|| format!("querying {}", self.display_url))
    }
}
