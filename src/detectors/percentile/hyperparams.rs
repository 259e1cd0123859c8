use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::PercentileError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileValidParams {
    /// Upper quantile of the usual range; the lower one is `1 − quantile`.
    pub(crate) quantile: f64,
    /// How far beyond the range, in tail widths (median → quantile), is anomalous.
    pub(crate) threshold: f64,
    /// Which features are counts (Poisson floor on the tail width); empty means none.
    pub(crate) count_features: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PercentileParams(pub(crate) PercentileValidParams);

impl Default for PercentileParams {
    fn default() -> Self {
        Self(PercentileValidParams {
            quantile: 0.99,
            threshold: 1.0,
            count_features: Vec::new(),
        })
    }
}

impl PercentileParams {
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.0.quantile = quantile;
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

impl PercentileValidParams {
    pub fn quantile(&self) -> f64 {
        self.quantile
    }
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    /// Training rows a group needs for its quantile to lie inside the data rather than at
    /// its maximum.
    pub fn min_rows(&self) -> usize {
        min_rows_for(self.quantile)
    }
}

/// Training rows a `quantile` needs to lie inside the data rather than at its maximum:
/// 1 / (1 − quantile), 100 for the 99th percentile.
pub fn min_rows_for(quantile: f64) -> usize {
    (1.0 / (1.0 - quantile)).round().max(2.0) as usize
}

impl ParamGuard for PercentileParams {
    type Checked = PercentileValidParams;
    type Error = PercentileError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let q = self.0.quantile;
        if q.is_nan() || q <= 0.5 || q >= 1.0 {
            return Err(PercentileError::Quantile(q));
        }
        if self.0.threshold.is_nan() || self.0.threshold <= 0.0 {
            return Err(PercentileError::Threshold(self.0.threshold));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
