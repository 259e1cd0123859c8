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
}

pub use crate::records::NormalVerdict;

/// A verdict named an anomaly the table does not hold: the caller's mistake, not the
/// database's (the service answers 404 for it, 503 for the database's own failures).
#[derive(Debug, thiserror::Error)]
#[error("no anomaly {0:?} (ids are in the anomalies table and `GET /v1/anomalies`)")]
pub struct NoSuchAnomaly(pub String);

impl Database {
    /// How many of the source's anomalies in the batch dates `from..=to` operators judged
    /// `anomaly` (confirmed) and `normal` — each anomaly's latest verdict.
    pub fn verdict_counts(
        &self,
        source: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<(i64, i64)> {
        let d = self.dialect;
        let sql = format!(
            "SELECT f.verdict, CAST(COUNT(*) AS BIGINT) FROM feedback f \
             JOIN (SELECT subject_id, MAX(id) AS id FROM feedback WHERE subject = 'anomaly' \
                   GROUP BY subject_id) latest ON latest.id = f.id \
             JOIN anomalies a ON a.anomaly_id = f.subject_id \
             WHERE a.source = $1 AND a.batch_date BETWEEN {} AND {} GROUP BY f.verdict",
            d.date(2),
            d.date(3)
        );
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(source.to_string())
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading feedback from {}", self.display_url))?;
        let (mut confirmed, mut normal) = (0, 0);
        for r in &rows {
            match r.try_get::<String, _>(0)?.as_str() {
                "anomaly" => confirmed = r.try_get(1)?,
                "normal" => normal = r.try_get(1)?,
                _ => {}
            }
        }
        Ok((confirmed, normal))
    }

    /// The source's "normal" verdicts on anomalies, oldest first.
    pub fn normal_verdicts(&self, source: &str) -> Result<Vec<NormalVerdict>> {
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST(id AS BIGINT), subject_id, detector, kind, evidence, by_whom, note, \
                     coalesce(entity_key, ''), {} FROM feedback \
                     WHERE source = $1 AND subject = 'anomaly' AND verdict = 'normal' \
                     AND detector IS NOT NULL AND kind IS NOT NULL ORDER BY id",
                    self.dialect.epoch_millis("window_start")
                )))
                .bind(source.to_string())
                .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading feedback from {}", self.display_url))?;
        rows.iter()
            .map(|r| {
                Ok(NormalVerdict {
                    feedback_id: r.try_get(0)?,
                    anomaly_id: r.try_get(1)?,
                    detector: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    evidence: r.try_get(4)?,
                    by: r.try_get(5)?,
                    note: r.try_get(6)?,
                    entity_key: r.try_get(7)?,
                    window_start: r.try_get(8)?,
                })
            })
            .collect()
    }

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
                    "SELECT source, detector, granularity, entity_key, {}, {} FROM anomalies \
                     WHERE anomaly_id = $1",
                    d.text("details"),
                    d.text("window_start")
                )))
                .bind(anomaly_id.to_string())
                .fetch_all(&self.pool),
            )
            .with_context(|| format!("reading anomaly {anomaly_id} from {}", self.display_url))?;
        let Some(row) = rows.first() else {
            return Err(NoSuchAnomaly(anomaly_id.to_string()).into());
        };
        let marked = MarkedAnomaly {
            source: row.try_get(0)?,
            detector: row.try_get(1)?,
            granularity: row.try_get(2)?,
            entity_key: row.try_get(3)?,
        };
        let details: String = row.try_get(4)?;
        let window_start: String = row.try_get(5)?;
        let details: Option<serde_json::Value> = serde_json::from_str(&details).ok();
        // The evidence (feature and the template, relation or value it names), most telling
        // first: 05-detect suppresses findings with the same.
        let evidence = details.as_ref().map(|v| v["top_features"].to_string());
        let kind = crate::records::kind_of(
            &marked.granularity,
            &marked.detector,
            details.as_ref().unwrap_or(&serde_json::Value::Null),
        );
        let sql = format!(
            "INSERT INTO feedback (subject, subject_id, source, verdict, detector, granularity, entity_key, \
             evidence, kind, by_whom, at, note, window_start) \
             VALUES ('anomaly', $1, $2, $3, $4, $5, $6, $7, $8, $9, {}, $11, {})",
            d.ts(10),
            d.ts(12)
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
                    .bind(kind)
                    .bind(verdict.by.clone())
                    .bind(format_ts(d, chrono::Utc::now()))
                    .bind(verdict.note.clone())
                    .bind(window_start)
                    .execute(&self.pool),
            )
            .with_context(|| format!("recording feedback in {}", self.display_url))?;
        Ok(marked)
    }
}
