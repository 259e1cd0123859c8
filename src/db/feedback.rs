//! Operators' verdicts: incidents acknowledged or closed, anomalies marked normal or
//! confirmed — each change and its `feedback` row in one transaction.

use anyhow::{Context as _, Result, bail};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Database, format_ts};

/// Who gave a verdict and why.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub by: String,
    pub note: Option<String>,
}

/// What an anomaly verdict is about, as stored with it.
#[derive(Debug, Clone)]
pub struct MarkedAnomaly {
    pub source: String,
    pub detector: String,
    pub granularity: String,
    pub entity_key: String,
    pub reason: String,
}

impl Database {
    /// Set an incident's status (`acknowledged` or `closed`) and record who did it; returns
    /// the incident's source. An unknown id is an error naming it.
    pub fn set_incident_status(
        &self,
        incident_id: &str,
        status: &str,
        verdict: &Verdict,
    ) -> Result<String> {
        let d = self.dialect;
        let now = format_ts(d, chrono::Utc::now());
        let record = format!(
            "INSERT INTO feedback (subject, subject_id, source, verdict, by_whom, at, note) \
             VALUES ('incident', $1, $2, $3, $4, {}, $6)",
            d.ts(5)
        );
        self.runtime
            .block_on(async {
                let mut tx = self.pool.begin().await?;
                let row: Option<AnyRow> =
                    sqlx::query("SELECT source FROM incidents WHERE incident_id = $1")
                        .bind(incident_id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let source: String = row.try_get(0)?;
                sqlx::query("UPDATE incidents SET status = $1 WHERE incident_id = $2")
                    .bind(status.to_string())
                    .bind(incident_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(record))
                    .bind(incident_id.to_string())
                    .bind(source.clone())
                    .bind(status.to_string())
                    .bind(verdict.by.clone())
                    .bind(now)
                    .bind(verdict.note.clone())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(Some(source))
            })
            .with_context(|| format!("updating incident {incident_id} in {}", self.display_url))?
            .with_context(|| format!("no incident {incident_id:?} (see `loglake incidents list`)"))
    }

    /// Record a verdict on an anomaly: `normal` (a false alarm) or `anomaly` (confirmed).
    pub fn mark_anomaly(
        &self,
        anomaly_id: &str,
        verdict_word: &str,
        verdict: &Verdict,
    ) -> Result<MarkedAnomaly> {
        if !["normal", "anomaly"].contains(&verdict_word) {
            bail!("a verdict on an anomaly is normal or anomaly, not {verdict_word:?}");
        }
        let d = self.dialect;
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT source, detector, granularity, entity_key, reason, {} FROM anomalies WHERE anomaly_id = $1",
                    d.text("details")
                )))
                .bind(anomaly_id.to_string())
                .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading anomaly {anomaly_id} from {}", self.display_url))?;
        let Some(row) = rows.first() else {
            bail!(
                "no anomaly {anomaly_id:?} (ids are in the anomalies table and `GET /v1/anomalies`)"
            );
        };
        let marked = MarkedAnomaly {
            source: row.try_get(0)?,
            detector: row.try_get(1)?,
            granularity: row.try_get(2)?,
            entity_key: row.try_get(3)?,
            reason: row.try_get(4)?,
        };
        let details: String = row.try_get(5)?;
        // The leading evidence (feature and the template, relation or value it names).
        let evidence = serde_json::from_str::<serde_json::Value>(&details)
            .ok()
            .and_then(|v| v["top_features"].get(0).map(|t| t.to_string()));
        let sql = format!(
            "INSERT INTO feedback (subject, subject_id, source, verdict, detector, granularity, entity_key, \
             evidence, by_whom, at, note) VALUES ('anomaly', $1, $2, $3, $4, $5, $6, $7, $8, {}, $10)",
            d.ts(9)
        );
        self.runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(anomaly_id.to_string())
                    .bind(marked.source.clone())
                    .bind(verdict_word.to_string())
                    .bind(marked.detector.clone())
                    .bind(marked.granularity.clone())
                    .bind(marked.entity_key.clone())
                    .bind(evidence)
                    .bind(verdict.by.clone())
                    .bind(format_ts(d, chrono::Utc::now()))
                    .bind(verdict.note.clone())
                    .execute(&self.pool),
            )
            .with_context(|| format!("recording feedback in {}", self.display_url))?;
        Ok(marked)
    }
}
