//! An open day's sessions, brought up to date by a run of 03-gold that read new events.
//!
//! Only the sessions the new events touch change: they are aggregated again from all their
//! events (`gold/session_events` keeps the day's keyed events, a part per run), and replace
//! their old rows. A part of `gold/session_features` (and its twin in
//! `session_template_counts`) that holds none of them is copied as it is — unless one of its
//! sessions has closed since (its `closed` column is written again). The new rows go in a
//! part of their own; once there are more than [`MAX_SMALL_PARTS`] parts of fewer than
//! [`PART_SESSIONS`] / 2 sessions, those are merged into parts of up to [`PART_SESSIONS`],
//! each sorted by session key as 05-detect reads them. Parts stay that small because the
//! sessions new events touch are mostly the latest, in the latest part, which is written
//! again whole: merged into one part, a run at the end of a day wrote the whole day's
//! sessions again. Memory: the touched sessions' events, and one part at a time.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashSet;

use super::sessions;
use crate::lake::{Lake, Layer, StagedPartition, concat_rows, read_parquet, tables};
use crate::stages::Context;
use crate::stages::closing::Closing;

/// Small session parts a day may have before they are merged.
const MAX_SMALL_PARTS: usize = 8;

/// Sessions a merged part holds at most.
const PART_SESSIONS: usize = 16 * 1024;

/// Replace the sessions `touched` names with their new aggregates and write the day's
/// `closed` columns for `closing`; how many sessions the day has.
pub(super) fn update(
    ctx: &Context,
    date: NaiveDate,
    touched: &FxHashSet<String>,
    closing: &Closing,
) -> Result<usize> {
    let lake = &ctx.lake;
    let keys = Series::new(
        "session_key".into(),
        touched.iter().map(String::as_str).collect::<Vec<_>>(),
    );
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
    let sizes: Vec<usize> = features
        .iter()
        .map(|f| Lake::row_count(std::slice::from_ref(f)).map(|n| n as usize))
        .collect::<Result<_>>()?;
    let is_small = |n: usize| n < PART_SESSIONS / 2;
    let merging = sizes.iter().filter(|n| is_small(**n)).count() + 1 > MAX_SMALL_PARTS;
    let mut out = Out {
        features: lake.stage_partition(Layer::Gold, tables::SESSION_FEATURES)?,
        counts: lake.stage_partition(Layer::Gold, tables::SESSION_TEMPLATE_COUNTS)?,
        held: Vec::new(),
        sessions: 0,
    };
    for ((f, c), size) in features.iter().zip(&counts).zip(sizes) {
        let merge = merging && is_small(size);
        let probe = Lake::scan_files(std::slice::from_ref(f))?
            .select([
                is_touched().any(true).alias("hit"),
                (col("closed").not().and(closing.session(col("end"))))
                    .any(true)
                    .alias("closes"),
            ])
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading gold/session_features")?;
        let flag = |name: &str| -> Result<bool> {
            Ok(probe.column(name)?.bool()?.get(0).unwrap_or(false))
        };
        let (hit, closes) = (flag("hit")?, flag("closes")?);
        if !hit && !closes && !merge {
            out.copy(f, c)?;
            continue;
        }
        let (mut part, mut part_counts) = (read_parquet(f)?, read_parquet(c)?);
        if hit {
            part = part.lazy().filter(is_touched().not()).collect()?;
            part_counts = part_counts.lazy().filter(is_touched().not()).collect()?;
        }
        out.emit_split(with_closed(part, closing)?, part_counts, merge)?;
    }
    out.emit_split(fresh, fresh_counts, merging)?;
    out.finish(&ctx.source, date)
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
    sessions: usize,
}

impl Out<'_> {
    /// A part's sessions and their counts, its closed sessions apart from its open ones: the
    /// next run's events mostly touch open sessions (and every one that closes has its part
    /// written again), so they are kept in parts of their own, small ones, rather than
    /// scattered by key over the day's parts. Closed ones are merged with the small parts
    /// around them when `merge`; open ones never are.
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
        self.emit(split(&features, true)?, split(&counts, true)?, false)
    }

    /// A part's sessions and their counts (sorted by session key), merged with the small
    /// parts around it when `merge`.
    fn emit(&mut self, mut features: DataFrame, mut counts: DataFrame, merge: bool) -> Result<()> {
        if features.height() == 0 {
            return Ok(());
        }
        self.sessions += features.height();
        if !merge {
            self.flush()?;
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
        if self.held.is_empty() {
            return Ok(());
        }
        let (features, counts): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().unzip();
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
    fn copy(&mut self, features: &Path, counts: &Path) -> Result<()> {
        self.flush()?;
        self.sessions += Lake::row_count(&[features.to_path_buf()])? as usize;
        self.features.copy(features)?;
        self.counts.copy(counts)
    }

    fn finish(mut self, source: &str, date: NaiveDate) -> Result<usize> {
        self.flush()?;
        self.features.commit(source, date)?;
        self.counts.commit(source, date)?;
        Ok(self.sessions)
    }
}
