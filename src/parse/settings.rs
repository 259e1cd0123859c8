//! `[parse]`: how raw lines are read. The parser owns its settings; `config.rs` merges them
//! with the rest (and `[sources.<name>]` overrides) and re-exports this type.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::session::SessionKey;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseSettings {
    /// A preset name (`generator`, `hdfs`, …) or a logparser-style format string.
    pub format: String,
    /// Regex that finds the session key in a message (first capture group if it has one), or
    /// `field:<name>` for a parsed field's value. Empty: no session features.
    pub session_key: String,
    /// Drain: similarity a message needs to join an existing template (0..1]. Stricter than
    /// Drain's usual 0.4–0.5 because Drain here only groups near-identical messages; the
    /// refine pass (`parse::refine`) joins clusters that differ in a slot with many values.
    /// Clusters Drain joins too eagerly cannot be taken apart reliably afterwards (a slot
    /// with four event-naming words looks like a variable), clusters it keeps apart can.
    pub similarity_threshold: f64,
    /// Drain: how many leading tokens route a message down the prefix tree.
    pub tree_depth: usize,
    /// Drain: children per tree node before new tokens share a wildcard child.
    pub max_children: usize,
    /// A token position that takes at most this many values across otherwise equal messages
    /// holds constants naming different events (`stored as bytes` / `stored as values`);
    /// more values make it a variable (`Invalid user <*>`). See `parse::refine`.
    pub max_constant_values: usize,
    /// Zone of timestamps that do not carry an offset: an IANA name (`Europe/Berlin`) or UTC.
    pub timezone: String,
    /// Year of timestamps that have none (syslog's `Jun 14 15:16:01`); unset: the batch
    /// date's year, or the year before for dates after the batch date.
    pub year: Option<i32>,
    /// Join continuation lines (indented stack frames, `Caused by:`, exception lines) onto
    /// the event before them instead of quarantining them.
    pub multiline: bool,
    /// 02-silver holds at most this many lines of a batch at once: a larger batch is parsed
    /// a window of this size at a time, each window's events spilled to the lake's staging
    /// area until the batch's templates are mined, so memory follows the window, not the day;
    /// 04-train reads events in windows of this size too. A multiple of 16,384.
    pub window_lines: usize,
    /// 02-silver counts and warns about events whose time is more than this many days from
    /// the batch date (a wrong year, a clock reset, a replayed archive); 0: no check.
    pub max_skew_days: u32,
    /// Quarantine those events (of one line) instead of keeping them at their own times.
    pub quarantine_skewed: bool,
    /// JSON / logfmt: candidate keys of each header field, comma-separated, first present
    /// wins; dots reach into nested JSON objects.
    pub timestamp_field: String,
    pub level_field: String,
    pub service_field: String,
    pub message_field: String,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            format: "auto".into(),
            session_key: String::new(),
            similarity_threshold: 0.6,
            tree_depth: 4,
            max_children: 100,
            max_constant_values: 3,
            timezone: "UTC".into(),
            year: None,
            multiline: true,
            window_lines: 1 << 17,
            max_skew_days: 7,
            quarantine_skewed: false,
            timestamp_field: "timestamp,time,ts,@timestamp,datetime,date".into(),
            level_field: "level,severity,lvl,loglevel,log.level".into(),
            service_field: "service,logger,component,app,name,source".into(),
            message_field: "message,msg,log,text,event".into(),
        }
    }
}

/// A line format, read once from the `format` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Chosen per batch from its first lines (see [`super::Parser::for_sample`]).
    Auto,
    /// A preset's name (`hdfs`, `syslog`, `json`, … or an alias), as written.
    Preset(String),
    /// A logparser-style format string, `<Date> <Time> <Level> <Component>: <Content>`.
    Pattern(String),
}

impl Format {
    /// Read a `format` setting: `auto` (any case), a known preset, or a string with fields in
    /// angle brackets; anything else is refused with the choices.
    pub fn parse(text: &str) -> Result<Format> {
        let spec = text.trim();
        if spec.eq_ignore_ascii_case("auto") {
            return Ok(Format::Auto);
        }
        let structured = super::format::STRUCTURED_PRESETS
            .iter()
            .chain(&["jsonl"])
            .any(|name| name.eq_ignore_ascii_case(spec));
        if structured || super::format::preset(spec).is_some() {
            return Ok(Format::Preset(spec.to_string()));
        }
        if spec.contains('<') {
            return Ok(Format::Pattern(spec.to_string()));
        }
        // Refused with the line format's own message, which lists every preset.
        super::format::LineFormat::from_spec(spec).map(|_| Format::Pattern(spec.to_string()))
    }

    /// As written: `auto`, the preset's name or the format string.
    pub fn spec(&self) -> &str {
        match self {
            Format::Auto => "auto",
            Format::Preset(s) | Format::Pattern(s) => s,
        }
    }

    pub fn is_auto(&self) -> bool {
        matches!(self, Format::Auto)
    }
}

/// `[parse]` with its two strings that name something read into their types: what a
/// [`super::Parser`] is built from. `config::resolved` makes one per command and source, after
/// `[sources.<name>]` and the command line have had their say; nothing reads
/// `settings.format` or `settings.session_key` again.
#[derive(Debug, Clone)]
pub struct ParserConfig {
    pub format: Format,
    /// How sessions are keyed; `None`: the source has no sessions.
    pub session_key: Option<SessionKey>,
    /// The rest of `[parse]`: masking, template mining, time zone, windows.
    pub settings: ParseSettings,
}

impl ParserConfig {
    pub fn new(settings: ParseSettings) -> Result<Self> {
        Ok(Self {
            format: Format::parse(&settings.format)?,
            session_key: SessionKey::parse(&settings.session_key)?,
            settings,
        })
    }

    /// The same settings with another format (auto-detection's candidates).
    pub fn with_format(&self, format: Format) -> Self {
        Self {
            format,
            ..self.clone()
        }
    }

    /// The field sessions are keyed by, when they are keyed by a field.
    pub fn session_field(&self) -> Option<&str> {
        self.session_key.as_ref().and_then(SessionKey::field)
    }
}
