//! `02-silver`: bronze lines → parsed events in `silver/events`, their templates in
//! `silver/templates`, and every line that does not parse in `quarantine/unparsed` with the
//! reason. Every bronze row lands in exactly one of the two: bronze = silver + quarantine.
//!
//! Parsing itself lives behind [`crate::parse::Parser`]; this stage moves data in and out of
//! the lake and checks the row balance.

use anyhow::{Context as _, Result};
use polars::prelude::*;

use super::Context;
use crate::lake::{gathered, repeated_strings};
use crate::parse::stream::{Detached, Mined};
use crate::parse::{Batch, Event, Parsed, Parser, ParserConfig, Templates};

mod compact;
mod day;
mod formats;
pub mod state;
use crate::stages::RunOutcome;
use chrono::NaiveDate;
use std::path::PathBuf;

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut outcome = RunOutcome::default();
    let (mut dates_with_bronze, mut dates_written) = (0, 0);
    for &date in &ctx.dates {
        ctx.progress.step(format!("reading bronze {date}"));
        let Some(done) = day::parse(ctx, date)? else {
            tracing::warn!(%date, "no bronze partition for this date; nothing to parse");
            continue;
        };
        dates_with_bronze += 1;
        if done.wrote {
            dates_written += 1;
        }
        outcome.rows_in += done.lines;
        outcome.rows_out += done.events;
        outcome.rows_quarantined += done.quarantined;
    }
    if dates_written > 0 {
        // From every shard and date of the source, so from the lake's whole view.
        let n = ctx
            .with_source_lease(|| super::template_store::rebuild(&ctx.lake.whole(), &ctx.source))?;
        tracing::info!(templates = n, "template store rebuilt");
    }
    if dates_with_bronze == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no bronze data for source {:?} on {} (run 01-bronze first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    if dates_written == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "every bronze line of source {:?} on {} is parsed already",
            ctx.source,
            ctx.dates_label()
        )));
    }
    outcome.message = format!(
        "{} lines parsed into {} events, {} quarantined",
        outcome.rows_in, outcome.rows_out, outcome.rows_quarantined
    );
    Ok(outcome)
}

/// Bronze lines of `files` (parts of one day, in this order) with what silver reads of
/// them; with `window`, only the rows `offset .. offset + len`.
fn read_bronze(files: &[PathBuf], window: Option<(i64, usize)>) -> Result<DataFrame> {
    let mut bronze = crate::lake::Lake::scan_files(files).context("scanning bronze")?;
    if let Some((offset, len)) = window {
        bronze = bronze.slice(offset, len as IdxSize);
    }
    // Bronze written before `read_error` existed has no such column: all null.
    let read_error = if bronze
        .clone()
        .collect_schema()
        .map_err(anyhow::Error::from)?
        .contains("read_error")
    {
        col("read_error")
    } else {
        lit(NULL).cast(DataType::String).alias("read_error")
    };
    bronze
        .select([
            col("line"),
            col("raw"),
            col("file"),
            col("line_no"),
            col("byte_offset"),
            read_error,
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading bronze")
}

/// The configured parser, or with `format = "auto"` the preset that reads most of the
/// `sample` (the day's first lines; logged, so an operator can pin it in the config).
fn parser_for(config: &ParserConfig, date: NaiveDate, sample: &[&str]) -> Result<Parser> {
    let (parser, detection) = Parser::for_sample(config, date, sample)?;
    if let Some(d) = detection {
        tracing::info!(
            %date,
            preset = d.preset,
            format = d.format,
            matched = d.matched,
            sampled = d.sampled,
            "format auto-detected: {} {:?} reads {} of the first {} lines (pin it with parse.format)",
            if d.preset == "generic" { "no preset fits; generic layout" } else { "preset" },
            d.format, d.matched, d.sampled
        );
    }
    Ok(parser)
}

/// How many events of `batch` lie more than `days` days from `date` (0 days: no check);
/// with `quarantine`, those of one line are quarantined with the reason (an event with
/// continuation lines is kept: its lines are accounted for as one event).
fn check_skew(batch: &mut Batch, date: NaiveDate, days: u32, quarantine: bool) -> u64 {
    if days == 0 {
        return 0;
    }
    let noon = date
        .and_hms_opt(12, 0, 0)
        .expect("noon exists")
        .and_utc()
        .timestamp_millis();
    let limit = i64::from(days) * 86_400_000 + 43_200_000;
    let mut n = 0;
    for p in batch.parsed.iter_mut() {
        let Parsed::Event(e) = p else { continue };
        if (e.header.ts_ms - noon).abs() <= limit {
            continue;
        }
        n += 1;
        if quarantine && e.lines == 1 {
            let at = chrono::DateTime::from_timestamp_millis(e.header.ts_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            *p = Parsed::Quarantined(format!(
                "timestamp {at} is more than {days} days from the batch date {date} ([parse] max_skew_days)"
            ));
        }
    }
    n
}

/// Say how many events of `date` are far from it: a wrong year in a format without one, a
/// clock reset or a replayed archive shows up here rather than as odd windows later.
fn warn_skew(date: NaiveDate, days: u32, n: u64) {
    // (Each run of a day warns of the events it read.)
    if n > 0 {
        tracing::warn!(%date, events = n, max_skew_days = days, "events timed more than max_skew_days from the batch date (wrong year or time zone, clock reset, or an old archive?); kept at their own times unless [parse] quarantine_skewed = true");
    }
}

/// Rows per silver part file (and per unit of parallel column building).
const EVENT_SLICE: usize = 128 * 1024;

/// The bronze columns silver reads, typed.
struct BronzeColumns<'a> {
    line: &'a StringChunked,
    raw: &'a BinaryChunked,
    file: &'a StringChunked,
    line_no: &'a UInt64Chunked,
    byte_offset: &'a UInt64Chunked,
    read_error: &'a StringChunked,
}

impl<'a> BronzeColumns<'a> {
    fn of(bronze: &'a DataFrame) -> Result<Self> {
        Ok(Self {
            line: bronze.column("line")?.str()?,
            raw: bronze.column("raw")?.binary()?,
            file: bronze.column("file")?.str()?,
            line_no: bronze.column("line_no")?.u64()?,
            byte_offset: bronze.column("byte_offset")?.u64()?,
            read_error: bronze.column("read_error")?.str()?,
        })
    }

    /// Each line, or why it cannot be parsed at all.
    fn inputs(&self) -> Vec<Result<&'a str, String>> {
        self.line
            .iter()
            .zip(self.raw.iter())
            .zip(self.read_error.iter())
            .map(|((l, r), e)| match (l, r, e) {
                (_, _, Some(e)) => Err(e.to_string()),
                (_, Some(_), None) => Err("invalid UTF-8".to_string()),
                (Some(l), None, None) => Ok(l),
                (None, None, None) => Err("missing line".to_string()),
            })
            .collect()
    }

    /// File, line number and byte offset of row `i`.
    fn provenance(&self, i: usize) -> (&'a str, u64, u64) {
        (
            self.file.get(i).unwrap_or_default(),
            self.line_no.get(i).unwrap_or_default(),
            self.byte_offset.get(i).unwrap_or_default(),
        )
    }
}

/// The quarantined lines with their reasons.
fn quarantine_frame(batch: &Batch, bronze: &BronzeColumns) -> Result<DataFrame> {
    let mut q = QuarantineColumns::default();
    for (i, p) in batch.parsed.iter().enumerate() {
        if let Parsed::Quarantined(reason) = p {
            let (file, line_no, offset) = bronze.provenance(i);
            q.push(
                file,
                line_no,
                offset,
                bronze.line.get(i).unwrap_or_default(),
                reason,
            );
        }
    }
    q.finish()
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
///
/// No byte offset: bronze keeps where each line was in its file, and (file, line number)
/// finds it there.
struct EventColumns<'a> {
    file: Vec<&'a str>,
    line_no: Vec<u64>,
    ts: Vec<i64>,
    level: Vec<&'static str>,
    level_raw: Vec<&'a str>,
    service: Vec<&'a str>,
    message: Vec<&'a str>,
    /// Each event's template: an index into the batch's templates, or while a window waits
    /// for the batch's templates, its masked message's index (`parse::stream`).
    template: Vec<u32>,
    /// JSON array text: readable by every Parquet reader, unlike Polars' list-of-string.
    params: Vec<&'a str>,
    /// The session field's value (`session_key = "field:<name>"`), else null.
    session_field: Vec<Option<&'a str>>,
    line_count: Vec<u32>,
    batch: &'a Batch<'a>,
}

impl<'a> EventColumns<'a> {
    fn with_capacity(n: usize, batch: &'a Batch<'a>) -> Self {
        Self {
            file: Vec::with_capacity(n),
            line_no: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            level: Vec::with_capacity(n),
            level_raw: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            message: Vec::with_capacity(n),
            template: Vec::with_capacity(n),
            params: Vec::with_capacity(n),
            session_field: Vec::with_capacity(n),
            line_count: Vec::with_capacity(n),
            batch,
        }
    }

    fn push(&mut self, file: &'a str, line_no: u64, e: &'a Event<'a>) {
        let params = self.batch.params(e);
        self.push_with(file, line_no, e, params);
    }

    /// An event of an earlier window (its text and values owned), with this batch's templates.
    fn push_detached(&mut self, file: &'a str, line_no: u64, d: &'a Detached) {
        self.push_with(file, line_no, &d.event, &d.params);
    }

    fn push_with<'e: 'a>(
        &mut self,
        file: &'a str,
        line_no: u64,
        e: &'a Event<'e>,
        params: &'a str,
    ) {
        self.file.push(file);
        self.line_no.push(line_no);
        self.ts.push(e.header.ts_ms);
        self.level.push(e.header.level);
        self.level_raw.push(&e.header.level_raw);
        self.service.push(&e.header.service);
        self.message.push(&e.header.message);
        self.line_count.push(e.lines);
        self.template.push(e.template as u32);
        self.params.push(params);
        self.session_field.push(e.header.session.as_deref());
    }

    /// Silver's events frame, each event's template named from `templates`; with `None`,
    /// the frame of a window whose templates are not mined yet: a [`TEMPLATE_INDEX`] column
    /// in place of `template_id` and `template` (see `windows::parse`).
    ///
    /// Messages and parameters hold most of the frame's bytes, and copying them into their
    /// columns is most of building it: each is copied on a core of its own while the other
    /// columns are built. One after the other, a window's frame kept one core busy and the
    /// other idle for about 20 ms of every 80 on a million HDFS lines (02-silver alone 0.80 →
    /// 0.75 s, medians of 9 alternating runs; the same files).
    fn finish(self, templates: Option<&Templates>) -> Result<DataFrame> {
        let Self {
            file,
            line_no,
            ts,
            level,
            level_raw,
            service,
            message,
            template,
            params,
            session_field,
            line_count,
            batch: _,
        } = self;
        let ((message, params), rest) = rayon::join(
            || {
                rayon::join(
                    || Column::new("message".into(), message),
                    || Column::new("params".into(), params),
                )
            },
            || -> Result<_> {
                let ts = Column::new("ts".into(), ts).cast(&DataType::Datetime(
                    TimeUnit::Milliseconds,
                    Some(TimeZone::UTC),
                ))?;
                let template = match templates {
                    Some(t) => template_columns(t, template.iter().map(|&i| i as usize))?,
                    None => vec![Column::new(TEMPLATE_INDEX.into(), template)],
                };
                let head = vec![
                    repeated_strings("file", file.iter().copied().map(Some))?,
                    Column::new("line_no".into(), line_no),
                    ts,
                    Column::new("level".into(), level),
                    Column::new("level_raw".into(), level_raw),
                    repeated_strings("service", service.iter().copied().map(Some))?,
                ];
                let tail = [
                    Column::new("session_field".into(), session_field),
                    Column::new("line_count".into(), line_count),
                ];
                Ok((head, template, tail))
            },
        );
        let (head, template, tail) = rest?;
        let mut columns = head;
        columns.push(message);
        columns.extend(template);
        columns.push(params);
        columns.extend(tail);
        Ok(DataFrame::new_infer_height(columns)?)
    }
}

/// The column of a window's events frame that holds each event's masked-message index until
/// the batch's templates are mined.
const TEMPLATE_INDEX: &str = "template_index";

/// `template_id` and `template` for events whose templates are `index` into `templates`,
/// gathered from the templates themselves ([`gathered`]): a template's rows share its text,
/// where a copy a row was 66 MB on a million HDFS lines.
fn template_columns(
    templates: &Templates,
    index: impl Iterator<Item = usize>,
) -> Result<Vec<Column>> {
    let index = IdxCa::from_vec("index".into(), index.map(|i| i as IdxSize).collect());
    let column = |name: &str, text: fn(&(String, String)) -> &str| {
        gathered(name, templates.iter().map(text), &index).with_context(|| {
            format!(
                "an event's template is not among the batch's {} templates",
                templates.len()
            )
        })
    };
    Ok(vec![
        column("template_id", |t| t.0.as_str())?,
        column("template", |t| t.1.as_str())?,
    ])
}

/// Per template index (or masked-message index, for windows waiting for their templates):
/// events, first and last seen.
type TemplateCounts = Vec<(u64, i64, i64)>;

/// The events of `batch` counted per `template` index, added to `counts`.
fn template_counts(batch: &Batch, counts: &mut TemplateCounts) {
    for p in &batch.parsed {
        if let Parsed::Event(e) = p {
            if e.template >= counts.len() {
                counts.resize(e.template + 1, (0, i64::MAX, i64::MIN));
            }
            let s = &mut counts[e.template];
            s.0 += 1;
            s.1 = s.1.min(e.header.ts_ms);
            s.2 = s.2.max(e.header.ts_ms);
        }
    }
}

/// Counts per masked message gathered into counts per template.
fn counts_per_template(per_message: &TemplateCounts, mined: &Mined) -> TemplateCounts {
    let mut counts = vec![(0, i64::MAX, i64::MIN); mined.templates.len()];
    for (m, &(n, first, last)) in per_message.iter().enumerate() {
        let s = &mut counts[mined.template_of(m)];
        s.0 += n;
        s.1 = s.1.min(first);
        s.2 = s.2.max(last);
    }
    counts
}

/// The batch's templates: id, text, count, first and last seen.
fn template_frame(templates: &Templates, stats: &TemplateCounts) -> Result<DataFrame> {
    let mut rows: Vec<(&str, &str, (u64, i64, i64))> = templates
        .iter()
        .zip(stats.iter().copied())
        .filter(|(_, s)| s.0 > 0)
        .map(|((id, text), s)| (id.as_str(), text.as_str(), s))
        .collect();
    rows.sort_by_key(|r| r.0);
    let ts = |name: &str, values: Vec<i64>| {
        Column::new(name.into(), values).cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "template_id".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "template".into(),
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        ),
        Column::new(
            "count".into(),
            rows.iter().map(|r| r.2.0).collect::<Vec<_>>(),
        ),
        ts("first_seen", rows.iter().map(|r| r.2.1).collect())?,
        ts("last_seen", rows.iter().map(|r| r.2.2).collect())?,
    ])?)
}
