//! Parsing: raw lines → events (timestamp, level, service, message, masked message, template).
//!
//! This is the one boundary the silver stage talks to: [`Parser::parse_batch`] takes a batch of
//! raw lines and returns, per line, either an event or the reason it was quarantined. Header
//! parsing and masking run in parallel (rayon); template mining runs once over the batch's
//! distinct masked messages (see [`drain`], then [`refine`]), so the output is the same for
//! any thread count.

pub mod accuracy;
pub mod drain;
pub mod format;
pub mod masking;
pub mod refine;
pub mod structured;
pub mod timestamp;

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use anyhow::Result;
use chrono::NaiveDate;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::ParseSettings;
use drain::{Drain, DrainParams};
use format::LineFormat;
use timestamp::{TIME_FIELDS, TimeContext, TimestampParser};

/// Levels are normalised to this set; the original text is kept beside it.
pub const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "FATAL"];

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
}

/// How `session_key` names a parsed field instead of a regex over the message:
/// `field:<name>`, a format's `<Name>` or a JSON/logfmt key (dotted for nested JSON).
pub const SESSION_FIELD_PREFIX: &str = "field:";

/// The field a `session_key` setting names, if it names one.
pub fn session_field(session_key: &str) -> Option<&str> {
    session_key
        .trim()
        .strip_prefix(SESSION_FIELD_PREFIX)
        .map(str::trim)
        .filter(|f| !f.is_empty())
}

/// How sessions are keyed, read once from the `session_key` setting: a parsed field's value,
/// or a regex over the message (its first capture group when it has one, else the whole
/// match). A bad regex is an error when settings are resolved, never a silently empty key.
#[derive(Debug, Clone)]
pub enum SessionKey {
    Field(String),
    Pattern { regex: regex::Regex, group: usize },
}

impl SessionKey {
    /// `None` for an empty setting (no sessions).
    pub fn parse(setting: &str) -> Result<Option<Self>> {
        if setting.trim().is_empty() {
            return Ok(None);
        }
        if let Some(field) = session_field(setting) {
            return Ok(Some(SessionKey::Field(field.to_string())));
        }
        let regex = regex::Regex::new(setting).map_err(|e| {
            anyhow::anyhow!(
                "invalid session key regex {setting:?}: {e} (give a regex such as 'blk_-?\\d+' or 'req=(\\S+)', or field:NAME)"
            )
        })?;
        let group = if regex.captures_len() > 1 { 1 } else { 0 };
        Ok(Some(SessionKey::Pattern { regex, group }))
    }

    /// The field it names, when sessions are keyed by a field.
    pub fn field(&self) -> Option<&str> {
        match self {
            SessionKey::Field(f) => Some(f),
            SessionKey::Pattern { .. } => None,
        }
    }

    /// An event's session key: its field's value, or the regex's match in its message.
    pub fn key_of<'a>(&self, message: &'a str, field_value: Option<&'a str>) -> Option<&'a str> {
        match self {
            SessionKey::Field(_) => field_value,
            SessionKey::Pattern { regex, group } => regex
                .captures(message)
                .and_then(|c| c.get(*group))
                .map(|m| m.as_str()),
        }
    }
}

/// A fully parsed event; `template` indexes the batch's [`Templates`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub header: Header<'a>,
    /// The masked-out values, as a JSON array of strings: read them with [`Batch::params`].
    pub params: ParamsRef,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    time: TimeContext,
}

/// Which preset `format = "auto"` chose, and how well it fit the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub preset: String,
    pub matched: usize,
    pub sampled: usize,
}

/// Lines from the start of a batch that auto-detection tries every preset on.
pub const DETECTION_SAMPLE: usize = 2000;

impl Parser {
    /// A parser for a configured format. `format = "auto"` needs lines to look at: use
    /// [`Parser::for_sample`].
    pub fn new(settings: &ParseSettings, batch_date: NaiveDate) -> Result<Self> {
        let time = TimeContext {
            zone: timestamp::parse_zone(&settings.timezone).map_err(anyhow::Error::msg)?,
            year: settings.year,
            batch_date,
        };
        let spec = settings.format.trim();
        if spec.eq_ignore_ascii_case("auto") {
            anyhow::bail!("format \"auto\" needs sample lines to choose a preset from");
        }
        let reader = if let Some(kind) = structured_kind(spec) {
            HeaderReader::Structured(
                kind,
                structured::FieldMap::from_lists(
                    &settings.timestamp_field,
                    &settings.level_field,
                    &settings.service_field,
                    &settings.message_field,
                )
                .with_session(session_field(&settings.session_key)),
            )
        } else {
            let format = LineFormat::from_spec(spec)?;
            let slots = slots_of(&format, spec, session_field(&settings.session_key))?;
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
            time,
        })
    }

    /// A parser for the configured format, or — with `format = "auto"` — for the preset that
    /// reads the most of `sample` (ties go to the preset whose level field holds real levels,
    /// then to the one with more fields, then to the earlier preset in the list). Returns what was detected, if anything.
    pub fn for_sample(
        settings: &ParseSettings,
        batch_date: NaiveDate,
        sample: &[&str],
    ) -> Result<(Self, Option<Detection>)> {
        if !settings.format.trim().eq_ignore_ascii_case("auto") {
            return Ok((Self::new(settings, batch_date)?, None));
        }
        let candidates = format::PRESETS
            .iter()
            .map(|(name, _)| *name)
            .chain(format::STRUCTURED_PRESETS.iter().copied());
        let mut best: Option<((usize, usize, usize), &str)> = None;
        for name in candidates {
            let mut candidate = settings.clone();
            candidate.format = name.to_string();
            let parser = Self::new(&candidate, batch_date)?;
            let mut ts = TimestampParser::new(parser.time);
            let (mut matched, mut with_level) = (0, 0);
            for line in sample {
                if let Ok(h) = parser.parse_header(line, &mut ts) {
                    matched += 1;
                    with_level += known_level(&h.level_raw).is_some() as usize;
                }
            }
            // More fields read is the last tie-breaker: the more specific format wins.
            let fields = match &parser.reader {
                HeaderReader::Format(format, _) => format.fields.len(),
                HeaderReader::Structured(..) => 4,
            };
            let score = (matched, with_level, fields);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, name));
            }
        }
        let ((matched, _, _), name) = best.expect("there are presets");
        if matched == 0 {
            anyhow::bail!(
                "format \"auto\": no preset reads any of the first {} lines; set parse.format (or --format) to a format string such as \"<Date> <Time> <Level> <Component>: <Content>\"",
                sample.len()
            );
        }
        let mut chosen = settings.clone();
        chosen.format = name.to_string();
        let detection = Detection {
            preset: name.to_string(),
            matched,
            sampled: sample.len(),
        };
        Ok((Self::new(&chosen, batch_date)?, Some(detection)))
    }

    /// Parse one line's header (no templating).
    pub fn parse_header<'a>(
        &self,
        line: &'a str,
        ts: &mut TimestampParser,
    ) -> Result<Header<'a>, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Err("empty line".into());
        }
        if line.contains('\0') {
            return Err("line contains NUL bytes".into());
        }
        match &self.reader {
            HeaderReader::Format(format, slots) => Self::format_header(format, slots, line, ts),
            HeaderReader::Structured(kind, map) => {
                let f = structured::read(*kind, map, line)?;
                let ts_ms = ts
                    .parse(&f.timestamp)
                    .ok_or_else(|| format!("unparseable timestamp {:?}", f.timestamp))?;
                Ok(Header {
                    ts_ms,
                    level: normalize_level(&f.level),
                    level_raw: f.level,
                    service: f.service,
                    message: match f.message {
                        Cow::Borrowed(m) => Cow::Borrowed(m.trim()),
                        Cow::Owned(m) => Cow::Owned(m.trim().to_string()),
                    },
                    session: f.session.filter(|s| !s.is_empty()),
                })
            }
        }
    }

    fn format_header<'a>(
        format: &LineFormat,
        slots: &FieldSlots,
        line: &'a str,
        ts: &mut TimestampParser,
    ) -> Result<Header<'a>, String> {
        let Some(fields) = format.split(line) else {
            return Err(format!("does not match format {:?}", format.source));
        };
        let ts_ms = if let [one] = slots.time[..] {
            let text = fields[one].unwrap_or_default();
            ts.parse(text)
                .ok_or_else(|| format!("unparseable timestamp {text:?}"))?
        } else {
            let parts: Vec<&str> = slots.time.iter().filter_map(|&i| fields[i]).collect();
            ts.parse_parts(&parts)
                .ok_or_else(|| format!("unparseable timestamp {:?}", parts.join(" ")))?
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
        })
    }

    /// Parse a batch of lines. `Err` entries are lines already known to be bad (e.g. invalid
    /// UTF-8), quarantined with the reason given.
    ///
    /// Three phases: headers and masking in parallel over chunks of lines, each chunk also
    /// listing its distinct masked messages; then, serially, the chunks' distinct messages in
    /// line order go to the template miner (cheap: a batch has few distinct messages after
    /// masking); then, in parallel again, every line gets its template.
    pub fn parse_batch<'a>(&self, lines: &[Result<&'a str, String>]) -> Batch<'a> {
        const CHUNK: usize = 16 * 1024;
        let chunks: Vec<StagedChunk<'a>> = lines
            .par_chunks(CHUNK)
            .map(|chunk| self.stage_chunk(chunk))
            .collect();

        let mut global: FxHashMap<&str, usize> = FxHashMap::default();
        let mut order: Vec<&str> = Vec::new();
        let mut weights: Vec<u64> = Vec::new();
        let global_of_local: Vec<Vec<usize>> = chunks
            .iter()
            .map(|c| {
                c.distinct
                    .iter()
                    .zip(&c.counts)
                    .map(|(masked, &count)| {
                        let g = *global.entry(masked.as_str()).or_insert_with(|| {
                            order.push(masked.as_str());
                            weights.push(0);
                            order.len() - 1
                        });
                        weights[g] += u64::from(count);
                        g
                    })
                    .collect()
            })
            .collect();
        let mut miner = Drain::new(self.drain.clone());
        let drain_cluster_of: Vec<usize> = order.iter().map(|m| miner.add(m)).collect();
        let (cluster_of, texts) = refine::refine(
            &order,
            &weights,
            &drain_cluster_of,
            self.max_constant_values,
        );
        let templates: Templates = texts
            .into_iter()
            .map(|text| (template_id(&text), text))
            .collect();
        drop(global);
        drop(order);

        let continuations: Vec<(usize, &'a str)> = chunks
            .iter()
            .enumerate()
            .flat_map(|(k, c)| {
                c.continuations
                    .iter()
                    .map(move |&(j, text)| (k * CHUNK + j, text))
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
        let mut parsed: Vec<Parsed<'a>> = staged
            .into_par_iter()
            .zip(global_of_local)
            .enumerate()
            .flat_map_iter(|(k, (staged, globals))| {
                let cluster_of = &cluster_of;
                staged.into_iter().map(move |r| match r {
                    Staged::Event(header, local, range) => Parsed::Event(Event {
                        header,
                        params: ParamsRef {
                            chunk: k as u32,
                            start: range.start,
                            end: range.end,
                        },
                        template: cluster_of[globals[local as usize]],
                        lines: 1,
                    }),
                    Staged::Continuation => Parsed::Joined,
                    Staged::Bad(reason) => Parsed::Quarantined(reason),
                })
            })
            .collect();
        join_continuations(&mut parsed, &continuations);
        Batch {
            parsed,
            templates,
            params,
        }
    }

    /// Headers and masking for one chunk, and the chunk's distinct masked messages. A line's
    /// masked text is written into one reused buffer and kept only when it is new to the
    /// chunk, so a chunk allocates per distinct message rather than per line.
    fn stage_chunk<'a>(&self, chunk: &[Result<&'a str, String>]) -> StagedChunk<'a> {
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
                    Err(reason) => return Staged::Bad(reason.clone()),
                };
                let header = match self.parse_header(line, &mut ts) {
                    Ok(header) => header,
                    Err(_) if self.multiline && is_continuation(line) => {
                        continuations.push((j, line));
                        return Staged::Continuation;
                    }
                    Err(reason) => return Staged::Bad(reason),
                };
                masking::mask_to_json_into(&header.message, &mut buffer, &mut json);
                let start = params.len() as u32;
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

/// Append each continuation line (`(line index, text)`, in line order, already marked
/// [`Parsed::Joined`]) to the message of the last event before it, with a newline as it was
/// written, and count it in that event's `lines`. Only the lines up to the last continuation
/// are looked at, once each.
fn join_continuations(parsed: &mut [Parsed], continuations: &[(usize, &str)]) {
    let mut last_event: Option<usize> = None;
    let mut scanned = 0;
    for &(i, text) in continuations {
        for (k, p) in parsed.iter().enumerate().take(i).skip(scanned) {
            if matches!(p, Parsed::Event(_)) {
                last_event = Some(k);
            }
        }
        scanned = i + 1;
        match last_event {
            Some(e) => {
                let Parsed::Event(event) = &mut parsed[e] else {
                    unreachable!("last_event points at an event")
                };
                let message = event.header.message.to_mut();
                message.push('\n');
                message.push_str(text.strip_suffix('\r').unwrap_or(text));
                event.lines += 1;
            }
            None => {
                parsed[i] = Parsed::Quarantined(
                    "continuation line with no event before it in the batch".into(),
                );
            }
        }
    }
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
    continuations: Vec<(usize, &'a str)>,
}

fn structured_kind(spec: &str) -> Option<structured::Kind> {
    if spec.eq_ignore_ascii_case("json") || spec.eq_ignore_ascii_case("jsonl") {
        Some(structured::Kind::Json)
    } else if spec.eq_ignore_ascii_case("logfmt") {
        Some(structured::Kind::Logfmt)
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
    })
}

/// Whether a line that is not an event header continues the event before it: indented
/// (stack frames, wrapped text), or the lines Java and Python put between frames.
pub fn is_continuation(line: &str) -> bool {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return false;
    }
    if line.starts_with([' ', '\t']) {
        return true;
    }
    const STARTS: &[&str] = &[
        "Caused by:",
        "Traceback (most recent call last)",
        "During handling",
    ];
    if STARTS.iter().any(|s| line.starts_with(s)) {
        return true;
    }
    // `java.lang.IllegalStateException: …`, `ValueError: …`: an exception's own line.
    let head = line.split([':', ' ']).next().unwrap_or_default();
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$'))
        && ["Exception", "Error", "Throwable"]
            .iter()
            .any(|s| head.ends_with(s))
}

/// Syslog `<PRI>`: facility × 8 + severity; severities 0–7 are emerg … debug.
fn syslog_level(pri: &str) -> &'static str {
    match pri.trim().parse::<u32>().map(|p| p % 8) {
        Ok(0..=2) => "FATAL",
        Ok(3) => "ERROR",
        Ok(4) => "WARN",
        Ok(5) => "NOTICE",
        Ok(7) => "DEBUG",
        _ => "INFO",
    }
}

/// Access logs carry no level; the status says how the request went.
fn http_level(status: &str) -> &'static str {
    match status.as_bytes().first() {
        Some(b'5') => "ERROR",
        Some(b'4') => "WARN",
        _ => "INFO",
    }
}

/// Stable id of a template text: the first 8 bytes of its SHA-256, in hex.
pub fn template_id(template: &str) -> String {
    let digest = Sha256::digest(template.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Map the many spellings of a level onto [`LEVELS`]; unknown or missing → `INFO`.
pub fn normalize_level(raw: &str) -> &'static str {
    known_level(raw).unwrap_or("INFO")
}

/// Level spellings seen in the presets' logs → the normalised set [`LEVELS`].
const SPELLINGS: &[(&str, &str)] = &[
    ("INFO", "INFO"),
    ("I", "INFO"),
    ("INFORMATION", "INFO"),
    ("NOTICE", "NOTICE"),
    ("TRACE", "TRACE"),
    ("FINEST", "TRACE"),
    ("FINER", "TRACE"),
    ("VERBOSE", "TRACE"),
    ("V", "TRACE"),
    ("DEBUG", "DEBUG"),
    ("FINE", "DEBUG"),
    ("DBG", "DEBUG"),
    ("D", "DEBUG"),
    ("WARN", "WARN"),
    ("WARNING", "WARN"),
    ("W", "WARN"),
    ("ERROR", "ERROR"),
    ("ERR", "ERROR"),
    ("E", "ERROR"),
    ("SEVERE", "ERROR"),
    ("FAILURE", "ERROR"),
    ("FATAL", "FATAL"),
    ("CRITICAL", "FATAL"),
    ("CRIT", "FATAL"),
    ("EMERG", "FATAL"),
    ("EMERGENCY", "FATAL"),
    ("ALERT", "FATAL"),
    ("PANIC", "FATAL"),
    ("F", "FATAL"),
    ("A", "FATAL"),
];

/// The normalised level of a spelling we know (`warning` → `WARN`; Apache's `core:error` →
/// `ERROR`), or `None`.
pub fn known_level(raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    let raw = raw.rsplit_once(':').map_or(raw, |(_, l)| l);
    SPELLINGS
        .iter()
        .find(|(spelling, _)| raw.eq_ignore_ascii_case(spelling))
        .map(|(_, level)| *level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(format: &str) -> Parser {
        let settings = ParseSettings {
            format: format.into(),
            ..Default::default()
        };
        Parser::new(&settings, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).unwrap()
    }

    #[test]
    fn parses_and_templates_a_batch() {
        let p = parser("generator");
        let lines = [
            "2026-11-20T10:00:00.000Z INFO checkout: request started req=r1 path=/cart user=u12",
            "2026-11-20T10:00:00.100Z INFO checkout: request started req=r2 path=/cart user=u99",
            "garbage",
            "2026-11-20T10:00:01.000Z WARNING payments: charge retry attempt=2",
        ];
        let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(*l)).collect();
        let batch = p.parse_batch(&input);
        let (out, templates) = (&batch.parsed, &batch.templates);
        let Parsed::Event(a) = &out[0] else {
            panic!("{:?}", out[0])
        };
        let Parsed::Event(b) = &out[1] else { panic!() };
        assert_eq!(a.template, b.template);
        assert_eq!(
            templates[a.template].1,
            "request started req=<*> path=/cart user=<*>"
        );
        assert_eq!(batch.params(a), r#"["r1","u12"]"#);
        assert_eq!(a.header.service, "checkout");
        assert!(matches!(&out[2], Parsed::Quarantined(r) if r.contains("does not match")));
        let Parsed::Event(c) = &out[3] else { panic!() };
        assert_eq!(
            (c.header.level, c.header.level_raw.as_ref()),
            ("WARN", "WARNING")
        );
    }

    #[test]
    fn session_key_may_name_a_parsed_field() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let with_key = |format: &str, key: &str| {
            Parser::new(
                &ParseSettings {
                    format: format.into(),
                    session_key: key.into(),
                    ..Default::default()
                },
                date,
            )
        };
        let session = |p: &Parser, line: &str| {
            let mut ts = TimestampParser::new(p.time);
            let h = p.parse_header(line, &mut ts).unwrap();
            h.session.map(|s| s.into_owned())
        };
        // A format string's field.
        let p = with_key(
            "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            "field:Pid",
        )
        .unwrap();
        assert_eq!(
            session(&p, "081109 203615 148 INFO dfs.DataNode: Receiving block").as_deref(),
            Some("148")
        );
        // A nested JSON key and a logfmt key; a line without it is in no session.
        let p = with_key("json", "field:trace.id").unwrap();
        let json = r#"{"ts":"2026-11-20T10:00:00Z","level":"info","message":"db query","trace":{"id":"t-42"}}"#;
        assert_eq!(session(&p, json).as_deref(), Some("t-42"));
        let bare = r#"{"ts":"2026-11-20T10:00:00Z","level":"info","message":"tick"}"#;
        assert_eq!(session(&p, bare), None);
        let p = with_key("logfmt", "field:trace_id").unwrap();
        let logfmt = "ts=2026-11-20T10:00:00Z level=info msg=\"db query\" trace_id=t-7";
        assert_eq!(session(&p, logfmt).as_deref(), Some("t-7"));
        // A regex key leaves the header's session empty (03-gold reads it from the message).
        let p = with_key("json", "req=(\\S+)").unwrap();
        assert_eq!(session(&p, json), None);
        // A field the format does not have is a configuration error that names the fields.
        let err = with_key("<Date> <Time> <Level>: <Content>", "field:Pid")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no <Pid> field") && err.contains("Date, Time, Level, Content"),
            "{err}"
        );
    }

    #[test]
    fn same_templates_whatever_the_thread_count() {
        let p = parser("generator");
        let lines: Vec<String> = (0..20_000)
            .map(|i| {
                format!(
                    "2026-11-20T10:00:00.000Z INFO svc{}: step {} done in {} ms",
                    i % 3,
                    i % 7,
                    i
                )
            })
            .collect();
        let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| p.parse_batch(&input));
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap()
            .install(|| p.parse_batch(&input));
        assert_eq!(one, many);
    }

    /// One realistic line per preset (real public samples' shapes), with the service, level,
    /// time and message each preset must read from it.
    const PRESET_LINES: &[(&str, &str, &str, &str, &str, &str)] = &[
        // (preset, line, service, level, UTC time, message)
        (
            "generator",
            "2026-11-20T10:00:00.000Z INFO checkout: request started req=r1",
            "checkout",
            "INFO",
            "2026-11-20T10:00:00Z",
            "request started req=r1",
        ),
        (
            "hdfs",
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
            "dfs.DataNode$PacketResponder",
            "INFO",
            "2008-11-09T20:36:15Z",
            "PacketResponder 1 for block blk_38865049064139660 terminating",
        ),
        (
            "hadoop",
            "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
            "org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
            "INFO",
            "2015-10-18T18:01:47.978Z",
            "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        ),
        (
            "spark",
            "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM, HUP, INT]",
            "executor.CoarseGrainedExecutorBackend",
            "INFO",
            "2017-06-09T20:10:40Z",
            "Registered signal handlers for [TERM, HUP, INT]",
        ),
        (
            "zookeeper",
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
            "0:0:0:0:0:0:0:2181:FastLeaderElection",
            "INFO",
            "2015-07-29T17:41:44.747Z",
            "Notification time out: 3200",
        ),
        (
            "bgl",
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
            "KERNEL",
            "INFO",
            "2005-06-03T22:42:50Z",
            "instruction cache parity error corrected",
        ),
        (
            "hpc",
            "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component \"alt0\" is in the unavailable state (HWID=1980)",
            "unix.hw",
            "INFO",
            "2004-02-26T14:12:22Z",
            "Component State Change: Component \"alt0\" is in the unavailable state (HWID=1980)",
        ),
        (
            "thunderbird",
            "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
            "crond(pam_unix)",
            "INFO",
            "2005-11-09T20:01:01Z",
            "session closed for user root",
        ),
        (
            "syslog",
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
            "sshd(pam_unix)",
            "INFO",
            "2026-06-14T15:16:01Z",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
        ),
        (
            "syslog",
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            "su",
            "FATAL",
            "2026-10-11T22:14:15Z",
            "'su root' failed for lonvick on /dev/pts/8",
        ),
        (
            "rfc5424",
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"] An application event log entry",
            "evntslog",
            "NOTICE",
            "2003-10-11T22:14:15.003Z",
            "[exampleSDID@32473 iut=\"3\"] An application event log entry",
        ),
        (
            "openssh",
            "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
            "sshd",
            "INFO",
            "2025-12-10T06:55:46Z",
            "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        ),
        (
            "apache-error",
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
            "-",
            "ERROR",
            "2005-12-04T04:47:44Z",
            "mod_jk child workerEnv in error state 6",
        ),
        (
            "access-log",
            "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 503 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"",
            "-",
            "ERROR",
            "2000-10-10T20:55:36Z",
            "GET /apache_pb.gif HTTP/1.0",
        ),
        (
            "android",
            "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992 ActivityRecord{de9231d u0 com.tencent.qt.qtl/.activity.info.NewsDetailXmlActivity t761}}}, allDrawn= false",
            "WindowManager",
            "DEBUG",
            "2026-03-17T16:13:38.811Z",
            "printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992 ActivityRecord{de9231d u0 com.tencent.qt.qtl/.activity.info.NewsDetailXmlActivity t761}}}, allDrawn= false",
        ),
        (
            "windows-cbs",
            "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
            "CBS",
            "INFO",
            "2016-09-28T04:30:30Z",
            "Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
        ),
        (
            "healthapp",
            "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
            "Step_LSC",
            "INFO",
            "2017-12-23T22:15:29.606Z",
            "onStandStepChanged 3579",
        ),
        (
            "mac",
            "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0",
            "kernel",
            "INFO",
            "2026-07-01T09:00:55Z",
            "IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0",
        ),
        (
            "openstack",
            "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 54fadb412c4e40cdbaed9335e4c35a9e - - -] 10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
            "nova.osapi_compute.wsgi.server",
            "INFO",
            "2017-05-16T00:00:00.008Z",
            "10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
        ),
        (
            "proxifier",
            "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
            "chrome.exe",
            "INFO",
            "2026-10-30T16:49:06Z",
            "proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
        ),
        (
            "json",
            r#"{"time":"2026-11-20T10:00:00+01:00","level":"error","logger":"db","msg":"connection lost to 10.0.0.7"}"#,
            "db",
            "ERROR",
            "2026-11-20T09:00:00Z",
            "connection lost to 10.0.0.7",
        ),
        (
            "logfmt",
            r#"ts=1763632800 level=warn service=api msg="slow request" duration=1.2s"#,
            "api",
            "WARN",
            "2025-11-20T10:00:00Z",
            "slow request",
        ),
    ];

    #[test]
    fn every_preset_reads_its_log() {
        for &(preset, line, service, level, time, message) in PRESET_LINES {
            let p = parser(preset);
            let mut ts = TimestampParser::new(p.time);
            let h = p
                .parse_header(line, &mut ts)
                .unwrap_or_else(|e| panic!("{preset}: {e}\n{line}"));
            assert_eq!(h.service, service, "{preset} service");
            assert_eq!(h.level, level, "{preset} level");
            assert_eq!(h.message, message, "{preset} message");
            let expected = chrono::DateTime::parse_from_rfc3339(time)
                .unwrap()
                .timestamp_millis();
            assert_eq!(h.ts_ms, expected, "{preset} time");
        }
    }

    #[test]
    fn loghub_format_strings_that_repeat_the_time_read_the_full_time() {
        // loghub's own format strings for BGL and Thunderbird name an epoch, a date and a
        // time; joined they are no timestamp, and the fullest reading with a year is kept.
        let cases = [
            (
                "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
                "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
                "2005-06-03T15:42:50.675Z",
                "instruction cache parity error corrected",
            ),
            (
                "<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\\[<PID>\\])?: <Content>",
                "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
                "2005-11-09T12:01:01Z",
                "session closed for user root",
            ),
        ];
        for (format, line, time, message) in cases {
            let p = parser(format);
            let mut ts = TimestampParser::new(p.time);
            let expected = chrono::DateTime::parse_from_rfc3339(time)
                .unwrap()
                .timestamp_millis();
            // The second line reads through the subset the first one found.
            for _ in 0..2 {
                let h = p
                    .parse_header(line, &mut ts)
                    .unwrap_or_else(|e| panic!("{format}: {e}"));
                assert_eq!(h.ts_ms, expected, "{format}");
                assert_eq!(h.message, message);
            }
        }
    }

    #[test]
    fn auto_detection_picks_the_preset_of_each_sample() {
        let settings = ParseSettings::default();
        assert_eq!(settings.format, "auto");
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        for &(preset, line, ..) in PRESET_LINES {
            let sample = vec![line; 5];
            let (_, detection) = Parser::for_sample(&settings, date, &sample).unwrap();
            let d = detection.expect("auto detects");
            assert_eq!(d.matched, 5, "{preset}");
            // Presets with the same shape (syslog / mac / openssh) read each other's lines
            // equally well; the detected one must read the line to the same message.
            let chosen = parser(&d.preset);
            let own = parser(preset);
            let mut ts = TimestampParser::new(chosen.time);
            assert_eq!(
                chosen.parse_header(line, &mut ts).unwrap().message,
                own.parse_header(line, &mut ts).unwrap().message,
                "{preset} detected as {}",
                d.preset
            );
        }
        let err = Parser::for_sample(&settings, date, &["no format at all"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("no preset reads"), "{err}");
    }

    #[test]
    fn continuation_lines_join_the_event_before_them() {
        let p = parser("generator");
        let lines = [
            "java.lang.IllegalStateException: orphan frame",
            "2026-11-20T10:00:00.000Z ERROR api: request failed req=1",
            "java.lang.NullPointerException: boom",
            "\tat com.example.Api.handle(Api.java:42)",
            "Caused by: java.io.IOException: closed",
            "2026-11-20T10:00:01.000Z INFO api: request ok req=2",
            "garbage that is no continuation",
        ];
        let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(*l)).collect();
        let out = p.parse_batch(&input).parsed;
        assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("no event before it")));
        let Parsed::Event(e) = &out[1] else {
            panic!("{:?}", out[1])
        };
        assert_eq!(e.lines, 4);
        assert_eq!(
            e.header.message,
            "request failed req=1\njava.lang.NullPointerException: boom\n\tat com.example.Api.handle(Api.java:42)\nCaused by: java.io.IOException: closed"
        );
        assert!(out[2..5].iter().all(|p| *p == Parsed::Joined));
        assert!(matches!(&out[5], Parsed::Event(e) if e.lines == 1));
        assert!(matches!(&out[6], Parsed::Quarantined(r) if r.contains("does not match")));
    }

    #[test]
    fn bad_timestamps_are_quarantined_with_the_reason() {
        let p = parser("hdfs");
        let out = p
            .parse_batch(&[
                Ok("0811xx 203615 148 INFO dfs.DataNode: hello"),
                Err("invalid UTF-8".into()),
            ])
            .parsed;
        assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("unparseable timestamp")));
        assert_eq!(out[1], Parsed::Quarantined("invalid UTF-8".into()));
    }
}
