//! Parsing: raw lines → events (timestamp, level, service, message, masked message, template).
//!
//! This is the one boundary the silver stage talks to: [`Parser::parse_batch`] takes a batch of
//! raw lines and returns, per line, either an event or the reason it was quarantined. Header
//! parsing and masking run in parallel (rayon); template mining runs once over the batch's
//! distinct masked messages (see [`drain`], then [`refine`]), so the output is the same for
//! any thread count.

pub mod accuracy;
mod autodetect;
pub mod drain;
pub mod format;
pub mod generic;
mod level;
pub mod masking;
mod multiline;
pub mod refine;
pub mod session;
pub mod settings;
pub mod stream;
pub mod structured;
pub mod timestamp;

pub use autodetect::{DETECTION_SAMPLE, Detection};
pub use level::{LEVELS, known_level, normalize_level};
use level::{http_level, syslog_level};
use multiline::join_continuations;
pub use multiline::{Continuation, NO_EVENT_BEFORE, is_continuation, join_line};

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use anyhow::Result;
use chrono::NaiveDate;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use drain::DrainParams;
use format::LineFormat;
pub use session::{SESSION_FIELD_PREFIX, SessionKey};
pub use settings::{Format, ParseSettings, ParserConfig};
use timestamp::{TIME_FIELDS, TimeContext, TimestampParser};

/// A parsed line, before templating. Text fields borrow from the line where they can
/// (format strings), and own their text where the line escapes it (JSON, logfmt) or where
/// continuation lines were joined onto the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    pub ts_ms: i64,
    pub level: &'static str,
    pub level_raw: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub message: Cow<'a, str>,
    /// The session field's value, when sessions are keyed by a parsed field.
    pub session: Option<Cow<'a, str>>,
    /// The line is the first part of a longer one, continued on the next line (the CRI
    /// container log format's `P` tag).
    pub partial: bool,
}

/// A fully parsed event; `template` indexes the batch's [`Templates`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub header: Header<'a>,
    /// The masked-out values, as a JSON array of strings: read them with [`Batch::params`].
    pub params: ParamsRef,
    /// Its template: an index into [`Batch::templates`] — or, in a window of a batch too big
    /// to parse in one piece, the index of its masked message among the batch's distinct ones
    /// until the templates are mined ([`stream::Mined::template_of`]).
    pub template: usize,
    /// Raw lines this event spans: 1, plus its continuation lines (stack traces).
    pub lines: u32,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    Event(Event<'a>),
    /// A continuation line, joined onto the message of the event before it.
    Joined,
    Quarantined(String),
}

/// The batch's templates: (id, text), indexed by [`Event::template`].
pub type Templates = Vec<(String, String)>;

/// Where an event's parameters are in its batch: the JSON text of a whole chunk of lines is
/// one string, so a batch of a million events makes a few dozen allocations for them, not a
/// million (small allocations, each on fresh memory, were a large part of silver's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamsRef {
    chunk: u32,
    start: u32,
    end: u32,
}

/// A parsed batch: what became of each line, the templates, and the events' parameters.
#[derive(Debug, PartialEq)]
pub struct Batch<'a> {
    pub parsed: Vec<Parsed<'a>>,
    pub templates: Templates,
    params: Vec<String>,
}

impl Batch<'_> {
    /// A batch of no lines with `templates` (to write events of earlier batches with them).
    pub fn empty(templates: Templates) -> Self {
        Batch {
            parsed: Vec::new(),
            templates,
            params: Vec::new(),
        }
    }

    /// An event's parameters, a JSON array of strings.
    pub fn params(&self, event: &Event) -> &str {
        let p = event.params;
        &self.params[p.chunk as usize][p.start as usize..p.end as usize]
    }
}

/// A line after header parsing and masking.
enum Staged<'a> {
    /// The header, the index of its masked message among the chunk's distinct ones, and
    /// where its parameters (JSON) are in [`StagedChunk::params`].
    Event(Header<'a>, u32, std::ops::Range<u32>),
    /// Continues the event before it; its text is in [`StagedChunk::continuations`].
    Continuation,
    Bad(String),
}

/// Where the fields the parser needs sit in the format's field list.
#[derive(Debug, Clone)]
struct FieldSlots {
    time: Vec<usize>,
    level: Option<usize>,
    /// Syslog priority: the level is its low three bits when there is no level field.
    pri: Option<usize>,
    /// HTTP status: 5xx is an error, 4xx a warning, when there is no level field.
    status: Option<usize>,
    service: Option<usize>,
    content: usize,
    /// The field keying sessions (`session_key = "field:<Name>"`).
    session: Option<usize>,
    /// The CRI tag (`<Logtag>`): `P` marks a partial line, `F` a full one or a last part.
    partial: Option<usize>,
}

/// How a line's header is read.
enum HeaderReader {
    Format(Box<LineFormat>, FieldSlots),
    Structured(structured::Kind, structured::FieldMap),
}

pub struct Parser {
    reader: HeaderReader,
    /// The format as configured or detected (a preset name or a format string).
    pub format_name: String,
    drain: DrainParams,
    max_constant_values: usize,
    multiline: bool,
    /// With `multiline`, every line that is not a header continues the event before it, not
    /// only lines shaped like stack traces: the generic layout's logs have no other way to
    /// say so (apt's history.log writes a record's details on the lines after its time).
    headerless_lines_continue: bool,
    /// When the format's time field is in a shape the time parser does not read on any line
    /// of the sample (a system we have no shape for), lines are still events — logparser's
    /// regex reads them, and their templates are worth having — at this instant, the start
    /// of the batch date, instead of every line going to quarantine.
    unreadable_time_at: Option<i64>,
    time: TimeContext,
}

/// The format a batch was parsed with, as silver records it (see [`Parser::recorded`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct RecordedFormat {
    /// A preset's name or a format string.
    pub format: String,
    /// The generic layout's rule that lines without a header continue the event before.
    pub headerless_lines_continue: bool,
    /// No line that matched the format had a time loglake reads: events are kept at the
    /// start of the batch date (see `Parser::check_time_on`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable_time: bool,
}

impl Parser {
    /// The format this parser reads, to record with the batch.
    pub fn recorded(&self) -> RecordedFormat {
        RecordedFormat {
            format: self.format_name.clone(),
            headerless_lines_continue: self.headerless_lines_continue,
            unreadable_time: self.unreadable_time_at.is_some(),
        }
    }

    /// A parser for the format a batch recorded, with `config`'s other settings.
    pub fn from_recorded(
        config: &ParserConfig,
        recorded: &RecordedFormat,
        batch_date: NaiveDate,
    ) -> Result<Self> {
        let format = Format::parse(&recorded.format)?;
        let mut parser = Self::new(&config.with_format(format), batch_date)?;
        parser.headerless_lines_continue = recorded.headerless_lines_continue;
        if recorded.unreadable_time {
            parser.unreadable_time_at = Some(parser.start_of_batch_date());
        }
        Ok(parser)
    }

    /// A parser for a configured format. `format = "auto"` needs lines to look at: use
    /// [`Parser::for_sample`].
    pub fn new(config: &ParserConfig, batch_date: NaiveDate) -> Result<Self> {
        let settings = &config.settings;
        let time = TimeContext {
            zone: timestamp::parse_zone(&settings.timezone).map_err(anyhow::Error::msg)?,
            year: settings.year,
            batch_date,
        };
        let spec = match &config.format {
            Format::Auto => {
                anyhow::bail!("format \"auto\" needs sample lines to choose a preset from")
            }
            Format::Preset(spec) | Format::Pattern(spec) => spec.as_str(),
        };
        let reader = if let Some((kind, preset_fields)) = structured_kind(spec) {
            let fields = preset_fields.unwrap_or_else(|| {
                structured::FieldMap::from_lists(
                    &settings.timestamp_field,
                    &settings.level_field,
                    &settings.service_field,
                    &settings.message_field,
                )
            });
            HeaderReader::Structured(kind, fields.with_session(config.session_field()))
        } else {
            let format = LineFormat::from_spec(spec)?;
            let slots = slots_of(&format, spec, config.session_field())?;
            HeaderReader::Format(Box::new(format), slots)
        };
        Ok(Self {
            reader,
            format_name: spec.to_string(),
            drain: DrainParams {
                depth: settings.tree_depth,
                similarity_threshold: settings.similarity_threshold,
                max_children: settings.max_children,
            },
            max_constant_values: settings.max_constant_values,
            multiline: settings.multiline,
            headerless_lines_continue: false,
            unreadable_time_at: None,
            time,
        })
    }

    /// Parse one line's header (no templating).
    pub fn parse_header<'a>(
        &self,
        line: &'a str,
        ts: &mut TimestampParser,
    ) -> Result<Header<'a>, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Err(EMPTY_LINE.into());
        }
        if line.contains('\0') {
            return Err(NUL_BYTES.into());
        }
        match &self.reader {
            HeaderReader::Format(format, slots) => {
                Self::format_header(format, slots, line, ts, self.unreadable_time_at)
            }
            HeaderReader::Structured(kind, map) => {
                let f = structured::read(*kind, map, line)?;
                let ts_ms = ts
                    .parse(&f.timestamp)
                    .ok_or_else(|| format!("unparseable timestamp {:?}", f.timestamp))?;
                // A lone digit 0–7 is a syslog severity (journald's PRIORITY, GELF's level).
                let severity = f.level.len() == 1 && matches!(f.level.as_bytes()[0], b'0'..=b'7');
                Ok(Header {
                    ts_ms,
                    level: if severity {
                        syslog_level(&f.level)
                    } else {
                        normalize_level(&f.level)
                    },
                    level_raw: f.level,
                    service: f.service,
                    message: match f.message {
                        Cow::Borrowed(m) => Cow::Borrowed(m.trim()),
                        Cow::Owned(m) => Cow::Owned(m.trim().to_string()),
                    },
                    session: f.session.filter(|s| !s.is_empty()),
                    partial: false,
                })
            }
        }
    }

    fn format_header<'a>(
        format: &LineFormat,
        slots: &FieldSlots,
        line: &'a str,
        ts: &mut TimestampParser,
        unreadable_time_at: Option<i64>,
    ) -> Result<Header<'a>, String> {
        let Some(fields) = format.split(line) else {
            return Err(format!("does not match format {:?}", format.source));
        };
        let ts_ms = match (Self::read_time(slots, &fields, ts), unreadable_time_at) {
            (Ok(ms), _) => ms,
            (Err(_), Some(at)) => at,
            (Err(reason), None) => return Err(reason),
        };
        let field = |slot: Option<usize>| slot.and_then(|i| fields[i]);
        let (level, level_raw) = if let Some(raw) = field(slots.level) {
            (normalize_level(raw), raw)
        } else if let Some(pri) = field(slots.pri) {
            (syslog_level(pri), pri)
        } else if let Some(status) = field(slots.status) {
            (http_level(status), status)
        } else {
            ("INFO", "")
        };
        let service = field(slots.service).unwrap_or("-");
        let message = fields[slots.content].unwrap_or_default().trim();
        Ok(Header {
            ts_ms,
            level,
            level_raw: Cow::Borrowed(level_raw),
            service: Cow::Borrowed(service),
            message: Cow::Borrowed(message),
            session: field(slots.session)
                .filter(|s| !s.is_empty())
                .map(Cow::Borrowed),
            partial: field(slots.partial) == Some("P"),
        })
    }

    /// The time of a line's fields, or why it does not read.
    fn read_time(
        slots: &FieldSlots,
        fields: &format::Fields<'_>,
        ts: &mut TimestampParser,
    ) -> Result<i64, String> {
        if let [one] = slots.time[..] {
            let text = fields[one].unwrap_or_default();
            ts.parse(text)
                .ok_or_else(|| format!("unparseable timestamp {text:?}"))
        } else {
            let parts: Vec<&str> = slots.time.iter().filter_map(|&i| fields[i]).collect();
            ts.parse_parts(&parts)
                .ok_or_else(|| format!("unparseable timestamp {:?}", parts.join(" ")))
        }
    }

    /// Parse a batch of lines. `Err` entries are lines already known to be bad (e.g. invalid
    /// UTF-8), quarantined with the reason given.
    ///
    /// Three phases: headers and masking in parallel over chunks of lines, each chunk also
    /// listing its distinct masked messages; then, serially, the chunks' distinct messages in
    /// line order go to the template miner (cheap: a batch has few distinct messages after
    /// masking); then, in parallel again, every line gets its template.
    pub fn parse_batch<'a>(&self, lines: &[Result<&'a str, String>]) -> Batch<'a> {
        let mut miner = stream::Miner::default();
        let stream::Window { mut batch, orphans } = miner.stage_window(self, lines, None);
        // The first window has nothing before it to join its first continuations to.
        for c in &orphans {
            batch.parsed[c.line] = Parsed::Quarantined(NO_EVENT_BEFORE.into());
        }
        let mined = miner.finish(self);
        for p in batch.parsed.iter_mut() {
            if let Parsed::Event(e) = p {
                e.template = mined.template_of(e.template);
            }
        }
        batch.templates = mined.templates;
        batch
    }

    /// Stage `lines` in chunks of [`CHUNK`] lines, in parallel.
    ///
    /// `before` is the line before `lines` (the last of the previous window), if any: a
    /// partial line there makes the first line a continuation.
    fn stage<'a>(
        &self,
        lines: &[Result<&'a str, String>],
        before: Option<&str>,
    ) -> Vec<StagedChunk<'a>> {
        lines
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(k, chunk)| {
                let before = match k {
                    0 => before,
                    _ => lines[k * CHUNK - 1].as_deref().ok(),
                };
                let continues = before.is_some_and(|line| self.is_partial(line));
                self.stage_chunk(chunk, continues)
            })
            .collect()
    }

    /// Whether a line can add to the event before it (continuation lines, or the later
    /// parts of a split line): if not, an event is complete as soon as its line is read.
    pub fn joins_lines(&self) -> bool {
        self.multiline
            || match &self.reader {
                HeaderReader::Format(_, slots) => slots.partial.is_some(),
                HeaderReader::Structured(..) => false,
            }
    }

    /// Whether `line` is the first part of a longer line (CRI's `P` tag).
    fn is_partial(&self, line: &str) -> bool {
        match &self.reader {
            HeaderReader::Format(format, slots) => slots.partial.is_some_and(|slot| {
                format
                    .split(line)
                    .is_some_and(|fields| fields[slot] == Some("P"))
            }),
            HeaderReader::Structured(..) => false,
        }
    }

    /// Headers and masking for one chunk, and the chunk's distinct masked messages. A line's
    /// masked text is written into one reused buffer and kept only when it is new to the
    /// chunk, so a chunk allocates per distinct message rather than per line.
    ///
    /// With `continues`, the line before the chunk was partial: the first line continues it.
    fn stage_chunk<'a>(
        &self,
        chunk: &[Result<&'a str, String>],
        continues: bool,
    ) -> StagedChunk<'a> {
        let mut after_partial = continues;
        let mut ts = TimestampParser::new(self.time);
        let mut local: FxHashMap<String, u32> = FxHashMap::default();
        let mut distinct: Vec<String> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut buffer = String::new();
        let mut json = String::new();
        let mut params = String::with_capacity(chunk.len() * 32);
        let mut continuations = Vec::new();
        let staged = chunk
            .iter()
            .enumerate()
            .map(|(j, line)| {
                let line = match line {
                    Ok(line) => *line,
                    Err(reason) => {
                        after_partial = false;
                        return Staged::Bad(reason.clone());
                    }
                };
                let continues_partial = std::mem::take(&mut after_partial);
                let header = match self.parse_header(line, &mut ts) {
                    // The rest of a line split in parts: its text joins the part before it
                    // as it was, without a newline. (Format fields borrow the line.)
                    Ok(Header {
                        message: Cow::Borrowed(text),
                        partial,
                        ..
                    }) if continues_partial => {
                        after_partial = partial;
                        continuations.push(Continuation {
                            line: j,
                            text,
                            glue: "",
                        });
                        return Staged::Continuation;
                    }
                    Ok(header) => {
                        after_partial = header.partial;
                        header
                    }
                    Err(reason)
                        if self.multiline
                            && (is_continuation(line)
                                || (self.headerless_lines_continue
                                    && reason != EMPTY_LINE
                                    && reason != NUL_BYTES)) =>
                    {
                        continuations.push(Continuation {
                            line: j,
                            text: line,
                            glue: "\n",
                        });
                        return Staged::Continuation;
                    }
                    Err(reason) => return Staged::Bad(reason),
                };
                let start = params.len() as u32;
                masking::mask_to_json_into(&header.message, &mut buffer, &mut json);
                params.push_str(&json);
                let range = start..params.len() as u32;
                let index = match local.get(buffer.as_str()) {
                    Some(&i) => i,
                    None => {
                        let i = distinct.len() as u32;
                        distinct.push(buffer.clone());
                        counts.push(0);
                        local.insert(buffer.clone(), i);
                        i
                    }
                };
                counts[index as usize] += 1;
                Staged::Event(header, index, range)
            })
            .collect();
        StagedChunk {
            staged,
            distinct,
            params,
            counts,
            continuations,
        }
    }
}

/// Lines are staged (header, masking) in chunks of this many, in parallel. A chunk's
/// timestamp parser starts afresh, so any split of a batch into windows must fall on chunk
/// boundaries for its lines to parse as they would in one piece.
pub const CHUNK: usize = 16 * 1024;

/// Why an empty line, or one with NUL bytes, is quarantined (never joined to an event).
const EMPTY_LINE: &str = "empty line";
const NUL_BYTES: &str = "line contains NUL bytes";

/// Staged chunks as parsed lines, each event's `template` still its masked message's global
/// index (`global_of_local[chunk][local]`) until the batch's templates are mined; and the
/// continuation lines (line index within these chunks, text), not yet joined.
fn assemble<'a>(
    chunks: Vec<StagedChunk<'a>>,
    global_of_local: &[Vec<usize>],
) -> (Vec<Parsed<'a>>, Vec<String>, Vec<Continuation<'a>>) {
    // Where each chunk starts: chunks are CHUNK lines but the last of a run of lines, and a
    // window read in several formats has a run per file.
    let starts: Vec<usize> = chunks
        .iter()
        .scan(0, |at, c| {
            let start = *at;
            *at += c.staged.len();
            Some(start)
        })
        .collect();
    let continuations: Vec<Continuation<'a>> = chunks
        .iter()
        .zip(&starts)
        .flat_map(|(c, &start)| {
            c.continuations.iter().map(move |&c| Continuation {
                line: start + c.line,
                ..c
            })
        })
        .collect();
    let mut params: Vec<String> = Vec::with_capacity(chunks.len());
    let staged: Vec<Vec<Staged<'a>>> = chunks
        .into_iter()
        .map(|c| {
            params.push(c.params);
            c.staged
        })
        .collect();
    let parsed: Vec<Parsed<'a>> = staged
        .into_par_iter()
        .zip(global_of_local)
        .enumerate()
        .flat_map_iter(|(k, (staged, globals))| {
            staged.into_iter().map(move |r| match r {
                Staged::Event(header, local, range) => Parsed::Event(Event {
                    header,
                    params: ParamsRef {
                        chunk: k as u32,
                        start: range.start,
                        end: range.end,
                    },
                    template: globals[local as usize],
                    lines: 1,
                }),
                Staged::Continuation => Parsed::Joined,
                Staged::Bad(reason) => Parsed::Quarantined(reason),
            })
        })
        .collect();
    (parsed, params, continuations)
}

/// A chunk after headers and masking: per line the result, the chunk's distinct masked
/// messages in first-seen order (what [`Staged::Event`]'s index points into), and its
/// continuation lines with their index in the chunk.
struct StagedChunk<'a> {
    staged: Vec<Staged<'a>>,
    distinct: Vec<String>,
    /// The chunk's events' parameters, JSON arrays one after another.
    params: String,
    /// Lines per distinct message, parallel to `distinct`.
    counts: Vec<u32>,
    continuations: Vec<Continuation<'a>>,
}

/// A structured preset: its kind, and the keys of its header fields when the preset fixes
/// them (`None`: the `parse.*_field` candidate lists).
fn structured_kind(spec: &str) -> Option<(structured::Kind, Option<structured::FieldMap>)> {
    let is = |name: &str| spec.eq_ignore_ascii_case(name);
    if is("json") || is("jsonl") {
        Some((structured::Kind::Json, None))
    } else if is("logfmt") {
        Some((structured::Kind::Logfmt, None))
    } else if is("journald") {
        // `journalctl -o json`: microseconds since the epoch, a syslog severity 0–7.
        Some((
            structured::Kind::Json,
            Some(structured::FieldMap::from_lists(
                "__REALTIME_TIMESTAMP",
                "PRIORITY",
                "SYSLOG_IDENTIFIER,_SYSTEMD_UNIT,_COMM",
                "MESSAGE",
            )),
        ))
    } else if is("docker") {
        // Docker's json-file driver: `{"log":"…\n","stream":"stdout","time":"…Z"}`.
        Some((
            structured::Kind::Json,
            Some(structured::FieldMap::from_lists(
                "time",
                "level",
                "attrs.tag",
                "log",
            )),
        ))
    } else {
        None
    }
}

fn slots_of(format: &LineFormat, spec: &str, session_field: Option<&str>) -> Result<FieldSlots> {
    let slot = |name: &str| format.fields.iter().position(|f| f == name);
    let session = match session_field {
        None => None,
        Some(name) => Some(slot(name).ok_or_else(|| {
            anyhow::anyhow!(
                "session key \"{SESSION_FIELD_PREFIX}{name}\": format {spec:?} has no <{name}> field (its fields: {})",
                format.fields.join(", ")
            )
        })?),
    };
    let Some(content) = slot("Content") else {
        anyhow::bail!(
            "format {spec:?} has no <Content> field: every format needs one for the message"
        );
    };
    let time: Vec<usize> = (0..format.fields.len())
        .filter(|&i| TIME_FIELDS.contains(&format.fields[i].as_str()))
        .collect();
    if time.is_empty() {
        anyhow::bail!(
            "format {spec:?} has no time field: name one of {}",
            TIME_FIELDS.join(", ")
        );
    }
    Ok(FieldSlots {
        time,
        level: slot("Level"),
        pri: slot("Pri"),
        status: slot("Status"),
        service: slot("Service").or(slot("Component")),
        content,
        session,
        partial: slot("Logtag"),
    })
}

/// Stable id of a template text: the first 8 bytes of its SHA-256, in hex.
pub fn template_id(template: &str) -> String {
    let digest = Sha256::digest(template.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
