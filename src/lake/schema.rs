//! Column names of the lake's tables that more than one stage reads: written by one stage,
//! read by the others, named here once.

use anyhow::Result;
use polars::prelude::*;

/// Columns of `gold/window_features` that identify a row rather than measure it.
pub const WINDOW_KEYS: &[&str] = &["service", "window_start", "window_end", "date"];

/// Context columns of `gold/window_features`: the calendar and the same-hour baselines
/// describe when a window is and what is usual then, not evidence of an anomaly by themselves.
pub const WINDOW_CONTEXT: &[&str] = &["hour", "weekday", "events_same_hour", "errors_same_hour"];

/// Silver events with a `session_field` column: partitions written before sessions could be
/// keyed by a field have none, and read as null.
pub fn with_session_field(mut events: LazyFrame) -> Result<LazyFrame> {
    let schema = events.collect_schema().map_err(anyhow::Error::from)?;
    Ok(if schema.contains("session_field") {
        events
    } else {
        events.with_column(lit(NULL).cast(DataType::String).alias("session_field"))
    })
}
