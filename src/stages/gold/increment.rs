//! 03-gold on an open day: a run reads only the silver rows earlier runs did not, and brings
//! the day's features up to date from what they left ([`super::state`]).
//!
//! - Event features: the new rows' go in parts of their own (`part-g<run>-<k>`), since an
//!   event's features never change once written (its template's running count included).
//! - Window features: the new rows' partial counts are added to the day's, and every window
//!   is summed again from them (a few thousand rows) with the current closing.
//! - Sessions: those the new rows touch are aggregated again ([`super::session_delta`]).
//!
//! A run reads silver up to the part holding the day's last event when 02-silver may still
//! write that part again (a multi-line event whose next lines a later run may bring): that
//! event waits for the next run, or for the day to close. So a day built over many runs has
//! the features of the day built once, row for row (sessions may lie in other parts, in
//! another order).

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashMap;

use super::state::{BuildState, SilverProgress, base_of, silver_row};
use super::{
    Built, RunningCounts, event_features, read_silver, session_delta, session_merge, windows,
};
use super::{history, window_features};
use crate::lake::{Layer, each_read_ahead, tables};
use crate::stages::closing::Closing;
use crate::stages::{Context, timed};

/// Small part files an incrementally built table may have before they are compacted.
const MAX_PARTS: usize = 24;

/// Rows a compacted part holds at most.
const COMPACT_ROWS: usize = 128 * 1024;

/// Bring `date`'s features up to date from the state earlier runs left, or from nothing on an
/// open day. `None`: the day is to be built whole (it has closed and no state carries on, or
/// silver keeps no record of the day).
pub(super) fn build(ctx: &Context, date: NaiveDate, closing: &Closing) -> Result<Option<Built>> {
    let Some(silver) =
        SilverProgress::of(&ctx.lake, &ctx.source, date)?.filter(|p| !p.epoch.is_empty())
    else {
        return Ok(None);
    };
    let files = ctx
        .lake
        .part_files(Layer::Silver, tables::EVENTS, &ctx.source, date)?;
    let total = crate::lake::Lake::row_count(&files)?;
    let mut stable_end = total;
    let mut held_read = None;
    if let Some(last) = files.last()
        && silver.held_part.as_deref() == last.file_name().and_then(|n| n.to_str())
    {
        let fingerprint = part_fingerprint(last)?;
        if closing.day_closed {
            held_read = Some(fingerprint);
        } else {
            stable_end -= crate::lake::Lake::row_count(std::slice::from_ref(last))?;
        }
    }
    let base = timed("03-gold: what the day is built with", || base_of(ctx, date))?;
    let loaded = timed("03-gold: state", || {
        BuildState::load(&ctx.lake, &ctx.source, date)
            .map(|s| {
                carries_on(ctx, date, &s, (&base, &silver.epoch), stable_end, &files)
                    .map(|ok| ok.then_some(s))
            })
            .transpose()
    })?
    .flatten();
    let state = match loaded {
        Some(s) => s,
        _ if closing.day_closed => return Ok(None),
        _ => {
            for table in [
                tables::EVENT_FEATURES,
                tables::WINDOW_FEATURES,
                tables::WINDOW_TEMPLATE_COUNTS,
                tables::SESSION_FEATURES,
                tables::SESSION_TEMPLATE_COUNTS,
                tables::WINDOW_PARTIALS,
                tables::SESSION_EVENTS,
                session_merge::SESSION_KEYS,
            ] {
                ctx.lake
                    .clear_partition(Layer::Gold, table, &ctx.source, date)?;
            }
            BuildState::new(base, silver.epoch.clone())
        }
    };
    let mut state = state;
    let run = state.runs + 1;
    let successors = crate::stages::template_store::successors_of(&ctx.lake, &ctx.source, date)?;
    let read = stable_end - state.rows_done;
    let (touched, new_events, partials) = timed("03-gold: new rows", || {
        read_new_rows(ctx, (date, &successors), &mut state, (run, stable_end))
    })?;

    timed("03-gold: tail", || {
        write_tail(ctx, (date, &successors), &state, (stable_end, total))
    })?;
    let windows = timed("03-gold: windows", || -> Result<DataFrame> {
        let saved = partials.saved()?;
        ctx.lake.commit_partition(
            Layer::Gold,
            tables::WINDOW_PARTIALS,
            &ctx.source,
            date,
            &saved,
        )?;
        let top = history::top_templates_for(ctx, date, ctx.resolved.gold.top_templates)?;
        let windows = window_features(ctx, partials, &top, date, closing)?;
        ctx.lake.commit_partition(
            Layer::Gold,
            tables::WINDOW_FEATURES,
            &ctx.source,
            date,
            &windows,
        )?;
        Ok(windows)
    })?;
    let sessions = if ctx.resolved.parse.session_key.is_some() {
        timed("03-gold: sessions", || {
            session_delta::update(ctx, date, (&touched, &new_events), closing, run)
        })?
    } else {
        for table in [tables::SESSION_FEATURES, tables::SESSION_TEMPLATE_COUNTS] {
            ctx.lake
                .drop_partition(Layer::Gold, table, &ctx.source, date)?;
        }
        0
    };
    state.last_row = match stable_end {
        0 => None,
        n => silver_row(ctx, date, n - 1)?,
    };
    state.rows_done = stable_end;
    state.held_read = held_read;
    state.runs = run;
    state.save(&ctx.lake, &ctx.source, date)?;
    timed("03-gold: compaction", || {
        [tables::EVENT_FEATURES, tables::SESSION_EVENTS]
            .into_iter()
            .try_for_each(|table| compact(ctx, date, table))
    })?;
    Ok(Some(Built {
        read,
        windows: windows.height(),
        sessions,
    }))
}

/// The event features of silver rows `stable_end .. total`, the day's last event while
/// 02-silver may still write it again: in a part of their own (`part-tail`) that every run
/// writes again (empty once there are none), so that 05-detect finds a feature row for every
/// silver row. They count in no window or session until a later run reads them for good.
fn write_tail(
    ctx: &Context,
    (date, successors): (NaiveDate, &Successors),
    state: &BuildState,
    (stable_end, total): (u64, u64),
) -> Result<()> {
    let session_key = ctx.resolved.parse.session_key.as_ref();
    let window_ms = i64::from(ctx.resolved.gold.window_minutes.max(1)) * 60_000;
    let range = (stable_end as usize, (total - stable_end) as usize);
    let events = read_silver(ctx, date, range, session_key, successors)?;
    let counts = RunningCounts::from_saved(&state.counts).add(&events)?;
    let mut per_event = event_features(&events, counts, window_ms)?;
    commit_part(ctx, date, tables::EVENT_FEATURES, TAIL_PART, &mut per_event)
}

/// Template ids a later run of 02-silver refined away, and their successors.
type Successors = FxHashMap<String, (String, String)>;

/// The event features part of the rows 03-gold has not read for good (see [`write_tail`]).
const TAIL_PART: &str = tables::EVENT_TAIL_PART;

/// Read silver rows `state.rows_done .. stable_end`: write their event features and keyed
/// events as run `run`'s parts, count their templates into `state`, and add their partial
/// window counts to the day's. Returns the session keys they touch (with how many of their
/// events were read), the keyed events read, and the day's partials.
fn read_new_rows(
    ctx: &Context,
    (date, successors): (NaiveDate, &Successors),
    state: &mut BuildState,
    (run, stable_end): (u32, u64),
) -> Result<(FxHashMap<String, usize>, DataFrame, windows::WindowPartials)> {
    let session_key = ctx.resolved.parse.session_key.as_ref();
    let window_ms = i64::from(ctx.resolved.gold.window_minutes.max(1)) * 60_000;
    let mut partials = windows::WindowPartials::new(window_ms, history::seen_before(ctx, date)?);
    if let Some(saved) =
        ctx.lake
            .scan_partition(Layer::Gold, tables::WINDOW_PARTIALS, &ctx.source, date)?
    {
        partials.restore(saved.collect()?)?;
    }
    let from = state.rows_done as usize;
    let to = stable_end as usize;
    // Windows inside silver's parts, clipped to the new rows.
    let ranges = crate::lake::clip_ranges(
        ctx.lake.row_ranges(
            Layer::Silver,
            tables::EVENTS,
            (&ctx.source, date),
            ctx.resolved.parse.settings.window_lines.max(1),
        )?,
        from..to,
    );
    let mut counts = RunningCounts::from_saved(&state.counts);
    let mut touched: FxHashMap<String, usize> = FxHashMap::default();
    let mut keyed_read: Vec<DataFrame> = Vec::new();
    let read = |w: usize| read_silver(ctx, date, ranges[w], session_key, successors);
    each_read_ahead(ranges.len(), 2, read, &mut |k, events| {
        let name = format!("part-g{run:06}-{k:04}.parquet");
        let mut per_event = event_features(&events, counts.add(&events)?, window_ms)?;
        commit_part(ctx, date, tables::EVENT_FEATURES, &name, &mut per_event)?;
        partials.add(&events)?;
        if session_key.is_some() {
            let keyed = events.select(["session_key", "service", "ts", "level", "template_id"])?;
            let mut keyed = keyed.filter(&keyed.column("session_key")?.str()?.is_not_null())?;
            for key in keyed.column("session_key")?.str()?.iter().flatten() {
                match touched.get_mut(key) {
                    Some(n) => *n += 1,
                    None => {
                        touched.insert(key.to_string(), 1);
                    }
                }
            }
            if keyed.height() > 0 {
                commit_part(ctx, date, tables::SESSION_EVENTS, &name, &mut keyed)?;
                keyed_read.push(keyed);
            }
        }
        Ok(())
    })?;
    state.counts = counts.saved();
    Ok((touched, crate::lake::concat_rows(keyed_read)?, partials))
}

fn commit_part(
    ctx: &Context,
    date: NaiveDate,
    table: &str,
    name: &str,
    frame: &mut DataFrame,
) -> Result<()> {
    ctx.lake
        .commit_part_file(Layer::Gold, table, &ctx.source, date, name, |path| {
            crate::lake::write_parquet(frame, path)
        })?;
    Ok(())
}

/// Compact `table`'s small parts of `date` once there are more than [`MAX_PARTS`] (see
/// `Lake::compact_parts`), the tail part put back as it was.
fn compact(ctx: &Context, date: NaiveDate, table: &str) -> Result<()> {
    let files = ctx.lake.part_files(Layer::Gold, table, &ctx.source, date)?;
    let is_tail = |f: &std::path::PathBuf| f.file_name().is_some_and(|n| n == TAIL_PART);
    let (tail, files): (Vec<_>, Vec<_>) = files.into_iter().partition(is_tail);
    if crate::lake::Lake::small_parts(&files, COMPACT_ROWS)? <= MAX_PARTS {
        return Ok(());
    }
    let tail = match tail.first() {
        Some(f) => Some(crate::lake::read_parquet(f)?),
        None => None,
    };
    ctx.lake.compact_parts(
        (Layer::Gold, table),
        (&ctx.source, date),
        &files,
        COMPACT_ROWS,
        Ok,
    )?;
    if let Some(mut tail) = tail {
        commit_part(ctx, date, table, TAIL_PART, &mut tail)?;
    }
    Ok(())
}

/// Whether `state` can be carried on: built with the same settings and earlier days from the
/// same parse of silver, which still has the rows it read (the last one where it was), and its
/// gold tables as it left them.
fn carries_on(
    ctx: &Context,
    date: NaiveDate,
    state: &BuildState,
    (base, epoch): (&str, &str),
    stable_end: u64,
    silver_files: &[std::path::PathBuf],
) -> Result<bool> {
    if state.base != base || state.silver_epoch != epoch || state.rows_done > stable_end {
        tracing::info!(
            %date,
            settings_or_templates = state.base != base,
            silver_parsed_again = state.silver_epoch != epoch,
            "03-gold builds the day again: its settings, the earlier days or the template successors changed, or silver parsed the day again"
        );
        return Ok(false);
    }
    if let Some(held) = &state.held_read {
        // A held part read once the day had closed must not have been written again since.
        let same = silver_files
            .iter()
            .map(|f| part_fingerprint(f))
            .collect::<Result<Vec<_>>>()?
            .contains(held);
        if !same {
            return Ok(false);
        }
    }
    if state.rows_done > 0 && silver_row(ctx, date, state.rows_done - 1)? != state.last_row {
        return Ok(false);
    }
    let parts = |table| ctx.lake.part_files(Layer::Gold, table, &ctx.source, date);
    let read: Vec<_> = parts(tables::EVENT_FEATURES)?
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != TAIL_PART))
        .collect();
    Ok(crate::lake::Lake::row_count(&read)? == state.rows_done
        && parts(tables::SESSION_FEATURES)?.len() == parts(tables::SESSION_TEMPLATE_COUNTS)?.len())
}

/// A part file as `name:rows:bytes`.
fn part_fingerprint(file: &std::path::Path) -> Result<String> {
    let rows = crate::lake::Lake::row_count(&[file.to_path_buf()])?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("{name}:{rows}:{bytes}"))
}
