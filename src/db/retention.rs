//! What `loglake vacuum` removes from the database: old `pipeline_runs` rows and the rows of
//! model versions whose files it deletes. Anomalies and incidents are the product: kept.

use anyhow::{Context, Result};
use chrono::NaiveDate;

use super::{Database, Dialect};

impl Database {
    /// `pipeline_runs` rows started before `cutoff` (midnight UTC).
    pub fn runs_before(&self, cutoff: NaiveDate) -> Result<i64> {
        let sql = format!(
            "SELECT COUNT(*) FROM pipeline_runs WHERE started_at < {}",
            self.cutoff_literal(cutoff)
        );
        self.query_i64(&sql)
    }

    /// Delete them; returns how many went.
    pub fn delete_runs_before(&self, cutoff: NaiveDate) -> Result<u64> {
        let sql = format!(
            "DELETE FROM pipeline_runs WHERE started_at < {}",
            self.cutoff_literal(cutoff)
        );
        self.execute(&sql)
    }

    /// Delete the `models` rows of `versions`.
    pub fn delete_models(&self, versions: &[String]) -> Result<u64> {
        if versions.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM models WHERE model_version IN ({})",
            self.dialect.json_strings(1)
        );
        let done = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::to_string(versions).expect("strings serialise"))
                    .execute(&self.pool),
            )
            .with_context(|| format!("deleting models from {}", self.display_url))?;
        Ok(done.rows_affected())
    }

    /// Midnight UTC of `cutoff` as a literal both dialects compare a start time with.
    fn cutoff_literal(&self, cutoff: NaiveDate) -> String {
        let ts = super::format_ts(
            self.dialect,
            cutoff.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
        );
        match self.dialect {
            Dialect::Postgres => format!("CAST('{ts}' AS TIMESTAMPTZ)"),
            Dialect::Sqlite => format!("'{ts}'"),
        }
    }
}
