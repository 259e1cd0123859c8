use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::RareTemplateError;

/// Also the `[detectors.rare_template]` settings section: keys missing there take these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RareTemplateValidParams {
    pub(crate) max_count: u64,
    pub(crate) min_events: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RareTemplateParams(pub(crate) RareTemplateValidParams);

impl Default for RareTemplateParams {
    fn default() -> Self {
        Self(RareTemplateValidParams {
            max_count: 2,
            min_events: 10_000,
        })
    }
}

impl RareTemplateParams {
    pub fn max_count(mut self, n: u64) -> Self {
        self.0.max_count = n;
        self
    }
    pub fn min_events(mut self, n: u64) -> Self {
        self.0.min_events = n;
        self
    }
}

impl ParamGuard for RareTemplateParams {
    type Checked = RareTemplateValidParams;
    type Error = RareTemplateError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        if self.0.min_events == 0 {
            return Err(RareTemplateError::MinEvents);
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl Default for RareTemplateValidParams {
    fn default() -> Self {
        RareTemplateParams::default().0
    }
}
