//! Small files gathered into few bronze parts.
//!
//! A part per file made ten thousand files of ten lines ten thousand parts (40 MB of footers
//! and row groups for 1.4 MB of lines) and ten thousand commits. Small segments are therefore
//! gathered, in file order, into one part until it holds [`MAX_BYTES`] of input or its footer
//! record — every segment, for the next run to pick up after — nears what a bucket's manifest
//! carries; a large file, or one read to an error, is still a part of its own.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::segments::Segment;
use super::{Files, writer};
use crate::lake::{Layer, tables};
use crate::stages::Context;

/// A segment smaller than this is gathered with others.
const SMALL: u64 = 1 << 20;
/// Most input bytes one gathered part holds.
const MAX_BYTES: u64 = 64 << 20;
/// Most bytes of the footer's segment record (a bucket's manifest keeps footer values up to
/// 64 KiB).
const MAX_RECORD: usize = 48 << 10;

/// Whether `segment` (read without error) is gathered with others.
pub fn is_small(segment: &Segment) -> bool {
    segment.end - segment.start < SMALL
}

/// Small segments waiting to be written as one part.
#[derive(Default)]
pub struct Gathered {
    waiting: Vec<(PathBuf, Segment)>,
    bytes: u64,
    record: usize,
}

impl Gathered {
    /// Add `file`'s `segment`, writing what waits first when it would not fit beside it.
    pub fn add(
        &mut self,
        ctx: &Context,
        date: NaiveDate,
        tally: &mut Files,
        file: &Path,
        mut segment: Segment,
    ) -> Result<()> {
        // A small file is read whole again at little cost: its room in the footer's record
        // is better spent on more files. A big file's small new segment (a growing log
        // picked up every few minutes) keeps where it picks up.
        if segment.end < SMALL {
            segment.resume = None;
        }
        let size = serde_json::to_string(&segment)?.len() + 1;
        let bytes = segment.end - segment.start;
        if !self.waiting.is_empty()
            && (self.bytes + bytes > MAX_BYTES || self.record + size > MAX_RECORD)
        {
            self.commit(ctx, date, tally)?;
        }
        self.waiting.push((file.to_path_buf(), segment));
        self.bytes += bytes;
        self.record += size;
        Ok(())
    }

    /// Write what waits: one file alone as any part, several as one gathered part.
    pub fn commit(&mut self, ctx: &Context, date: NaiveDate, tally: &mut Files) -> Result<()> {
        let waiting = std::mem::take(&mut self.waiting);
        (self.bytes, self.record) = (0, 0);
        let lines = match waiting.as_slice() {
            [] => return Ok(()),
            [(file, segment)] => vec![commit_one(ctx, date, file, segment, false)?],
            many => {
                let mut name = Sha256::new();
                for (_, s) in many {
                    name.update(s.prefix_sha.as_bytes());
                }
                let name = writer::hex(&name.finalize());
                let inputs: Vec<(&Path, &Segment)> =
                    many.iter().map(|(f, s)| (f.as_path(), s)).collect();
                let mut lines = Vec::new();
                ctx.lake.commit_part_file(
                    Layer::Bronze,
                    tables::LINES,
                    &ctx.source,
                    date,
                    &format!("part-{}.parquet", &name[..32]),
                    |staged| {
                        lines = writer::write_segments(
                            &inputs,
                            staged,
                            ctx.settings.lake.bronze_batch_rows,
                        )?;
                        Ok(())
                    },
                )?;
                for ((file, segment), n) in many.iter().zip(&lines) {
                    tracing::info!(file = %crate::lake::shown(file), lines = n, from_line = segment.start_line + 1, "ingested");
                }
                lines
            }
        };
        tally.ingested += lines.len();
        tally.lines += lines.iter().sum::<u64>();
        Ok(())
    }
}

/// Write `file`'s `segment` as a part of its own (named by the segment's checksum); its lines.
pub fn commit_one(
    ctx: &Context,
    date: NaiveDate,
    file: &Path,
    segment: &Segment,
    until_error: bool,
) -> Result<u64> {
    let mut n = 0;
    ctx.lake.commit_part_file(
        Layer::Bronze,
        tables::LINES,
        &ctx.source,
        date,
        &format!("part-{}.parquet", &segment.prefix_sha[..32]),
        |staged| {
            n = writer::write_segment(
                file,
                staged,
                segment,
                until_error,
                ctx.settings.lake.bronze_batch_rows,
            )?;
            Ok(())
        },
    )?;
    tracing::info!(file = %crate::lake::shown(file), lines = n, from_line = segment.start_line + 1, "ingested");
    Ok(n)
}
