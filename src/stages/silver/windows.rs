//! 02-silver for a batch larger than `[parse] window_lines`: two passes over bronze, a window
//! of lines at a time, so memory follows the window and not the day.
//!
//! The first pass mines the batch's templates from each window's distinct masked messages
//! (`parse::stream::Miner`); the second parses each window again with those templates and
//! writes its events as one part of the partition, committed when the last is written. Every
//! line parses exactly as it would in one piece (`parse::stream` explains why); the one thing
//! a window cannot see is a continuation line at its start, which belongs to the last event of
//! an earlier window: that event is held back until the next window shows whether lines
//! follow it.

use anyhow::{Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;

use super::{
    BronzeColumns, EventColumns, parser_for, quarantine_frame, read_bronze, template_counts,
    template_frame,
};
use crate::config::ParseSettings;
use crate::lake::{Layer, tables};
use crate::parse::stream::{Detached, Miner, detach};
use crate::parse::{DETECTION_SAMPLE, NO_EVENT_BEFORE, Parsed, join_line};
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

/// Parse `date`'s `lines` bronze lines in windows of `settings.window_lines` and commit
/// silver's events, templates and quarantine for it.
pub fn parse(
    ctx: &Context,
    settings: &ParseSettings,
    date: NaiveDate,
    lines: u64,
) -> Result<Written> {
    let window = settings.window_lines;
    let windows = (lines as usize).div_ceil(window);
    let read = |w: usize| read_bronze(ctx, date, Some(((w * window) as i64, window)));
    let parser = parser_for(
        settings,
        date,
        &read_bronze(ctx, date, Some((0, DETECTION_SAMPLE)))?,
    )?;

    // The last line of the window before: a split line's first part may end a window.
    let last_line = |inputs: &[Result<&str, String>]| -> Option<String> {
        inputs
            .last()
            .and_then(|l| l.as_ref().ok())
            .map(|l| l.to_string())
    };
    let mut miner = Miner::default();
    let mut before: Option<String> = None;
    for w in 0..windows {
        ctx.progress.step(format!(
            "mining templates of {date}, window {}/{windows}",
            w + 1
        ));
        let bronze = read(w)?;
        let inputs = BronzeColumns::of(&bronze)?.inputs();
        miner.add_window(&parser, &inputs, before.as_deref());
        before = last_line(&inputs);
    }
    before = None;
    let mined = miner.finish(&parser);

    let mut events = ctx.lake.stage_partition(Layer::Silver, tables::EVENTS)?;
    let mut quarantined: Vec<DataFrame> = Vec::new();
    let mut counts = None;
    let mut held: Option<Held> = None;
    let (mut n_in, mut n_events, mut n_event_lines, mut n_bad) = (0u64, 0u64, 0u64, 0u64);
    let mut n_skewed = 0u64;
    for w in 0..windows {
        ctx.progress
            .step(format!("parsing {date}, window {}/{windows}", w + 1));
        let bronze = read(w)?;
        n_in += bronze.height() as u64;
        let columns = BronzeColumns::of(&bronze)?;
        let inputs = columns.inputs();
        let mut win = mined.parse_window(&parser, &inputs, before.as_deref());
        before = last_line(&inputs);
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
        counts = Some(template_counts(&win.batch, counts));
        let last = win
            .batch
            .parsed
            .iter()
            .rposition(|p| matches!(p, Parsed::Event(_)));
        let mut ev = EventColumns::with_capacity(win.batch.parsed.len(), &win.batch);
        let previous = match last {
            Some(_) => held.take(),
            None => None,
        };
        if let Some(p) = &previous {
            ev.push_detached(&p.file, p.line_no, &p.event);
            n_event_lines += u64::from(p.event.event.lines);
            n_events += 1;
        }
        for (i, p) in win.batch.parsed.iter().enumerate() {
            let Parsed::Event(e) = p else { continue };
            let (file, line_no, _) = columns.provenance(i);
            if Some(i) == last {
                held = Some(Held {
                    file: file.to_string(),
                    line_no,
                    event: detach(&win.batch, e),
                });
            } else {
                ev.push(file, line_no, e);
                n_event_lines += u64::from(e.lines);
                n_events += 1;
            }
        }
        let mut frame = ev.finish()?;
        if frame.height() > 0 {
            events.write(&mut frame)?;
        }
        let bad = quarantine_frame(&win.batch, &columns)?;
        n_bad += bad.height() as u64;
        quarantined.push(bad);
    }
    if let Some(h) = &held {
        let empty = crate::parse::Batch::empty(mined.templates.clone());
        let mut ev = EventColumns::with_capacity(1, &empty);
        ev.push_detached(&h.file, h.line_no, &h.event);
        n_event_lines += u64::from(h.event.event.lines);
        n_events += 1;
        events.write(&mut ev.finish()?)?;
    }
    if n_in != n_event_lines + n_bad {
        bail!(
            "row balance broken for {date}: {n_in} bronze rows, {n_event_lines} lines in {n_events} events + {n_bad} quarantined"
        );
    }
    super::warn_skew(date, settings.max_skew_days, n_skewed);
    events.commit(&ctx.source, date)?;
    let counts = counts.unwrap_or_default();
    ctx.lake.commit_partition(
        Layer::Silver,
        tables::TEMPLATES,
        &ctx.source,
        date,
        &template_frame(&mined.templates, &counts)?,
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
