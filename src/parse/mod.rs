//! Parsing: raw lines → events (timestamp, level, service, message, masked message, template).
//!
//! This is the one boundary the silver stage talks to: [`Parser::parse_batch`] takes a batch of
//! raw lines and returns, per line, either an event or the reason it was quarantined. Header
//! parsing and masking run in parallel (rayon); template mining runs once over the batch's
//! distinct masked messages (see [`drain`]), so the output is the same for any thread count.

pub mod accuracy;
pub mod drain;
pub mod format;
pub mod masking;
pub mod refine;
pub mod timestamp;

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

/// A parsed line, before templating. Text fields borrow from the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Header<'a> {
    pub ts_ms: i64,
    pub level: &'static str,
    pub level_raw: &'a str,
    pub service: &'a str,
    pub message: &'a str,
}

/// A fully parsed event; `template` indexes the batch's [`Templates`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub header: Header<'a>,
    /// The masked-out values, as a JSON array of strings.
    pub params: String,
    pub template: usize,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    Event(Event<'a>),
    Quarantined(String),
}

/// The batch's templates: (id, text), indexed by [`Event::template`].
pub type Templates = Vec<(String, String)>;

/// A line after header parsing and masking: (header, index of its masked message among the
/// chunk's distinct ones, parameters as JSON).
type Masked<'a> = (Header<'a>, u32, String);

/// Where the fields the parser needs sit in the format's field list.
#[derive(Debug, Clone)]
struct FieldSlots {
    time: Vec<usize>,
    level: Option<usize>,
    service: Option<usize>,
    content: usize,
}

pub struct Parser {
    format: LineFormat,
    slots: FieldSlots,
    drain: DrainParams,
    max_constant_values: usize,
    time: TimeContext,
}

impl Parser {
    pub fn new(settings: &ParseSettings, batch_date: NaiveDate) -> Result<Self> {
        let format = LineFormat::from_spec(&settings.format)?;
        let slot = |name: &str| format.fields.iter().position(|f| f == name);
        let Some(content) = slot("Content") else {
            anyhow::bail!(
                "format {:?} has no <Content> field: every format needs one for the message",
                settings.format
            );
        };
        let time: Vec<usize> = (0..format.fields.len())
            .filter(|&i| TIME_FIELDS.contains(&format.fields[i].as_str()))
            .collect();
        if time.is_empty() {
            anyhow::bail!(
                "format {:?} has no time field: name one of {}",
                settings.format,
                TIME_FIELDS.join(", ")
            );
        }
        let slots = FieldSlots {
            time,
            level: slot("Level"),
            service: slot("Service").or(slot("Component")),
            content,
        };
        Ok(Self {
            format,
            slots,
            drain: DrainParams {
                depth: settings.tree_depth,
                similarity_threshold: settings.similarity_threshold,
                max_children: settings.max_children,
            },
            max_constant_values: settings.max_constant_values,
            time: TimeContext {
                zone: timestamp::parse_zone(&settings.timezone).map_err(anyhow::Error::msg)?,
                year: settings.year,
                batch_date,
            },
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
            return Err("empty line".into());
        }
        if line.contains('\0') {
            return Err("line contains NUL bytes".into());
        }
        let Some(fields) = self.format.split(line) else {
            return Err(format!("does not match format {:?}", self.format.source));
        };
        let ts_ms = if let [one] = self.slots.time[..] {
            let text = fields[one].unwrap_or_default();
            ts.parse(text)
                .ok_or_else(|| format!("unparseable timestamp {text:?}"))?
        } else {
            let parts: Vec<&str> = self.slots.time.iter().filter_map(|&i| fields[i]).collect();
            let text = parts.join(" ");
            ts.parse(&text)
                .ok_or_else(|| format!("unparseable timestamp {text:?}"))?
        };
        let level_raw = self.slots.level.and_then(|i| fields[i]).unwrap_or_default();
        let service = self.slots.service.and_then(|i| fields[i]).unwrap_or("-");
        let message = fields[self.slots.content].unwrap_or_default().trim();
        Ok(Header {
            ts_ms,
            level: normalize_level(level_raw),
            level_raw,
            service,
            message,
        })
    }

    /// Parse a batch of lines. `Err` entries are lines already known to be bad (e.g. invalid
    /// UTF-8), quarantined with the reason given.
    ///
    /// Three phases: headers and masking in parallel over chunks of lines, each chunk also
    /// listing its distinct masked messages; then, serially, the chunks' distinct messages in
    /// line order go to the template miner (cheap: a batch has few distinct messages after
    /// masking); then, in parallel again, every line gets its template.
    pub fn parse_batch<'a>(
        &self,
        lines: &[Result<&'a str, String>],
    ) -> (Vec<Parsed<'a>>, Templates) {
        const CHUNK: usize = 16 * 1024;
        let t0 = std::time::Instant::now();
        let chunks: Vec<StagedChunk<'a>> = lines
            .par_chunks(CHUNK)
            .map(|chunk| self.stage_chunk(chunk))
            .collect();
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "headers and masking");

        let t0 = std::time::Instant::now();
        let mut global: FxHashMap<&str, usize> = FxHashMap::default();
        let mut order: Vec<&str> = Vec::new();
        let global_of_local: Vec<Vec<usize>> = chunks
            .iter()
            .map(|c| {
                c.distinct
                    .iter()
                    .map(|masked| {
                        *global.entry(masked.as_str()).or_insert_with(|| {
                            order.push(masked.as_str());
                            order.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        let mut miner = Drain::new(self.drain.clone());
        let drain_cluster_of: Vec<usize> = order.iter().map(|m| miner.add(m)).collect();
        let (cluster_of, texts) =
            refine::refine(&order, &drain_cluster_of, self.max_constant_values);
        let templates: Templates = texts
            .into_iter()
            .map(|text| (template_id(&text), text))
            .collect();
        drop(global);
        drop(order);
        tracing::debug!(
            ms = t0.elapsed().as_millis() as u64,
            templates = templates.len(),
            "templates mined"
        );

        let t0 = std::time::Instant::now();
        let parsed: Vec<Parsed<'a>> = chunks
            .into_par_iter()
            .zip(global_of_local)
            .flat_map_iter(|(chunk, globals)| {
                let cluster_of = &cluster_of;
                chunk.staged.into_iter().map(move |r| match r {
                    Ok((header, local, params)) => Parsed::Event(Event {
                        header,
                        params,
                        template: cluster_of[globals[local as usize]],
                    }),
                    Err(reason) => Parsed::Quarantined(reason),
                })
            })
            .collect();
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "events assembled");
        (parsed, templates)
    }

    /// Headers and masking for one chunk, and the chunk's distinct masked messages. A line's
    /// masked text is written into one reused buffer and kept only when it is new to the
    /// chunk, so a chunk allocates per distinct message rather than per line.
    fn stage_chunk<'a>(&self, chunk: &[Result<&'a str, String>]) -> StagedChunk<'a> {
        let mut ts = TimestampParser::new(self.time);
        let mut local: FxHashMap<String, u32> = FxHashMap::default();
        let mut distinct: Vec<String> = Vec::new();
        let mut buffer = String::new();
        let staged = chunk
            .iter()
            .map(|line| {
                let line = line.as_ref().map_err(|e| e.clone())?;
                let header = self.parse_header(line, &mut ts)?;
                let params = masking::mask_to_json_into(header.message, &mut buffer);
                let index = match local.get(buffer.as_str()) {
                    Some(&i) => i,
                    None => {
                        let i = distinct.len() as u32;
                        distinct.push(buffer.clone());
                        local.insert(buffer.clone(), i);
                        i
                    }
                };
                Ok((header, index, params))
            })
            .collect();
        StagedChunk { staged, distinct }
    }
}

/// A chunk after headers and masking: per line the result, and the chunk's distinct masked
/// messages in first-seen order (what [`Masked`]'s index points into).
struct StagedChunk<'a> {
    staged: Vec<Result<Masked<'a>, String>>,
    distinct: Vec<String>,
}

/// Stable id of a template text: the first 8 bytes of its SHA-256, in hex.
pub fn template_id(template: &str) -> String {
    let digest = Sha256::digest(template.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Map the many spellings of a level onto [`LEVELS`]; unknown or missing → `INFO`.
pub fn normalize_level(raw: &str) -> &'static str {
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
    let raw = raw.trim();
    SPELLINGS
        .iter()
        .find(|(spelling, _)| raw.eq_ignore_ascii_case(spelling))
        .map(|(_, level)| *level)
        .unwrap_or("INFO")
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
        let (out, templates) = p.parse_batch(&input);
        let Parsed::Event(a) = &out[0] else {
            panic!("{:?}", out[0])
        };
        let Parsed::Event(b) = &out[1] else { panic!() };
        assert_eq!(a.template, b.template);
        assert_eq!(
            templates[a.template].1,
            "request started req=<*> path=/cart user=<*>"
        );
        assert_eq!(a.params, r#"["r1","u12"]"#);
        assert_eq!(a.header.service, "checkout");
        assert!(matches!(&out[2], Parsed::Quarantined(r) if r.contains("does not match")));
        let Parsed::Event(c) = &out[3] else { panic!() };
        assert_eq!((c.header.level, c.header.level_raw), ("WARN", "WARNING"));
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

    #[test]
    fn bad_timestamps_are_quarantined_with_the_reason() {
        let p = parser("hdfs");
        let (out, _) = p.parse_batch(&[
            Ok("0811xx 203615 148 INFO dfs.DataNode: hello"),
            Err("invalid UTF-8".into()),
        ]);
        assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("unparseable timestamp")));
        assert_eq!(out[1], Parsed::Quarantined("invalid UTF-8".into()));
    }
}
