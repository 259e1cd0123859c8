use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::ZScoreError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZScoreValidParams {
    pub(crate) robust: bool,
    pub(crate) threshold: f64,
    /// Which features are counts (Poisson floor on their scale); empty means none.
    pub(crate) count_features: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZScoreParams(pub(crate) ZScoreValidParams);

impl Default for ZScoreParams {
    fn default() -> Self {
        Self(ZScoreValidParams {
            robust: true,
            threshold: 5.0,
            count_features: Vec::new(),
        })
    }
}

impl ZScoreParams {
    pub fn robust(mut self, robust: bool) -> Self {
        self.0.robust = robust;
        self
    }
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.0.threshold = threshold;
        self
    }
    pub fn count_features(mut self, counts: Vec<bool>) -> Self {
        self.0.count_features = counts;
        self
    }
}

impl ZScoreValidParams {
    pub fn robust(&self) -> bool {
        self.robust
    }
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
}

impl ParamGuard for ZScoreParams {
    type Checked = ZScoreValidParams;
    type Error = ZScoreError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        if self.0.threshold.is_nan() || self.0.threshold <= 0.0 {
            return Err(ZScoreError::Threshold(self.0.threshold));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
