//! Which format each line of a day is read in.
//!
//! A configured format reads every line of the source. With `format = "auto"` each *file* is
//! read in the format detected on its own first lines, recorded in the day's state the first
//! time the file is seen, so later runs read its new lines alike. Detecting once per batch
//! let one odd file decide for all: `--input /var/log/` failed whole because of `term.log`,
//! or read every other file in its format. A file no format reads has its lines quarantined
//! with the reason (and a count in the stage's summary); the other files are parsed.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::state::ParseState;
use crate::parse::{DETECTION_SAMPLE, Parser, ParserConfig, RecordedFormat};

/// How a file of an auto-detected day is read, as the day's state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFormat {
    /// In this format.
    Read(RecordedFormat),
    /// Not at all: why (its lines are quarantined with it).
    Unread(String),
}

/// The parsers of a run, and which one reads each file.
pub struct Formats {
    parsers: Vec<Parser>,
    /// With `format = "auto"`: each file's parser (an index into `parsers`), or why none
    /// reads it. Empty with a configured format: `parsers[0]` reads everything.
    by_file: FxHashMap<String, std::result::Result<usize, String>>,
}

/// A run of a window's lines from one file, and how they are read.
pub struct Run<'f> {
    pub lines: Range<usize>,
    pub read: std::result::Result<&'f Parser, &'f str>,
}

impl Formats {
    /// The parsers for the `new` bronze parts of `date`. With a configured format, one
    /// (its time checked on the day's first lines, kept in `state.sample`). With
    /// `format = "auto"`, a format for every file of `new` that `state` has none for yet,
    /// detected on its first [`DETECTION_SAMPLE`] lines and recorded in `state`.
    pub fn for_new(
        config: &ParserConfig,
        date: NaiveDate,
        state: &mut ParseState,
        new: &[PathBuf],
    ) -> Result<Self> {
        if !config.format.is_auto() {
            if state.sample.is_empty() {
                state.sample = sample_lines(new, 0, None)?;
            }
            let sample: Vec<&str> = state.sample.iter().map(String::as_str).collect();
            let parser = super::parser_for(config, date, &sample)?;
            state.format = Some(parser.recorded());
            return Ok(Self {
                parsers: vec![parser],
                by_file: FxHashMap::default(),
            });
        }
        for (file, first_row) in first_rows(new)? {
            if state.file_formats.contains_key(&file) {
                continue;
            }
            let sample = sample_lines(new, first_row, Some(&file))?;
            let sample: Vec<&str> = sample.iter().map(String::as_str).collect();
            let format = match super::parser_for(config, date, &sample) {
                Ok(parser) => FileFormat::Read(parser.recorded()),
                Err(e) => {
                    tracing::warn!(%date, file, "{e:#}: its lines are quarantined");
                    FileFormat::Unread(format!("{file}: {e:#}"))
                }
            };
            state.file_formats.insert(file, format);
        }
        state.format = most_common(&state.file_formats);
        let mut parsers: Vec<Parser> = Vec::new();
        let mut index_of: BTreeMap<&RecordedFormat, usize> = BTreeMap::new();
        let mut by_file = FxHashMap::default();
        for (file, format) in &state.file_formats {
            let read = match format {
                FileFormat::Read(recorded) => Ok(match index_of.get(recorded) {
                    Some(&i) => i,
                    None => {
                        parsers.push(
                            Parser::from_recorded(config, recorded, date)
                                .with_context(|| format!("format {:?}", recorded.format))?,
                        );
                        index_of.insert(recorded, parsers.len() - 1);
                        parsers.len() - 1
                    }
                }),
                FileFormat::Unread(why) => Err(why.clone()),
            };
            by_file.insert(file.clone(), read);
        }
        if parsers.is_empty() {
            // Every file is unread: a parser is still needed to carry the lines (all of
            // them quarantined) through the miner.
            let any = config.with_format(crate::parse::Format::Preset(
                crate::parse::format::PRESETS[0].0.to_string(),
            ));
            parsers.push(Parser::new(&any, date)?);
        }
        Ok(Self { parsers, by_file })
    }

    /// `files` (a window's `file` column) as runs of lines of one file each, with how each
    /// is read; one run with a configured format.
    pub fn runs<'f>(&'f self, files: &StringChunked) -> Vec<Run<'f>> {
        let read_of = |file: Option<&str>| -> std::result::Result<&'f Parser, &'f str> {
            match file.and_then(|f| self.by_file.get(f)) {
                Some(Ok(i)) => Ok(&self.parsers[*i]),
                Some(Err(why)) => Err(why.as_str()),
                None => Ok(&self.parsers[0]),
            }
        };
        if self.by_file.is_empty() {
            return vec![Run {
                lines: 0..files.len(),
                read: Ok(&self.parsers[0]),
            }];
        }
        let mut runs: Vec<Run<'f>> = Vec::new();
        let mut last: Option<&str> = None;
        for (i, file) in files.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if file == last => run.lines.end = i + 1,
                _ => runs.push(Run {
                    lines: i..i + 1,
                    read: read_of(file),
                }),
            }
            last = file;
        }
        runs
    }

    /// The parser of the file a day's last event came from (which decides whether a later
    /// run may continue it), or the only one.
    pub fn of_file(&self, file: &str) -> &Parser {
        match self.by_file.get(file) {
            Some(Ok(i)) => &self.parsers[*i],
            _ => &self.parsers[0],
        }
    }

    /// Any of the parsers: what the miner takes its settings from (the same for all).
    pub fn first(&self) -> &Parser {
        &self.parsers[0]
    }
}

/// The format most files of the day are read in (ties: the first file's): what `serve`
/// reads the source's new lines with.
fn most_common(formats: &BTreeMap<String, FileFormat>) -> Option<RecordedFormat> {
    let mut files: Vec<(&RecordedFormat, usize)> = Vec::new();
    for format in formats.values() {
        let FileFormat::Read(recorded) = format else {
            continue;
        };
        match files.iter_mut().find(|(r, _)| *r == recorded) {
            Some((_, n)) => *n += 1,
            None => files.push((recorded, 1)),
        }
    }
    let most = files.iter().map(|(_, n)| *n).max()?;
    files
        .into_iter()
        .find(|(_, n)| *n == most)
        .map(|(r, _)| r.clone())
}

/// Each file of `new` (bronze parts), with the row its first line is at, in row order.
fn first_rows(new: &[PathBuf]) -> Result<Vec<(String, usize)>> {
    let files = crate::lake::Lake::scan_files(new)
        .context("scanning bronze")?
        .select([col("file")])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading bronze's file names")?;
    let mut seen: FxHashMap<&str, ()> = FxHashMap::default();
    let mut out = Vec::new();
    for (row, file) in files.column("file")?.str()?.iter().enumerate() {
        let Some(file) = file else { continue };
        if seen.insert(file, ()).is_none() {
            out.push((file.to_string(), row));
        }
    }
    Ok(out)
}

/// Up to [`DETECTION_SAMPLE`] lines of `new` from row `from` on (only `file`'s, when given:
/// a file's lines are together in bronze, so its first lines start at its first row).
fn sample_lines(new: &[PathBuf], from: usize, file: Option<&str>) -> Result<Vec<String>> {
    let rows = super::read_bronze(new, Some((from as i64, DETECTION_SAMPLE)))?;
    let names = rows.column("file")?.str()?;
    Ok(rows
        .column("line")?
        .str()?
        .iter()
        .zip(names.iter())
        .take_while(|(_, name)| file.is_none() || *name == file)
        .filter_map(|(line, _)| line.map(str::to_string))
        .collect())
}
