//! What `loglake serve` answers from the database: anomalies by source, time, detector and
//! severity, and incidents by status — as JSON objects, one per row.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Database, format_ts};
use crate::detectors::{SEVERITIES, severity_rank};

/// `GET /v1/anomalies`' filters; `None` filters nothing.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    pub source: Option<String>,
    /// Windows starting at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Windows starting before this instant.
    pub until: Option<DateTime<Utc>>,
    pub detector: Option<String>,
    /// One of [`SEVERITIES`]: that word and the more severe ones are kept.
    pub min_severity: Option<String>,
    pub incident_id: Option<String>,
    /// One anomaly (a verdict or a vote).
    pub anomaly_id: Option<String>,
    pub limit: i64,
}

/// Columns of an anomaly as the service returns it (`details` is parsed back into JSON).
const ANOMALY_COLUMNS: [&str; 15] = [
    "anomaly_id",
    "source",
    "service",
    "batch_date",
    "granularity",
    "entity_key",
    "window_start",
    "window_end",
    "detector",
    "score",
    "threshold",
    "severity",
    "reason",
    "incident_id",
    "details",
];

const INCIDENT_COLUMNS: [&str; 13] = [
    "incident_id",
    "source",
    "service",
    "batch_date",
    "started_at",
    "ended_at",
    "anomalies",
    "entities",
    "repeats",
    "detectors",
    "severity",
    "title",
    "status",
];

impl Database {
    /// Anomalies matching `filter`, newest window first, at most `filter.limit`.
    pub fn anomalies_matching(&self, filter: &AnomalyFilter) -> Result<Vec<Value>> {
        let d = self.dialect;
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |value: String| {
            binds.push(value);
            binds.len()
        };
        if let Some(s) = &filter.source {
            conditions.push(format!("source = ${}", bind(s.clone())));
        }
        if let Some(t) = filter.since {
            conditions.push(format!("window_start >= {}", d.ts(bind(format_ts(d, t)))));
        }
        if let Some(t) = filter.until {
            conditions.push(format!("window_start < {}", d.ts(bind(format_ts(d, t)))));
        }
        if let Some(id) = &filter.incident_id {
            conditions.push(format!("incident_id = ${}", bind(id.clone())));
        }
        if let Some(id) = &filter.anomaly_id {
            conditions.push(format!("anomaly_id = ${}", bind(id.clone())));
        }
        match (&filter.detector, &filter.anomaly_id) {
            (Some(det), _) => conditions.push(format!("detector = ${}", bind(det.clone()))),
            (None, Some(_)) => {}
            // One anomaly per verdict; a detector's own findings (the ensemble's votes) are
            // listed when that detector is asked for.
            (None, None) => conditions.push("NOT vote".to_string()),
        }
        if let Some(min) = &filter.min_severity {
            let words = serde_json::to_string(&SEVERITIES[severity_rank(min)..])
                .expect("strings serialise");
            conditions.push(format!("severity IN ({})", d.json_strings(bind(words))));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let columns = select_list(d, &ANOMALY_COLUMNS);
        let sql = format!(
            "SELECT {columns} FROM anomalies {filter_sql} \
             ORDER BY window_start DESC, score DESC, anomaly_id LIMIT {}",
            filter.limit.max(0)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(query.fetch_all(&self.pool))
            .with_context(|| format!("reading anomalies from {}", self.display_url))?;
        rows.iter().map(|r| to_json(r, &ANOMALY_COLUMNS)).collect()
    }

    /// Incidents, optionally of one source, status or id, most recent first.
    pub fn incidents_matching(
        &self,
        source: Option<&str>,
        status: Option<&str>,
        incident_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>> {
        let d = self.dialect;
        let columns = select_list(d, &INCIDENT_COLUMNS);
        let sql = format!(
            "SELECT {columns} FROM incidents \
             WHERE ($1 = '' OR source = $1) AND ($2 = '' OR status = $2) \
             AND ($3 = '' OR incident_id = $3) \
             ORDER BY started_at DESC, incident_id LIMIT {}",
            limit.max(0)
        );
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(source.unwrap_or_default().to_string())
                    .bind(status.unwrap_or_default().to_string())
                    .bind(incident_id.unwrap_or_default().to_string())
                    .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading incidents from {}", self.display_url))?;
        rows.iter().map(|r| to_json(r, &INCIDENT_COLUMNS)).collect()
    }

    /// Whether the database answers a trivial query.
    pub fn ping(&self) -> Result<()> {
        self.runtime
            .block_on(sqlx::query("SELECT 1").fetch_one(&self.pool))
            .with_context(|| format!("querying {}", self.display_url))?;
        Ok(())
    }
}

/// The columns as `SELECT` lists them: as text in either dialect, except the numbers JSON
/// should keep as numbers.
fn select_list(d: super::Dialect, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| match *c {
            "score" | "threshold" | "anomalies" | "entities" | "repeats" => c.to_string(),
            other => d.text(other),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns that are instants: shown as RFC 3339 in UTC, as a sample line's `ts` is.
const TIMESTAMPS: [&str; 4] = ["window_start", "window_end", "started_at", "ended_at"];

/// A timestamp as the database gives it as text — `2026-11-20 14:05:00.120` (SQLite, UTC) or
/// `2026-11-20 14:05:00.12+00` (PostgreSQL) — as RFC 3339 in UTC with milliseconds
/// (`2026-11-20T14:05:00.120Z`); text that is neither is left as it is.
fn rfc3339(text: String) -> String {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    let utc = DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        });
    match utc {
        Ok(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        Err(_) => text,
    }
}

/// A row as a JSON object named by `columns`: numbers as numbers, `details` as JSON, NULL as
/// null.
fn to_json(row: &AnyRow, columns: &[&str]) -> Result<Value> {
    let mut object = Map::new();
    for (i, name) in columns.iter().enumerate() {
        let value = if let Ok(v) = row.try_get::<Option<f64>, _>(i)
            && matches!(*name, "score" | "threshold")
        {
            v.map(Value::from).unwrap_or(Value::Null)
        } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map(Value::from).unwrap_or(Value::Null)
        } else {
            match row.try_get::<Option<String>, _>(i)? {
                None => Value::Null,
                Some(text) if *name == "details" => {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                }
                Some(text) if TIMESTAMPS.contains(name) => Value::String(rfc3339(text)),
                // Stored comma-separated; a list to a client.
                Some(text) if *name == "detectors" => Value::Array(
                    text.split(',')
                        .filter(|d| !d.is_empty())
                        .map(|d| Value::String(d.to_string()))
                        .collect(),
                ),
                Some(text) => Value::String(text),
            }
        };
        object.insert(name.to_string(), value);
    }
    Ok(Value::Object(object))
}
