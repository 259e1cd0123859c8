//! `02-silver`: bronze lines → parsed events in `silver/events`, their templates in
//! `silver/templates`, and every line that does not parse in `quarantine/unparsed` with the
//! reason. Every bronze row lands in exactly one of the two: bronze = silver + quarantine.
//!
//! Parsing itself lives behind [`crate::parse::Parser`]; this stage moves data in and out of
//! the lake and checks the row balance.

use anyhow::{Context as _, Result, bail};
use polars::prelude::*;
use rayon::prelude::*;

use super::Context;
use crate::config::ParseSettings;
use crate::db::RunOutcome;
use crate::lake::{Layer, tables};
use crate::parse::{DETECTION_SAMPLE, Event, Parsed, Parser, Templates};
use chrono::NaiveDate;

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let settings = ctx.parse_settings();
    let mut outcome = RunOutcome::default();
    let mut dates_done = 0;
    for &date in &ctx.dates {
        let Some(bronze) = ctx
            .lake
            .scan(Layer::Bronze, tables::LINES, &ctx.source, &[date])?
        else {
            tracing::warn!(%date, "no bronze partition for this date; nothing to parse");
            continue;
        };
        let bronze = bronze
            .select([
                col("line"),
                col("raw"),
                col("file"),
                col("line_no"),
                col("byte_offset"),
            ])
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading bronze")?;
        let parser = parser_for(&settings, date, &bronze)?;
        let t0 = std::time::Instant::now();
        let (events, quarantined) = parse_frame(&parser, &bronze)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "parsed");
        let n_events: usize = events.iter().map(|e| e.height()).sum();
        let n_event_lines: u64 = events
            .iter()
            .map(|e| {
                e.column("line_count")
                    .and_then(|c| c.as_materialized_series().sum::<u64>())
                    .unwrap_or(0)
            })
            .sum();
        let (n_in, n_bad) = (bronze.height(), quarantined.height());
        if n_in as u64 != n_event_lines + n_bad as u64 {
            bail!(
                "row balance broken for {date}: {n_in} bronze rows, {n_event_lines} lines in {n_events} events + {n_bad} quarantined"
            );
        }
        let t0 = std::time::Instant::now();
        let mut templates = templates_of(&events)?;
        let mut events = events;
        let mut quarantined = quarantined;
        ctx.lake.commit_partition_parts(
            Layer::Silver,
            tables::EVENTS,
            &ctx.source,
            date,
            &mut events,
        )?;
        ctx.lake.commit_partition(
            Layer::Silver,
            tables::TEMPLATES,
            &ctx.source,
            date,
            &mut templates,
        )?;
        ctx.lake.commit_partition(
            Layer::Quarantine,
            tables::UNPARSED,
            &ctx.source,
            date,
            &mut quarantined,
        )?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "written");
        if n_bad > 0 {
            tracing::warn!(%date, quarantined = n_bad, "lines quarantined (see quarantine/unparsed for reasons)");
        }
        outcome.rows_in += n_in as u64;
        outcome.rows_out += n_events as u64;
        outcome.rows_quarantined += n_bad as u64;
        dates_done += 1;
        tracing::info!(%date, events = n_events, templates = templates.height(), quarantined = n_bad, "silver partition written");
    }
    if dates_done > 0 {
        let n = super::template_store::rebuild(&ctx.lake, &ctx.source)?;
        tracing::info!(templates = n, "template store rebuilt");
    }
    if dates_done == 0 {
        bail!(
            "no bronze data for source {:?} on {:?}: run 01-bronze first",
            ctx.source,
            ctx.dates
        );
    }
    outcome.message = format!(
        "{} lines parsed into {} events, {} quarantined",
        outcome.rows_in, outcome.rows_out, outcome.rows_quarantined
    );
    Ok(outcome)
}

/// The configured parser, or with `format = "auto"` the preset that reads most of the first
/// lines of the batch (logged, so an operator can pin it in the config).
fn parser_for(settings: &ParseSettings, date: NaiveDate, bronze: &DataFrame) -> Result<Parser> {
    let line = bronze.column("line")?.str()?;
    let sample: Vec<&str> = line.iter().flatten().take(DETECTION_SAMPLE).collect();
    let (parser, detection) = Parser::for_sample(settings, date, &sample)?;
    if let Some(d) = detection {
        tracing::info!(
            %date,
            preset = d.preset,
            matched = d.matched,
            sampled = d.sampled,
            "format auto-detected: preset {:?} reads {} of the first {} lines (pin it with parse.format)",
            d.preset, d.matched, d.sampled
        );
    }
    Ok(parser)
}

/// Parse a bronze frame into (events, quarantined) frames; events come as consecutive
/// slices, written as one part file each.
pub fn parse_frame(parser: &Parser, bronze: &DataFrame) -> Result<(Vec<DataFrame>, DataFrame)> {
    let line = bronze.column("line")?.str()?;
    let raw = bronze.column("raw")?.binary()?;
    let file = bronze.column("file")?.str()?;
    let line_no = bronze.column("line_no")?.u64()?;
    let byte_offset = bronze.column("byte_offset")?.u64()?;

    let inputs: Vec<Result<&str, String>> = line
        .iter()
        .zip(raw.iter())
        .map(|(l, r)| match (l, r) {
            (_, Some(_)) => Err("invalid UTF-8".to_string()),
            (Some(l), None) => Ok(l),
            (None, None) => Err("missing line".to_string()),
        })
        .collect();
    let (parsed, templates) = parser.parse_batch(&inputs);

    // Columns are built per slice of rows in parallel, then stacked (no copy: each slice
    // becomes a chunk of the final columns).
    const SLICE: usize = 128 * 1024;
    let frames: Vec<(DataFrame, DataFrame)> = parsed
        .par_chunks(SLICE)
        .enumerate()
        .map(|(k, slice)| {
            let base = k * SLICE;
            let mut ev = EventColumns::with_capacity(slice.len(), &templates);
            let mut q = QuarantineColumns::default();
            for (j, p) in slice.iter().enumerate() {
                let i = base + j;
                let f = file.get(i).unwrap_or_default();
                let no = line_no.get(i).unwrap_or_default();
                let off = byte_offset.get(i).unwrap_or_default();
                match p {
                    Parsed::Event(e) => ev.push(f, no, off, e),
                    Parsed::Joined => {}
                    Parsed::Quarantined(reason) => {
                        q.push(f, no, off, line.get(i).unwrap_or_default(), reason)
                    }
                }
            }
            Ok((ev.finish()?, q.finish()?))
        })
        .collect::<Result<_>>()?;
    let mut quarantined = QuarantineColumns::default().finish()?;
    let mut events = Vec::with_capacity(frames.len());
    for (e, q) in frames {
        events.push(e);
        quarantined.vstack_mut_owned(q)?;
    }
    if events.is_empty() {
        events.push(EventColumns::with_capacity(0, &templates).finish()?);
    }
    Ok((events, quarantined))
}

#[derive(Default)]
struct QuarantineColumns<'a> {
    file: Vec<&'a str>,
    line_no: Vec<u64>,
    byte_offset: Vec<u64>,
    line: Vec<&'a str>,
    reason: Vec<&'a str>,
}

impl<'a> QuarantineColumns<'a> {
    fn push(&mut self, file: &'a str, line_no: u64, offset: u64, line: &'a str, reason: &'a str) {
        self.file.push(file);
        self.line_no.push(line_no);
        self.byte_offset.push(offset);
        self.line.push(line);
        self.reason.push(reason);
    }

    fn finish(self) -> Result<DataFrame> {
        Ok(DataFrame::new_infer_height(vec![
            Column::new("file".into(), self.file),
            Column::new("line_no".into(), self.line_no),
            Column::new("byte_offset".into(), self.byte_offset),
            Column::new("line".into(), self.line),
            Column::new("reason".into(), self.reason),
        ])?)
    }
}

/// Column buffers for silver events. Text borrows from the bronze frame and the batch's
/// template table, so building a million-row batch allocates little beyond the parameters.
struct EventColumns<'a> {
    file: Vec<&'a str>,
    line_no: Vec<u64>,
    byte_offset: Vec<u64>,
    ts: Vec<i64>,
    level: Vec<&'static str>,
    level_raw: Vec<&'a str>,
    service: Vec<&'a str>,
    message: Vec<&'a str>,
    template_id: Vec<&'a str>,
    template: Vec<&'a str>,
    /// JSON array text: readable by every Parquet reader, unlike Polars' list-of-string.
    params: Vec<&'a str>,
    line_count: Vec<u32>,
    templates: &'a Templates,
}

impl<'a> EventColumns<'a> {
    fn with_capacity(n: usize, templates: &'a Templates) -> Self {
        Self {
            file: Vec::with_capacity(n),
            line_no: Vec::with_capacity(n),
            byte_offset: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            level: Vec::with_capacity(n),
            level_raw: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            message: Vec::with_capacity(n),
            template_id: Vec::with_capacity(n),
            template: Vec::with_capacity(n),
            params: Vec::with_capacity(n),
            line_count: Vec::with_capacity(n),
            templates,
        }
    }

    fn push(&mut self, file: &'a str, line_no: u64, byte_offset: u64, e: &'a Event<'a>) {
        let (id, text) = &self.templates[e.template];
        self.file.push(file);
        self.line_no.push(line_no);
        self.byte_offset.push(byte_offset);
        self.ts.push(e.header.ts_ms);
        self.level.push(e.header.level);
        self.level_raw.push(&e.header.level_raw);
        self.service.push(&e.header.service);
        self.message.push(&e.header.message);
        self.line_count.push(e.lines);
        self.template_id.push(id);
        self.template.push(text);
        self.params.push(&e.params);
    }

    fn finish(self) -> Result<DataFrame> {
        let ts = Column::new("ts".into(), self.ts).cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?;
        Ok(DataFrame::new_infer_height(vec![
            Column::new("file".into(), self.file),
            Column::new("line_no".into(), self.line_no),
            Column::new("byte_offset".into(), self.byte_offset),
            ts,
            Column::new("level".into(), self.level),
            Column::new("level_raw".into(), self.level_raw),
            Column::new("service".into(), self.service),
            Column::new("message".into(), self.message),
            Column::new("template_id".into(), self.template_id),
            Column::new("template".into(), self.template),
            Column::new("params".into(), self.params),
            Column::new("line_count".into(), self.line_count),
        ])?)
    }
}

/// The batch's templates: id, text, count, first and last seen.
fn templates_of(events: &[DataFrame]) -> Result<DataFrame> {
    let mut all = events[0].select(["template_id", "template", "ts"])?;
    for e in &events[1..] {
        all.vstack_mut_owned(e.select(["template_id", "template", "ts"])?)?;
    }
    Ok(all
        .lazy()
        .group_by([col("template_id")])
        .agg([
            col("template").first().alias("template"),
            len().cast(DataType::UInt64).alias("count"),
            col("ts").min().alias("first_seen"),
            col("ts").max().alias("last_seen"),
        ])
        .sort(["template_id"], Default::default())
        .collect()?)
}
