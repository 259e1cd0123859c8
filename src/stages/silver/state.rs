//! What 02-silver keeps of a day between runs, so that a run parses only the bronze parts it
//! has not parsed yet: `silver/parse_state/source=<s>/date=<d>/`, one day record
//! holding this JSON document.
//!
//! Templates are mined from a day's distinct masked messages in first-seen order with their
//! counts (`parse::stream`), so those — not the lines — are what a later run needs to mine
//! the templates of the whole day again: the day's templates after its last run are the ones
//! a single run over all its lines would mine. What else carries over:
//! - the bronze parts already parsed, in the order they were parsed;
//! - the last event, when the format joins lines (its continuation lines may be in the next
//!   part), and the part it was written in, which the next run writes again if it continues
//!   the event;
//! - every template id the day's events were written with, so that one a later run refines
//!   away still names its successor (`silver/template_successors`) — parts already written
//!   are not rewritten for it;
//! - the parser's format sample (with `format = "auto"`), so each run reads lines alike;
//! - a fingerprint of the parse settings: when they change, the day is parsed again whole.
//!
//! The state is committed last, after the parts it describes: a run that dies before it
//! leaves the state of the run before, and the next run writes the same parts again under
//! the same names.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::lake::{Lake, Layer};
use crate::parse::stream::Detached;
use crate::parse::{Event, Header, LEVELS, ParamsRef, ParserConfig};

/// The table the state lives in (one file a day).
pub const STATE_TABLE: &str = crate::lake::tables::PARSE_STATE;

/// Bumped when the state's meaning changes: an older state then parses its day again.
const VERSION: u32 = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParseState {
    pub version: u32,
    /// [`fingerprint`] of the parse settings the day was parsed with.
    pub config: String,
    /// Names this parse of the day, from its first run on: a day parsed again whole gets a
    /// new one, so that 03-gold, which carries on from the rows it has read, knows that the
    /// rows before are not the ones it read.
    #[serde(default)]
    pub epoch: String,
    /// Runs that wrote parts so far: run `n` writes `part-r<n>-<k>.parquet`.
    pub runs: u32,
    /// Bronze part file names parsed, in the order they were parsed.
    pub parts: Vec<String>,
    /// The day's first lines, on which a configured format's time is checked.
    pub sample: Vec<String>,
    /// With `format = "auto"`: how each file is read, detected on its own first lines.
    #[serde(default)]
    pub file_formats: BTreeMap<String, super::formats::FileFormat>,
    /// The format the day was parsed with, as configured, given on the command line or
    /// detected: what `serve` reads the source's new lines with.
    #[serde(default)]
    pub format: Option<crate::parse::RecordedFormat>,
    /// The last line parsed: a split line's first part may end a run.
    pub before: Option<String>,
    /// Distinct masked messages in first-seen order, and their event counts (the miner's).
    pub messages: Vec<String>,
    pub weights: Vec<u64>,
    /// Per message: events written (not quarantined), first and last event time.
    pub stats: Vec<(u64, i64, i64)>,
    /// Every template id the day's events were written with: its text and the messages of
    /// the events written with it.
    pub issued: BTreeMap<String, Issued>,
    /// The last event, and the part it is written in: a run whose first lines continue it
    /// writes that part again (see the module docs).
    pub held: Option<HeldEvent>,
    pub held_part: Option<String>,
    /// Bronze lines read, events written, lines quarantined, over all runs.
    pub lines: u64,
    pub events: u64,
    pub event_lines: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Issued {
    pub text: String,
    pub messages: Vec<u32>,
}

/// The day's last event as the state keeps it, with its own text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldEvent {
    pub file: String,
    pub line_no: u64,
    pub ts_ms: i64,
    pub level: String,
    pub level_raw: String,
    pub service: String,
    pub message: String,
    pub session: Option<String>,
    pub partial: bool,
    pub params: String,
    /// Its masked message's index in [`ParseState::messages`].
    pub message_index: usize,
    pub lines: u32,
}

impl HeldEvent {
    pub fn of(file: &str, line_no: u64, d: &Detached) -> Self {
        let h = &d.event.header;
        Self {
            file: file.to_string(),
            line_no,
            ts_ms: h.ts_ms,
            level: h.level.to_string(),
            level_raw: h.level_raw.to_string(),
            service: h.service.to_string(),
            message: h.message.to_string(),
            session: h.session.as_ref().map(|s| s.to_string()),
            partial: h.partial,
            params: d.params.clone(),
            message_index: d.event.template,
            lines: d.event.lines,
        }
    }

    pub fn detached(&self) -> Detached {
        let level = LEVELS
            .iter()
            .copied()
            .find(|l| *l == self.level)
            .unwrap_or("INFO");
        Detached {
            event: Event {
                header: Header {
                    ts_ms: self.ts_ms,
                    level,
                    level_raw: self.level_raw.clone().into(),
                    service: self.service.clone().into(),
                    message: self.message.clone().into(),
                    session: self.session.clone().map(Into::into),
                    partial: self.partial,
                },
                params: ParamsRef::default(),
                template: self.message_index,
                lines: self.lines,
            },
            params: self.params.clone(),
        }
    }
}

/// The parse settings that decide what a line becomes, as a short digest: not
/// `window_lines`, which only decides how much is held at once.
pub fn fingerprint(config: &ParserConfig) -> String {
    use sha2::Digest;
    let mut settings = config.settings.clone();
    settings.window_lines = 0;
    let text = format!(
        "{VERSION}|{:?}|{:?}|{}",
        config.format,
        config.session_key,
        serde_json::to_string(&settings).unwrap_or_default()
    );
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

impl ParseState {
    /// A day not parsed yet, with these settings.
    pub fn new(config: &ParserConfig) -> Self {
        let now = chrono::Utc::now();
        Self {
            version: VERSION,
            config: fingerprint(config),
            epoch: format!(
                "{}-{}-{}",
                now.timestamp_nanos_opt().unwrap_or_default(),
                std::process::id(),
                rand::random::<u32>()
            ),
            ..Default::default()
        }
    }

    /// The state of `date`, if a run left one.
    /// The format `source`'s latest parsed day was read with, if silver recorded one.
    pub fn latest_format(
        lake: &Lake,
        source: &str,
    ) -> Result<Option<crate::parse::RecordedFormat>> {
        for date in lake
            .partition_dates(Layer::Silver, STATE_TABLE, source)?
            .into_iter()
            .rev()
        {
            if let Some(format) = Self::load(lake, source, date)?.and_then(|s| s.format) {
                return Ok(Some(format));
            }
        }
        Ok(None)
    }

    pub fn load(lake: &Lake, source: &str, date: NaiveDate) -> Result<Option<Self>> {
        // Only this lake's own state: a whole day does not carry on from one of its shards'
        // (it is parsed again whole, and replaces them).
        let read = || -> Result<Option<Self>> {
            match lake.day_record(Layer::Silver, STATE_TABLE, source, date)? {
                Some(text) => Ok(Some(serde_json::from_str(&text)?)),
                None => Ok(None),
            }
        };
        match read() {
            Ok(state) => Ok(state),
            Err(e) => {
                // Only a cost, never a loss: the day is parsed again from its bronze.
                tracing::warn!(%date, error = %format!("{e:#}"), "02-silver's state of this day cannot be read; parsing the day again whole");
                Ok(None)
            }
        }
    }

    /// Commit the state of `date` (after the parts it describes).
    pub fn save(&self, lake: &Lake, source: &str, date: NaiveDate) -> Result<()> {
        let text = serde_json::to_string(self)?;
        lake.commit_day_record(Layer::Silver, STATE_TABLE, source, date, &text)
    }

    /// Whether this state can be carried on: same version and settings, and every part it
    /// parsed still in bronze (a re-ingested day has new parts, and is parsed again whole).
    pub fn carries_on(&self, config: &ParserConfig, bronze_parts: &[String]) -> bool {
        self.version == VERSION
            && self.config == fingerprint(config)
            && self.parts.iter().all(|p| bronze_parts.contains(p))
    }
}
