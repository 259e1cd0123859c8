//! The one place where what a command was given — flags, `LOGLAKE__…` variables, the config
//! file and the defaults — becomes the typed values it runs with, as ripgrep turns its
//! low-level arguments into high-level ones once and hands only the latter on.
//!
//! Two steps, each done once per command:
//!
//! 1. [`Settings::load`](super::Settings::load) merges the layers, and serde reads every
//!    section into its type on the way: `[lake] path` into a
//!    [`LakeLocation`](crate::lake::location::LakeLocation), each `[detectors.<name>]` into
//!    its detector's checked [`Section`](crate::detectors::settings::Section), `[run]
//!    on_locked` into its enum. A bad value stops the command there, before anything runs.
//! 2. [`Resolved::new`] (here) takes one source's settings — `[sources.<name>]` over `[parse]`
//!    and `[gold]`, then the command line's overrides — and reads every string that names
//!    something into its type: the format ([`Format`]), the session key ([`SessionKey`]), the
//!    granularities, the Kafka brokers. Stages, `serve` and `parse-accuracy` read these and
//!    never re-interpret a setting.
//!
//! [`Format`]: crate::parse::Format
//! [`SessionKey`]: crate::parse::SessionKey

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::NaiveDate;

use super::{GoldSettings, Settings};
use crate::detectors::Granularity;
use crate::parse::{Parser, ParserConfig};

/// What the command line overrides of a source's settings (only what it was given).
#[derive(Debug, Clone, Default)]
pub struct SourceOverrides {
    /// `--format`.
    pub format: Option<String>,
    /// `--session-key`.
    pub session_key: Option<String>,
    /// `--kafka-brokers`.
    pub kafka_brokers: Option<String>,
    /// The command reads Kafka topics (`--kafka`), so it needs brokers.
    pub reads_kafka: bool,
}

/// One source's settings, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How lines are read: the format and session key typed, the rest of `[parse]`.
    pub parse: ParserConfig,
    pub gold: GoldSettings,
    /// The granularities trained and detected on, in pipeline order.
    pub granularities: Vec<Granularity>,
    /// The brokers `--kafka` topics are read from; `Some` when the command reads topics.
    pub kafka_brokers: Option<String>,
}

impl Resolved {
    pub fn new(settings: &Settings, source: &str, overrides: &SourceOverrides) -> Result<Self> {
        let mut parse = settings.parse.clone();
        let own = settings.sources.get(source);
        let format = overrides
            .format
            .as_ref()
            .or_else(|| own.and_then(|s| s.format.as_ref()));
        if let Some(f) = format {
            parse.format = f.clone();
        }
        let session_key = overrides
            .session_key
            .as_ref()
            .or_else(|| own.and_then(|s| s.session_key.as_ref()));
        if let Some(k) = session_key {
            parse.session_key = k.clone();
        }
        if parse.window_lines == 0 || !parse.window_lines.is_multiple_of(crate::parse::CHUNK) {
            bail!(
                "parse.window_lines must be a positive multiple of {}, got {}",
                crate::parse::CHUNK,
                parse.window_lines
            );
        }
        let parse = ParserConfig::new(parse)?;
        // A named format is built now (its fields, the session field it must have, the time
        // zone), so that a mistake fails before 01-bronze rather than at 02-silver.
        if !parse.format.is_auto() {
            Parser::new(&parse, NaiveDate::default())
                .with_context(|| format!("format {:?}", parse.format.spec()))?;
        }
        let mut gold = settings.gold.clone();
        if let Some(g) = own.and_then(|s| s.granularities.as_ref()) {
            gold.granularities = g.clone();
        }
        if let Some(w) = own.and_then(|s| s.window_minutes) {
            gold.window_minutes = w;
        }
        let listed = gold
            .granularities
            .iter()
            .map(|g| Granularity::parse(g).map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()
            .context("[gold] granularities")?;
        let granularities = Granularity::ALL
            .into_iter()
            .filter(|g| listed.contains(g))
            .collect();
        let kafka_brokers = match overrides.reads_kafka {
            false => None,
            true => Some(
                overrides
                    .kafka_brokers
                    .clone()
                    .or_else(|| own.and_then(|s| s.kafka_brokers.clone()))
                    .ok_or_else(|| {
                        anyhow!(
                            "--kafka needs the brokers to read from: give --kafka-brokers host:port or set kafka_brokers in [sources.{source}]"
                        )
                    })?,
            ),
        };
        Ok(Self {
            parse,
            gold,
            granularities,
            kafka_brokers,
        })
    }

    pub fn has(&self, granularity: Granularity) -> bool {
        self.granularities.contains(&granularity)
    }
}
