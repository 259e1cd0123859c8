//! One day of 02-silver, run by run: each run parses only the bronze parts of the day it has
//! not parsed yet, appends their events to the day's partition as parts of their own, and
//! mines the templates of the whole day again from the distinct masked messages it keeps
//! (`state`). A day parsed in one run and the same day parsed as many micro-batches end with
//! the same events, lines and templates (a template id a later run refined away resolves to
//! its successor through `silver/template_successors`).
//!
//! A run reads its new lines a window of `[parse] window_lines` at a time, so memory follows
//! the window and not the day. Each window is parsed whole — headers, masking, values — and
//! its events frame, which still names each event's masked message rather than its template,
//! is spilled to the stage's scratch folder; once the last window is parsed the templates are
//! mined, and each spilled file becomes one part of the partition with its templates named
//! (only the template columns are encoded again; see [`Pending`]). The one thing a window
//! cannot see is a continuation line at its start, which belongs to the last event of an
//! earlier window: that event is held back until the next window shows whether lines follow
//! it. A run's last event is written in a part of its own (`part-r<n>-last`) and kept in the
//! state: when the next run's first lines continue it (a stack trace cut by the run), that
//! part is written again with the event whole.
//!
//! (Parsing every window twice — once to mine, once to write — kept nothing on disk, but
//! parsing is the stage's work: on a million HDFS lines the second pass cost 0.4 s of 1.35.)

use std::path::PathBuf;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashSet;

use super::formats::Formats;
use super::state::{HeldEvent, ParseState};
use super::{
    BronzeColumns, EventColumns, TEMPLATE_INDEX, TemplateCounts, compact, counts_per_template,
    quarantine_frame, read_bronze, template_columns, template_counts, template_frame,
};
use crate::lake::{FrameWriter, Layer, Scratch, replace_column, tables};
use crate::parse::stream::{Detached, Mined, Miner, detach};
use crate::parse::{Batch, NO_EVENT_BEFORE, Parsed, Parser, join_line};
use crate::stages::Context;
use crate::stages::template_store::SUCCESSORS;

/// What one run did for a day.
#[derive(Default)]
pub struct Written {
    pub lines: u64,
    pub events: u64,
    pub quarantined: u64,
    /// Whether the run wrote anything.
    pub wrote: bool,
}

/// The last event seen so far, with where it came from.
struct Held {
    file: String,
    line_no: u64,
    event: Detached,
}

/// The last event of the run before, in its part.
struct Carried {
    held: Held,
    part: String,
    /// Lines it had when that part was written; it has more when this run joined some.
    lines: u32,
}

/// Parse the bronze parts of `date` that earlier runs did not, and commit their events,
/// the day's templates, quarantine and state. `None`: the day has no bronze partition.
pub fn parse(ctx: &Context, date: NaiveDate) -> Result<Option<Written>> {
    let config = &ctx.resolved.parse;
    let files = ctx
        .lake
        .part_files(Layer::Bronze, tables::LINES, &ctx.source, date)?;
    if files.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    let mut state = match ParseState::load(&ctx.lake, &ctx.source, date)? {
        Some(s) if s.carries_on(config, &names) => s,
        earlier => {
            if earlier.is_some() {
                tracing::info!(%date, "the parse settings changed or bronze was ingested again since the last run: parsing the day again whole");
            }
            for (layer, table) in DAY_TABLES {
                ctx.lake.clear_partition(layer, table, &ctx.source, date)?;
            }
            ParseState::new(config)
        }
    };
    let new: Vec<PathBuf> = files
        .iter()
        .zip(&names)
        .filter(|(_, n)| !state.parts.contains(n))
        .map(|(f, _)| f.clone())
        .collect();
    if new.is_empty() {
        return Ok(Some(Written::default()));
    }
    let formats = Formats::for_new(config, date, &mut state, &new)?;
    let lines = crate::lake::Lake::row_count(&new)?;
    let mut run = Run::resume(ctx, &mut state)?;
    let windows = (lines as usize).div_ceil(config.settings.window_lines);
    for w in 0..windows {
        ctx.progress
            .step(format!("parsing {date}, window {}/{windows}", w + 1));
        let window = config.settings.window_lines;
        let bronze = read_bronze(&new, Some(((w * window) as i64, window)))?;
        run.add_window(&formats, &bronze, date)?;
    }
    let written = run.finish(ctx, &formats, date, &mut state)?;
    state.parts.extend(new.iter().map(|f| file_name(f)));
    if state.lines != state.event_lines + state.quarantined {
        bail!(
            "row balance broken for {date}: {} bronze rows, {} lines in {} events + {} quarantined",
            state.lines,
            state.event_lines,
            state.events,
            state.quarantined
        );
    }
    state.save(&ctx.lake, &ctx.source, date)?;
    compact::when_due(ctx, date, state.held_part.as_deref())?;
    Ok(Some(written))
}

/// The tables one day of silver writes besides its state: dropped together when the day is
/// parsed again whole.
const DAY_TABLES: [(Layer, &str); 4] = [
    (Layer::Silver, tables::EVENTS),
    (Layer::Silver, tables::TEMPLATES),
    (Layer::Silver, SUCCESSORS),
    (Layer::Quarantine, tables::UNPARSED),
];

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One run's parse of a day: the day's miner and counts carried on from the state, and this
/// run's events waiting for their templates.
struct Run {
    /// This run's number (its parts are `part-r<n>-…`).
    number: u32,
    miner: Miner,
    counts: TemplateCounts,
    /// The last event seen in this run, held back until the next window.
    held: Option<Held>,
    /// The last event of the run before, written in its own part: continuation lines at
    /// this run's start join it, and its part is written again (`joined`).
    carried: Option<Carried>,
    before: Option<String>,
    pending: Pending,
    quarantined: Vec<DataFrame>,
    /// Messages of the events this run writes (to record which template ids they got).
    written_messages: FxHashSet<usize>,
    lines: u64,
    events: u64,
    event_lines: u64,
    bad: u64,
    skewed: u64,
    /// `[parse] max_skew_days` and `quarantine_skewed`.
    skew: (u32, bool),
}

impl Run {
    fn resume(ctx: &Context, state: &mut ParseState) -> Result<Self> {
        let carried = state
            .held
            .take()
            .zip(state.held_part.take())
            .map(|(h, part)| Carried {
                lines: h.lines,
                held: Held {
                    event: h.detached(),
                    file: h.file,
                    line_no: h.line_no,
                },
                part,
            });
        Ok(Self {
            number: state.runs + 1,
            carried,
            miner: Miner::resume(
                std::mem::take(&mut state.messages),
                std::mem::take(&mut state.weights),
            ),
            counts: std::mem::take(&mut state.stats),
            held: None,
            before: state.before.take(),
            pending: Pending::new(ctx.lake.scratch("silver-windows")?),
            quarantined: Vec::new(),
            written_messages: FxHashSet::default(),
            lines: 0,
            events: 0,
            event_lines: 0,
            bad: 0,
            skewed: 0,
            skew: {
                let s = &ctx.resolved.parse.settings;
                (s.max_skew_days, s.quarantine_skewed)
            },
        })
    }

    /// Parse one window of new bronze lines.
    fn add_window(&mut self, formats: &Formats, bronze: &DataFrame, date: NaiveDate) -> Result<()> {
        let settings = self.skew;
        self.lines += bronze.height() as u64;
        let columns = BronzeColumns::of(bronze)?;
        let mut inputs = columns.inputs();
        let runs = formats.runs(columns.file);
        // A file no format reads: each of its lines quarantined with why.
        for run in &runs {
            if let Err(why) = run.read {
                for input in &mut inputs[run.lines.clone()] {
                    if input.is_ok() {
                        *input = Err(why.to_string());
                    }
                }
            }
        }
        let by: Vec<(&Parser, std::ops::Range<usize>)> = runs
            .iter()
            .map(|run| (run.read.unwrap_or(formats.first()), run.lines.clone()))
            .collect();
        let mut win = self
            .miner
            .stage_window_by(&by, &inputs, self.before.as_deref());
        self.before = inputs
            .last()
            .and_then(|l| l.as_ref().ok())
            .map(|l| l.to_string());
        self.skewed += super::check_skew(&mut win.batch, date, settings.0, settings.1);
        for c in &win.orphans {
            let before = self
                .held
                .as_mut()
                .or(self.carried.as_mut().map(|c| &mut c.held));
            match before {
                Some(h) => join_line(&mut h.event.event, c),
                None => win.batch.parsed[c.line] = Parsed::Quarantined(NO_EVENT_BEFORE.into()),
            }
        }
        template_counts(&win.batch, &mut self.counts);
        let frame = self.window_events(&win.batch, &columns)?;
        let name = self.part_name(self.pending.frames);
        self.pending.add(frame, name)?;
        let bad = quarantine_frame(&win.batch, &columns)?;
        self.bad += bad.height() as u64;
        self.quarantined.push(bad);
        Ok(())
    }

    /// The name of this run's part `k`.
    fn part_name(&self, k: usize) -> String {
        format!("part-r{:06}-{k:04}.parquet", self.number)
    }

    /// The run's last event, in a part of its own (named to sort after the run's other
    /// parts), and the run before's last event again if this run's first lines joined it.
    fn write_last(&mut self) -> Result<Option<String>> {
        let single = |h: &Held| -> Result<DataFrame> {
            let empty = Batch::empty(Vec::new());
            let mut ev = EventColumns::with_capacity(1, &empty);
            ev.push_detached(&h.file, h.line_no, &h.event);
            ev.finish(None)
        };
        if let Some(c) = &self.carried
            && c.held.event.event.lines > c.lines
        {
            let added = c.held.event.event.lines - c.lines;
            self.event_lines += u64::from(added);
            self.written_messages.insert(c.held.event.event.template);
            let frame = single(&c.held)?;
            self.pending.add(frame, c.part.clone())?;
        }
        let Some(h) = self.held.take() else {
            return Ok(None);
        };
        self.count_written(&h.event.event);
        let name = format!("part-r{:06}-last.parquet", self.number);
        self.pending.add(single(&h)?, name.clone())?;
        // The carried event is now the run's last: its part and lines as written.
        self.carried = Some(Carried {
            lines: h.event.event.lines,
            held: h,
            part: name.clone(),
        });
        Ok(Some(name))
    }

    fn count_written(&mut self, e: &crate::parse::Event<'_>) {
        self.event_lines += u64::from(e.lines);
        self.events += 1;
        self.written_messages.insert(e.template);
    }

    /// A window's events as silver's frame, less its last event, which is held back (its
    /// continuation lines may start the next window) while the one held from before joins
    /// this frame.
    fn window_events(&mut self, batch: &Batch, columns: &BronzeColumns) -> Result<DataFrame> {
        let last = batch
            .parsed
            .iter()
            .rposition(|p| matches!(p, Parsed::Event(_)));
        let mut ev = EventColumns::with_capacity(batch.parsed.len(), batch);
        let previous = match last {
            Some(_) => self.held.take(),
            None => None,
        };
        if let Some(p) = &previous {
            ev.push_detached(&p.file, p.line_no, &p.event);
            self.count_written(&p.event.event);
        }
        for (i, p) in batch.parsed.iter().enumerate() {
            let Parsed::Event(e) = p else { continue };
            let (file, line_no, _) = columns.provenance(i);
            if Some(i) == last {
                self.held = Some(Held {
                    file: file.to_string(),
                    line_no,
                    event: detach(batch, e),
                });
            } else {
                ev.push(file, line_no, e);
                self.count_written(e);
            }
        }
        ev.finish(None)
    }

    /// Mine the day's templates, write this run's events, quarantine, templates and template
    /// successors, and carry the day's miner over into `state`.
    fn finish(
        mut self,
        ctx: &Context,
        formats: &Formats,
        date: NaiveDate,
        state: &mut ParseState,
    ) -> Result<Written> {
        super::warn_skew(date, self.skew.0, self.skewed);
        self.write_last()?;
        ctx.progress.step(format!("mining the templates of {date}"));
        let mined = self.miner.finish(formats.first());
        state.runs = self.number;
        self.pending.finish()?;
        write_events(ctx, date, &mined, &self.pending)?;
        let bad = crate::lake::concat_rows(std::mem::take(&mut self.quarantined))?;
        if bad.height() > 0 {
            let name = self.part_name(0);
            ctx.lake.commit_part_file(
                Layer::Quarantine,
                tables::UNPARSED,
                &ctx.source,
                date,
                &name,
                |path| crate::lake::write_parquet(&mut bad.clone(), path),
            )?;
            tracing::warn!(%date, quarantined = bad.height(), "lines quarantined (see quarantine/unparsed for reasons)");
        } else if bad.width() > 0
            && ctx
                .lake
                .part_files(Layer::Quarantine, tables::UNPARSED, &ctx.source, date)?
                .is_empty()
        {
            // An empty partition says "parsed, nothing quarantined" to readers of the day.
            ctx.lake.commit_partition(
                Layer::Quarantine,
                tables::UNPARSED,
                &ctx.source,
                date,
                &bad,
            )?;
        }
        for &m in &self.written_messages {
            let (id, text) = &mined.templates[mined.template_of(m)];
            let issued = state.issued.entry(id.clone()).or_default();
            if issued.text.is_empty() {
                issued.text = text.clone();
            }
            if !issued.messages.contains(&(m as u32)) {
                issued.messages.push(m as u32);
            }
        }
        let counts = counts_per_template(&self.counts, &mined);
        let templates = template_frame(&mined.templates, &counts)?;
        ctx.lake.commit_partition(
            Layer::Silver,
            tables::TEMPLATES,
            &ctx.source,
            date,
            &templates,
        )?;
        write_successors(ctx, date, &mined, &self.miner, state)?;
        state.messages = self.miner.messages().to_vec();
        state.weights = self.miner.weights().to_vec();
        state.stats = self.counts;
        state.before = self.before;
        // Only a format that joins lines can continue an event in the next run.
        let carried = self
            .carried
            .filter(|c| formats.of_file(&c.held.file).joins_lines());
        state.held = carried
            .as_ref()
            .map(|c| HeldEvent::of(&c.held.file, c.held.line_no, &c.held.event));
        state.held_part = carried.map(|c| c.part);
        state.lines += self.lines;
        state.events += self.events;
        state.event_lines += self.event_lines;
        state.quarantined += self.bad;
        tracing::info!(%date, lines = self.lines, events = self.events, quarantined = self.bad, templates = templates.height(), "silver: new lines parsed");
        Ok(Written {
            lines: self.lines,
            events: self.events,
            quarantined: self.bad,
            wrote: true,
        })
    }
}

/// Name the templates of this run's waiting events and add them to `date`'s silver events
/// as parts of their own, on every core at once.
fn write_events(ctx: &Context, date: NaiveDate, mined: &Mined, pending: &Pending) -> Result<()> {
    use rayon::prelude::*;
    let frames = pending.names.len();
    ctx.progress
        .step(format!("writing silver {date}: {frames} parts"));
    // Named on every core at once, into the scratch folder; then committed one at a time: a
    // lake on object storage records each part in the partition's manifest, and two commits
    // at once would each write it without the other's part.
    let named = |k: usize| pending.scratch.path(&format!("named-{k:05}.parquet"));
    (0..frames).into_par_iter().try_for_each(|k| {
        let name = |index: &Column| -> Result<Vec<Column>> {
            template_columns(
                &mined.templates,
                index
                    .u32()?
                    .into_no_null_iter()
                    .map(|m| mined.template_of(m as usize)),
            )
        };
        let file = std::fs::File::create(named(k))?;
        replace_column(
            &pending.path(k),
            TEMPLATE_INDEX,
            name,
            std::io::BufWriter::new(file),
        )
    })?;
    for (k, part) in pending.names.iter().enumerate() {
        ctx.lake.commit_part_file(
            Layer::Silver,
            tables::EVENTS,
            &ctx.source,
            date,
            part,
            |path| std::fs::rename(named(k), path).map_err(anyhow::Error::from),
        )?;
    }
    Ok(())
}

/// Template ids the day's events were written with that the day's templates no longer
/// have, each with the template that now holds most of its events' messages.
fn write_successors(
    ctx: &Context,
    date: NaiveDate,
    mined: &Mined,
    miner: &Miner,
    state: &ParseState,
) -> Result<()> {
    let current: FxHashSet<&str> = mined.templates.iter().map(|t| t.0.as_str()).collect();
    let weights = miner.weights();
    let mut rows: Vec<(&str, &str, &str)> = Vec::new();
    for (id, issued) in &state.issued {
        if current.contains(id.as_str()) {
            continue;
        }
        let Some(&heaviest) = issued
            .messages
            .iter()
            .max_by_key(|&&m| (weights[m as usize], std::cmp::Reverse(m)))
        else {
            continue;
        };
        let successor = &mined.templates[mined.template_of(heaviest as usize)].0;
        rows.push((id, &issued.text, successor));
    }
    if rows.is_empty() {
        return ctx
            .lake
            .drop_partition(Layer::Silver, SUCCESSORS, &ctx.source, date);
    }
    let column = |name: &str, values: Vec<&str>| Column::new(name.into(), values);
    let df = DataFrame::new_infer_height(vec![
        column("template_id", rows.iter().map(|r| r.0).collect()),
        column("template", rows.iter().map(|r| r.1).collect()),
        column("replaced_by", rows.iter().map(|r| r.2).collect()),
    ])?;
    ctx.lake
        .commit_partition(Layer::Silver, SUCCESSORS, &ctx.source, date, &df)?;
    Ok(())
}

/// Windows' events frames waiting for the day's templates, written one file each to the
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
    /// The part each frame becomes.
    names: Vec<String>,
}

impl Pending {
    fn new(scratch: Scratch) -> Self {
        Pending {
            writer: None,
            scratch,
            frames: 0,
            names: Vec::new(),
        }
    }

    fn path(&self, k: usize) -> std::path::PathBuf {
        self.scratch.path(&format!("window-{k:05}.parquet"))
    }

    /// The next window's frame, to become part `name` (an empty one is left out).
    fn add(&mut self, frame: DataFrame, name: String) -> Result<()> {
        if frame.height() == 0 {
            return Ok(());
        }
        self.names.push(name);
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
