//! The settings of one command's source, resolved once: `[sources.<name>]` over `[parse]` and
//! `[gold]`, then the command line's overrides, with every string that names something turned
//! into its type. Stages read these and never re-interpret a setting, so a bad session-key
//! regex, an unknown format or granularity is refused before any stage writes anything.

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;

use super::StageOptions;
use crate::config::{GoldSettings, ParseSettings, Settings};
use crate::detectors::Granularity;
use crate::parse::{Parser, SessionKey};

#[derive(Debug, Clone)]
pub struct Resolved {
    /// Parse settings with `--format` / `--session-key` applied.
    pub parse: ParseSettings,
    /// How sessions are keyed; `None`: the source has no sessions.
    pub session_key: Option<SessionKey>,
    pub gold: GoldSettings,
    /// The granularities trained and detected on, in pipeline order.
    pub granularities: Vec<Granularity>,
}

impl Resolved {
    pub fn new(settings: &Settings, source: &str, options: &StageOptions) -> Result<Self> {
        let mut parse = settings.parse_for(source);
        if let Some(f) = &options.format {
            parse.format = f.clone();
        }
        if let Some(k) = &options.session_key {
            parse.session_key = k.clone();
        }
        let session_key = SessionKey::parse(&parse.session_key)?;
        if parse.window_lines == 0 || !parse.window_lines.is_multiple_of(crate::parse::CHUNK) {
            bail!(
                "parse.window_lines must be a positive multiple of {}, got {}",
                crate::parse::CHUNK,
                parse.window_lines
            );
        }
        // A named format is built now (its fields, the session field it must have, the time
        // zone), so that a mistake fails before 01-bronze rather than at 02-silver.
        if !parse.format.trim().eq_ignore_ascii_case("auto") {
            Parser::new(&parse, NaiveDate::default())
                .with_context(|| format!("format {:?}", parse.format))?;
        }
        let gold = settings.gold_for(source);
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
        Ok(Self {
            parse,
            session_key,
            gold,
            granularities,
        })
    }

    pub fn has(&self, granularity: Granularity) -> bool {
        self.granularities.contains(&granularity)
    }
}
