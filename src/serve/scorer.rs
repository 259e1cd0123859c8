//! Scoring lines as they arrive: a source's parser, its template store and its latest
//! event-level models, loaded once and used for every request until 04-train writes newer
//! ones.
//!
//! A request is parsed as 02-silver parses a batch (headers, masking, values), but its
//! templates are not mined from its own few lines: each distinct masked message is looked up
//! in the source's template store, so a line gets the template — and the id — that the
//! batches the models were trained on gave lines like it. A message no stored template covers
//! keeps its masked text as its template, with a new id: exactly what `rare_template` calls
//! "never seen in training". The events then go through the same detector contract as
//! 05-detect's event chunks, and each finding becomes one answer row.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use serde::Serialize;

use crate::config::Settings;
use crate::config::resolved::{Resolved, SourceOverrides};
use crate::detectors::scoring::{EventColumns, ScoringInput};
use crate::detectors::{DETECTORS, Granularity, SampleQuery, SavedModel, Scored};
use crate::lake::{Lake, read_parquet};
use crate::parse::drain::WILDCARD;
use crate::parse::stream::Miner;
use crate::parse::{
    DETECTION_SAMPLE, NO_EVENT_BEFORE, Parsed, Parser, ParserConfig, RecordedFormat, template_id,
};
use crate::stages::template_store;

/// The `file` of a request's events: their keys read `request:<line number>`.
const REQUEST_FILE: &str = "request";

/// What a scoring request gets back.
#[derive(Debug, Serialize)]
pub struct ScoreAnswer {
    pub source: String,
    /// The versions of the models that scored, `detector=version` joined by commas.
    pub model_version: String,
    pub lines: usize,
    /// Lines read as events or as continuations of one.
    pub parsed: usize,
    pub quarantined: usize,
    pub unparsed: Vec<Unparsed>,
    pub anomalies: Vec<LineAnomaly>,
}

#[derive(Debug, Serialize)]
pub struct Unparsed {
    pub line_no: usize,
    /// The line as sent (invalid UTF-8 replaced).
    pub line: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct LineAnomaly {
    pub line: String,
    pub line_no: u64,
    pub template_id: String,
    pub template: String,
    pub detector: String,
    pub score: f64,
    pub threshold: f64,
    pub severity: &'static str,
    pub reason: String,
}

/// What is on disk for a source's models and templates: when it changes, the service loads
/// them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, Option<SystemTime>)>);

impl Stamp {
    /// The event model folders' and the template store's modification times: a new model
    /// version is a new folder, which changes its parent's time.
    pub fn read(lake: &Lake, source: &str) -> Stamp {
        let mut paths: Vec<PathBuf> = DETECTORS
            .iter()
            .filter(|d| d.supports().contains(&Granularity::Event))
            .map(|d| SavedModel::dir(lake, source, Granularity::Event, d.name()))
            .collect();
        paths.push(template_store::path(lake, source));
        Stamp(
            paths
                .into_iter()
                .map(|p| {
                    let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                    (p, modified)
                })
                .collect(),
        )
    }
}

/// A source's parser settings, templates and event models, ready to score.
pub struct SourceModels {
    pub source: String,
    parse: ParserConfig,
    /// Built for the day it was built on (times without a year take the year nearest that
    /// day) and again on a new day; `None` when the format is `auto`, which is detected on
    /// each request's lines.
    parser: Option<std::sync::RwLock<(NaiveDate, std::sync::Arc<Parser>)>>,
    /// The format `parser` reads: the configured one, or with `format = "auto"` the one the
    /// source's latest batch recorded; `None`: detected on each request's lines.
    format: Option<RecordedFormat>,
    templates: TemplateIndex,
    models: Vec<SavedModel>,
    pub model_version: String,
    pub stamp: Stamp,
}

/// The request's lines are not the source's logs: no format reads them (the client's
/// mistake, answered 422, not the service's).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnreadableLines(String);

impl SourceModels {
    /// Load the latest event models and the template store of `source`; `None` when it has no
    /// event model yet (04-train has not run for it).
    pub fn load(lake: &Lake, settings: &Settings, source: &str) -> Result<Option<Self>> {
        let stamp = Stamp::read(lake, source);
        let models = SavedModel::latest_each(lake, source, Granularity::Event, NaiveDate::MAX)?;
        if models.is_empty() {
            return Ok(None);
        }
        // The source's settings as a batch reads them (no command-line overrides here).
        let parse = Resolved::new(settings, source, &SourceOverrides::default())?.parse;
        // With `format = "auto"`, the format the source's batches were parsed with (given on
        // the command line, or detected): a request's few lines are too few to guess from
        // (one line of a syslog source read as CRI). Guessed per request only when no batch
        // recorded one.
        let format = match parse.format.is_auto() {
            true => crate::stages::silver::state::ParseState::latest_format(lake, source)?,
            false => Some(RecordedFormat {
                format: parse.format.spec().to_string(),
                headerless_lines_continue: false,
                unreadable_time: false,
            }),
        };
        let day = today();
        let parser = match &format {
            Some(format) => {
                let parser = Parser::from_recorded(&parse, format, day)
                    .with_context(|| format!("format {:?}", format.format))?;
                Some(std::sync::RwLock::new((day, std::sync::Arc::new(parser))))
            }
            None => None,
        };
        let model_version = models
            .iter()
            .map(|m| format!("{}={}", m.detector, m.model_version))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Some(Self {
            source: source.to_string(),
            parse,
            format,
            parser,
            templates: TemplateIndex::load(&template_store::path(lake, source))?,
            models,
            model_version,
            stamp,
        }))
    }

    /// The cached parser, rebuilt first when the day has changed since it was built.
    fn parser_of_today(
        &self,
        cached: &std::sync::RwLock<(NaiveDate, std::sync::Arc<Parser>)>,
    ) -> Result<std::sync::Arc<Parser>> {
        let day = today();
        {
            let (built, parser) = &*cached.read().expect("parser lock");
            if *built == day {
                return Ok(parser.clone());
            }
        }
        let format = self
            .format
            .as_ref()
            .expect("a cached parser has its format");
        let parser = std::sync::Arc::new(Parser::from_recorded(&self.parse, format, day)?);
        *cached.write().expect("parser lock") = (day, parser.clone());
        Ok(parser)
    }

    /// Parse and score the lines of `body` (one per line; a final newline is optional).
    pub fn score(&self, body: &[u8]) -> Result<ScoreAnswer> {
        let raw: Vec<&[u8]> = split_lines(body);
        let lines: Vec<Result<&str, String>> = raw
            .iter()
            .map(|l| {
                std::str::from_utf8(l)
                    .map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to()))
            })
            .collect();
        let parser = match &self.parser {
            Some(cached) => self.parser_of_today(cached)?,
            None => {
                let sample: Vec<&str> = lines
                    .iter()
                    .flatten()
                    .take(DETECTION_SAMPLE)
                    .copied()
                    .collect();
                let (parser, _) = Parser::for_sample(&self.parse, today(), &sample)
                    .map_err(|e| UnreadableLines(format!("{e:#}")))?;
                std::sync::Arc::new(parser)
            }
        };
        let mut miner = Miner::default();
        let window = miner.stage_window(&parser, &lines, None);
        let mut batch = window.batch;
        for c in &window.orphans {
            batch.parsed[c.line] = Parsed::Quarantined(NO_EVENT_BEFORE.into());
        }
        let resolved: Vec<(String, String)> = miner
            .messages()
            .iter()
            .map(|m| self.templates.resolve(m))
            .collect();

        let mut unparsed = Vec::new();
        let mut frame = EventFrame::default();
        for (i, p) in batch.parsed.iter().enumerate() {
            match p {
                Parsed::Event(e) => {
                    frame.push(i as u64 + 1, e, batch.params(e), &resolved[e.template]);
                }
                Parsed::Joined => {}
                Parsed::Quarantined(reason) => unparsed.push(Unparsed {
                    line_no: i + 1,
                    line: String::from_utf8_lossy(raw[i]).into_owned(),
                    reason: reason.clone(),
                }),
            }
        }
        let df = frame.finish()?;
        let columns = EventColumns::of(&df)?;
        let input = ScoringInput {
            windows: None,
            sessions: None,
            events: Some(&columns),
        };
        let mut scored = Scored {
            scores: Vec::new(),
            findings: Vec::new(),
        };
        for model in &self.models {
            let detector = crate::detectors::find(&model.detector)
                .with_context(|| format!("model of unknown detector {:?}", model.detector))?;
            detector.score(model, &input, &mut scored)?;
        }
        let mut anomalies: Vec<LineAnomaly> = scored
            .findings
            .into_iter()
            .filter_map(|f| {
                let SampleQuery::Line { line_no, .. } = f.samples else {
                    return None;
                };
                let row = frame.line_no.binary_search(&line_no).ok()?;
                Some(LineAnomaly {
                    line: String::from_utf8_lossy(raw[line_no as usize - 1]).into_owned(),
                    line_no,
                    template_id: columns.ids[row].to_string(),
                    template: columns.template(row).to_string(),
                    severity: crate::detectors::severity(f.score, f.threshold),
                    detector: f.detector,
                    score: f.score,
                    threshold: f.threshold,
                    reason: f.reason,
                })
            })
            .collect();
        anomalies.sort_by(|a, b| (a.line_no, &a.detector).cmp(&(b.line_no, &b.detector)));
        Ok(ScoreAnswer {
            source: self.source.clone(),
            model_version: self.model_version.clone(),
            lines: lines.len(),
            parsed: lines.len() - unparsed.len(),
            quarantined: unparsed.len(),
            unparsed,
            anomalies,
        })
    }
}

/// Today (UTC): the batch date a request's times are read against (a year-less timestamp
/// takes the year that puts it nearest this day).
fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Lines of a body: split on `\n`, a `\r` before it dropped, no empty line after a final
/// newline.
fn split_lines(body: &[u8]) -> Vec<&[u8]> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

/// A request's events in the columns [`EventColumns`] reads (silver's events with gold's
/// service); the text borrows from the parsed batch and the resolved templates.
#[derive(Default)]
struct EventFrame<'a> {
    line_no: Vec<u64>,
    ts: Vec<i64>,
    level: Vec<&'static str>,
    service: Vec<&'a str>,
    template_id: Vec<&'a str>,
    template: Vec<&'a str>,
    params: Vec<&'a str>,
}

impl<'a> EventFrame<'a> {
    fn push(
        &mut self,
        line_no: u64,
        e: &'a crate::parse::Event<'_>,
        params: &'a str,
        (id, text): &'a (String, String),
    ) {
        self.line_no.push(line_no);
        self.ts.push(e.header.ts_ms);
        self.level.push(e.header.level);
        self.service.push(&e.header.service);
        self.template_id.push(id);
        self.template.push(text);
        self.params.push(params);
    }

    fn finish(&self) -> Result<DataFrame> {
        let n = self.line_no.len();
        Ok(DataFrame::new(
            n,
            vec![
                Column::new("file".into(), vec![REQUEST_FILE; n]),
                Column::new("line_no".into(), &self.line_no),
                Column::new("ts".into(), &self.ts),
                Column::new("level".into(), &self.level),
                Column::new("service".into(), &self.service),
                Column::new("template_id".into(), &self.template_id),
                Column::new("template".into(), &self.template),
                Column::new("params".into(), &self.params),
            ],
        )?)
    }
}

/// The template store, indexed by token count, for finding the template that covers a masked
/// message.
#[derive(Default)]
struct TemplateIndex {
    by_length: HashMap<usize, Vec<StoredTemplate>>,
}

struct StoredTemplate {
    tokens: Vec<String>,
    id: String,
    text: String,
    count: u64,
    wildcards: usize,
}

impl TemplateIndex {
    fn load(path: &std::path::Path) -> Result<Self> {
        let mut index = TemplateIndex::default();
        if !path.is_file() {
            return Ok(index);
        }
        let df = read_parquet(path)?;
        let ids = df.column("template_id")?.str()?;
        let texts = df.column("template")?.str()?;
        let counts = df.column("count")?.cast(&DataType::UInt64)?;
        let counts = counts.u64()?;
        for ((id, text), count) in ids.iter().zip(texts.iter()).zip(counts.iter()) {
            let (Some(id), Some(text)) = (id, text) else {
                continue;
            };
            let tokens: Vec<String> = text.split(' ').map(str::to_string).collect();
            let wildcards = tokens.iter().filter(|t| *t == WILDCARD).count();
            index
                .by_length
                .entry(tokens.len())
                .or_default()
                .push(StoredTemplate {
                    tokens,
                    id: id.to_string(),
                    text: text.to_string(),
                    count: count.unwrap_or_default(),
                    wildcards,
                });
        }
        Ok(index)
    }

    /// The (id, text) of the stored template that covers `message` — equal wherever the
    /// template is not a wildcard — seen most often (then the most specific); else the
    /// message itself as a template never seen.
    fn resolve(&self, message: &str) -> (String, String) {
        let tokens: Vec<&str> = message.split(' ').collect();
        let best = self
            .by_length
            .get(&tokens.len())
            .into_iter()
            .flatten()
            .filter(|t| template_store::fits(&t.tokens, &tokens))
            .max_by(|a, b| {
                (a.count, std::cmp::Reverse(a.wildcards), &b.id).cmp(&(
                    b.count,
                    std::cmp::Reverse(b.wildcards),
                    &a.id,
                ))
            });
        match best {
            Some(t) => (t.id.clone(), t.text.clone()),
            None => (template_id(message), message.to_string()),
        }
    }
}
