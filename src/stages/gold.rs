//! `03-gold`: silver events → feature tables, all with Polars' lazy API.
//!
//! - `gold/window_features`: one row per service × fixed window (default 5 minutes): volume,
//!   per-level counts and rates, distinct templates, templates never seen in earlier batches,
//!   counts of the batch's most frequent templates (`tpl_<template id>`), hour and weekday, and
//!   the same service's median volume and errors per window at that hour over the previous
//!   `baseline_days` days (`events_same_hour`, `errors_same_hour`; null without history).
//! - `gold/session_features` (when a session key is configured): one row per session key:
//!   service, start, end, duration, length, distinct templates, warnings, errors, and the
//!   template sequence; `gold/session_template_counts` holds its template count vector in long
//!   form (session, template, count), which any engine can pivot.
//! - `gold/event_features`: one row per event: where it is in the lake, its template and how
//!   often that template occurs in the batch, and the window and session it
//!   belongs to (`window_start`, `session_key`), so that later stages find an event's window
//!   and session in this table instead of re-deriving them from silver.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use super::{Context, RunOutcome};
use crate::lake::schema::with_session_field;
use crate::lake::{Layer, tables};
use crate::parse::SessionKey;

fn is_error() -> Expr {
    col("level")
        .eq(lit("ERROR"))
        .or(col("level").eq(lit("FATAL")))
}

fn count_of(pred: Expr, name: &str) -> Expr {
    pred.cast(DataType::Int64).sum().alias(name)
}

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let session_key = ctx.resolved.session_key.as_ref();
    let window_ms = i64::from(ctx.resolved.gold.window_minutes.max(1)) * 60_000;
    let mut outcome = RunOutcome::default();
    let mut sessions_total = 0usize;
    let mut windows_total = 0usize;
    for &date in &ctx.dates {
        ctx.progress.step(format!("building features for {date}"));
        let Some(events) = ctx
            .lake
            .scan(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?
        else {
            tracing::warn!(%date, "no silver partition for this date; nothing to do");
            continue;
        };
        // Read silver once: each feature table is its own query, and a lazy scan would be
        // re-read by each of them.
        let events = with_session_field(events)?
            .with_column(session_key_expr(session_key).alias("session_key"))
            .select([
                col("file"),
                col("line_no"),
                col("ts"),
                col("service"),
                col("level"),
                col("message"),
                col("template_id"),
                col("template"),
                col("params"),
                col("session_key"),
            ])
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading silver events")?
            .lazy();
        outcome.rows_in +=
            ctx.lake
                .table_rows(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?;

        let t0 = std::time::Instant::now();
        let windows = window_features(ctx, events.clone(), date)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "window features");
        windows_total += windows.height();
        ctx.lake.commit_partition(
            Layer::Gold,
            tables::WINDOW_FEATURES,
            &ctx.source,
            date,
            &windows,
        )?;

        if session_key.is_none() {
            // No sessions configured: make sure a re-run without a key leaves no stale sessions.
            ctx.lake
                .drop_partition(Layer::Gold, tables::SESSION_FEATURES, &ctx.source, date)?;
            ctx.lake.drop_partition(
                Layer::Gold,
                tables::SESSION_TEMPLATE_COUNTS,
                &ctx.source,
                date,
            )?;
        } else {
            let t0 = std::time::Instant::now();
            let (sessions, counts) = session_features(events.clone())?;
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "session features");
            if let Some(field) = session_key.and_then(SessionKey::field)
                && sessions.height() == 0
            {
                // Silver keeps a field's value only while it keys sessions: set after 02-silver
                // ran, it is not there yet.
                tracing::warn!(
                    %date,
                    field,
                    "no event has a value for the session field: if session_key was set after 02-silver ran for this date, re-run 02-silver"
                );
            }
            sessions_total += sessions.height();
            ctx.lake.commit_partition(
                Layer::Gold,
                tables::SESSION_FEATURES,
                &ctx.source,
                date,
                &sessions,
            )?;
            ctx.lake.commit_partition(
                Layer::Gold,
                tables::SESSION_TEMPLATE_COUNTS,
                &ctx.source,
                date,
                &counts,
            )?;
        }

        let t0 = std::time::Instant::now();
        let per_event = event_features(events, window_ms)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "event features");
        ctx.lake.commit_partition(
            Layer::Gold,
            tables::EVENT_FEATURES,
            &ctx.source,
            date,
            &per_event,
        )?;
        outcome.rows_out += (windows.height() + per_event.height()) as u64;
    }
    if outcome.rows_in == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no silver data for source {:?} on {} (run 02-silver first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    outcome.message = format!(
        "{} events → {windows_total} service windows, {sessions_total} sessions",
        outcome.rows_in
    );
    Ok(outcome)
}

/// Template ids seen in this source's silver before `date`.
fn templates_before(ctx: &Context, date: NaiveDate) -> Result<Option<LazyFrame>> {
    let earlier: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Silver, tables::TEMPLATES, &ctx.source)?
        .into_iter()
        .filter(|d| *d < date)
        .collect();
    Ok(ctx
        .lake
        .scan(Layer::Silver, tables::TEMPLATES, &ctx.source, &earlier)?
        .map(|lf| {
            lf.select([col("template_id")])
                .unique(None, UniqueKeepStrategy::Any)
        }))
}

/// Per service and hour of day, the median volume and error count of a window over the
/// `days` days before `date` (the gold partitions present when this batch is built): what is
/// usual at this time of day, beside each window, for SQL and reports. `None` with no history
/// (or `days` = 0); the columns are then null.
fn same_hour_baselines(ctx: &Context, date: NaiveDate, days: u32) -> Result<Option<LazyFrame>> {
    if days == 0 {
        return Ok(None);
    }
    let from = date - chrono::Duration::days(i64::from(days));
    let earlier: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Gold, tables::WINDOW_FEATURES, &ctx.source)?
        .into_iter()
        .filter(|d| *d >= from && *d < date)
        .collect();
    Ok(ctx
        .lake
        .scan(Layer::Gold, tables::WINDOW_FEATURES, &ctx.source, &earlier)?
        .map(|lf| {
            lf.group_by([col("service"), col("hour")]).agg([
                col("n_events")
                    .cast(DataType::Float64)
                    .median()
                    .alias("events_same_hour"),
                col("n_error")
                    .cast(DataType::Float64)
                    .median()
                    .alias("errors_same_hour"),
            ])
        }))
}

pub fn window_features(ctx: &Context, events: LazyFrame, date: NaiveDate) -> Result<DataFrame> {
    let gold = &ctx.resolved.gold;
    let window_ms = gold.window_minutes.max(1) as i64 * 60_000;
    let top_k = gold.top_templates;

    let top: Vec<String> = events
        .clone()
        .group_by([col("template_id")])
        .agg([len().alias("n")])
        .sort_by_exprs(
            [col("n"), col("template_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(top_k as IdxSize)
        .collect()
        .map_err(anyhow::Error::from)
        .context("ranking templates")?
        .column("template_id")?
        .str()?
        .no_null_iter()
        .map(|s| s.to_string())
        .collect();

    // A template is new when no earlier batch had it; it counts in the window of its first line.
    let with_novelty = match templates_before(ctx, date)? {
        Some(prior) => events.join(
            prior.with_column(lit(false).alias("is_new")),
            [col("template_id")],
            [col("template_id")],
            JoinArgs::new(JoinType::Left),
        ),
        None => events.with_column(lit(NULL).cast(DataType::Boolean).alias("is_new")),
    }
    .with_column(col("is_new").fill_null(lit(true)));

    let mut aggs = vec![
        len().cast(DataType::Int64).alias("n_events"),
        count_of(
            col("level")
                .eq(lit("DEBUG"))
                .or(col("level").eq(lit("TRACE"))),
            "n_debug",
        ),
        count_of(col("level").eq(lit("INFO")), "n_info"),
        count_of(col("level").eq(lit("WARN")), "n_warn"),
        count_of(is_error(), "n_error"),
        col("template_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("distinct_templates"),
        count_of(
            col("is_new").and(col("ts").eq(col("ts").min().over([col("template_id")])?)),
            "new_templates",
        ),
    ];
    for t in &top {
        aggs.push(count_of(
            col("template_id").eq(lit(t.as_str())),
            &format!("tpl_{t}"),
        ));
    }
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let windows = with_novelty
        .with_column(window_start_ms(window_ms).alias("window_start_ms"))
        .group_by([col("service"), col("window_start_ms")])
        .agg(aggs)
        .with_columns([
            col("window_start_ms")
                .cast(utc.clone())
                .alias("window_start"),
            (col("window_start_ms") + lit(window_ms))
                .cast(utc)
                .alias("window_end"),
            (col("n_warn").cast(DataType::Float64) / col("n_events").cast(DataType::Float64))
                .alias("warn_rate"),
            (col("n_error").cast(DataType::Float64) / col("n_events").cast(DataType::Float64))
                .alias("error_rate"),
        ])
        .with_columns([
            col("window_start")
                .dt()
                .hour()
                .cast(DataType::Int64)
                .alias("hour"),
            col("window_start")
                .dt()
                .weekday()
                .cast(DataType::Int64)
                .alias("weekday"),
        ])
        .drop(by_name(["window_start_ms"], true, false));
    let windows = match same_hour_baselines(ctx, date, gold.baseline_days)? {
        Some(baselines) => windows.join(
            baselines,
            [col("service"), col("hour")],
            [col("service"), col("hour")],
            JoinArgs::new(JoinType::Left),
        ),
        None => windows.with_columns([
            lit(NULL).cast(DataType::Float64).alias("events_same_hour"),
            lit(NULL).cast(DataType::Float64).alias("errors_same_hour"),
        ]),
    }
    .sort(["service", "window_start"], Default::default())
    .collect()
    .map_err(anyhow::Error::from)
    .context("computing window features")?;
    // Key columns first: the table reads naturally in any SQL engine.
    let mut order: Vec<String> = vec!["service".into(), "window_start".into(), "window_end".into()];
    order.extend(
        windows
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !["service", "window_start", "window_end"].contains(&c.as_str())),
    );
    Ok(windows.select(order)?)
}

/// The start of the window an event falls in, in epoch milliseconds.
fn window_start_ms(window_ms: i64) -> Expr {
    let ts_ms = col("ts").cast(DataType::Int64);
    ts_ms.clone() - ts_ms % lit(window_ms)
}

/// The session key of each event: with `field:<name>`, the field's value silver kept
/// (`session_field`); otherwise the regex's first capture group in the message if it has
/// one, else the whole match. Null when the event has none, or the source has no sessions.
pub fn session_key_expr(session_key: Option<&SessionKey>) -> Expr {
    match session_key {
        None => lit(NULL).cast(DataType::String),
        Some(SessionKey::Field(_)) => col("session_field"),
        Some(SessionKey::Pattern { regex, group }) => col("message")
            .str()
            .extract(lit(regex.as_str().to_string()), *group),
    }
}

/// Per session (events with a `session_key`): its features, and its template counts.
pub fn session_features(events: LazyFrame) -> Result<(DataFrame, DataFrame)> {
    let keyed = events
        .filter(col("session_key").is_not_null())
        .select([
            col("session_key"),
            col("service"),
            col("ts"),
            col("level"),
            col("template_id"),
        ])
        .sort(
            ["ts"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
        .map_err(anyhow::Error::from)
        .context("extracting session keys")?
        .lazy();
    let sessions = keyed
        .clone()
        .group_by([col("session_key")])
        .agg([
            col("service").first().alias("service"),
            col("ts").min().alias("start"),
            col("ts").max().alias("end"),
            len().cast(DataType::Int64).alias("n_events"),
            col("template_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("n_distinct_templates"),
            count_of(col("level").eq(lit("WARN")), "n_warn"),
            count_of(is_error(), "n_error"),
            // Text, not a list: pandas (through pyarrow) cannot read Polars' list-of-string columns.
            // Rows are in time order (sorted above) and group_by keeps row order within a
            // group, so this is the session's sequence without a sort per session.
            col("template_id")
                .str()
                .join(" ", true)
                .alias("template_sequence"),
        ])
        .with_column(
            (col("end").cast(DataType::Int64) - col("start").cast(DataType::Int64))
                .alias("duration_ms"),
        )
        .sort(["session_key"], Default::default())
        .collect()
        .map_err(anyhow::Error::from)
        .context("computing session features")?;
    let counts = keyed
        .group_by([col("session_key"), col("template_id")])
        .agg([len().cast(DataType::Int64).alias("count")])
        .sort(["session_key", "template_id"], Default::default())
        .collect()
        .map_err(anyhow::Error::from)
        .context("computing session template counts")?;
    Ok((sessions, counts))
}

pub fn event_features(events: LazyFrame, window_ms: i64) -> Result<DataFrame> {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    events
        .select([
            // Which silver event this is (rows are in silver's order), and what gold adds to
            // it. Silver's own columns (time, level, template, values) are not copied: the
            // event detectors read them from silver (a copy made this table 26 MB of a
            // million HDFS lines' 110 MB lake).
            col("file"),
            col("line_no"),
            col("service"),
            len()
                .over([col("template_id")])?
                .cast(DataType::Int64)
                .alias("template_count"),
            window_start_ms(window_ms).cast(utc).alias("window_start"),
            col("session_key"),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("computing event features")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> LazyFrame {
        let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        df!(
            "file" => ["f"; 5],
            "line_no" => [1u64, 2, 3, 4, 5],
            "ts" => [0i64, 1_000, 2_000, 400_000, 401_000],
            "service" => ["a", "a", "a", "a", "b"],
            "level" => ["INFO", "ERROR", "INFO", "WARN", "INFO"],
            "message" => ["start req=1", "boom req=1", "end req=1", "start req=2", "hello"],
            "template_id" => ["t1", "t2", "t3", "t1", "t4"],
            "template" => ["start", "boom", "end", "start", "hello"],
            "params" => ["[]"; 5],
        )
        .unwrap()
        .lazy()
        .with_column(col("ts").cast(utc))
    }

    /// The test events keyed as 03-gold keys them.
    fn keyed(pattern: &str) -> LazyFrame {
        let key = SessionKey::parse(pattern).unwrap();
        events().with_column(session_key_expr(key.as_ref()).alias("session_key"))
    }

    #[test]
    fn sessions_follow_the_key_and_keep_order() {
        let (sessions, counts) = session_features(keyed(r"req=(\d+)")).unwrap();
        assert_eq!(sessions.height(), 2);
        let s1 = sessions
            .filter(
                &sessions
                    .column("session_key")
                    .unwrap()
                    .str()
                    .unwrap()
                    .equal("1"),
            )
            .unwrap();
        assert_eq!(
            s1.column("n_events").unwrap().i64().unwrap().get(0),
            Some(3)
        );
        assert_eq!(s1.column("n_error").unwrap().i64().unwrap().get(0), Some(1));
        assert_eq!(
            s1.column("duration_ms").unwrap().i64().unwrap().get(0),
            Some(2_000)
        );
        assert_eq!(
            s1.column("template_sequence")
                .unwrap()
                .str()
                .unwrap()
                .get(0),
            Some("t1 t2 t3")
        );
        assert_eq!(counts.height(), 4);
    }

    #[test]
    fn event_features_count_templates_and_place_each_event() {
        let df = event_features(keyed(r"req=(\d+)"), 300_000).unwrap();
        let counts: Vec<i64> = df
            .column("template_count")
            .unwrap()
            .i64()
            .unwrap()
            .no_null_iter()
            .collect();
        assert_eq!(counts, vec![2, 1, 1, 2, 1]);
        let sessions: Vec<Option<&str>> = df
            .column("session_key")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            sessions,
            vec![Some("1"), Some("1"), Some("1"), Some("2"), None]
        );
        let windows: Vec<i64> = crate::features::millis(&df, "window_start").unwrap();
        assert_eq!(windows, vec![0, 0, 0, 300_000, 300_000]);
    }
}
