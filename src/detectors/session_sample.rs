//! The sessions session detectors train on: every session of the training range when there
//! are at most `[train] max_sessions`, else a fixed sample of that many.
//!
//! The sample is the sessions whose keys hash lowest ("bottom-k"): it does not depend on the
//! order rows are read in, a re-run picks the same sessions, and two passes over the range a
//! window of rows at a time find it without holding the range (a heap of k hashes, then the
//! rows at or under the k-th), and the sessions operators marked normal, whatever their
//! hash (the detectors learn from them). Template counts follow their sessions; the vocabulary (which
//! templates become count features) is still ranked over every session of the range.

use std::collections::{BTreeMap, BinaryHeap};

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use super::training::SessionTraining;
use crate::features;
use crate::lake::{Lake, Layer, RowWindows, concat_rows, keep_rows, tables};
use crate::parse::session::key_hash;

/// The session view of `dates`, or `None` when they have no sessions.
pub fn session_training(
    lake: &Lake,
    source: &str,
    dates: &[NaiveDate],
    window: usize,
    max_sessions: usize,
    marked_normal: &std::collections::BTreeSet<&str>,
) -> Result<Option<SessionTraining>> {
    let total = lake.table_rows(Layer::Gold, tables::SESSION_FEATURES, source, dates)? as usize;
    if total <= max_sessions.max(1) {
        return every_session(lake, source, dates);
    }
    let dated = |table: &str| -> Result<Vec<NaiveDate>> {
        let mut with = Vec::new();
        for &d in dates {
            if !lake.part_files(Layer::Gold, table, source, d)?.is_empty() {
                with.push(d);
            }
        }
        Ok(with)
    };
    let (session_dates, count_dates) = (
        dated(tables::SESSION_FEATURES)?,
        dated(tables::SESSION_TEMPLATE_COUNTS)?,
    );
    if session_dates.is_empty() || count_dates.is_empty() {
        return Ok(None);
    }

    // First pass: the key hash of the k-th lowest, which the sample keeps up to.
    let cut = hash_cut(lake, source, &session_dates, window, max_sessions.max(1))?;
    let sampled = |df: &DataFrame| -> Result<BooleanChunked> {
        Ok(df
            .column("session_key")?
            .str()?
            .iter()
            .map(|k| {
                let k = k.unwrap_or_default();
                key_hash(k) <= cut || marked_normal.contains(k)
            })
            .collect())
    };

    // Second pass: the sampled sessions and their counts.
    let all_columns = |table: &str, d: NaiveDate| -> Result<Vec<String>> {
        let Some(mut lf) = lake.scan_partition(Layer::Gold, table, source, d)? else {
            return Ok(Vec::new());
        };
        Ok(lf
            .collect_schema()
            .map_err(anyhow::Error::from)?
            .iter_names()
            .map(|n| n.to_string())
            .collect())
    };
    let mut session_parts = Vec::new();
    for &d in &session_dates {
        let columns = all_columns(tables::SESSION_FEATURES, d)?;
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        lake.read_windows(
            Layer::Gold,
            tables::SESSION_FEATURES,
            (source, d),
            RowWindows {
                rows: window,
                columns: &columns,
            },
            &mut |df| {
                let keep = sampled(&df)?;
                session_parts.push(with_date(keep_rows(&df, &keep)?, d)?);
                Ok(())
            },
        )?;
    }
    let mut sessions_per_template: BTreeMap<String, u64> = BTreeMap::new();
    let mut count_parts = Vec::new();
    for &d in &count_dates {
        lake.read_windows(
            Layer::Gold,
            tables::SESSION_TEMPLATE_COUNTS,
            (source, d),
            RowWindows {
                rows: window,
                columns: &["session_key", "template_id", "count"],
            },
            &mut |df| {
                for t in df.column("template_id")?.str()?.iter().flatten() {
                    match sessions_per_template.get_mut(t) {
                        Some(n) => *n += 1,
                        None => {
                            sessions_per_template.insert(t.to_string(), 1);
                        }
                    }
                }
                let keep = sampled(&df)?;
                count_parts.push(with_date(keep_rows(&df, &keep)?, d)?);
                Ok(())
            },
        )?;
    }
    let sessions = in_key_order(concat_rows(session_parts)?)?;
    let counts = concat_rows(count_parts)?;
    tracing::info!(
        sessions = sessions.height(),
        of = total,
        "session detectors train on a sample of the range's sessions ([train] max_sessions)"
    );
    let vocabulary = features::ranked_vocabulary(sessions_per_template);
    let frame = features::session_frame(&sessions, &counts, &vocabulary)?;
    Ok(Some(SessionTraining {
        sessions,
        frame,
        vocabulary,
    }))
}

/// The `k`-th lowest key hash of the sessions of `dates`: a sample of `k` sessions is every
/// session whose key hashes no higher.
fn hash_cut(
    lake: &Lake,
    source: &str,
    dates: &[NaiveDate],
    window: usize,
    k: usize,
) -> Result<u64> {
    let mut lowest: BinaryHeap<u64> = BinaryHeap::with_capacity(k + 1);
    for &d in dates {
        lake.read_windows(
            Layer::Gold,
            tables::SESSION_FEATURES,
            (source, d),
            RowWindows {
                rows: window,
                columns: &["session_key"],
            },
            &mut |df| {
                for key in df.column("session_key")?.str()?.iter() {
                    let h = key_hash(key.unwrap_or_default());
                    if lowest.len() < k {
                        lowest.push(h);
                    } else if h < *lowest.peek().expect("k > 0") {
                        lowest.pop();
                        lowest.push(h);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(*lowest.peek().expect("k > 0"))
}

/// Every session of `dates`, read whole (there are at most `max_sessions`).
fn every_session(
    lake: &Lake,
    source: &str,
    dates: &[NaiveDate],
) -> Result<Option<SessionTraining>> {
    let scan = |table: &str| lake.scan(Layer::Gold, table, source, dates);
    let (Some(sessions), Some(counts)) = (
        scan(tables::SESSION_FEATURES)?,
        scan(tables::SESSION_TEMPLATE_COUNTS)?,
    ) else {
        return Ok(None);
    };
    let sessions = in_key_order(
        sessions
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading session features")?,
    )?;
    let counts = counts
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading session template counts")?;
    let vocabulary = features::session_vocabulary(&counts)?;
    let frame = features::session_frame(&sessions, &counts, &vocabulary)?;
    Ok(Some(SessionTraining {
        sessions,
        frame,
        vocabulary,
    }))
}

/// Sessions by date, then key: the order the detectors learn from. Gold holds a day's
/// sessions in buckets by key hash, as many as `[gold] session_bucket_events` makes, so the
/// order rows are read in follows a memory setting; order-sensitive training (k-means'
/// seeding, floating-point sums) then learnt a different model from the same sessions.
fn in_key_order(sessions: DataFrame) -> Result<DataFrame> {
    Ok(sessions.sort(
        ["date", "session_key"],
        SortMultipleOptions::default().with_maintain_order(true),
    )?)
}

/// `df` with the `date` column [`Lake::scan`] adds, so both paths give the same columns.
fn with_date(df: DataFrame, d: NaiveDate) -> Result<DataFrame> {
    Ok(df
        .lazy()
        .with_column(lit(d.format("%Y-%m-%d").to_string()).alias("date"))
        .collect()?)
}
