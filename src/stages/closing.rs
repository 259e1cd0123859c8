//! When a window or a session is complete, so that its verdict can be final.
//!
//! A batch run every few minutes sees windows and sessions that have not ended: a window
//! whose last minutes have not arrived looks quiet, a session without its end events looks
//! broken. Each gets a `closed` column. The day's *watermark* is its latest event time less
//! `[gold] allowed_lateness_minutes`: a window is closed once the watermark has passed its
//! end, a session once the watermark is `[gold] session_idle_minutes` past its last event.
//! A day whose end plus the lateness is past by the wall clock is closed whole — a run over
//! a past date judges everything at once. 05-detect gives open entities *provisional*
//! verdicts only: no incident, no alert, until they close; and it keeps the closing it judged
//! by, so that a verdict on an entity that was closed then stands at later runs.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use crate::config::GoldSettings;
use crate::lake::{Lake, Layer, tables};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Closing {
    /// The whole day is closed (by the wall clock).
    pub day_closed: bool,
    /// Latest event time of the day less the allowed lateness, epoch milliseconds.
    pub watermark_ms: i64,
    /// `[gold] session_idle_minutes` in milliseconds.
    pub idle_ms: i64,
}

impl Closing {
    /// The closing of `date` now, from the latest event time silver's templates record.
    pub fn of(lake: &Lake, source: &str, date: NaiveDate, gold: &GoldSettings) -> Result<Self> {
        let latest = match lake.scan_partition(Layer::Silver, tables::TEMPLATES, source, date)? {
            Some(t) => t
                .select([col("last_seen").cast(DataType::Int64).max()])
                .collect()
                .map_err(anyhow::Error::from)
                .context("reading the day's latest event time")?
                .column("last_seen")?
                .i64()?
                .get(0),
            None => None,
        };
        Ok(Self {
            day_closed: gold.day_closed(date, chrono::Utc::now()),
            watermark_ms: latest.unwrap_or(i64::MIN / 2)
                - i64::from(gold.allowed_lateness_minutes) * 60_000,
            idle_ms: i64::from(gold.session_idle_minutes) * 60_000,
        })
    }

    /// Whether a window ending at `end_ms` is closed.
    pub fn window_closed(&self, end_ms: i64) -> bool {
        self.day_closed || end_ms <= self.watermark_ms
    }

    /// Whether a session whose last event is at `end_ms` is closed.
    pub fn session_closed(&self, end_ms: i64) -> bool {
        self.day_closed || end_ms + self.idle_ms <= self.watermark_ms
    }

    /// `closed` for rows whose window ends at `end` (a timestamp column).
    pub fn window(&self, end: Expr) -> Expr {
        (lit(self.day_closed).or(end.cast(DataType::Int64).lt_eq(lit(self.watermark_ms))))
            .alias("closed")
    }

    /// `closed` for sessions whose last event is at `end` (a timestamp column).
    pub fn session(&self, end: Expr) -> Expr {
        (lit(self.day_closed)
            .or((end.cast(DataType::Int64) + lit(self.idle_ms)).lt_eq(lit(self.watermark_ms))))
        .alias("closed")
    }
}
