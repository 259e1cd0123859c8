//! `03-gold`: silver events → feature tables.
//!
//! - `gold/window_features`: one row per service × fixed window (default 5 minutes): volume,
//!   per-level counts and rates, distinct templates, templates never seen in earlier batches,
//!   counts of the most frequent templates of the week before (`tpl_<template id>`; on a
//!   source's first day, of that day), hour and weekday, whether it is `closed` (see
//!   [`closing`]), and
//!   the same service's median volume and errors per window at that hour over the previous
//!   `baseline_days` days (`events_same_hour`, `errors_same_hour`; null without history).
//! - `gold/session_features` (when a session key is configured): one row per session key:
//!   service, start, end, duration, length, distinct templates, warnings, errors, and the
//!   template sequence; `gold/session_template_counts` holds its template count vector in long
//!   form (session, template, count), which any engine can pivot.
//! - `gold/event_features`: one row per event: where it is in the lake, how many events of
//!   its template the day has had up to it (`template_count`), and the window and session it
//!   belongs to (`window_start`, `session_key`), so that later stages find an event's window
//!   and session in this table instead of re-deriving them from silver.
//!
//! Memory follows `[parse] window_lines` and `[gold] session_bucket_events`, not the day:
//! silver is read once, a window of rows at a time, to write each window's event features,
//! reduce it to partial window counts ([`windows`]) and hand its keyed events to the session
//! buckets ([`sessions`]). Every feature of a window, session or event depends only on its
//! own events and on earlier days, never on what comes later in its day, so a closed entity's
//! features do not change as the day goes on. "New" templates (none of the
//! earlier batches had them) count once in each service × time window they occur in, at their
//! first line there.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use super::{Context, RunOutcome};
use crate::lake::schema::with_session_field;
use crate::lake::{Layer, each_read_ahead, tables};
use crate::parse::SessionKey;

mod history;
mod increment;
mod session_delta;
mod session_merge;
pub(crate) mod sessions;
mod state;
mod windows;

use history::{inputs_of, same_hour_baselines, seen_before, top_templates_for};

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut outcome = RunOutcome::default();
    let (mut sessions_total, mut windows_total, mut dates_built) = (0usize, 0usize, 0usize);
    for &date in &ctx.dates {
        ctx.progress.step(format!("building features for {date}"));
        let rows = ctx
            .lake
            .table_rows(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?;
        if ctx
            .lake
            .part_files(Layer::Silver, tables::EVENTS, &ctx.source, date)?
            .is_empty()
        {
            tracing::warn!(%date, "no silver partition for this date; nothing to do");
            continue;
        }
        if rows == 0 {
            // Every line was quarantined (a file of NULs, lines in no format): no features,
            // and none left from an earlier run of the date.
            tracing::warn!(%date, "silver holds no events for this date (every line was quarantined); no features built");
            for table in [
                tables::WINDOW_FEATURES,
                tables::WINDOW_TEMPLATE_COUNTS,
                tables::SESSION_FEATURES,
                tables::SESSION_TEMPLATE_COUNTS,
                tables::EVENT_FEATURES,
            ] {
                ctx.lake
                    .drop_partition(Layer::Gold, table, &ctx.source, date)?;
            }
            continue;
        }
        let closing =
            crate::stages::closing::Closing::of(&ctx.lake, &ctx.source, date, &ctx.resolved.gold)?;
        let inputs = inputs_of(ctx, date, &closing)?;
        let built = !ctx
            .lake
            .part_files(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, date)?
            .is_empty();
        if built
            && ctx
                .lake
                .built_from(Layer::Gold, &ctx.source, date)?
                .as_deref()
                == Some(&inputs)
        {
            tracing::info!(%date, "gold is up to date: silver has nothing new and no window or session closed since");
            continue;
        }
        let built = match increment::build(ctx, date, &closing)? {
            Some(built) => built,
            None => {
                state::BuildState::drop_all(&ctx.lake, &ctx.source, date)?;
                build_date(ctx, date, rows as usize, &closing)?
            }
        };
        ctx.lake
            .record_built_from(Layer::Gold, &ctx.source, date, &inputs)?;
        outcome.rows_in += built.read;
        outcome.rows_out += built.windows as u64 + built.read;
        windows_total += built.windows;
        sessions_total += built.sessions;
        dates_built += 1;
    }
    if dates_built == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no new silver data for source {:?} on {}, and nothing closed since the last run (run 02-silver first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    outcome.message = format!(
        "{} new events → {windows_total} service windows, {sessions_total} sessions",
        outcome.rows_in
    );
    Ok(outcome)
}

/// What one date's features came to.
struct Built {
    /// Silver rows read (on an open day, those earlier runs had not).
    read: u64,
    windows: usize,
    sessions: usize,
}

/// The feature tables of `date` (`rows` silver events), read a window of rows at a time: each
/// window's event features are written, the window is reduced to partial window counts, and
/// its keyed events go to the session buckets. Template counts come from `silver/templates`.
fn build_date(
    ctx: &Context,
    date: NaiveDate,
    rows: usize,
    closing: &crate::stages::closing::Closing,
) -> Result<Built> {
    let session_key = ctx.resolved.parse.session_key.as_ref();
    let gold = &ctx.resolved.gold;
    let window_ms = i64::from(gold.window_minutes.max(1)) * 60_000;
    let window = ctx.resolved.parse.settings.window_lines.max(1);

    let t0 = std::time::Instant::now();
    let top = top_templates_for(ctx, date, gold.top_templates)?;
    let mut seen_so_far = RunningCounts::default();
    let mut partials = windows::WindowPartials::new(window_ms, seen_before(ctx, date)?);
    let buckets = if session_key.is_some() {
        rows.div_ceil(gold.session_bucket_events.max(1)).max(1)
    } else {
        1
    };
    let scratch = if buckets > 1 {
        Some(ctx.lake.scratch("gold-sessions")?)
    } else {
        None
    };
    let mut sessions = sessions::SessionBuckets::new(buckets, scratch, gold.session_bucket_events);
    let mut events_out = ctx
        .lake
        .stage_partition(Layer::Gold, tables::EVENT_FEATURES)?;
    // Windows inside silver's parts (see `Lake::row_ranges`).
    let ranges = ctx
        .lake
        .row_ranges(Layer::Silver, tables::EVENTS, (&ctx.source, date), window)?;
    // Template ids a later run of 02-silver refined away, read as their successors.
    let successors = super::template_store::successors_of(&ctx.lake, &ctx.source, date)?;
    let read = |w: usize| read_silver(ctx, date, ranges[w], session_key, &successors);
    // Reading a window (decoding silver's messages, running the session-key regex) runs on
    // threads of its own while the window before is turned into features. It takes longer
    // than the features (on a million HDFS lines ~40 ms a window against ~25 ms): two
    // windows are read at once, so that both cores are busy.
    each_read_ahead(ranges.len(), 2, read, &mut |w, events| {
        let (start, len) = ranges[w];
        ctx.progress.step(format!(
            "building features for {date}, rows {start}..{}",
            start + len
        ));
        let counts = seen_so_far.add(&events)?;
        let mut per_event = event_features(&events, counts, window_ms)?;
        events_out.write(&mut per_event)?;
        partials.add(&events)?;
        if session_key.is_some() {
            sessions.add(events.select([
                "session_key",
                "service",
                "ts",
                "level",
                "template_id",
            ])?)?;
        }
        Ok(())
    })?;
    events_out.commit(&ctx.source, date)?;

    let windows = window_features(ctx, partials, &top, date, closing)?;
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "window and event features"
    );
    ctx.lake.commit_partition(
        Layer::Gold,
        tables::WINDOW_FEATURES,
        &ctx.source,
        date,
        &windows,
    )?;

    let n_sessions = sessions::write_sessions(ctx, date, sessions, session_key, closing)?;
    Ok(Built {
        read: rows as u64,
        windows: windows.height(),
        sessions: n_sessions,
    })
}

/// Silver rows `start .. start + len` of `date`: what features are made of (file, line,
/// time, service, level, template with refined ids read as their successors, session key).
fn read_silver(
    ctx: &Context,
    date: NaiveDate,
    (start, len): (usize, usize),
    session_key: Option<&SessionKey>,
    successors: &rustc_hash::FxHashMap<String, (String, String)>,
) -> Result<DataFrame> {
    let Some(silver) = ctx
        .lake
        .scan_partition(Layer::Silver, tables::EVENTS, &ctx.source, date)?
    else {
        anyhow::bail!("the silver partition of {date} disappeared while 03-gold was reading it");
    };
    let events = with_session_field(silver.slice(start as i64, len as IdxSize))?
        .with_column(session_key_expr(session_key).alias("session_key"))
        .select([
            col("file"),
            col("line_no"),
            col("ts"),
            col("service"),
            col("level"),
            col("template_id"),
            col("session_key"),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading silver events")?;
    super::template_store::resolve(events, successors)
}

/// One row per service × time window (see the module docs), from the day's partial counts.
fn window_features(
    ctx: &Context,
    partials: windows::WindowPartials,
    top: &[String],
    date: NaiveDate,
    closing: &crate::stages::closing::Closing,
) -> Result<DataFrame> {
    let gold = &ctx.resolved.gold;
    let window_ms = gold.window_minutes.max(1) as i64 * 60_000;
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    // The long table beside the wide one: one schema for every source, so analysts can read
    // every source's counts at once.
    let counts = partials
        .template_counts()?
        .with_columns([
            col("window_start_ms")
                .cast(utc.clone())
                .alias("window_start"),
            (col("window_start_ms") + lit(window_ms))
                .cast(utc.clone())
                .alias("window_end"),
        ])
        .select([
            col("service"),
            col("window_start"),
            col("window_end"),
            col("template_id"),
            col("count"),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("counting events per window and template")?;
    ctx.lake.commit_partition(
        Layer::Gold,
        tables::WINDOW_TEMPLATE_COUNTS,
        &ctx.source,
        date,
        &counts,
    )?;
    let windows = partials
        .finish(top)?
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
    .with_column(closing.window(col("window_end")))
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
        Some(SessionKey::Pattern(pattern)) => {
            let pattern = pattern.as_ref().clone();
            col("message").map(
                move |messages| {
                    let mut locations = pattern.locations();
                    let keys: StringChunked = messages
                        .str()?
                        .iter()
                        .map(|m| m.and_then(|m| pattern.find(m, &mut locations)))
                        .collect();
                    Ok(keys.into_column())
                },
                |_, field| Ok(Field::new(field.name().clone(), DataType::String)),
            )
        }
    }
}

/// Events of each template so far in the day, in silver's order: an event's
/// `template_count` is how many events of its template the day has had up to and including
/// it, so it never changes once the event is in the lake, whatever comes after.
#[derive(Default)]
struct RunningCounts(rustc_hash::FxHashMap<String, i64>);

impl RunningCounts {
    /// Counts carried over from the runs before.
    fn from_saved(saved: &std::collections::BTreeMap<String, i64>) -> Self {
        Self(saved.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }

    fn saved(&self) -> std::collections::BTreeMap<String, i64> {
        self.0.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The running count of each row of `events` (a window of silver rows, in order).
    fn add(&mut self, events: &DataFrame) -> Result<Column> {
        let ids = events.column("template_id")?.str()?;
        let counts: Vec<Option<i64>> = ids
            .iter()
            .map(|id| {
                id.map(|id| {
                    let n = self.0.entry(id.to_string()).or_default();
                    *n += 1;
                    *n
                })
            })
            .collect();
        Ok(Column::new("template_count".into(), counts))
    }
}

/// One row per event of `events` (a window of silver rows, in order), with its template's
/// running count (`counts`, see [`RunningCounts`]).
fn event_features(events: &DataFrame, counts: Column, window_ms: i64) -> Result<DataFrame> {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let mut events = events.clone();
    events.with_column(counts)?;
    events
        .lazy()
        .select([
            // Which silver event this is (rows are in silver's order), and what gold adds to
            // it. Silver's own columns (time, level, template, values) are not copied: the
            // event detectors read them from silver (a copy made this table 26 MB of a
            // million HDFS lines' 110 MB lake).
            col("file"),
            col("line_no"),
            col("service"),
            col("template_count"),
            window_start_ms(window_ms).cast(utc).alias("window_start"),
            col("session_key"),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("computing event features")
}

#[cfg(test)]
pub(crate) fn is_error() -> Expr {
    col("level")
        .eq(lit("ERROR"))
        .or(col("level").eq(lit("FATAL")))
}

#[cfg(test)]
pub(crate) fn count_of(pred: Expr, name: &str) -> Expr {
    pred.cast(DataType::Int64).sum().alias(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session features as a Polars group-by computed them before 03-gold aggregated sessions
    /// itself: the reference the aggregation is checked against.
    fn reference_sessions(events: LazyFrame) -> Result<(DataFrame, DataFrame)> {
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
                col("ts").min().alias(sessions::START),
                col("ts").max().alias(sessions::END),
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
                (col(sessions::END).cast(DataType::Int64)
                    - col(sessions::START).cast(DataType::Int64))
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
        let (sessions, counts) = aggregate_keyed(keyed(r"req=(\d+)"));
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
        let events = keyed(r"req=(\d+)").collect().unwrap();
        let counts = RunningCounts::default().add(&events).unwrap();
        let df = event_features(&events, counts, 300_000).unwrap();
        let counts: Vec<i64> = df
            .column("template_count")
            .unwrap()
            .i64()
            .unwrap()
            .no_null_iter()
            .collect();
        // t1 t2 t3 t1 t4: the second t1 is the template's second event so far.
        assert_eq!(counts, vec![1, 1, 1, 2, 1]);
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

    /// Keyed events through the bucket aggregation (one bucket, in memory).
    fn aggregate_keyed(events: LazyFrame) -> (DataFrame, DataFrame) {
        let rows = events
            .select([
                col("session_key"),
                col("service"),
                col("ts"),
                col("level"),
                col("template_id"),
            ])
            .collect()
            .unwrap();
        let mut buckets = sessions::SessionBuckets::new(1, None, 1);
        buckets.add(rows).unwrap();
        let mut out = None;
        buckets
            .finish(|s, c| {
                out = Some((s, c));
                Ok(())
            })
            .unwrap();
        out.unwrap()
    }

    /// The aggregation gives what the Polars group-by gave, on rows with ties in time, events
    /// out of time order, missing times, levels and templates, and unkeyed events.
    #[test]
    fn session_aggregation_matches_the_group_by() {
        let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        let n = 5_000usize;
        let mut state = 12_345u64;
        let mut next = move |m: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % m
        };
        let mut key = Vec::new();
        let mut service = Vec::new();
        let mut ts = Vec::new();
        let mut level = Vec::new();
        let mut template = Vec::new();
        for _ in 0..n {
            key.push(match next(10) {
                0 => None,
                _ => Some(format!("s{}", next(700))),
            });
            service.push(Some(["api", "db", "web"][next(3) as usize]));
            ts.push(match next(50) {
                0 => None,
                _ => Some(next(200) as i64 * 1_000),
            });
            level.push(match next(20) {
                0 => None,
                k => Some(["INFO", "WARN", "ERROR", "FATAL", "DEBUG"][(k % 5) as usize]),
            });
            template.push(match next(40) {
                0 => None,
                k => Some(format!("t{}", k % 9)),
            });
        }
        let events = df!(
            "session_key" => key,
            "service" => service,
            "ts" => ts,
            "level" => level,
            "template_id" => template,
        )
        .unwrap()
        .lazy()
        .with_column(col("ts").cast(utc));
        let (want_sessions, want_counts) = reference_sessions(events.clone()).unwrap();
        let (got_sessions, got_counts) = aggregate_keyed(events);
        assert!(want_sessions.height() > 500);
        assert!(
            got_sessions.equals_missing(&want_sessions),
            "sessions differ:\n{got_sessions:?}\n{want_sessions:?}"
        );
        assert!(got_counts.equals_missing(&want_counts));
    }
}
