//! `pipeline_runs`: a row per stage run, opened when the stage starts and closed when it
//! ends — or, when its process could not close it, by a later run.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Database, format_ts};
use crate::records::{RunEnd, RunStart};

impl Database {
    pub fn start_run(&self, run: &RunStart<'_>) -> Result<i64> {
        let d = self.dialect;
        let sql = format!(
            "INSERT INTO pipeline_runs (run_id, stage, source, batch_dates, status, started_at) \
             VALUES ($1, $2, $3, $4, 'running', {}) RETURNING id",
            d.ts(5)
        );
        let row: AnyRow = self.runtime.block_on(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(run.run_id.to_string())
                .bind(run.stage.to_string())
                .bind(run.source.to_string())
                .bind(run.batch_dates.to_string())
                .bind(format_ts(d, run.started_at))
                .fetch_one(&self.pool),
        )?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    pub fn finish_run(&self, id: i64, started: DateTime<Utc>, end: &RunEnd) -> Result<()> {
        let d = self.dialect;
        let now = Utc::now();
        let duration_ms = (now - started).num_milliseconds();
        let sql = format!(
            "UPDATE pipeline_runs SET status = $1, finished_at = {}, duration_ms = $3, rows_in = $4, \
             rows_out = $5, rows_quarantined = $6, message = $7, error = $8 WHERE id = $9",
            d.ts(2)
        );
        self.runtime.block_on(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(end.status)
                .bind(format_ts(d, now))
                .bind(duration_ms)
                .bind(end.rows_in as i64)
                .bind(end.rows_out as i64)
                .bind(end.rows_quarantined as i64)
                .bind(end.message.clone())
                .bind(end.error.clone())
                .bind(id)
                .execute(&self.pool),
        )?;
        Ok(())
    }

    /// Mark the `running` rows of run `run_id`, whose process died, as failed, so
    /// `pipeline_runs` does not show a crashed stage as running forever. Returns how many rows
    /// changed.
    pub fn fail_abandoned_runs(&self, run_id: &str, pid: u32) -> Result<u64> {
        let sql = "UPDATE pipeline_runs SET status = 'failed', error = $1 \
                   WHERE status = 'running' AND run_id = $2";
        let error = format!(
            "the loglake process (pid {pid}) ended before this stage finished; a later run recovered its lock"
        );
        let done = self.runtime.block_on(
            sqlx::query(sql)
                .bind(error)
                .bind(run_id.to_string())
                .execute(&self.pool),
        )?;
        Ok(done.rows_affected())
    }

    /// Close the `running` rows of `source` whose process is gone — a stage whose own row
    /// could not be closed (the database was down when it ended), or one killed while the
    /// lock went to a writer that did not see it die. A run id ends with its process id; a
    /// process that no longer exists on this machine cannot still be running the stage.
    /// Returns how many rows were closed.
    pub fn close_dead_runs(&self, source: &str, current_run_id: &str) -> Result<u64> {
        let rows: Vec<AnyRow> = self.runtime.block_on(
            sqlx::query(
                "SELECT id, run_id FROM pipeline_runs WHERE status = 'running' AND source = $1",
            )
            .bind(source.to_string())
            .fetch_all(&self.pool),
        )?;
        let mut closed = 0;
        for row in rows {
            let (id, run_id): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
            if run_id == current_run_id {
                continue;
            }
            let Some(pid) = run_id
                .rsplit('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            // Alive (this process included: tests run several commands in one process).
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let error = format!(
                "the loglake process (pid {pid}) that ran this stage ended without closing its row (was the database unreachable when it finished?); closed by run {current_run_id}"
            );
            self.runtime.block_on(
                sqlx::query("UPDATE pipeline_runs SET status = 'failed', error = $1 WHERE id = $2 AND status = 'running'")
                    .bind(error)
                    .bind(id)
                    .execute(&self.pool),
            )?;
            closed += 1;
        }
        Ok(closed)
    }
}
