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

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::session_merge::{self, KeySet};
use super::sessions;
use crate::lake::{Lake, Layer, StagedPartition, concat_rows, read_parquet, tables};
use crate::stages::Context;
use crate::stages::closing::Closing;

/// Small session parts a day may have before they are merged.
const MAX_SMALL_PARTS: usize = 8;

/// Sessions a merged part holds at most.
const PART_SESSIONS: usize = 16 * 1024;

/// Replace the sessions `touched` names (with how many of their events this run read) with
/// their new aggregates — each old row followed by this run's events (`new_events`, see
/// [`session_merge`]) where that is exact, else aggregated from all their events — and
/// write the day's `closed` columns for `closing`; how many sessions the day has. `run`:
/// this run's number.
pub(super) fn update(
    ctx: &Context,
    date: NaiveDate,
    (touched, new_events): (&FxHashMap<String, usize>, &DataFrame),
    closing: &Closing,
    run: u32,
) -> Result<usize> {
    let lake = &ctx.lake;
    let keys = key_series(touched.keys().map(String::as_str));
    let seen = KeySet::load(lake, &ctx.source, date)?;
    // An earlier attempt of this run may have written the session parts already: then
    // nothing is merged onto them (see `KeySet`).
    let may_merge = seen.run < run;

    let (features, counts, footers) = day_parts(ctx, date)?;
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
    let split_touched = |df: DataFrame| split_by(df, &keys);
    // The touched sessions' old rows and counts, from the parts they are in.
    let mut old: Vec<(DataFrame, DataFrame)> = Vec::new();
    // The parts with open sessions (the day's open part; any part a whole build wrote) are
    // written again at every run.
    let mut in_open_parts: FxHashSet<String> = FxHashSet::default();
    for (i, footer) in footers.iter().enumerate() {
        if !holds_open(*footer) {
            continue;
        }
        let (was, part) = split_touched(read_parquet(&features[i])?)?;
        in_open_parts.extend(
            was.column("session_key")?
                .str()?
                .iter()
                .flatten()
                .map(str::to_string),
        );
        let (was_counts, part_counts) = split_touched(read_parquet(&counts[i])?)?;
        old.push((was, was_counts));
        out.emit_split(
            with_closed(part, closing)?,
            part_counts,
            merging && is_small(footer.0),
        )?;
    }
    // A closed part holds a touched session only when the session is in no open part and
    // the day has its key: it had closed and is taken up again. Only then are closed parts
    // read, and only for those sessions.
    let taken_up: Vec<String> = touched
        .keys()
        .filter(|k| !in_open_parts.contains(*k) && seen.has(k))
        .cloned()
        .collect();
    let taken_up_keys = key_series(taken_up.iter().map(String::as_str));
    for (i, footer) in footers.iter().enumerate() {
        if holds_open(*footer) {
            continue;
        }
        let (f, c) = (&features[i], &counts[i]);
        let merge = merging && is_small(footer.0);
        let hit = !taken_up.is_empty() && holds_any(f, &taken_up_keys)?;
        if !hit && !merge {
            out.copy(f, c, footer.0)?;
            continue;
        }
        let (mut part, mut part_counts) = (read_parquet(f)?, read_parquet(c)?);
        if hit {
            let (was, rest) = split_touched(part)?;
            let (was_counts, rest_counts) = split_touched(part_counts)?;
            old.push((was, was_counts));
            (part, part_counts) = (rest, rest_counts);
        }
        out.emit_split(with_closed(part, closing)?, part_counts, merge)?;
    }
    let (fresh, fresh_counts) = fresh_sessions(ctx, date, old, new_events, may_merge, touched)?;
    let fresh = with_closed(fresh, closing)?;
    out.emit_split(fresh, fresh_counts, merging)?;
    // The set, with this run's keys and number, before the parts (see `KeySet`).
    seen.save(
        lake,
        (&ctx.source, date),
        run,
        touched.keys().map(String::as_str),
    )?;
    out.finish(&ctx.source, date)
}

/// The touched sessions' new rows and counts: merged from their old rows (`old`) and this
/// run's events where that is exact (and `may_merge`), the rest aggregated from all their
/// events in `gold/session_events`.
fn fresh_sessions(
    ctx: &Context,
    date: NaiveDate,
    old: Vec<(DataFrame, DataFrame)>,
    new_events: &DataFrame,
    may_merge: bool,
    touched: &FxHashMap<String, usize>,
) -> Result<(DataFrame, DataFrame)> {
    if touched.is_empty() {
        return sessions::aggregate(&DataFrame::default());
    }
    let (old, old_counts): (Vec<_>, Vec<_>) = old.into_iter().unzip();
    let (old, old_counts) = (concat_rows(old)?, concat_rows(old_counts)?);
    let (merged, again) = if may_merge && old.width() > 0 {
        let (new, new_counts) = sessions::aggregate(new_events)?;
        let untimed: FxHashSet<String> = new_events
            .clone()
            .lazy()
            .filter(col("ts").is_null())
            .select([col("session_key")])
            .collect()?
            .column("session_key")?
            .str()?
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let old = old.drop("closed")?;
        let m = session_merge::merge((&old, &old_counts), (&new, &new_counts), &untimed)?;
        (Some((m.sessions, m.counts)), m.again)
    } else if may_merge {
        // No touched session had a row: all are new, and this run's events are all theirs.
        (Some(sessions::aggregate(new_events)?), Vec::new())
    } else {
        (None, touched.keys().cloned().collect())
    };
    let aggregated = if again.is_empty() {
        None
    } else {
        let keys = key_series(again.iter().map(String::as_str));
        let events = ctx
            .lake
            .scan_partition(Layer::Gold, tables::SESSION_EVENTS, &ctx.source, date)?
            .context("gold/session_events is missing: re-run 03-gold, which builds the day again")?
            .filter(col("session_key").is_in(lit(keys).implode(false), false))
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading the events of the sessions new events touch")?;
        Some(sessions::aggregate(&events)?)
    };
    let (sessions, counts): (Vec<_>, Vec<_>) = merged.into_iter().chain(aggregated).unzip();
    let by = |df: DataFrame, keys: &[&str]| -> Result<DataFrame> {
        Ok(df.sort(keys.to_vec(), SortMultipleOptions::default())?)
    };
    Ok((
        by(concat_rows(sessions)?, &["session_key"])?,
        by(concat_rows(counts)?, &["session_key", "template_id"])?,
    ))
}

/// A session features part's rows, and whether all its sessions are closed.
type Footer = (u64, Option<bool>);

/// `date`'s session parts: features and counts files, in twos, and each features part's
/// rows and whether all its sessions are closed (from its footer: only the parts that hold
/// open sessions are read at every run).
fn day_parts(ctx: &Context, date: NaiveDate) -> Result<(Vec<PathBuf>, Vec<PathBuf>, Vec<Footer>)> {
    let parts = |table| ctx.lake.part_files(Layer::Gold, table, &ctx.source, date);
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
    let footers = features
        .iter()
        .map(|f| Lake::rows_and_all_true(f, "closed"))
        .collect::<Result<_>>()?;
    Ok((features, counts, footers))
}

/// `df`'s rows of the sessions `keys` names, and the others.
fn split_by(df: DataFrame, keys: &Series) -> Result<(DataFrame, DataFrame)> {
    let named = || col("session_key").is_in(lit(keys.clone()).implode(false), false);
    Ok((
        df.clone().lazy().filter(named()).collect()?,
        df.lazy().filter(named().not()).collect()?,
    ))
}

/// Whether the session part `file` holds any of the sessions `keys` names.
fn holds_any(file: &Path, keys: &Series) -> Result<bool> {
    let probe = Lake::scan_files(&[file.to_path_buf()])?
        .select([col("session_key")
            .is_in(lit(keys.clone()).implode(false), false)
            .any(true)])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading gold/session_features")?;
    Ok(probe.columns()[0].bool()?.get(0).unwrap_or(false))
}

fn key_series<'a>(keys: impl Iterator<Item = &'a str>) -> Series {
    Series::new("session_key".into(), keys.collect::<Vec<_>>())
}

fn with_closed(sessions: DataFrame, closing: &Closing) -> Result<DataFrame> {
    Ok(sessions
        .lazy()
        .with_column(closing.session(col(sessions::END)))
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
