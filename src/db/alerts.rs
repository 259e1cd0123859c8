//! The `alerts` table: which notices each receiver has been sent about each incident.

use anyhow::{Context as _, Result};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Database, format_ts};

/// An incident as an alert describes it, with what one receiver has already been told.
#[derive(Debug, Clone)]
pub struct AlertIncident {
    pub incident_id: String,
    pub source: String,
    pub service: String,
    pub severity: String,
    pub started_at: String,
    pub ended_at: String,
    pub title: String,
    pub detectors: String,
    pub anomalies: i64,
    pub status: String,
    pub batch_date: String,
    /// The severity of the firing notice delivered to this receiver, if one was.
    pub fired_at_severity: Option<String>,
    /// A resolved notice was delivered to this receiver.
    pub resolved_sent: bool,
}

/// Which notice, for the `alerts.notice` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Firing,
    Resolved,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Firing => "firing",
            Notice::Resolved => "resolved",
        }
    }
}

impl Database {
    /// Every incident of `source`, with what `receiver` has been sent about it.
    pub fn incidents_for_alerts(&self, source: &str, receiver: &str) -> Result<Vec<AlertIncident>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT i.incident_id, i.source, i.service, i.severity, {}, {}, i.title, i.detectors, \
             CAST(i.anomalies AS BIGINT), i.status, {}, f.severity, \
             CAST(CASE WHEN r.sent_at IS NULL THEN 0 ELSE 1 END AS BIGINT) \
             FROM incidents i \
             LEFT JOIN alerts f ON f.incident_id = i.incident_id AND f.receiver = $2 \
                 AND f.notice = 'firing' AND f.sent_at IS NOT NULL \
             LEFT JOIN alerts r ON r.incident_id = i.incident_id AND r.receiver = $2 \
                 AND r.notice = 'resolved' \
             WHERE i.source = $1 ORDER BY i.started_at, i.incident_id",
            d.text("i.started_at"),
            d.text("i.ended_at"),
            d.text("i.batch_date"),
        );
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(source.to_string())
                    .bind(receiver.to_string())
                    .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading incidents for alerts from {}", self.display_url))?;
        rows.iter()
            .map(|r| {
                Ok(AlertIncident {
                    incident_id: r.try_get(0)?,
                    source: r.try_get(1)?,
                    service: r.try_get(2)?,
                    severity: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    ended_at: r.try_get(5)?,
                    title: r.try_get(6)?,
                    detectors: r.try_get(7)?,
                    anomalies: r.try_get(8)?,
                    status: r.try_get(9)?,
                    batch_date: r.try_get(10)?,
                    fired_at_severity: r.try_get(11)?,
                    resolved_sent: r.try_get::<i64, _>(12)? == 1,
                })
            })
            .collect()
    }

    /// Record one delivery attempt of `notice` about `incident_id` to `receiver`: delivered
    /// (`Ok`) sets when and at which severity, failed keeps the error; attempts counts both.
    pub fn record_alert(
        &self,
        incident_id: &str,
        receiver: &str,
        notice: Notice,
        severity: &str,
        attempts: u32,
        outcome: &std::result::Result<(), String>,
    ) -> Result<()> {
        let d = self.dialect;
        let sent_at = outcome.is_ok().then(|| format_ts(d, chrono::Utc::now()));
        let error = outcome.as_ref().err().cloned();
        let sql = format!(
            "INSERT INTO alerts (incident_id, receiver, notice, severity, attempts, sent_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, {}, $7) \
             ON CONFLICT (incident_id, receiver, notice) DO UPDATE SET \
             severity = excluded.severity, attempts = alerts.attempts + excluded.attempts, \
             sent_at = excluded.sent_at, last_error = excluded.last_error",
            d.ts(6)
        );
        self.runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(incident_id.to_string())
                    .bind(receiver.to_string())
                    .bind(notice.as_str())
                    .bind(severity.to_string())
                    .bind(i64::from(attempts))
                    .bind(sent_at)
                    .bind(error)
                    .execute(&self.pool),
            )
            .with_context(|| format!("recording an alert in {}", self.display_url))?;
        Ok(())
    }
}
