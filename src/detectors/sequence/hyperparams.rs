use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::SequenceError;

/// Also the `[detectors.sequence]` settings section: keys missing there take these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceValidParams {
    pub(crate) max_sessions: u64,
    pub(crate) max_rate: f64,
    pub(crate) min_sessions: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceParams(pub(crate) SequenceValidParams);

impl Default for SequenceParams {
    fn default() -> Self {
        Self(SequenceValidParams {
            max_sessions: 2,
            max_rate: 1e-4,
            min_sessions: 1000,
        })
    }
}

impl SequenceParams {
    pub fn max_sessions(mut self, n: u64) -> Self {
        self.0.max_sessions = n;
        self
    }
    pub fn max_rate(mut self, r: f64) -> Self {
        self.0.max_rate = r;
        self
    }
    pub fn min_sessions(mut self, n: u64) -> Self {
        self.0.min_sessions = n;
        self
    }
}

impl ParamGuard for SequenceParams {
    type Checked = SequenceValidParams;
    type Error = SequenceError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        if !(0.0..1.0).contains(&self.0.max_rate) {
            return Err(SequenceError::MaxRate(self.0.max_rate));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl Default for SequenceValidParams {
    fn default() -> Self {
        SequenceParams::default().0
    }
}
