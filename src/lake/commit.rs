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
    /// How many of a partition's part files `files` (in order) are small: every one after
    /// the first with fewer than half of `slice_rows` rows. What [`Lake::compact_parts`]
    /// rewrites; a stage compacts once there are many.
    pub fn small_parts(files: &[PathBuf], slice_rows: usize) -> Result<usize> {
        Ok(files.len() - Self::settled(files, slice_rows)?)
    }

    /// The leading files of `files` with at least half of `slice_rows` rows each.
    fn settled(files: &[PathBuf], slice_rows: usize) -> Result<usize> {
        let mut settled = 0;
        for file in files {
            if (Self::row_count(std::slice::from_ref(file))? as usize) < slice_rows.max(2) / 2 {
                break;
            }
            settled += 1;
        }
        Ok(settled)
    }

    /// Rewrite the small part files of one partition ([`Lake::small_parts`] of `files`, all
    /// of them or all but one the caller puts back) as parts of at most `slice_rows` rows, in
    /// the same row order, each slice passed through `map` (silver resolves refined template
    /// ids there); the large parts before them are carried over as they are. A day run as
    /// many micro-batches gains a small part per run; this keeps the files a reader opens
    /// few, without rewriting the day at every compaction. Only one slice is in memory at a
    /// time; the partition is replaced at once.
    pub fn compact_parts(
        &self,
        (layer, table): (Layer, &str),
        (source, date): (&str, NaiveDate),
        files: &[PathBuf],
        slice_rows: usize,
        map: impl Fn(DataFrame) -> Result<DataFrame>,
    ) -> Result<u64> {
        let settled = Self::settled(files, slice_rows)?;
        let (kept, small) = files.split_at(settled);
        let rows = Self::row_count(small)?;
        let mut staged = self.stage_partition(layer, table)?;
        for file in kept {
            staged.copy(file)?;
        }
        for start in (0..rows as usize).step_by(slice_rows.max(1)) {
            let slice = Self::scan_files(small)?
                .slice(start as i64, slice_rows.max(1) as IdxSize)
                .collect()
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "reading {}/{table} of {date} to compact it",
                        layer.dir_name()
                    )
                })?;
            staged.write(&mut map(slice)?)?;
        }
        staged.commit(source, date)?;
        Ok(rows)
    }
}
