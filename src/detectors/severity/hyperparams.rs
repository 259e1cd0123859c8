use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::SeverityError;
use crate::parse::LEVELS;

/// Also the `[detectors.severity]` settings section: keys missing there take these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeverityValidParams {
    /// Lines at this normalised level or above are judged.
    #[serde(deserialize_with = "crate::detectors::settings::text")]
    pub(crate) min_level: String,
    /// A template logged at a line's level or above at most this many times is not routine...
    pub(crate) max_count: u64,
    /// ...nor one logged so in at most this share of its training occurrences.
    pub(crate) max_share: f64,
    pub(crate) min_events: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeverityParams(pub(crate) SeverityValidParams);

impl Default for SeverityParams {
    fn default() -> Self {
        Self(SeverityValidParams {
            min_level: "ERROR".into(),
            max_count: 2,
            max_share: 0.01,
            min_events: 10_000,
        })
    }
}

impl SeverityParams {
    pub fn min_level(mut self, level: &str) -> Self {
        self.0.min_level = level.to_ascii_uppercase();
        self
    }
    pub fn max_count(mut self, n: u64) -> Self {
        self.0.max_count = n;
        self
    }
    pub fn max_share(mut self, share: f64) -> Self {
        self.0.max_share = share;
        self
    }
    pub fn min_events(mut self, n: u64) -> Self {
        self.0.min_events = n;
        self
    }
}

/// Position of a normalised level in [`LEVELS`] (TRACE = 0 … FATAL = 6); unknown levels
/// rank as INFO, which is what the parser maps them to.
pub fn level_rank(level: &str) -> usize {
    LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or_else(|| LEVELS.iter().position(|l| *l == "INFO").unwrap_or(0))
}

impl ParamGuard for SeverityParams {
    type Checked = SeverityValidParams;
    type Error = SeverityError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        if !LEVELS.contains(&self.0.min_level.as_str()) {
            return Err(SeverityError::Level(self.0.min_level.clone()));
        }
        if !(0.0..1.0).contains(&self.0.max_share) {
            return Err(SeverityError::MaxShare(self.0.max_share));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl Default for SeverityValidParams {
    fn default() -> Self {
        SeverityParams::default().0
    }
}
