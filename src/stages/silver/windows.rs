//! 02-silver for a batch larger than `[parse] window_lines`: one pass over bronze, a window
//! of lines at a time, so memory follows the window and not the day.
//!
//! Each window is parsed whole — headers, masking, values — and its events frame, which
//! still names each event's masked message rather than its template, is spilled to the
//! stage's scratch folder; the batch's templates are mined from its distinct masked messages
//! once the last window is parsed (`parse::stream`), and each spilled file then becomes one
//! part of the partition with its templates named (only the template columns are encoded
//! again; see [`Pending`]), committed when the last is written. Every line parses exactly as
//! it would in one piece (`parse::stream` explains why); the one thing a window cannot see is
//! a continuation line at its start, which belongs to the last event of an earlier window:
//! that event is held back until the next window shows whether lines follow it.
//!
//! (Parsing every window twice — once to mine, once to write — kept nothing on disk, but
//! parsing is the stage's work: on a million HDFS lines the second pass cost 0.4 s of 1.35.)

use anyhow::{Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

use super::{
    BronzeColumns, EventColumns, TEMPLATE_INDEX, TemplateCounts, counts_per_template, parser_for,
    quarantine_frame, read_bronze, template_columns, template_counts, template_frame,
};
use crate::lake::{FrameWriter, Layer, Scratch, replace_column, tables};
use crate::parse::ParserConfig;
use crate::parse::stream::{Detached, Mined, Miner, detach};
use crate::parse::{Batch, DETECTION_SAMPLE, NO_EVENT_BEFORE, Parsed, join_line};
use crate::stages::Context;

/// What a windowed parse wrote.
pub struct Written {
    pub lines: u64,
    pub events: u64,
    pub quarantined: u64,
}

/// The last event seen so far, with where it came from.
struct Held {
    file: String,
    line_no: u64,
    event: Detached,
}

/// Parse `date`'s `lines` bronze lines in windows of `[parse] window_lines` and commit
/// silver's events, templates and quarantine for it.
pub fn parse(ctx: &Context, config: &ParserConfig, date: NaiveDate, lines: u64) -> Result<Written> {
    let settings = &config.settings;
    let window = settings.window_lines;
    let windows = (lines as usize).div_ceil(window);
    let read = |w: usize| read_bronze(ctx, date, Some(((w * window) as i64, window)));
    let parser = parser_for(
        config,
        date,
        &read_bronze(ctx, date, Some((0, DETECTION_SAMPLE)))?,
    )?;

    let t0 = std::time::Instant::now();
    let mut miner = Miner::default();
    let mut pending = Pending::new(ctx.lake.scratch("silver-windows")?);
    let mut quarantined: Vec<DataFrame> = Vec::new();
    let mut counts = TemplateCounts::new();
    let mut held: Option<Held> = None;
    // The last line of the window before: a split line's first part may end a window.
    let mut before: Option<String> = None;
    let (mut n_in, mut n_events, mut n_event_lines, mut n_bad) = (0u64, 0u64, 0u64, 0u64);
    let mut n_skewed = 0u64;
    for w in 0..windows {
        ctx.progress
            .step(format!("parsing {date}, window {}/{windows}", w + 1));
        let bronze = read(w)?;
        n_in += bronze.height() as u64;
        let columns = BronzeColumns::of(&bronze)?;
        let inputs = columns.inputs();
        let mut win = miner.stage_window(&parser, &inputs, before.as_deref());
        before = inputs
            .last()
            .and_then(|l| l.as_ref().ok())
            .map(|l| l.to_string());
        n_skewed += super::check_skew(
            &mut win.batch,
            date,
            settings.max_skew_days,
            settings.quarantine_skewed,
        );
        for c in &win.orphans {
            match held.as_mut() {
                Some(h) => join_line(&mut h.event.event, c),
                None => win.batch.parsed[c.line] = Parsed::Quarantined(NO_EVENT_BEFORE.into()),
            }
        }
        template_counts(&win.batch, &mut counts);
        let (events, lines_in_events, n) = window_events(&win.batch, &columns, &mut held)?;
        n_event_lines += lines_in_events;
        n_events += n;
        pending.add(events)?;
        let bad = quarantine_frame(&win.batch, &columns)?;
        n_bad += bad.height() as u64;
        quarantined.push(bad);
    }
    if let Some(h) = &held {
        let empty = Batch::empty(Vec::new());
        let mut ev = EventColumns::with_capacity(1, &empty);
        ev.push_detached(&h.file, h.line_no, &h.event);
        n_event_lines += u64::from(h.event.event.lines);
        n_events += 1;
        pending.add(ev.finish(None)?)?;
    }
    if n_in != n_event_lines + n_bad {
        bail!(
            "row balance broken for {date}: {n_in} bronze rows, {n_event_lines} lines in {n_events} events + {n_bad} quarantined"
        );
    }
    super::warn_skew(date, settings.max_skew_days, n_skewed);

    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        windows,
        "02-silver: windows parsed and spilled"
    );
    let t0 = std::time::Instant::now();
    ctx.progress.step(format!("mining the templates of {date}"));
    let mined = miner.finish(&parser);
    write_events(ctx, date, &mined, pending)?;
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "02-silver: templates mined, events written"
    );
    ctx.lake.commit_partition(
        Layer::Silver,
        tables::TEMPLATES,
        &ctx.source,
        date,
        &template_frame(&mined.templates, &counts_per_template(&counts, &mined))?,
    )?;
    let bad = crate::lake::concat_rows(quarantined)?;
    ctx.lake
        .commit_partition(Layer::Quarantine, tables::UNPARSED, &ctx.source, date, &bad)?;
    tracing::info!(%date, lines = n_in, events = n_events, quarantined = n_bad, windows, "silver partition written in windows");
    Ok(Written {
        lines: n_in,
        events: n_events,
        quarantined: n_bad,
    })
}

/// Name the templates of the waiting windows' events and commit them as `date`'s silver
/// events, each waiting file becoming its part on its own: on every core at once.
fn write_events(ctx: &Context, date: NaiveDate, mined: &Mined, mut pending: Pending) -> Result<()> {
    let mut events = ctx.lake.stage_partition(Layer::Silver, tables::EVENTS)?;
    let frames = pending.finish()?;
    ctx.progress
        .step(format!("writing silver {date}: {frames} parts"));
    events.write_files(frames, |k, out| {
        let name = |index: &Column| -> Result<Vec<Column>> {
            template_columns(
                &mined.templates,
                index
                    .u32()?
                    .into_no_null_iter()
                    .map(|m| mined.template_of(m as usize)),
            )
        };
        replace_column(&pending.path(k), TEMPLATE_INDEX, name, out)
    })?;
    drop(pending);
    events.commit(&ctx.source, date)?;
    Ok(())
}

/// A window's events as silver's frame, less its last event, which is held back in `held`
/// (its continuation lines may start the next window) while the one held from the window
/// before joins this frame; with the lines and events in it.
fn window_events(
    batch: &Batch,
    columns: &BronzeColumns,
    held: &mut Option<Held>,
) -> Result<(DataFrame, u64, u64)> {
    let (mut lines, mut events) = (0u64, 0u64);
    let last = batch
        .parsed
        .iter()
        .rposition(|p| matches!(p, Parsed::Event(_)));
    let mut ev = EventColumns::with_capacity(batch.parsed.len(), batch);
    let previous = match last {
        Some(_) => held.take(),
        None => None,
    };
    if let Some(p) = &previous {
        ev.push_detached(&p.file, p.line_no, &p.event);
        lines += u64::from(p.event.event.lines);
        events += 1;
    }
    for (i, p) in batch.parsed.iter().enumerate() {
        let Parsed::Event(e) = p else { continue };
        let (file, line_no, _) = columns.provenance(i);
        if Some(i) == last {
            *held = Some(Held {
                file: file.to_string(),
                line_no,
                event: detach(batch, e),
            });
        } else {
            ev.push(file, line_no, e);
            lines += u64::from(e.lines);
            events += 1;
        }
    }
    Ok((ev.finish(None)?, lines, events))
}

/// Windows' events frames waiting for the batch's templates, written one file each to the
/// stage's scratch folder by a writer thread while the next window is parsed. They are
/// written as lake files, zstd and all: naming their templates then copies every other
/// column's pages into the partition as they are (`lake::replace_column`), instead of reading
/// the frame back and encoding it again. (Keeping the latest in memory instead, since the last
/// window's frame is named right after mining, saved no time on a million HDFS lines and held
/// 60 MB more.)
struct Pending {
    // Declared before the folder it writes into: dropped first, it finishes its file first.
    writer: Option<FrameWriter>,
    scratch: Scratch,
    frames: usize,
}

impl Pending {
    fn new(scratch: Scratch) -> Self {
        Pending {
            writer: None,
            scratch,
            frames: 0,
        }
    }

    fn path(&self, k: usize) -> std::path::PathBuf {
        self.scratch.path(&format!("window-{k:05}.parquet"))
    }

    /// The next window's frame (an empty one is left out).
    fn add(&mut self, frame: DataFrame) -> Result<()> {
        if frame.height() == 0 {
            return Ok(());
        }
        let path = self.path(self.frames);
        self.writer
            .get_or_insert_with(FrameWriter::start)
            .write(path, frame)?;
        self.frames += 1;
        Ok(())
    }

    /// Wait for the last file to be written; returns how many there are (`path(0..n)`).
    fn finish(&mut self) -> Result<usize> {
        if let Some(writer) = self.writer.take() {
            writer.finish()?;
        }
        Ok(self.frames)
    }
}
