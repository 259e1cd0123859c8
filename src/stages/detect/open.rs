//! The windows and sessions of a batch that had not closed when 03-gold built them
//! (`gold::closing`): a finding about one of them is provisional — written, shown, but in no
//! incident and raising no alert until a later run judges the closed entity.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashSet;

use crate::lake::{Layer, tables};
use crate::records::AnomalyRow;
use crate::stages::Context;

#[derive(Default)]
pub struct OpenEntities {
    /// (service, window start in epoch milliseconds)
    windows: FxHashSet<(String, i64)>,
    sessions: FxHashSet<String>,
}

impl OpenEntities {
    /// The open windows and sessions of `date` (none in gold built before entities closed).
    pub fn of(ctx: &Context, date: NaiveDate) -> Result<Self> {
        let mut open = Self::default();
        let read = |table: &str, key: &str| -> Result<Option<DataFrame>> {
            let Some(lf) = ctx
                .lake
                .scan_partition(Layer::Gold, table, &ctx.source, date)?
            else {
                return Ok(None);
            };
            let schema = lf.clone().collect_schema().map_err(anyhow::Error::from)?;
            if !schema.contains("closed") {
                return Ok(None);
            }
            let mut columns = vec![col(key)];
            if table == tables::WINDOW_FEATURES {
                columns.push(col("window_start").cast(DataType::Int64));
            }
            Ok(Some(
                lf.filter(col("closed").not())
                    .select(columns)
                    .collect()
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("reading the open rows of gold/{table}"))?,
            ))
        };
        if let Some(w) = read(tables::WINDOW_FEATURES, "service")? {
            let services = w.column("service")?.str()?;
            let starts = w.column("window_start")?.i64()?;
            for (s, t) in services.iter().zip(starts.iter()) {
                if let (Some(s), Some(t)) = (s, t) {
                    open.windows.insert((s.to_string(), t));
                }
            }
        }
        if let Some(s) = read(tables::SESSION_FEATURES, "session_key")? {
            open.sessions.extend(
                s.column("session_key")?
                    .str()?
                    .iter()
                    .flatten()
                    .map(String::from),
            );
        }
        Ok(open)
    }

    /// Whether `row` judges an entity that is still open.
    pub fn holds(&self, row: &AnomalyRow) -> bool {
        match row.granularity.as_str() {
            "window" => self
                .windows
                .contains(&(row.service.clone(), row.window_start.timestamp_millis())),
            "session" => self.sessions.contains(&row.entity_key),
            _ => false,
        }
    }
}
