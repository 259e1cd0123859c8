//! What 05-detect writes for one batch: its anomalies and the incidents they form, replaced
//! together in one transaction.
//!
//! `anomalies.incident_id` is a foreign key to `incidents` (migration 0005), so the order
//! inside the transaction matters: stale anomalies go first, then stale incidents (an
//! incident of this batch that a re-run no longer forms clears the link of any other batch's
//! anomaly to it, `ON DELETE SET NULL`), then the incidents are written, and only then the
//! anomalies that point at them. Readers see the batch before or after, never anomalies whose
//! incident is not there yet — which two transactions allowed.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use sqlx::Acquire as _;

use super::insert::{Param, insert_rows};
use super::wal::AUTOCHECKPOINT_PAGES;
use super::{Database, Dialect, format_ts};
use crate::records::{AnomalyRow, Incident};

impl Database {
    /// Make the batch's anomalies and incidents for (source, batch date) exactly `anomalies`
    /// and `incidents`: new rows inserted, existing ones updated (an anomaly keeps when and by
    /// which run it was first detected; an incident keeps its operator-set `status`), rows a
    /// re-run no longer produces deleted. One transaction.
    pub fn replace_detections(
        &self,
        source: &str,
        batch_date: NaiveDate,
        anomalies: &[AnomalyRow],
        incidents: &[Incident],
    ) -> Result<()> {
        let d = self.dialect;
        let unique = last_of_each_id(anomalies);
        let keep_anomalies: HashSet<&str> =
            anomalies.iter().map(|r| r.anomaly_id.as_str()).collect();
        let keep_incidents: HashSet<&str> =
            incidents.iter().map(|i| i.incident_id.as_str()).collect();
        let sqlite = d == Dialect::Sqlite;
        self.runtime
            .block_on(async {
                let mut conn = self.pool.acquire().await?;
                // The log is copied into the database file afterwards, off this thread
                // (`super::wal`).
                if sqlite {
                    autocheckpoint(&mut conn, 0).await?;
                }
                let written = async {
                    let mut tx = conn.begin().await?;
                    for (table, id, keep) in [
                        ("anomalies", "anomaly_id", &keep_anomalies),
                        ("incidents", "incident_id", &keep_incidents),
                    ] {
                        delete_stale(&mut tx, d, table, id, source, batch_date, keep).await?;
                    }
                    write_incidents(&mut tx, d, incidents).await?;
                    write_anomalies(&mut tx, d, &unique).await?;
                    tx.commit().await
                }
                .await;
                // Restored whether or not the write went through: the connection goes back
                // to the pool.
                let restored = if sqlite {
                    autocheckpoint(&mut conn, AUTOCHECKPOINT_PAGES).await
                } else {
                    Ok(())
                };
                written.and(restored)
            })
            .with_context(|| format!("writing anomalies and incidents to {}", self.display_url))?;
        self.checkpoint_in_background();
        Ok(())
    }
}

/// Set how many pages SQLite's log may hold before a commit copies it into the database file
/// (0: never), on `conn` only.
async fn autocheckpoint(conn: &mut sqlx::AnyConnection, pages: u32) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA wal_autocheckpoint={pages}"
    )))
    .execute(conn)
    .await?;
    Ok(())
}

/// One row per id, the last one winning, as row-by-row upserts had it (a multi-row upsert
/// may not touch a row twice).
fn last_of_each_id(rows: &[AnomalyRow]) -> Vec<&AnomalyRow> {
    let last: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.anomaly_id.as_str(), i))
        .collect();
    rows.iter()
        .enumerate()
        .filter(|(i, r)| last[r.anomaly_id.as_str()] == *i)
        .map(|(_, r)| r)
        .collect()
}

/// Upsert incidents, leaving `status` to the operator. Incident ids are unique within a batch
/// (one per group of anomalies).
async fn write_incidents(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: Dialect,
    incidents: &[Incident],
) -> Result<(), sqlx::Error> {
    let into = "incidents (incident_id, source, batch_date, service, started_at, ended_at, \
         anomalies, entities, repeats, detectors, severity, max_score_ratio, title)";
    let conflict = "ON CONFLICT (incident_id) DO UPDATE SET batch_date = excluded.batch_date, \
         started_at = excluded.started_at, \
         ended_at = excluded.ended_at, anomalies = excluded.anomalies, entities = excluded.entities, \
         repeats = excluded.repeats, detectors = excluded.detectors, severity = excluded.severity, \
         max_score_ratio = excluded.max_score_ratio, title = excluded.title";
    use Param::{Date, Plain, Ts};
    let params = [
        Plain, Plain, Date, Plain, Ts, Ts, Plain, Plain, Plain, Plain, Plain, Plain, Plain,
    ];
    insert_rows(tx, d, into, conflict, &params, incidents, |q, i| {
        q.bind(i.incident_id.clone())
            .bind(i.source.clone())
            .bind(i.batch_date.to_string())
            .bind(i.service.clone())
            .bind(format_ts(d, i.started_at))
            .bind(format_ts(d, i.ended_at))
            .bind(i.anomalies as i64)
            .bind(i.entities as i64)
            .bind(i.repeats as i64)
            .bind(i.detectors.clone())
            .bind(i.severity.clone())
            .bind(i.max_score_ratio)
            .bind(i.title.clone())
    })
    .await
}

/// Upsert anomalies, keeping each one's first `run_id` and `detected_at`.
async fn write_anomalies(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: Dialect,
    rows: &[&AnomalyRow],
) -> Result<(), sqlx::Error> {
    let into = "anomalies (anomaly_id, run_id, detected_at, source, batch_date, granularity, \
         entity_key, window_start, window_end, detector, score, threshold, severity, reason, details, \
         model_version, incident_id, service, provisional, vote)";
    let conflict = "ON CONFLICT (anomaly_id) DO UPDATE SET score = excluded.score, threshold = excluded.threshold, \
         severity = excluded.severity, reason = excluded.reason, details = excluded.details, \
         model_version = excluded.model_version, window_start = excluded.window_start, \
         window_end = excluded.window_end, incident_id = excluded.incident_id, service = excluded.service, \
         provisional = excluded.provisional, vote = excluded.vote";
    use Param::{Date, Json, Plain, Ts};
    let params = [
        Plain, Plain, Ts, Plain, Date, Plain, Plain, Ts, Ts, Plain, Plain, Plain, Plain, Plain,
        Json, Plain, Plain, Plain, Plain, Plain,
    ];
    insert_rows(tx, d, into, conflict, &params, rows, |q, r| {
        q.bind(r.anomaly_id.clone())
            .bind(r.run_id.clone())
            .bind(format_ts(d, r.detected_at))
            .bind(r.source.clone())
            .bind(r.batch_date.to_string())
            .bind(r.granularity.clone())
            .bind(r.entity_key.clone())
            .bind(format_ts(d, r.window_start))
            .bind(format_ts(d, r.window_end))
            .bind(r.detector.clone())
            .bind(r.score)
            .bind(r.threshold)
            .bind(r.severity.clone())
            .bind(r.reason.clone())
            .bind(r.details.clone())
            .bind(r.model_version.clone())
            .bind(r.incident_id.clone())
            .bind(r.service.clone())
            .bind(r.provisional)
            .bind(r.vote)
    })
    .await
}

/// Delete one batch's rows of `table` whose id is not in `keep`: a re-run replaces what an
/// earlier run of the same batch wrote, instead of leaving rows it no longer produces. One
/// statement, the ids to keep passed as one JSON array (a row-by-row delete took 3.3 s on
/// SQLite and 4.3 s on PostgreSQL when a re-run replaced 50,000 anomalies:
/// `scripts/bench_db.sh`).
async fn delete_stale(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: Dialect,
    table: &str,
    id_column: &str,
    source: &str,
    batch_date: NaiveDate,
    keep: &HashSet<&str>,
) -> Result<(), sqlx::Error> {
    let delete = format!(
        "DELETE FROM {table} WHERE source = $1 AND {} = $2 AND {id_column} NOT IN ({})",
        d.text("batch_date"),
        d.json_strings(3)
    );
    let ids: Vec<&str> = keep.iter().copied().collect();
    sqlx::query(sqlx::AssertSqlSafe(delete))
        .bind(source.to_string())
        .bind(batch_date.to_string())
        .bind(serde_json::to_string(&ids).expect("strings serialise"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
