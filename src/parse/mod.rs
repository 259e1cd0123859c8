//! Parsing: raw lines → events (timestamp, level, service, message, masked message, template).
//!
//! This is the one boundary the silver stage talks to: [`Parser::parse_batch`] takes a batch of
//! raw lines and returns, per line, either an event or the reason it was quarantined. Header
//! parsing and masking run in parallel (rayon); template mining runs once over the batch's
//! distinct masked messages (see [`drain`]), so the output is the same for any thread count.

pub mod drain;
pub mod format;
pub mod masking;
pub mod timestamp;

use std::collections::HashMap;

use anyhow::Result;
use chrono::NaiveDate;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::ParseSettings;
use drain::{Drain, DrainParams};
use format::LineFormat;
use timestamp::{TIME_FIELDS, TimestampParser};

/// Levels are normalised to this set; the original text is kept beside it.
pub const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// A parsed line, before templating.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub ts_ms: i64,
    pub level: &'static str,
    pub level_raw: String,
    pub service: String,
    pub message: String,
}

/// A fully parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub header: Header,
    pub masked: String,
    pub params: Vec<String>,
    pub template_id: String,
    pub template: String,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Event),
    Quarantined(String),
}

/// A line after header parsing and masking: (header, masked message, parameters).
type Masked = (Header, String, Vec<String>);

pub struct Parser {
    format: LineFormat,
    drain: DrainParams,
    batch_date: NaiveDate,
}

impl Parser {
    pub fn new(settings: &ParseSettings, batch_date: NaiveDate) -> Result<Self> {
        let format = LineFormat::from_spec(&settings.format)?;
        if !format.fields.iter().any(|f| f == "Content") {
            anyhow::bail!(
                "format {:?} has no <Content> field: every format needs one for the message",
                settings.format
            );
        }
        if !format
            .fields
            .iter()
            .any(|f| TIME_FIELDS.contains(&f.as_str()))
        {
            anyhow::bail!(
                "format {:?} has no time field: name one of {}",
                settings.format,
                TIME_FIELDS.join(", ")
            );
        }
        Ok(Self {
            format,
            drain: DrainParams {
                depth: settings.tree_depth,
                similarity_threshold: settings.similarity_threshold,
                max_children: settings.max_children,
            },
            batch_date,
        })
    }

    /// Parse one line's header (no templating).
    pub fn parse_header(&self, line: &str, ts: &mut TimestampParser) -> Result<Header, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Err("empty line".into());
        }
        if line.contains('\0') {
            return Err("line contains NUL bytes".into());
        }
        let Some(caps) = self.format.regex.captures(line) else {
            return Err(format!("does not match format {:?}", self.format.source));
        };
        let mut time_text = String::new();
        for field in &self.format.fields {
            if TIME_FIELDS.contains(&field.as_str()) {
                if let Some(m) = caps.name(field) {
                    if !time_text.is_empty() {
                        time_text.push(' ');
                    }
                    time_text.push_str(m.as_str());
                }
            }
        }
        let Some(ts_ms) = ts.parse(&time_text) else {
            return Err(format!("unparseable timestamp {time_text:?}"));
        };
        let level_raw = caps
            .name("Level")
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let service = caps
            .name("Service")
            .or_else(|| caps.name("Component"))
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "-".to_string());
        let message = caps
            .name("Content")
            .map(|m| m.as_str().trim().to_string())
            .unwrap_or_default();
        Ok(Header {
            ts_ms,
            level: normalize_level(&level_raw),
            level_raw,
            service,
            message,
        })
    }

    /// Parse a batch of lines. `None` entries are lines already known to be bad (e.g. invalid
    /// UTF-8), quarantined with the reason given.
    pub fn parse_batch(&self, lines: &[Result<&str, String>]) -> Vec<Parsed> {
        const CHUNK: usize = 4096;
        // Headers and masking in parallel; each chunk keeps its own timestamp-shape cache.
        let staged: Vec<Result<Masked, String>> = lines
            .par_chunks(CHUNK)
            .flat_map_iter(|chunk| {
                let mut ts = TimestampParser::new(self.batch_date);
                chunk
                    .iter()
                    .map(|line| {
                        let line = line.as_ref().map_err(|e| e.clone())?;
                        let header = self.parse_header(line, &mut ts)?;
                        let (masked, params) = masking::mask(&header.message);
                        Ok((header, masked, params))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();

        // Distinct masked messages in first-seen order → Drain, once each.
        let mut distinct: HashMap<&str, usize> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        let unique_of_line: Vec<Option<usize>> = staged
            .iter()
            .map(|r| {
                r.as_ref().ok().map(|(_, masked, _)| {
                    *distinct.entry(masked.as_str()).or_insert_with(|| {
                        order.push(masked.as_str());
                        order.len() - 1
                    })
                })
            })
            .collect();
        let mut miner = Drain::new(self.drain.clone());
        let cluster_of: Vec<usize> = order.iter().map(|m| miner.add(m)).collect();
        let templates: Vec<(String, String)> = (0..miner.len())
            .map(|c| {
                let text = miner.template(c);
                (template_id(&text), text)
            })
            .collect();
        drop(distinct);
        drop(order);

        staged
            .into_iter()
            .zip(unique_of_line)
            .map(|(r, unique)| match (r, unique) {
                (Ok((header, masked, params)), Some(u)) => {
                    let (id, text) = &templates[cluster_of[u]];
                    Parsed::Event(Event {
                        header,
                        masked,
                        params,
                        template_id: id.clone(),
                        template: text.clone(),
                    })
                }
                (Err(reason), _) => Parsed::Quarantined(reason),
                (Ok(_), None) => unreachable!("every parsed line has a distinct-message index"),
            })
            .collect()
    }
}

/// Stable id of a template text: the first 8 bytes of its SHA-256, in hex.
pub fn template_id(template: &str) -> String {
    let digest = Sha256::digest(template.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Map the many spellings of a level onto [`LEVELS`]; unknown or missing → `INFO`.
pub fn normalize_level(raw: &str) -> &'static str {
    match raw.trim().to_ascii_uppercase().as_str() {
        "TRACE" | "FINEST" | "FINER" => "TRACE",
        "DEBUG" | "FINE" | "DBG" => "DEBUG",
        "WARN" | "WARNING" | "W" => "WARN",
        "ERROR" | "ERR" | "E" | "SEVERE" => "ERROR",
        "FATAL" | "CRITICAL" | "CRIT" | "EMERG" | "ALERT" | "PANIC" | "F" => "FATAL",
        _ => "INFO",
    }
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
        let out = p.parse_batch(&input);
        let Parsed::Event(a) = &out[0] else {
            panic!("{:?}", out[0])
        };
        let Parsed::Event(b) = &out[1] else { panic!() };
        assert_eq!(a.template_id, b.template_id);
        assert_eq!(a.template, "request started req=<*> path=/cart user=<*>");
        assert_eq!(a.params, vec!["r1", "u12"]);
        assert_eq!(a.header.service, "checkout");
        assert!(matches!(&out[2], Parsed::Quarantined(r) if r.contains("does not match")));
        let Parsed::Event(c) = &out[3] else { panic!() };
        assert_eq!(
            (c.header.level, c.header.level_raw.as_str()),
            ("WARN", "WARNING")
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

    #[test]
    fn bad_timestamps_are_quarantined_with_the_reason() {
        let p = parser("hdfs");
        let out = p.parse_batch(&[
            Ok("0811xx 203615 148 INFO dfs.DataNode: hello"),
            Err("invalid UTF-8".into()),
        ]);
        assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("unparseable timestamp")));
        assert_eq!(out[1], Parsed::Quarantined("invalid UTF-8".into()));
    }
}
