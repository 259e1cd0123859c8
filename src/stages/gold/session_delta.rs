//! An open day's sessions, brought up to date by a run of 03-gold that read new events.
//!
//! Only the sessions the new events touch change: they are aggregated again from all their
//! events (`gold/session_events` keeps the day's keyed events, a part per run), and replace
//! their old rows. The day's open sessions are kept in one part of their own (with its twin
//! in `session_template_counts`), written again at every run: new events mostly touch open
//! sessions, and every open session closes at a later run. The closed ones are in parts no
//! later run rewrites unless a new event touches one of their sessions, which are copied as
//! they are (hard links). Closed sessions of a run go in a part of their own; once there are
//! more than [`MAX_SMALL_PARTS`] parts of fewer than [`PART_SESSIONS`] / 2 sessions, those
//! are merged into parts of up to [`PART_SESSIONS`], each sorted by session key as 05-detect
//! reads them. (Before the open sessions had a part of their own, each part's open sessions
//! were written apart, as a small part, and merging the small parts flushed at every one of
//! them: merged parts stayed small, and every run merged the whole day again.) Memory: the
//! touched sessions' events, the open sessions, and one part at a time.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::sessions;
use crate::lake::{Lake, Layer, StagedPartition, concat_rows, read_parquet, tables};
use crate::stages::Context;
use crate::stages::closing::Closing;

/// Small session parts a day may have before they are merged.
const MAX_SMALL_PARTS: usize = 8;

/// Sessions a merged part holds at most.
const PART_SESSIONS: usize = 16 * 1024;

/// Replace the sessions `touched` names (with how many of their events this run read) with
/// their new aggregates and write the day's `closed` columns for `closing`; how many sessions
/// the day has.
pub(super) fn update(
    ctx: &Context,
    date: NaiveDate,
    touched: &FxHashMap<String, usize>,
    closing: &Closing,
) -> Result<usize> {
    let lake = &ctx.lake;
    let keys = key_series(touched.keys().map(String::as_str));
    let is_touched = || col("session_key").is_in(lit(keys.clone()).implode(false), false);
    let (fresh, fresh_counts) = match (
        touched.is_empty(),
        lake.scan_partition(Layer::Gold, tables::SESSION_EVENTS, &ctx.source, date)?,
    ) {
        (false, Some(events)) => {
            let events = events
                .filter(is_touched())
                .collect()
                .map_err(anyhow::Error::from)
                .context("reading the events of the sessions new events touch")?;
            sessions::aggregate(&events)?
        }
        _ => sessions::aggregate(&DataFrame::default())?,
    };
    let fresh = with_closed(fresh, closing)?;

    let parts = |table| lake.part_files(Layer::Gold, table, &ctx.source, date);
    let (features, counts) = (
        parts(tables::SESSION_FEATURES)?,
        parts(tables::SESSION_TEMPLATE_COUNTS)?,
    );
    if features.len() != counts.len() {
        bail!(
            "gold/session_features and gold/session_template_counts of {date} have different parts ({} and {}): re-run 03-gold, which builds the day again",
            features.len(),
            counts.len()
        );
    }
    // Which parts hold open sessions, from their footers: only those are read at every run.
    let footers: Vec<(u64, Option<bool>)> = features
        .iter()
        .map(|f| Lake::rows_and_all_true(f, "closed"))
        .collect::<Result<_>>()?;
    let is_small = |rows: u64| (rows as usize) < PART_SESSIONS / 2;
    let merging = footers.iter().filter(|(rows, _)| is_small(*rows)).count() + 1 > MAX_SMALL_PARTS;
    let holds_open = |(rows, all_closed): (u64, Option<bool>)| rows > 0 && all_closed != Some(true);
    let mut out = Out {
        features: lake.stage_partition(Layer::Gold, tables::SESSION_FEATURES)?,
        counts: lake.stage_partition(Layer::Gold, tables::SESSION_TEMPLATE_COUNTS)?,
        held: Vec::new(),
        open: Vec::new(),
        sessions: 0,
    };
    let drop_touched = |df: DataFrame| -> Result<DataFrame> {
        Ok(df.lazy().filter(is_touched().not()).collect()?)
    };
    // The parts with open sessions (the day's open part; any part a whole build wrote) are
    // written again at every run.
    let mut in_open_parts: FxHashSet<String> = FxHashSet::default();
    for (i, footer) in footers.iter().enumerate() {
        if !holds_open(*footer) {
            continue;
        }
        let part = read_parquet(&features[i])?;
        in_open_parts.extend(
            part.column("session_key")?
                .str()?
                .iter()
                .flatten()
                .filter(|k| touched.contains_key(*k))
                .map(str::to_string),
        );
        let part = with_closed(drop_touched(part)?, closing)?;
        let part_counts = drop_touched(read_parquet(&counts[i])?)?;
        out.emit_split(part, part_counts, merging && is_small(footer.0))?;
    }
    // A closed part holds a touched session only when the session had events before this
    // run and is in no open part: it had closed and is taken up again. Only then are closed
    // parts read, and only for those sessions.
    let taken_up = taken_up_again(&fresh, touched, &in_open_parts)?;
    let taken_up_keys = key_series(taken_up.iter().map(String::as_str));
    for (i, footer) in footers.iter().enumerate() {
        if holds_open(*footer) {
            continue;
        }
        let (f, c) = (&features[i], &counts[i]);
        let merge = merging && is_small(footer.0);
        let hit = !taken_up.is_empty() && {
            let probe = Lake::scan_files(std::slice::from_ref(f))?
                .select([col("session_key")
                    .is_in(lit(taken_up_keys.clone()).implode(false), false)
                    .any(true)])
                .collect()
                .map_err(anyhow::Error::from)
                .context("reading gold/session_features")?;
            probe.columns()[0].bool()?.get(0).unwrap_or(false)
        };
        if !hit && !merge {
            out.copy(f, c, footer.0)?;
            continue;
        }
        let (mut part, mut part_counts) = (read_parquet(f)?, read_parquet(c)?);
        if hit {
            (part, part_counts) = (drop_touched(part)?, drop_touched(part_counts)?);
        }
        out.emit_split(with_closed(part, closing)?, part_counts, merge)?;
    }
    out.emit_split(fresh, fresh_counts, merging)?;
    out.finish(&ctx.source, date)
}

fn key_series<'a>(keys: impl Iterator<Item = &'a str>) -> Series {
    Series::new("session_key".into(), keys.collect::<Vec<_>>())
}

/// The touched sessions (`fresh`, aggregated from all their events) that had events before
/// this run (more events than the run read of them) and are in none of the open parts.
fn taken_up_again(
    fresh: &DataFrame,
    touched: &FxHashMap<String, usize>,
    in_open_parts: &FxHashSet<String>,
) -> Result<Vec<String>> {
    let keys = fresh.column("session_key")?.str()?;
    let events = fresh.column("n_events")?.i64()?;
    Ok(keys
        .iter()
        .zip(events.iter())
        .filter_map(|(key, n)| {
            let key = key?;
            let new = touched.get(key).copied().unwrap_or(0) as i64;
            (n.unwrap_or(0) > new && !in_open_parts.contains(key)).then(|| key.to_string())
        })
        .collect())
}

fn with_closed(sessions: DataFrame, closing: &Closing) -> Result<DataFrame> {
    Ok(sessions
        .lazy()
        .with_column(closing.session(col("end")))
        .collect()?)
}

/// The day's session parts being written again.
struct Out<'l> {
    features: StagedPartition<'l>,
    counts: StagedPartition<'l>,
    /// Small parts being merged, held until they come to [`PART_SESSIONS`] sessions.
    held: Vec<(DataFrame, DataFrame)>,
    /// The day's open sessions, written as one part at the end.
    open: Vec<(DataFrame, DataFrame)>,
    sessions: usize,
}

impl Out<'_> {
    /// A part's sessions and their counts, its closed sessions apart from its open ones: the
    /// next run's events mostly touch open sessions, and every open session closes in a later
    /// run, so the day's open sessions are kept in one part of their own, written again at
    /// every run, and the closed ones in parts no later run needs to open. Closed ones are
    /// merged with the small parts around them when `merge`.
    fn emit_split(&mut self, features: DataFrame, counts: DataFrame, merge: bool) -> Result<()> {
        let closed = features.column("closed")?.bool()?.clone();
        if closed.all() || features.height() == 0 {
            return self.emit(features, counts, merge);
        }
        let open_keys = features
            .filter(&!&closed)?
            .column("session_key")?
            .as_materialized_series()
            .clone();
        let is_open = || col("session_key").is_in(lit(open_keys.clone()).implode(false), false);
        let split = |df: &DataFrame, open: bool| -> Result<DataFrame> {
            let keep = if open { is_open() } else { is_open().not() };
            Ok(df.clone().lazy().filter(keep).collect()?)
        };
        self.emit(split(&features, false)?, split(&counts, false)?, merge)?;
        self.open
            .push((split(&features, true)?, split(&counts, true)?));
        Ok(())
    }

    /// A part's sessions and their counts (sorted by session key), merged with the small
    /// parts around it when `merge`.
    fn emit(&mut self, mut features: DataFrame, mut counts: DataFrame, merge: bool) -> Result<()> {
        if features.height() == 0 {
            return Ok(());
        }
        self.sessions += features.height();
        if !merge {
            // Parts need no order among themselves: each is sorted by session key, and a
            // session lies in one part.
            self.features.write(&mut features)?;
            return self.counts.write(&mut counts);
        }
        self.held.push((features, counts));
        if self.held.iter().map(|(f, _)| f.height()).sum::<usize>() >= PART_SESSIONS {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the held parts as one, sorted by session key.
    fn flush(&mut self) -> Result<()> {
        let held = std::mem::take(&mut self.held);
        self.write_sorted(held)
    }

    /// Write `parts` as one part, sorted by session key.
    fn write_sorted(&mut self, parts: Vec<(DataFrame, DataFrame)>) -> Result<()> {
        if parts.iter().all(|(f, _)| f.height() == 0) {
            return Ok(());
        }
        let (features, counts): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        // As `sessions::aggregate` orders them (a null template first).
        let by_key = |df: DataFrame, keys: &[&str]| -> Result<DataFrame> {
            Ok(df.sort(keys.to_vec(), SortMultipleOptions::default())?)
        };
        let mut features = by_key(concat_rows(features)?, &["session_key"])?;
        let mut counts = by_key(concat_rows(counts)?, &["session_key", "template_id"])?;
        self.features.write(&mut features)?;
        self.counts.write(&mut counts)
    }

    /// An unchanged part, copied as it is.
    fn copy(&mut self, features: &Path, counts: &Path, sessions: u64) -> Result<()> {
        self.sessions += sessions as usize;
        self.features.copy(features)?;
        self.counts.copy(counts)
    }

    fn finish(mut self, source: &str, date: NaiveDate) -> Result<usize> {
        self.flush()?;
        let open = std::mem::take(&mut self.open);
        self.sessions += open.iter().map(|(f, _)| f.height()).sum::<usize>();
        self.write_sorted(open)?;
        self.features.commit(source, date)?;
        self.counts.commit(source, date)?;
        Ok(self.sessions)
    }
}
