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

use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use polars::prelude::*;

use super::{Lake, Layer, write_parquet};

/// A partition being written part by part (see [`Lake::stage_partition`]).
pub struct StagedPartition<'l> {
    lake: &'l Lake,
    layer: Layer,
    table: String,
    staging: PathBuf,
    parts: usize,
    writer: Option<PartWriter>,
}

/// The writer thread and the channel that hands it parts.
struct PartWriter {
    parts: SyncSender<(PathBuf, DataFrame)>,
    done: JoinHandle<Result<()>>,
}

impl PartWriter {
    fn start() -> Self {
        let (parts, incoming): (_, Receiver<(PathBuf, DataFrame)>) = sync_channel(0);
        let done = std::thread::spawn(move || {
            for (path, mut df) in incoming {
                write_parquet(&mut df, &path)?;
            }
            Ok(())
        });
        PartWriter { parts, done }
    }

    /// Wait for every part handed over to be written; the first error, if any.
    fn finish(self) -> Result<()> {
        drop(self.parts);
        self.done
            .join()
            .map_err(|_| anyhow!("the thread writing Parquet parts panicked"))?
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
        let path = self.staging.join(format!("part-{:05}.parquet", self.parts));
        let writer = self.writer.get_or_insert_with(PartWriter::start);
        if writer.parts.send((path, std::mem::take(df))).is_err() {
            // The thread stopped at an error: that error is the one to report.
            let stopped = self.writer.take().expect("a writer was just started");
            stopped.finish()?;
            return Err(anyhow!("the thread writing Parquet parts stopped"));
        }
        self.parts += 1;
        Ok(())
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

impl Drop for StagedPartition<'_> {
    /// A partition abandoned at an error: let the writer finish (its error, if any, is not
    /// the one to report) so that no thread writes into a staging folder being removed.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.finish();
        }
    }
}
