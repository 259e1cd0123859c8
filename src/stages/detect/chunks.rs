//! The batch's gold views, a chunk at a time, for scoring in bounded memory.
//!
//! A detector judges each entity on its own (the model holds everything learned from
//! training), so the batch can be scored in pieces: service windows whole (a day has a few
//! thousand), sessions a slice of one gold part at a time (a part holds whole sessions, with
//! their template counts in the matching part of `session_template_counts`), and events a
//! window of at most `[parse] window_lines` rows inside one silver part at a time, joined with
//! silver by position. Every entity lies in exactly one chunk.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

use super::samples::COLLECTED_GOLD;
use crate::detectors::Granularity;
use crate::detectors::scoring::{EventColumns, ScoringInput};
use crate::lake::{Layer, RowWindows, each_prefetched, read_parquet, tables};
use crate::stages::Context;

/// Sessions scored at once, per line of `[parse] window_lines`: a session's feature row holds
/// up to 200 template-count columns, so 32,768 sessions (the default window's share) take
/// about 100 MB while they are scored.
const SESSIONS_PER_WINDOW_LINE: f64 = 1.0 / 8.0;

/// What a chunk's scorer gets: the views, and for events the frame they were made from.
pub type Scorer<'s> = dyn FnMut(&ScoringInput<'_>, Option<&DataFrame>) -> Result<()> + 's;

/// Hand `score` every chunk of `date`'s views of `granularity`, in a fixed order. With
/// `samples`, event chunks also hold what [`super::samples::Collector`] keeps sample lines
/// from (their messages and sessions).
pub fn each_chunk(
    ctx: &Context,
    date: NaiveDate,
    (granularity, events_from): (Granularity, std::ops::Range<usize>),
    samples: bool,
    score: &mut Scorer<'_>,
) -> Result<()> {
    match granularity {
        Granularity::Window => {
            let Some(windows) = read_whole(ctx, date, tables::WINDOW_FEATURES)? else {
                return Ok(());
            };
            score(
                &ScoringInput {
                    windows: Some(&windows),
                    sessions: None,
                    events: None,
                },
                None,
            )
        }
        Granularity::Session => session_chunks(ctx, date, score),
        Granularity::Event => event_chunks(ctx, date, events_from, samples, score),
    }
}

fn read_whole(ctx: &Context, date: NaiveDate, table: &str) -> Result<Option<DataFrame>> {
    match ctx
        .lake
        .scan_partition(Layer::Gold, table, &ctx.source, date)?
    {
        Some(lf) => Ok(Some(
            lf.collect()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading gold/{table}"))?,
        )),
        None => Ok(None),
    }
}

fn session_chunks(ctx: &Context, date: NaiveDate, score: &mut Scorer<'_>) -> Result<()> {
    for part in session_parts(ctx, date)? {
        session_part_chunks(ctx, &part, score)?;
    }
    Ok(())
}

/// `date`'s session parts: each file of `gold/session_features` with its twin in
/// `gold/session_template_counts`.
pub fn session_parts(ctx: &Context, date: NaiveDate) -> Result<Vec<(PathBuf, PathBuf)>> {
    let parts = |table| ctx.lake.part_files(Layer::Gold, table, &ctx.source, date);
    let (features, counts) = (
        parts(tables::SESSION_FEATURES)?,
        parts(tables::SESSION_TEMPLATE_COUNTS)?,
    );
    if features.is_empty() || counts.is_empty() {
        return Ok(Vec::new());
    }
    if features.len() != counts.len() {
        bail!(
            "gold/session_features and gold/session_template_counts of {date} have different parts ({} and {}): re-run 03-gold",
            features.len(),
            counts.len()
        );
    }
    Ok(features.into_iter().zip(counts).collect())
}

/// One session part's chunks (slices of its sessions with their template counts).
pub fn session_part_chunks(
    ctx: &Context,
    (f, c): &(PathBuf, PathBuf),
    score: &mut Scorer<'_>,
) -> Result<()> {
    let slice_rows = ((ctx.resolved.parse.settings.window_lines as f64 * SESSIONS_PER_WINDOW_LINE)
        as usize)
        .max(1);
    {
        let sessions = crate::stages::gold::sessions::with_current_names(read_parquet(f)?)?;
        let counts = read_parquet(c)?;
        let keys = sessions.column("session_key")?.str()?;
        let count_keys = counts.column("session_key")?.str()?;
        // Both parts are sorted by session key: a slice's counts are the run of rows up to
        // its last key. (Unsorted counts, from a lake written otherwise, are passed whole:
        // slower, same result, since counts are looked up by key.)
        let sorted = count_keys
            .iter()
            .zip(count_keys.iter().skip(1))
            .all(|(a, b)| a <= b);
        let mut c_start = 0usize;
        for start in (0..sessions.height()).step_by(slice_rows) {
            let len = slice_rows.min(sessions.height() - start);
            let slice = sessions.slice(start as i64, len);
            let slice_counts = if sorted {
                let last = keys.get(start + len - 1);
                let mut c_end = c_start;
                while c_end < counts.height() && count_keys.get(c_end) <= last {
                    c_end += 1;
                }
                let s = counts.slice(c_start as i64, c_end - c_start);
                c_start = c_end;
                s
            } else {
                counts.clone()
            };
            score(
                &ScoringInput {
                    windows: None,
                    sessions: Some((&slice, &slice_counts)),
                    events: None,
                },
                None,
            )?;
        }
    }
    Ok(())
}

/// Events from row `events.start` on (the events an earlier run scored for good are not
/// read); no chunk holds rows on both sides of `events.end` (the events gold wrote for good,
/// and its tail).
fn event_chunks(
    ctx: &Context,
    date: NaiveDate,
    events: std::ops::Range<usize>,
    samples: bool,
    score: &mut Scorer<'_>,
) -> Result<()> {
    let mut gold_columns = vec!["service"];
    let mut silver_columns = vec!["ts", "level", "template_id", "template", "params"];
    if samples {
        gold_columns.extend(COLLECTED_GOLD);
        silver_columns.push("message");
    }
    let columns = (&gold_columns[..], &silver_columns[..]);
    each_event_window_from(ctx, (date, events), columns, &mut |events| {
        let columns = EventColumns::of(&events)?;
        score(
            &ScoringInput {
                windows: None,
                sessions: None,
                events: Some(&columns),
            },
            Some(&events),
        )
    })
}

/// The windows events are read in: silver's row ranges (`Lake::row_ranges`: inside one part,
/// at most `window` rows) from row `rows.start` on, small neighbours joined up to `window`
/// rows (a day run every few minutes has a small part per run), none across `rows.end` —
/// 05-detect keeps the scores of the events gold wrote for good apart from its tail's.
fn windows_of(
    ranges: Vec<(usize, usize)>,
    rows: std::ops::Range<usize>,
    window: usize,
) -> Vec<(usize, usize)> {
    use crate::lake::{clip_ranges, coalesce_ranges};
    let split = rows.end.max(rows.start);
    let mut windows = coalesce_ranges(clip_ranges(ranges.clone(), rows.start..split), window);
    windows.extend(coalesce_ranges(
        clip_ranges(ranges, split..usize::MAX),
        window,
    ));
    windows
}

/// `date`'s events from row `wanted.start` on, a window at a time, in order (at most
/// `[parse] window_lines` rows: a large silver part's windows, or small parts joined, none
/// across `wanted.end`; see [`windows_of`]): silver's
/// `silver` columns and gold's `gold` columns ([`with_silver`]), with `file` and `line_no`.
/// Reading and decoding a window (about 40 % of the event phase) runs on a thread of its
/// own, one window ahead of `each`: at most two windows are in memory.
pub fn each_event_window_from(
    ctx: &Context,
    (date, wanted): (NaiveDate, std::ops::Range<usize>),
    (gold, silver): (&[&str], &[&str]),
    each: &mut dyn FnMut(DataFrame) -> Result<()>,
) -> Result<()> {
    let rows = ctx
        .lake
        .table_rows(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, &[date])?
        as usize;
    let window = ctx.resolved.parse.settings.window_lines.max(1);
    // Windows inside silver's parts (see `Lake::row_ranges`); 03-gold writes its events in
    // the same parts.
    let ranges = ctx
        .lake
        .row_ranges(Layer::Silver, tables::EVENTS, (&ctx.source, date), window)?;
    let silver_rows = ranges.last().map_or(0, |&(start, len)| start + len);
    if silver_rows != rows {
        bail!(
            "gold/event_features of {date} no longer matches silver/events ({rows} and {silver_rows} rows; was 02-silver re-run after 03-gold?): re-run 03-gold"
        );
    }
    // `file` and `line_no` from both: what the join by position is checked on.
    let with_place = |columns: &[&str]| -> Vec<String> {
        ["file", "line_no"]
            .iter()
            .chain(columns.iter().filter(|c| !["file", "line_no"].contains(c)))
            .map(|c| c.to_string())
            .collect()
    };
    let (gold, silver) = (with_place(gold), with_place(silver));
    let ranges = windows_of(ranges, wanted, window);
    // Template ids a later run of 02-silver refined away, read as their successors.
    let successors = crate::stages::template_store::successors_of(&ctx.lake, &ctx.source, date)?;
    let read = |(start, rows): (usize, usize)| -> Result<DataFrame> {
        let slice = |layer, table: &str, columns: &[String]| {
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            let read = RowWindows {
                rows,
                columns: &columns,
            };
            ctx.lake
                .read_rows(layer, table, (&ctx.source, date), start, &read)
        };
        let silver = slice(Layer::Silver, tables::EVENTS, &silver)?;
        let silver = match silver.column("template_id") {
            Ok(_) => crate::stages::template_store::resolve(silver, &successors)?,
            Err(_) => silver,
        };
        with_silver(
            date,
            slice(Layer::Gold, tables::EVENT_FEATURES, &gold)?,
            silver,
        )
    };
    each_prefetched(ranges.len(), |w| read(ranges[w]), &mut |_, events| {
        each(events)
    })
}

/// Silver's events with what gold adds to each. 03-gold writes its events in silver's order,
/// one row per silver event; the two are joined by position, and a mismatch (silver
/// rewritten since gold ran) is an error, not a silent misalignment.
fn with_silver(date: NaiveDate, gold: DataFrame, silver: DataFrame) -> Result<DataFrame> {
    let same = silver.height() == gold.height()
        && silver.column("line_no")?.equals(gold.column("line_no")?)
        && silver.column("file")?.equals(gold.column("file")?);
    if !same {
        bail!(
            "gold/event_features of {date} no longer matches silver/events (was 02-silver re-run after 03-gold?): re-run 03-gold"
        );
    }
    let mut joined = silver;
    for c in gold.columns() {
        if !joined.get_column_names().iter().any(|n| *n == c.name()) {
            joined.with_column(c.clone())?;
        }
    }
    Ok(joined)
}
