use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::InvariantsError;

/// Also the `[detectors.invariants]` settings section: keys missing there take these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvariantsValidParams {
    /// Share of the sessions having either event in which a relation must hold to be an
    /// invariant.
    pub(crate) min_support: f64,
    /// Only templates present in at least this share of sessions take part in invariants:
    /// a relation between two rare events rests on too few sessions to trust.
    pub(crate) min_frequency: f64,
    /// Largest p and q tried in `p × count(a) = q × count(b)`.
    pub(crate) max_ratio: u32,
    /// A template present in at most this share of training sessions is rare.
    pub(crate) rare_share: f64,
    pub(crate) min_sessions: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvariantsParams(pub(crate) InvariantsValidParams);

impl Default for InvariantsParams {
    fn default() -> Self {
        Self(InvariantsValidParams {
            min_support: 0.9,
            min_frequency: 0.05,
            max_ratio: 3,
            rare_share: 0.01,
            min_sessions: 1000,
        })
    }
}

impl InvariantsParams {
    pub fn min_support(mut self, v: f64) -> Self {
        self.0.min_support = v;
        self
    }
    pub fn min_frequency(mut self, v: f64) -> Self {
        self.0.min_frequency = v;
        self
    }
    pub fn max_ratio(mut self, v: u32) -> Self {
        self.0.max_ratio = v;
        self
    }
    pub fn rare_share(mut self, v: f64) -> Self {
        self.0.rare_share = v;
        self
    }
    pub fn min_sessions(mut self, v: u64) -> Self {
        self.0.min_sessions = v;
        self
    }
}

impl ParamGuard for InvariantsParams {
    type Checked = InvariantsValidParams;
    type Error = InvariantsError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        for (name, value) in [
            ("min_support", p.min_support),
            ("min_frequency", p.min_frequency),
            ("rare_share", p.rare_share),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(InvariantsError::Share { name, value });
            }
        }
        if p.max_ratio < 1 {
            return Err(InvariantsError::MaxRatio(p.max_ratio));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl Default for InvariantsValidParams {
    fn default() -> Self {
        InvariantsParams::default().0
    }
}
