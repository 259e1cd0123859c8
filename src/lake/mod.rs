//! The lake: every path and every Parquet write of loglake goes through here.
//!
//! Layout (hive-style, readable as-is by DuckDB, Spark, pandas and Polars):
//!
//! ```text
//! <root>/<layer>/<table>/source=<source>/date=<YYYY-MM-DD>/part-*.parquet   (zstd)
//! <root>/models/<source>/<granularity>/<detector>/<version>/model.json
//! <root>/reports/<date>/
//! <root>/_staging/            work in progress; never read by anything
//! ```
//!
//! `date` is the *batch* date: the logical date a scheduler passes (`--date`, Airflow's
//! `{{ ds }}`), not the timestamp of each event, which lives in the rows. Keeping the two apart
//! makes every stage a pure function of (source, batch date), which is what makes re-runs and
//! backfills idempotent.
//!
//! Atomicity: a partition is written complete into `_staging/` and only then renamed into
//! place (on object storage: published by a manifest), so readers and a killed stage never
//! see a half-written partition (see [`commit`]).

pub mod built_from;
mod commit;
mod footers;
mod frames;
mod mirror;
mod parquet_dictionary;
mod parquet_splice;
mod parquet_write;
pub use parquet_splice::replace_column;
mod staged;
pub use staged::{FrameWriter, StagedPartition};
pub mod location;
pub mod lock;
pub mod remote;
pub mod schema;

pub use frames::{
    concat_rows, each_prefetched, each_read_ahead, explain_write_error, gathered, keep_rows,
    read_parquet, repeated_strings, write_parquet,
};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

/// Replace the file at `path` with `text` in one step (write a temporary sibling, then rename
/// it over the old file): readers — a browser, node_exporter — see the old or the new file,
/// never half of one.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}

/// The medallion layers, named by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Raw lines, verbatim, with provenance.
    Bronze,
    /// Parsed, masked, templated events.
    Silver,
    /// Feature tables: per window, session and event.
    Gold,
    /// What the detectors found: every entity's score, and the anomalies.
    Detections,
    /// Lines that could not be parsed, with the reason.
    Quarantine,
}

impl Layer {
    pub fn dir_name(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
            Layer::Detections => "detections",
            Layer::Quarantine => "quarantine",
        }
    }

    pub const ALL: [Layer; 5] = [
        Layer::Bronze,
        Layer::Silver,
        Layer::Gold,
        Layer::Detections,
        Layer::Quarantine,
    ];
}

/// Table names, in one place so that writers and readers cannot disagree.
pub mod tables {
    pub const LINES: &str = "lines";
    pub const EVENTS: &str = "events";
    pub const TEMPLATES: &str = "templates";
    pub const UNPARSED: &str = "unparsed";
    /// Input files and folder entries 01-bronze could not read, with why.
    pub const INPUTS: &str = "inputs";
    pub const WINDOW_FEATURES: &str = "window_features";
    pub const SESSION_FEATURES: &str = "session_features";
    /// Events per service × time window × template, one row each: the same schema for every
    /// source (window_features' `tpl_<id>` columns differ by source).
    pub const WINDOW_TEMPLATE_COUNTS: &str = "window_template_counts";
    pub const SESSION_TEMPLATE_COUNTS: &str = "session_template_counts";
    pub const EVENT_FEATURES: &str = "event_features";
    pub const ANOMALIES: &str = "anomalies";
    /// Every detector's score for every entity it judged, flagged or not: what the ensemble
    /// and the ROC/PR curves of `06-report` read.
    pub const SCORES: &str = "scores";
    /// 02-silver's record of a day's parse (its state between runs of an open day).
    pub const PARSE_STATE: &str = "parse_state";
    /// 03-gold's record of how far it has read an open day's silver, and what it carries.
    pub const BUILD_STATE: &str = "build_state";
    /// 03-gold's partial window counts of an open day (see `gold::windows`).
    pub const WINDOW_PARTIALS: &str = "window_partials";
    /// 03-gold's keyed events of an open day, which sessions touched again are rebuilt from.
    pub const SESSION_EVENTS: &str = "session_events";
    /// The part of `gold/event_features` holding the events of the day's last silver part
    /// while 02-silver may still write it again: written again at every run of 03-gold, so
    /// 05-detect scores its events again too.
    pub const EVENT_TAIL_PART: &str = "part-tail.parquet";
}

/// Row windows ([`Lake::row_ranges`]) clipped to the rows `rows`: a stage that reads only
/// what is new reads the windows of its parts from where it stopped.
pub fn clip_ranges(
    ranges: Vec<(usize, usize)>,
    rows: std::ops::Range<usize>,
) -> Vec<(usize, usize)> {
    ranges
        .into_iter()
        .filter_map(|(start, len)| {
            let (s, e) = (start.max(rows.start), (start + len).min(rows.end));
            (s < e).then(|| (s, e - s))
        })
        .collect()
}

/// `ranges` (start, rows) with neighbours that follow on from each other joined while a
/// joined range holds at most `max_rows`: a day run every few minutes has a small part per
/// run, and reading each on its own read the footers and planned a scan over the partition
/// once per part.
pub fn coalesce_ranges(ranges: Vec<(usize, usize)>, max_rows: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, len) in ranges {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == start && last.1 + len <= max_rows => last.1 += len,
            _ => out.push((start, len)),
        }
    }
    out
}

/// Text as a log line or message shows it: control characters (a newline or an escape code in
/// a file's name) written as escapes, so that a name cannot forge a log line or drive the
/// operator's terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A path as log lines and messages show it (see [`printable`]).
pub fn shown(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

/// Whether `name` may name a lake folder (a source, a shard): letters, digits, `-` and `_`
/// only, so that no name reaches outside its partition (`..`, `/`) or needs quoting.
pub fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Debug, Clone)]
pub struct Lake {
    /// The lake's folder; for a lake on object storage, the process's working copy.
    root: PathBuf,
    /// The bucket, for a lake on object storage (see [`Lake::open`]).
    mirror: Option<std::sync::Arc<mirror::Mirror>>,
    /// A view of one input shard's partitions (see [`Lake::for_shard`]).
    shard: Option<std::sync::Arc<str>>,
}

static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Lake {
    /// The local lake in `root` ([`Lake::open`] also opens one on object storage).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            mirror: None,
            shard: None,
        }
    }

    /// This lake as one input shard sees it: every partition it addresses is the shard's
    /// sub-partition, `…/date=<d>/shard=<name>/`. 01-bronze and 02-silver of a day too big for
    /// one task run once per shard (a file, an hour of files), possibly on several machines at
    /// once, each writing only its own shard; 03-gold onwards read a day whole, all its shards
    /// in name order (see [`Lake::part_files`]).
    pub fn for_shard(&self, shard: &str) -> Lake {
        Lake {
            shard: Some(shard.into()),
            ..self.clone()
        }
    }

    /// This lake with every day whole: the view a shard's writer uses for what all shards
    /// share (the source's template store).
    pub fn whole(&self) -> Lake {
        Lake {
            shard: None,
            ..self.clone()
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the top-level folders. Idempotent.
    pub fn ensure_layout(&self) -> Result<()> {
        for layer in Layer::ALL {
            fs::create_dir_all(self.root.join(layer.dir_name()))?;
        }
        for extra in ["models", "reports", "_staging"] {
            fs::create_dir_all(self.root.join(extra))?;
        }
        self.mark_remote()
    }

    /// The embedded database used when no URL is configured.
    pub fn default_database_path(&self) -> PathBuf {
        self.root.join("loglake.db")
    }

    pub fn table_dir(&self, layer: Layer, table: &str) -> PathBuf {
        self.root.join(layer.dir_name()).join(table)
    }

    pub fn partition_dir(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> PathBuf {
        let day = self
            .table_dir(layer, table)
            .join(format!("source={source}"))
            .join(format!("date={}", date.format("%Y-%m-%d")));
        match &self.shard {
            Some(shard) => day.join(format!("shard={shard}")),
            None => day,
        }
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn reports_dir(&self) -> PathBuf {
        self.root.join("reports")
    }

    /// Remove everything under `_staging/`: only a writer holding the [`lock::LakeLock`] may
    /// call this, and then anything there was left by a writer that crashed mid-commit.
    /// Returns how many entries were removed.
    pub fn clear_staging(&self, _held: &lock::LakeLock) -> Result<usize> {
        let dir = self.root.join("_staging");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .with_context(|| format!("removing staging leftover {}", path.display()))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// A fresh, unique folder under `_staging/` for work in progress.
    fn staging_dir(&self, label: &str) -> Result<PathBuf> {
        let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = self
            .root
            .join("_staging")
            .join(format!("{label}-{}-{nanos}-{n}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// A private folder under `_staging/` for intermediate files a stage spills while it
    /// works (03-gold's session buckets), removed when the [`Scratch`] is dropped; a crash
    /// leaves it to the next writer's [`Lake::clear_staging`].
    pub fn scratch(&self, label: &str) -> Result<Scratch> {
        Ok(Scratch {
            dir: self.staging_dir(label)?,
        })
    }

    /// The Parquet files of `table` kept per source, outside any date partition (silver's
    /// template store), sorted.
    pub fn source_files(&self, layer: Layer, table: &str, source: &str) -> Result<Vec<PathBuf>> {
        let dir = self
            .table_dir(layer, table)
            .join(format!("source={source}"));
        self.fetch_tree(&dir)?;
        parquet_files(&dir)
    }

    /// The tables `layer` holds (its folders), by name.
    pub fn tables(&self, layer: Layer) -> Result<Vec<String>> {
        self.folders(&self.root.join(layer.dir_name()))
    }

    /// The names of the folders in `dir` (in the bucket, for a lake on object storage, where
    /// nothing needs fetching to list them), sorted; staging folders (`_…`) are not listed.
    pub fn folders(&self, dir: &Path) -> Result<Vec<String>> {
        match &self.mirror {
            Some(m) => self.remote_folders(m, dir, ""),
            None => Ok(subfolders(dir, "")),
        }
    }

    /// The sources `table` of `layer` has partitions for (its `source=` folders), by name.
    pub fn sources(&self, layer: Layer, table: &str) -> Result<Vec<String>> {
        let dir = self.table_dir(layer, table);
        match &self.mirror {
            Some(m) => self.remote_folders(m, &dir, "source="),
            None => Ok(subfolders(&dir, "source=")),
        }
    }

    /// The sources the lake holds data of: those with lines in bronze.
    pub fn sources_with_data(&self) -> Result<Vec<String>> {
        self.sources(Layer::Bronze, tables::LINES)
    }

    /// Dates that have a partition of `table` for `source`, ascending.
    pub fn partition_dates(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
    ) -> Result<Vec<NaiveDate>> {
        let dir = self
            .table_dir(layer, table)
            .join(format!("source={source}"));
        if let Some(m) = &self.mirror {
            return self.remote_dates(m, &dir);
        }
        let mut dates = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(dates);
        };
        for entry in entries {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(d) = name.strip_prefix("date=")
                && let Ok(date) = NaiveDate::parse_from_str(d, "%Y-%m-%d")
            {
                dates.push(date);
            }
        }
        dates.sort();
        Ok(dates)
    }

    /// The Parquet files of one partition, sorted by name (so reads are in a stable order). A
    /// whole day that was written in shards is their files, shard by shard in name order.
    pub fn part_files(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for dir in self.partition_dirs(layer, table, source, date)? {
            if let Some(m) = &self.mirror {
                self.fetch_partition(m, &dir)?;
            }
            files.extend(parquet_files(&dir)?);
        }
        Ok(files)
    }

    /// The folders one partition's files are in: its own, and for a whole day written in
    /// shards, each shard's, in name order.
    fn partition_dirs(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<Vec<PathBuf>> {
        let dir = self.partition_dir(layer, table, source, date);
        if self.shard.is_some() {
            return Ok(vec![dir]);
        }
        let shards = match &self.mirror {
            Some(m) => self.remote_shards(m, &dir)?,
            None => subfolders(&dir, "shard="),
        };
        let mut dirs = vec![dir.clone()];
        dirs.extend(shards.iter().map(|s| dir.join(format!("shard={s}"))));
        Ok(dirs)
    }

    /// Lazily scan `table` over the given dates; `None` when no partition exists.
    ///
    /// Columns `date` (the batch date, as a string) are added from the path, like a hive
    /// reader would, because the files themselves do not repeat partition values.
    pub fn scan(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        dates: &[NaiveDate],
    ) -> Result<Option<LazyFrame>> {
        let mut frames = Vec::new();
        for &date in dates {
            if let Some(lf) = self.scan_partition(layer, table, source, date)? {
                frames.push(lf.with_column(lit(date.format("%Y-%m-%d").to_string()).alias("date")));
            }
        }
        if frames.is_empty() {
            return Ok(None);
        }
        let union = concat(
            frames,
            UnionArgs {
                diagonal: true,
                ..Default::default()
            },
        )?;
        Ok(Some(union))
    }

    /// Some files of a table read as one lazy frame, in the order given (columns missing
    /// from older files read as null).
    pub fn scan_files(files: &[PathBuf]) -> Result<LazyFrame> {
        frames::scan_lake_files(files, true).context("scanning lake files")
    }

    /// One partition of `table` as a lazy frame (no `date` column), `None` when it has no
    /// part files. Unlike [`Lake::scan`] there is no union over dates in the plan, so a
    /// `slice` on it reaches the Parquet reader, which then decodes only the row groups the
    /// slice covers: 02-silver reads bronze a window at a time this way.
    pub fn scan_partition(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<LazyFrame>> {
        let files = self.part_files(layer, table, source, date)?;
        if files.is_empty() {
            return Ok(None);
        }
        let lf = Self::scan_files(&files).with_context(|| {
            format!(
                "scanning {}",
                self.partition_dir(layer, table, source, date).display()
            )
        })?;
        Ok(Some(lf))
    }

    /// One partition of `table` handed to `each` as frames of `read.columns`, at most
    /// `read.rows` rows each, in order: what a stage reads to keep its memory to a window of
    /// rows.
    pub fn read_windows(
        &self,
        layer: Layer,
        table: &str,
        (source, date): (&str, NaiveDate),
        read: RowWindows<'_>,
        each: &mut dyn FnMut(DataFrame) -> Result<()>,
    ) -> Result<()> {
        let ranges = self.row_ranges(layer, table, (source, date), read.rows)?;
        each_prefetched(
            ranges.len(),
            |w| {
                let (start, rows) = ranges[w];
                let read = RowWindows { rows, ..read };
                self.read_rows(layer, table, (source, date), start, &read)
            },
            &mut |_, df| each(df),
        )
    }

    /// Row ranges `(start, rows)` that cover one partition of `table` in order, each inside
    /// one file and at most `max_rows` long: the windows a stage reads it in. A window that
    /// ran from one file into the next decoded the next file's row group for the rows it took
    /// and joined the two (silver's parts are a row or so off any fixed grid, as a window
    /// hands its last event to the next).
    pub fn row_ranges(
        &self,
        layer: Layer,
        table: &str,
        (source, date): (&str, NaiveDate),
        max_rows: usize,
    ) -> Result<Vec<(usize, usize)>> {
        let max_rows = max_rows.max(1);
        let mut ranges = Vec::new();
        let mut start = 0;
        for file in self.part_files(layer, table, source, date)? {
            let rows = Self::row_count(std::slice::from_ref(&file))? as usize;
            for offset in (0..rows).step_by(max_rows) {
                ranges.push((start + offset, max_rows.min(rows - offset)));
            }
            start += rows;
        }
        Ok(ranges)
    }

    /// Rows `start .. start + read.rows` of one partition of `table`, columns `read.columns`
    /// (only the row groups they fall in are decoded; see [`Lake::scan_partition`]).
    pub fn read_rows(
        &self,
        layer: Layer,
        table: &str,
        (source, date): (&str, NaiveDate),
        start: usize,
        read: &RowWindows<'_>,
    ) -> Result<DataFrame> {
        let what = || format!("{}/{table} of {date}", layer.dir_name());
        let files = self.part_files(layer, table, source, date)?;
        if files.is_empty() {
            bail!("{} disappeared while it was being read", what());
        }
        // Only the parts the rows lie in, found from their footers: a scan of every part
        // reads every footer and plans over them all, which on a day of many parts read a
        // few rows at a time (a run every few minutes) cost more than the rows.
        let end = start + read.rows.max(1);
        let (mut first_row, mut skip, mut chosen) = (0usize, None, Vec::new());
        for file in &files {
            let rows = Self::row_count(std::slice::from_ref(file))? as usize;
            if first_row + rows > start && first_row < end {
                if skip.is_none() {
                    skip = Some(start - first_row);
                }
                chosen.push(file.clone());
            }
            first_row += rows;
            if first_row >= end {
                break;
            }
        }
        let (chosen, skip) = match skip {
            Some(skip) => (chosen, skip),
            // Past the last row: an empty frame with the partition's columns.
            None => (files, start),
        };
        Self::scan_files(&chosen)
            .with_context(what)?
            .slice(skip as i64, read.rows.max(1) as IdxSize)
            .select(read.columns.iter().map(|c| col(*c)).collect::<Vec<_>>())
            .collect()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("reading {}", what()))
    }

    /// Rows of `table` for a source over dates, from Parquet footers.
    pub fn table_rows(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        dates: &[NaiveDate],
    ) -> Result<u64> {
        let mut files = Vec::new();
        for &d in dates {
            files.extend(self.part_files(layer, table, source, d)?);
        }
        Self::row_count(&files)
    }
}

/// Bytes of the files under `path` (a file or a folder).
pub fn tree_bytes(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// The Parquet files directly in `dir`, sorted by name (so reads are in a stable order); none
/// when `dir` does not exist.
fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(files);
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "parquet") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The folders directly in `dir`, sorted by path (none when `dir` does not exist).
pub fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The names of the folders in `dir` that start with `prefix`, prefix removed, sorted (none
/// when `dir` does not exist); staging folders (`_…`) are not listed.
fn subfolders(dir: &Path, prefix: &str) -> Vec<String> {
    subdirectories(dir)
        .iter()
        .filter_map(|d| {
            let name = d.file_name()?.to_string_lossy();
            let rest = name.strip_prefix(prefix)?;
            (!rest.starts_with('_')).then(|| rest.to_string())
        })
        .collect()
}

/// How [`Lake::read_windows`] reads a partition: `rows` at a time, these `columns`.
pub struct RowWindows<'c> {
    pub rows: usize,
    pub columns: &'c [&'c str],
}

/// A stage's spill folder (see [`Lake::scratch`]).
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests;
