//! Commits: how a stage's output becomes part of the lake, all at once or not at all.
//!
//! A local lake commits by rename: a partition is written complete into `_staging/` and
//! renamed into place; replacing one takes two renames (old out, new in), so a crash between
//! them leaves the partition absent, never partial, and re-running the stage restores it. A
//! lake on object storage publishes the same staged files by manifest first (see
//! [`super::mirror`]), and its working copy then follows by the same renames.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

use super::frames::{explain_write_error, write_parquet};
use super::{Lake, Layer, StagedPartition, lock, parquet_files};

impl Lake {
    /// Remove `path` (a partition, a model version, a report folder) from the lake: moved
    /// into `_staging` first, so it disappears in one rename and a crash mid-delete leaves
    /// nothing half-removed in place. Needs the writer lock.
    pub fn remove(&self, path: &Path, _held: &lock::LakeLock) -> Result<()> {
        if !path.starts_with(&self.root) || path == self.root {
            bail!("refusing to remove {}: not inside the lake", path.display());
        }
        if let Some(m) = &self.mirror {
            self.unpublish(m, path)?;
            if !path.exists() {
                return Ok(());
            }
        }
        let trash = self.staging_dir("removed")?;
        fs::rename(path, trash.join("old"))
            .with_context(|| format!("moving {} aside", path.display()))?;
        fs::remove_dir_all(&trash).with_context(|| format!("removing {}", trash.display()))?;
        Ok(())
    }

    /// Replace one partition with `df`, atomically (see the module docs).
    pub fn commit_partition(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
        df: &DataFrame,
    ) -> Result<PathBuf> {
        // A DataFrame clone shares its column buffers: nothing is copied.
        self.commit_partition_parts_with(layer, table, source, date, 1, |_| Ok(df.clone()))
    }

    /// Replace one partition with a table written as `parts` part files, `part-00000.parquet`,
    /// `part-00001.parquet`, … (readers see them as one table, in part order), committed
    /// together. Part `i` is made by `make(i)` just before it is written, parts are made and
    /// written in parallel, and each is dropped once written, so a large table never sits in
    /// memory whole.
    pub fn commit_partition_parts_with(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
        parts: usize,
        make: impl Fn(usize) -> Result<DataFrame> + Sync,
    ) -> Result<PathBuf> {
        use rayon::prelude::*;
        let staging = self.staging_dir(&format!("{}-{table}", layer.dir_name()))?;
        (0..parts).into_par_iter().try_for_each(|i| {
            let mut df = make(i)?;
            let path = staging.join(format!("part-{i:05}.parquet"));
            write_parquet(&mut df, &path)
        })?;
        let target = self.partition_dir(layer, table, source, date);
        self.swap_into_place(&staging, &target)?;
        Ok(target)
    }

    /// Start writing a partition part by part, for a table too large to build whole: parts
    /// go to a staging folder as they come, and [`StagedPartition::commit`] puts them in place
    /// at once, so readers never see some parts without the others.
    pub fn stage_partition(&self, layer: Layer, table: &str) -> Result<StagedPartition<'_>> {
        let staging = self.staging_dir(&format!("{}-{table}", layer.dir_name()))?;
        Ok(StagedPartition::new(self, layer, table, staging))
    }

    /// Remove one partition (a re-run that now produces nothing must not leave stale rows).
    pub fn drop_partition(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<()> {
        let target = self.partition_dir(layer, table, source, date);
        if let Some(m) = &self.mirror {
            self.unpublish(m, &target)?;
        }
        if target.exists() {
            let trash = self.staging_dir("trash")?;
            fs::rename(&target, trash.join("old"))?;
            fs::remove_dir_all(&trash)?;
        }
        Ok(())
    }

    /// Empty one partition before it is written again part by part
    /// ([`Lake::commit_part_file`]): for a shard, the files the day had when it was last
    /// written whole go too, as a commit of the shard's partition would retire them.
    pub fn clear_partition(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<()> {
        self.drop_partition(layer, table, source, date)?;
        if self.shard.is_some() {
            self.retire_whole_day(&self.partition_dir(layer, table, source, date))?;
        }
        Ok(())
    }

    pub(super) fn swap_into_place(&self, staging: &Path, target: &Path) -> Result<()> {
        match &self.mirror {
            // The bucket's commit comes first: the working copy only follows it.
            Some(m) => self.publish_partition(m, staging, target)?,
            None => {
                tracing::debug!(partition = %target.display(), "staged; committing the partition")
            }
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if target.exists() {
            let trash = self.staging_dir("trash")?;
            fs::rename(target, trash.join("old"))
                .with_context(|| format!("moving old {} aside", target.display()))?;
            fs::rename(staging, target)
                .with_context(|| format!("committing {}", target.display()))?;
            fs::remove_dir_all(&trash)?;
        } else {
            fs::rename(staging, target)
                .with_context(|| format!("committing {}", target.display()))?;
        }
        // A day is written whole or in shards: whichever is committed replaces the other (a
        // local whole day's rename has replaced its shard folders with it already).
        match (&self.shard, &self.mirror) {
            (Some(_), _) => self.retire_whole_day(target),
            (None, Some(m)) => self.retire_shards(m, target),
            (None, None) => Ok(()),
        }
    }

    /// After shard `target` of a day is committed: the files the day had when it was last
    /// written whole go (they hold the shard's lines too).
    fn retire_whole_day(&self, target: &Path) -> Result<()> {
        let Some(day) = target.parent() else {
            return Ok(());
        };
        if let Some(m) = &self.mirror {
            self.unpublish_day_files(m, day)?;
        }
        let old = parquet_files(day)?;
        if !old.is_empty() {
            let trash = self.staging_dir("trash")?;
            for file in &old {
                let name = file.file_name().unwrap_or_default();
                fs::rename(file, trash.join(name))
                    .with_context(|| format!("moving old {} aside", file.display()))?;
            }
            fs::remove_dir_all(&trash)?;
        }
        Ok(())
    }

    /// Add one file to a partition without touching its other files (bronze appends one part
    /// per ingested file). `write` fills a staging path; the result is renamed in whole.
    pub fn commit_part_file(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
        file_name: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let dir = self.partition_dir(layer, table, source, date);
        self.commit_staged(&dir, file_name, write, |staged| match &self.mirror {
            Some(m) => self.publish_part_file(m, &dir, staged, file_name),
            None => Ok(()),
        })
    }

    /// Write one small file (a model, a report) atomically: staged, then renamed into `dir`.
    pub fn commit_file(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        self.commit_file_with(dir, name, |staged| {
            fs::write(staged, bytes).with_context(|| format!("writing {}", staged.display()))
        })
    }

    /// [`Lake::commit_file`] for a file that `write` creates at the staging path it is given
    /// (a Parquet table outside the date partitions, such as the template store).
    pub fn commit_file_with(
        &self,
        dir: &Path,
        name: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let target = self.commit_staged(dir, name, write, |_| Ok(()))?;
        if let Some(m) = &self.mirror {
            self.publish_file(m, &target)?;
        }
        Ok(target)
    }

    /// Write `dir/name` through a staging path: `write` fills it, `publish` sees it complete
    /// (and publishes it to the bucket of a remote lake), and it is renamed into place.
    fn commit_staged(
        &self,
        dir: &Path,
        name: &str,
        write: impl FnOnce(&Path) -> Result<()>,
        publish: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let staging = self.staging_dir("file")?;
        let staged = staging.join(name);
        write(&staged).map_err(|e| explain_write_error(e, &dir.join(name)))?;
        publish(&staged)?;
        fs::create_dir_all(dir)?;
        let target = dir.join(name);
        fs::rename(&staged, &target).with_context(|| format!("committing {}", target.display()))?;
        fs::remove_dir_all(&staging)?;
        Ok(target)
    }
}

impl Lake {
    /// How many of a partition's part files `files` are small: fewer than half of
    /// `slice_rows` rows. A stage compacts ([`Lake::compact_parts`]) once there are many.
    pub fn small_parts(files: &[PathBuf], slice_rows: usize) -> Result<usize> {
        let mut small = 0;
        for file in files {
            if (Self::row_count(std::slice::from_ref(file))? as usize) < slice_rows.max(2) / 2 {
                small += 1;
            }
        }
        Ok(small)
    }

    /// `files` (in order) as groups of neighbours whose rows together stay within one and a
    /// half `slice_rows`: a group of several is written again as one part, a group of one is
    /// carried over as it is. (Half a slice more than a slice, so that a full part takes in
    /// the few rows after it — a run's last event, in a part of its own — rather than being
    /// left beside it for ever.)
    fn merge_groups(files: &[PathBuf], slice_rows: usize) -> Result<Vec<Vec<PathBuf>>> {
        let limit = slice_rows + slice_rows / 2;
        let mut groups: Vec<Vec<PathBuf>> = Vec::new();
        let mut rows_in_last = usize::MAX;
        for file in files {
            let rows = Self::row_count(std::slice::from_ref(file))? as usize;
            match groups.last_mut() {
                Some(group) if rows_in_last.saturating_add(rows) <= limit => {
                    group.push(file.clone());
                    rows_in_last += rows;
                }
                _ => {
                    groups.push(vec![file.clone()]);
                    rows_in_last = rows;
                }
            }
        }
        Ok(groups)
    }

    /// Rewrite one partition's part files `files` (all of them, or all but one the caller
    /// puts back) with neighbouring parts that together hold at most one and a half
    /// `slice_rows` rows joined into one, in the same row order, each joined part passed through `map` (silver
    /// resolves refined template ids there); parts that join no neighbour are carried over as
    /// they are. A day run as many micro-batches gains a part or two per run, a few rows in
    /// the last (the event a later run may continue): this keeps the files a reader opens
    /// few, and writes again only the small parts and the neighbours they join — not, as when
    /// everything after the first small part was rewritten, the whole day at every
    /// compaction. The partition is replaced at once; one joined part is in memory at a time.
    pub fn compact_parts(
        &self,
        (layer, table): (Layer, &str),
        (source, date): (&str, NaiveDate),
        files: &[PathBuf],
        slice_rows: usize,
        map: impl Fn(DataFrame) -> Result<DataFrame>,
    ) -> Result<u64> {
        let mut staged = self.stage_partition(layer, table)?;
        let mut rows = 0u64;
        for group in Self::merge_groups(files, slice_rows.max(1))? {
            if let [file] = &group[..] {
                staged.copy(file)?;
                continue;
            }
            let joined = Self::scan_files(&group)?
                .collect()
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "reading {}/{table} of {date} to compact it",
                        layer.dir_name()
                    )
                })?;
            rows += joined.height() as u64;
            staged.write(&mut map(joined)?)?;
        }
        staged.commit(source, date)?;
        Ok(rows)
    }
}
