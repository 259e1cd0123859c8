//! A partition written part by part, and committed whole.
//!
//! Parts are encoded and compressed on a writer thread of their own, one part at a time,
//! while the stage builds the next one: encoding a part (zstd above all) was the serial tail
//! of every window of 02-silver and 03-gold, with one of the two cores idle. The hand-over
//! is a rendezvous, so at most one part is being written while the next is built — memory
//! grows by one part, not by the batch.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context as _, Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;

use super::frames::write_parquet;
use super::{Lake, Layer};

/// A partition being written part by part (see [`Lake::stage_partition`]).
pub struct StagedPartition<'l> {
    lake: &'l Lake,
    layer: Layer,
    table: String,
    staging: PathBuf,
    parts: usize,
    writer: Option<FrameWriter>,
}

/// A thread that writes frames to Parquet files, one at a time, while its owner builds the
/// next frame: a stage's staged parts, or its spill files. Frames are handed over by
/// rendezvous, so at most one is being written while the next is built. Dropped, it waits
/// for the frame in hand, so that no thread writes into a folder being removed.
pub struct FrameWriter {
    frames: Option<SyncSender<(PathBuf, DataFrame)>>,
    done: Option<JoinHandle<Result<()>>>,
}

impl FrameWriter {
    /// A writer of lake files (a stage's parts, or its spill files, which are encoded the
    /// same way).
    pub fn start() -> Self {
        let (frames, incoming): (_, Receiver<(PathBuf, DataFrame)>) = sync_channel(0);
        let done = std::thread::spawn(move || {
            for (path, mut df) in incoming {
                write_parquet(&mut df, &path)?;
            }
            Ok(())
        });
        FrameWriter {
            frames: Some(frames),
            done: Some(done),
        }
    }

    /// Hand `df` over to be written to `path`. A write that failed is reported here, at the
    /// next frame, or at [`FrameWriter::finish`].
    pub fn write(&mut self, path: PathBuf, df: DataFrame) -> Result<()> {
        let sent = self
            .frames
            .as_ref()
            .is_some_and(|f| f.send((path, df)).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped at an error: that error is the one to report.
        self.stop()?;
        Err(anyhow!("the thread writing Parquet files stopped"))
    }

    /// Wait for every frame handed over to be written; the first error, if any.
    pub fn finish(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.frames = None;
        match self.done.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("the thread writing Parquet files panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl<'l> StagedPartition<'l> {
    pub(super) fn new(lake: &'l Lake, layer: Layer, table: &str, staging: PathBuf) -> Self {
        StagedPartition {
            lake,
            layer,
            table: table.to_string(),
            staging,
            parts: 0,
            writer: None,
        }
    }

    /// Write the next part (`part-00000.parquet`, `part-00001.parquet`, … in call order). The
    /// frame is taken (left empty) and written on the writer thread; a write that failed is
    /// reported here, at the next part, or at [`StagedPartition::commit`].
    pub fn write(&mut self, df: &mut DataFrame) -> Result<()> {
        let path = self.part_path(self.parts);
        let writer = self.writer.get_or_insert_with(FrameWriter::start);
        writer.write(path, std::mem::take(df))?;
        self.parts += 1;
        Ok(())
    }

    /// Write the next `n` parts at once, on every core, part `k` of them by `write(k, file)`
    /// (parts copied from other files rather than encoded from frames; see
    /// [`super::replace_column`]).
    pub fn write_files(
        &mut self,
        n: usize,
        write: impl Fn(usize, std::io::BufWriter<std::fs::File>) -> Result<()> + Sync,
    ) -> Result<()> {
        use rayon::prelude::*;
        let first = self.parts;
        (0..n).into_par_iter().try_for_each(|k| {
            let path = self.part_path(first + k);
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            write(k, std::io::BufWriter::new(file))
                .map_err(|e| super::frames::explain_write_error(e, &path))
        })?;
        self.parts += n;
        Ok(())
    }

    /// Write the next part as a copy of `from`, a part of this or another partition carried
    /// over as it is: a hard link where the file system allows one (a lake's files are never
    /// written again in place, only replaced), so that carrying a day's parts over costs
    /// nothing per byte; a copy otherwise.
    pub fn copy(&mut self, from: &std::path::Path) -> Result<()> {
        let to = self.part_path(self.parts);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        self.parts += 1;
        Ok(())
    }

    /// Where part `k` (from 0) is staged.
    fn part_path(&self, k: usize) -> PathBuf {
        self.staging.join(format!("part-{k:05}.parquet"))
    }

    /// Parts written so far (the next part's position).
    pub fn len(&self) -> usize {
        self.parts
    }

    /// Whether no part has been written yet.
    pub fn is_empty(&self) -> bool {
        self.parts == 0
    }

    /// Replace the partition with the parts written, atomically, once every part is on disk.
    pub fn commit(mut self, source: &str, date: NaiveDate) -> Result<PathBuf> {
        if let Some(writer) = self.writer.take() {
            writer.finish()?;
        }
        let target = self
            .lake
            .partition_dir(self.layer, &self.table, source, date);
        self.lake.swap_into_place(&self.staging, &target)?;
        Ok(target)
    }
}
