//! `gold/session_features` and `gold/session_template_counts`, in bounded memory.
//!
//! A session's events can be anywhere in the day, so its features need all of them at once.
//! Rather than holding the day, 03-gold sends each keyed event to one of `buckets` buckets by a
//! hash of its session key ([`SessionBuckets::add`]) — kept in memory when there is one bucket,
//! spilled to the lake's staging area otherwise — and then aggregates one bucket at a time
//! ([`SessionBuckets::finish`]): a session lies wholly in one bucket, and a bucket holds about
//! `events / buckets` events. Each bucket is written as one part, sorted by session key; with
//! one bucket (a day of up to `[gold] session_bucket_events` events) the table is one file
//! sorted by session key, as it always was.
//!
//! A window's share of one bucket is small (window ÷ buckets rows), and each append to a
//! spill file is a Parquet row group with a fixed cost to write and read back: appended as
//! they came, a day's row groups grew as windows × buckets, with the square of the day (a
//! generated 30 million-line day: 230 windows × 58 buckets). Pieces are held until the
//! bucket's are worth a row group: up to `session_bucket_events` rows in all — the memory one
//! bucket takes at aggregation anyway — of which the fullest buckets are written when it is
//! reached. 03-gold on that 30 M day: 28.0 → 21.7 s; on a 10 M day cut into 77 buckets,
//! 9.8 → 7.0 s; the same tables, byte for byte.
//!
//! The aggregation is plain Rust over the bucket's columns, not a Polars group-by: joining each
//! session's template sequence as text through a group-by took more than a gigabyte for three
//! million events.

use std::fs::File;

use anyhow::{Context as _, Result};
use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use chrono::NaiveDate;

use crate::lake::{Layer, Scratch, concat_rows, read_parquet, tables};
use crate::parse::SessionKey;
use crate::stages::Context;

/// Keyed events on their way to per-session features.
pub struct SessionBuckets {
    buckets: usize,
    /// One bucket: its rows, in memory.
    held: Vec<DataFrame>,
    /// Several: bucket `b`'s rows appended, window after window, to `bucket-<b>.parquet`.
    spill: Option<Spill>,
}

/// The open spill files of a day's buckets, and the pieces not yet appended to them.
struct Spill {
    scratch: Scratch,
    writers: Vec<Option<BatchedWriter<File>>>,
    pending: Vec<Vec<DataFrame>>,
    pending_rows: Vec<usize>,
    /// Rows held in `pending` at most, in all.
    hold: usize,
}

impl SessionBuckets {
    /// `hold`: rows of pieces held back in all before the fullest buckets are written.
    pub fn new(buckets: usize, scratch: Option<Scratch>, hold: usize) -> Self {
        let buckets = buckets.max(1);
        Self {
            buckets,
            held: Vec::new(),
            spill: scratch.filter(|_| buckets > 1).map(|scratch| Spill {
                scratch,
                writers: (0..buckets).map(|_| None).collect(),
                pending: (0..buckets).map(|_| Vec::new()).collect(),
                pending_rows: vec![0; buckets],
                hold: hold.max(1),
            }),
        }
    }

    /// One window of events (`session_key`, `service`, `ts`, `level`, `template_id`, in silver
    /// order); rows without a session key are dropped.
    pub fn add(&mut self, rows: DataFrame) -> Result<()> {
        let keyed = rows.column("session_key")?.str()?.is_not_null();
        let rows = rows.filter(&keyed)?;
        let Some(spill) = self.spill.as_mut() else {
            self.held.push(rows);
            return Ok(());
        };
        // Rows grouped by bucket (a counting sort, silver order kept within a bucket), then
        // each bucket's run held back until it is written (see the module documentation).
        let bucket_of: Vec<usize> = rows
            .column("session_key")?
            .str()?
            .iter()
            .map(|k| bucket(k.unwrap_or_default(), self.buckets))
            .collect();
        let mut starts = vec![0usize; self.buckets + 1];
        for &b in &bucket_of {
            starts[b + 1] += 1;
        }
        for b in 0..self.buckets {
            starts[b + 1] += starts[b];
        }
        let mut next = starts.clone();
        let mut order = vec![0 as IdxSize; bucket_of.len()];
        for (i, &b) in bucket_of.iter().enumerate() {
            order[next[b]] = i as IdxSize;
            next[b] += 1;
        }
        let grouped = rows.take(&IdxCa::from_vec("order".into(), order))?;
        for b in 0..self.buckets {
            let (from, to) = (starts[b], starts[b + 1]);
            if from < to {
                spill.pending[b].push(grouped.slice(from as i64, to - from));
                spill.pending_rows[b] += to - from;
            }
        }
        spill.write_fullest()
    }

    /// Aggregate each bucket, handing `each` its sessions and template counts in bucket order.
    pub fn finish(self, mut each: impl FnMut(DataFrame, DataFrame) -> Result<()>) -> Result<()> {
        let Some(mut spill) = self.spill else {
            let rows = concat_rows(self.held)?;
            let (sessions, counts) = aggregate(&rows)?;
            return each(sessions, counts);
        };
        // Buckets are independent: two at a time, one per core (memory: two buckets, each
        // held to `[gold] session_bucket_events`), handed on in bucket order. The first two
        // take their last pieces from memory (what is spilled first, then what is held, the
        // order writing and reading back gave); the others' pieces are written first, so
        // that only the buckets being aggregated are in memory.
        // (bucket, whether it has a spill file, its pieces held in memory)
        let mut work: Vec<(usize, bool, Vec<DataFrame>)> = Vec::new();
        for b in 0..self.buckets {
            if spill.writers[b].is_none() && spill.pending[b].is_empty() {
                continue;
            }
            let pieces = if work.len() < 2 {
                std::mem::take(&mut spill.pending[b])
            } else {
                spill.write(b)?;
                Vec::new()
            };
            let spilled = match spill.writers[b].take() {
                Some(writer) => {
                    writer.finish()?;
                    true
                }
                None => false,
            };
            work.push((b, spilled, pieces));
        }
        let scratch = &spill.scratch;
        while !work.is_empty() {
            let pair: Vec<_> = work.drain(..work.len().min(2)).collect();
            let aggregated: Vec<(DataFrame, DataFrame)> = pair
                .into_par_iter()
                .map(|(b, spilled, mut pieces)| {
                    if spilled {
                        let rows = read_parquet(&scratch.path(&bucket_file(b)))
                            .context("reading back a spilled session bucket")?;
                        pieces.insert(0, rows);
                    }
                    aggregate(&concat_rows(pieces)?)
                })
                .collect::<Result<_>>()?;
            for (sessions, counts) in aggregated {
                each(sessions, counts)?;
            }
        }
        Ok(())
    }
}

impl Spill {
    /// When more than `hold` rows are held, write the fullest buckets' pieces until at most
    /// half of that is left.
    fn write_fullest(&mut self) -> Result<()> {
        let mut held: usize = self.pending_rows.iter().sum();
        if held <= self.hold {
            return Ok(());
        }
        let mut fullest: Vec<usize> = (0..self.pending.len()).collect();
        fullest.sort_by_key(|&b| (std::cmp::Reverse(self.pending_rows[b]), b));
        for b in fullest {
            if held <= self.hold / 2 {
                break;
            }
            held -= self.pending_rows[b];
            self.write(b)?;
        }
        Ok(())
    }

    /// Append bucket `b`'s held pieces to its file as one row group.
    fn write(&mut self, b: usize) -> Result<()> {
        if self.pending[b].is_empty() {
            return Ok(());
        }
        let rows = concat_rows(std::mem::take(&mut self.pending[b]))?;
        self.pending_rows[b] = 0;
        let writer = match &mut self.writers[b] {
            Some(w) => w,
            slot => {
                let path = self.scratch.path(&bucket_file(b));
                let file =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                // LZ4: a spill file is read back once, minutes later; zstd spent more time
                // compressing and decompressing it than the disk saved.
                slot.insert(
                    ParquetWriter::new(file)
                        .with_compression(ParquetCompression::Lz4Raw)
                        .batched(rows.schema())?,
                )
            }
        };
        writer.write_batch(&rows)?;
        Ok(())
    }
}

fn bucket_file(b: usize) -> String {
    format!("bucket-{b:05}.parquet")
}

/// The bucket of a session key (a fixed hash: a re-run puts every session where it was).
fn bucket(key: &str, buckets: usize) -> usize {
    (crate::parse::session::key_hash(key) % buckets as u64) as usize
}

/// Rows in session order, and each row's session (numbered by first appearance).
///
/// Sessions in key order; within one, events in time order (no time first), ties in silver
/// order. Grouped by hashing first, so only the distinct keys are sorted as text and each
/// session's few events by time (one sort of every event by key spent most of the
/// aggregation comparing strings).
fn session_order(key: &[&str], ts: &[Option<i64>]) -> (Vec<u32>, Vec<u32>) {
    let mut first_of: FxHashMap<&str, u32> = FxHashMap::default();
    let mut group_of: Vec<u32> = Vec::with_capacity(key.len());
    for &k in key {
        let next = first_of.len() as u32;
        group_of.push(*first_of.entry(k).or_insert(next));
    }
    let mut sizes = vec![0u32; first_of.len() + 1];
    for &g in &group_of {
        sizes[g as usize + 1] += 1;
    }
    let mut keys_sorted: Vec<(&str, u32)> = first_of.into_iter().collect();
    keys_sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    // Start of each group in key order.
    let mut start_of = vec![0u32; sizes.len() - 1];
    let mut at = 0u32;
    for &(_, g) in &keys_sorted {
        start_of[g as usize] = at;
        at += sizes[g as usize + 1];
    }
    let mut order = vec![0u32; key.len()];
    let mut fill = start_of.clone();
    for (i, &g) in group_of.iter().enumerate() {
        order[fill[g as usize] as usize] = i as u32;
        fill[g as usize] += 1;
    }
    for &(_, g) in &keys_sorted {
        let from = start_of[g as usize] as usize;
        let to = from + sizes[g as usize + 1] as usize;
        // Indices are in silver order here, so a stable sort by time keeps ties in it.
        order[from..to].sort_by_key(|&i| ts[i as usize]);
    }
    (order, group_of)
}

/// A session's first and last event time: `session_start` and `session_end` (`end` is a
/// reserved word in SQL, which DuckDB and PostgreSQL readers of the lake had to quote).
pub const START: &str = "session_start";
pub const END: &str = "session_end";

/// A session frame with the names above: gold written before them called the columns
/// `start` and `end` (a day 05-detect scores again may be one).
pub fn with_current_names(mut df: DataFrame) -> Result<DataFrame> {
    for (old, new) in [("start", START), ("end", END)] {
        if df.column(new).is_err() && df.column(old).is_ok() {
            df.rename(old, new.into())?;
        }
    }
    Ok(df)
}

/// Per session of `rows`: service (of its first event), start, end, events, distinct
/// templates, warnings, errors, the template sequence in time order (ties in silver order)
/// and duration; and its template counts. Both sorted by session key.
pub fn aggregate(rows: &DataFrame) -> Result<(DataFrame, DataFrame)> {
    let ts_type = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    if rows.height() == 0 {
        return Ok((empty_sessions(&ts_type)?, empty_counts()?));
    }
    let keys = rows.column("session_key")?.str()?;
    let services = rows.column("service")?.str()?;
    let levels = rows.column("level")?.str()?;
    let templates = rows.column("template_id")?.str()?;
    let ts_column = rows.column("ts")?;
    let ts_type = ts_column.dtype().clone();
    let ts_physical = ts_column.cast(&DataType::Int64)?;
    let ts: Vec<Option<i64>> = ts_physical.i64()?.iter().collect();
    let key: Vec<&str> = keys.iter().map(Option::unwrap_or_default).collect();
    let template: Vec<Option<&str>> = templates.iter().collect();
    // Read in silver order, used in session order: looking a row up in a column by index
    // (finding its chunk, then its view) was a quarter of the aggregation.
    let severity: Vec<Severity> = levels
        .iter()
        .map(|level| match level {
            Some("WARN") => Severity::Warn,
            Some("ERROR" | "FATAL") => Severity::Error,
            _ => Severity::Other,
        })
        .collect();

    let (order, group_of) = session_order(&key, &ts);

    let mut out = SessionColumns::default();
    let mut counts = CountColumns::default();
    let mut ids: Vec<Option<&str>> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let k = key[order[start] as usize];
        let g = group_of[order[start] as usize];
        let mut end = start + 1;
        while end < order.len() && group_of[order[end] as usize] == g {
            end += 1;
        }
        let group = &order[start..end];
        let first = group[0] as usize;
        let (mut n_warn, mut n_error) = (0i64, 0i64);
        let mut sequence = String::new();
        let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
        ids.clear();
        for &i in group {
            let i = i as usize;
            match severity[i] {
                Severity::Warn => n_warn += 1,
                Severity::Error => n_error += 1,
                Severity::Other => {}
            }
            if let Some(t) = ts[i] {
                lo = Some(lo.map_or(t, |l| l.min(t)));
                hi = Some(hi.map_or(t, |h| h.max(t)));
            }
            if let Some(id) = template[i] {
                if !sequence.is_empty() {
                    sequence.push(' ');
                }
                sequence.push_str(id);
            }
            ids.push(template[i]);
        }
        ids.sort_unstable();
        let mut distinct = 0i64;
        let mut j = 0;
        while j < ids.len() {
            let mut m = j + 1;
            while m < ids.len() && ids[m] == ids[j] {
                m += 1;
            }
            counts.key.push(k);
            counts.template.push(ids[j]);
            counts.count.push((m - j) as i64);
            distinct += 1;
            j = m;
        }
        out.key.push(k);
        out.service.push(services.get(first));
        out.start.push(lo);
        out.end.push(hi);
        out.n_events.push(group.len() as i64);
        out.n_distinct.push(distinct);
        out.n_warn.push(n_warn);
        out.n_error.push(n_error);
        out.sequence.push(sequence);
        out.duration.push(lo.zip(hi).map(|(l, h)| h - l));
        start = end;
    }
    Ok((out.finish(&ts_type)?, counts.finish()?))
}

/// What a session counts of an event's level.
#[derive(Clone, Copy)]
enum Severity {
    Warn,
    Error,
    Other,
}

/// Session rows being built, as columns (also by `session_merge`).
#[derive(Default)]
pub(super) struct SessionColumns<'a> {
    pub(super) key: Vec<&'a str>,
    pub(super) service: Vec<Option<&'a str>>,
    pub(super) start: Vec<Option<i64>>,
    pub(super) end: Vec<Option<i64>>,
    pub(super) n_events: Vec<i64>,
    pub(super) n_distinct: Vec<i64>,
    pub(super) n_warn: Vec<i64>,
    pub(super) n_error: Vec<i64>,
    pub(super) sequence: Vec<String>,
    pub(super) duration: Vec<Option<i64>>,
}

impl SessionColumns<'_> {
    pub(super) fn finish(self, ts_type: &DataType) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Column::new("session_key".into(), self.key),
            Column::new("service".into(), self.service),
            Column::new(START.into(), self.start).cast(ts_type)?,
            Column::new(END.into(), self.end).cast(ts_type)?,
            Column::new("n_events".into(), self.n_events),
            Column::new("n_distinct_templates".into(), self.n_distinct),
            Column::new("n_warn".into(), self.n_warn),
            Column::new("n_error".into(), self.n_error),
            // Text, not a list: pandas (through pyarrow) cannot read Polars' list-of-string
            // columns.
            Column::new("template_sequence".into(), self.sequence),
            Column::new("duration_ms".into(), self.duration),
        ])?)
    }
}

#[derive(Default)]
struct CountColumns<'a> {
    key: Vec<&'a str>,
    template: Vec<Option<&'a str>>,
    count: Vec<i64>,
}

impl CountColumns<'_> {
    fn finish(self) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Column::new("session_key".into(), self.key),
            Column::new("template_id".into(), self.template),
            Column::new("count".into(), self.count),
        ])?)
    }
}

fn empty_sessions(ts_type: &DataType) -> Result<DataFrame> {
    SessionColumns::default().finish(ts_type)
}

fn empty_counts() -> Result<DataFrame> {
    CountColumns::default().finish()
}

/// Commit `date`'s session features from `sessions` (or drop stale ones when sessions are not
/// keyed); how many sessions there were.
pub(super) fn write_sessions(
    ctx: &Context,
    date: NaiveDate,
    sessions: SessionBuckets,
    session_key: Option<&SessionKey>,
    closing: &crate::stages::closing::Closing,
) -> Result<usize> {
    let mut n_sessions = 0;
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
        let mut features_out = ctx
            .lake
            .stage_partition(Layer::Gold, tables::SESSION_FEATURES)?;
        let mut counts_out = ctx
            .lake
            .stage_partition(Layer::Gold, tables::SESSION_TEMPLATE_COUNTS)?;
        sessions.finish(|features, mut counts| {
            n_sessions += features.height();
            let mut features = features
                .lazy()
                .with_column(closing.session(col(END)))
                .collect()?;
            features_out.write(&mut features)?;
            counts_out.write(&mut counts)
        })?;
        features_out.commit(&ctx.source, date)?;
        counts_out.commit(&ctx.source, date)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "session features");
        if let Some(field) = session_key.and_then(SessionKey::field)
            && n_sessions == 0
        {
            // Silver keeps a field's value only while it keys sessions: set after 02-silver
            // ran, it is not there yet.
            tracing::warn!(
                %date,
                field,
                "no event has a value for the session field: if session_key was set after 02-silver ran for this date, re-run 02-silver"
            );
        }
    }
    Ok(n_sessions)
}

#[cfg(test)]
mod names {
    use super::*;

    /// Sessions come out with `session_start` and `session_end`; a frame of gold written with
    /// the old names reads as if written with these.
    #[test]
    fn sessions_are_named_for_sql_and_old_names_read_alike() {
        let rows = df!(
            "session_key" => ["a", "a"],
            "service" => ["api", "api"],
            "ts" => [1_000i64, 3_000],
            "level" => ["INFO", "WARN"],
            "template_id" => ["t1", "t2"],
        )
        .unwrap();
        let (sessions, _) = aggregate(&rows).unwrap();
        let names: Vec<&str> = sessions
            .get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert!(names.contains(&START) && names.contains(&END), "{names:?}");
        assert!(!names.contains(&"end"), "{names:?}");
        let mut old = sessions.clone();
        old.rename(START, "start".into()).unwrap();
        old.rename(END, "end".into()).unwrap();
        assert!(with_current_names(old).unwrap().equals_missing(&sessions));
    }
}
