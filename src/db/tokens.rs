//! `api_tokens`: the tokens `loglake serve` accepts (see the `tokens` module for how they are
//! made and checked; only their secrets' hashes are stored).

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Database, format_ts};
use crate::records::{ApiToken, Scope};

impl Database {
    /// Store a new token.
    pub fn create_token(&self, token: &ApiToken) -> Result<()> {
        let d = self.dialect;
        let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "INSERT INTO api_tokens (token_id, name, scopes, secret_sha256, created_at) \
             VALUES ($1, $2, $3, $4, {})",
            d.ts(5)
        );
        self.runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(token.token_id.clone())
                    .bind(token.name.clone())
                    .bind(scopes.join(","))
                    .bind(token.secret_sha256.clone())
                    .bind(format_ts(d, token.created_at))
                    .execute(&self.pool),
            )
            .with_context(|| format!("storing the token in {}", self.display_url))?;
        Ok(())
    }

    /// Every token, revoked ones too, oldest first.
    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let d = self.dialect;
        let sql = format!(
            "SELECT token_id, name, scopes, secret_sha256, {}, {} FROM api_tokens \
             ORDER BY created_at, token_id",
            d.text("created_at"),
            d.text("revoked_at")
        );
        let rows: Vec<AnyRow> = self
            .runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool))
            .with_context(|| format!("reading api_tokens from {}", self.display_url))?;
        rows.iter()
            .map(|r| {
                let scopes: String = r.try_get(2)?;
                let revoked: Option<String> = r.try_get(5)?;
                Ok(ApiToken {
                    token_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    scopes: scopes.split(',').filter_map(Scope::parse).collect(),
                    secret_sha256: r.try_get(3)?,
                    created_at: parse_ts(&r.try_get::<String, _>(4)?)?,
                    revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
                })
            })
            .collect()
    }

    /// Revoke the token `token_id`; whether there was a live one of that id.
    pub fn revoke_token(&self, token_id: &str) -> Result<bool> {
        let d = self.dialect;
        let sql = format!(
            "UPDATE api_tokens SET revoked_at = {} WHERE token_id = $2 AND revoked_at IS NULL",
            d.ts(1)
        );
        let done = self
            .runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(format_ts(d, Utc::now()))
                    .bind(token_id.to_string())
                    .execute(&self.pool),
            )
            .with_context(|| format!("revoking the token in {}", self.display_url))?;
        Ok(done.rows_affected() > 0)
    }
}

/// A timestamp as either database writes it as text.
fn parse_ts(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    for shape in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, shape) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .with_context(|| format!("reading the time {text:?}"))
}
