//! Compaction: a day parsed as many micro-batches has a part file per run in silver's events
//! and quarantine; once its events have more than [`MAX_PARTS`] small parts, those are
//! rewritten as few large ones, their template ids resolved to the day's current templates;
//! the large parts before them stay as they are (see `Lake::compact_parts`), so a long day
//! is not rewritten whole at every compaction. It runs on its own after a run of 02-silver.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;

use super::EVENT_SLICE;
use crate::lake::{Lake, Layer, tables};
use crate::stages::Context;
use crate::stages::template_store::{resolve, successors_of};

/// Part files a day's events (or quarantine) may have before they are compacted: a day of
/// 5-minute runs compacts about every two hours, and a reader opens at most this many files.
pub const MAX_PARTS: usize = 24;

/// Compact `date`'s silver events and quarantine if they have more than [`MAX_PARTS`] files;
/// `keep` is the part holding the day's last event, which the next run may write again (a
/// stack trace it continues): it is left as it is.
pub fn when_due(ctx: &Context, date: NaiveDate, keep: Option<&str>) -> Result<()> {
    day(&ctx.lake, &ctx.source, date, MAX_PARTS, keep)
}

/// Compact one day's silver events and quarantine when either has more than `max_parts`
/// files (the events part named `keep` aside).
pub fn day(
    lake: &Lake,
    source: &str,
    date: NaiveDate,
    max_parts: usize,
    keep: Option<&str>,
) -> Result<()> {
    let events = lake.part_files(Layer::Silver, tables::EVENTS, source, date)?;
    let is_kept = |f: &std::path::PathBuf| {
        keep.is_some_and(|k| f.file_name().is_some_and(|n| n.to_string_lossy() == k))
    };
    let unkept: Vec<_> = events.iter().filter(|f| !is_kept(f)).cloned().collect();
    if Lake::small_parts(&unkept, EVENT_SLICE)? > max_parts {
        compact_events(lake, source, date, events, keep)
            .with_context(|| format!("compacting silver events of {date}"))?;
    }
    let quarantine = lake.part_files(Layer::Quarantine, tables::UNPARSED, source, date)?;
    if quarantine.len() > max_parts
        && let Some(all) = lake.scan_partition(Layer::Quarantine, tables::UNPARSED, source, date)?
    {
        let all = all
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading quarantine to compact it")?;
        lake.commit_partition(Layer::Quarantine, tables::UNPARSED, source, date, &all)?;
    }
    Ok(())
}

/// Rewrite the day's events as parts of [`EVENT_SLICE`] rows, a part at a time, template ids
/// resolved through the day's successors; the part `keep` is put back as it was.
fn compact_events(
    lake: &Lake,
    source: &str,
    date: NaiveDate,
    files: Vec<std::path::PathBuf>,
    keep: Option<&str>,
) -> Result<()> {
    let is_kept = |f: &std::path::PathBuf| {
        keep.is_some_and(|k| f.file_name().is_some_and(|n| n.to_string_lossy() == k))
    };
    let (kept, files): (Vec<_>, Vec<_>) = files.into_iter().partition(is_kept);
    let kept = match kept.first() {
        Some(f) => Some(Lake::scan_files(std::slice::from_ref(f))?.collect()?),
        None => None,
    };
    let successors = successors_of(lake, source, date)?;
    let rows = lake.compact_parts(
        (Layer::Silver, tables::EVENTS),
        (source, date),
        &files,
        EVENT_SLICE,
        |slice| resolve(slice, &successors),
    )?;
    if let (Some(mut frame), Some(name)) = (kept, keep) {
        lake.commit_part_file(Layer::Silver, tables::EVENTS, source, date, name, |path| {
            crate::lake::write_parquet(&mut frame, path)
        })?;
    }
    tracing::info!(%date, rows, "silver events compacted");
    Ok(())
}
