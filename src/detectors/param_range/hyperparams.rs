use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::ParamRangeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamRangeValidParams {
    /// Upper quantile of a value's usual range; the lower one is `1 − quantile`.
    pub(crate) quantile: f64,
    /// How far beyond the range, in tail widths (median → quantile), is anomalous.
    pub(crate) threshold: f64,
    /// The narrowest tail width, as a factor: a field that barely moves is out of range at this
    /// multiple (or fraction) of its value.
    pub(crate) min_factor: f64,
    /// A position is a measurement when at least this share of its training values are
    /// numbers.
    pub(crate) min_numeric_share: f64,
    /// ...and takes at least this many distinct values: fewer make a code or an id (a server
    /// id, a status), whose change is not a matter of magnitude.
    pub(crate) min_distinct: usize,
    /// Values kept per position (a uniform sample) to estimate its quantiles.
    pub(crate) sample_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamRangeParams(pub(crate) ParamRangeValidParams);

impl Default for ParamRangeParams {
    fn default() -> Self {
        Self(ParamRangeValidParams {
            quantile: 0.99,
            threshold: 1.5,
            min_factor: 2.0,
            min_numeric_share: 0.9,
            min_distinct: 10,
            sample_size: 20_000,
        })
    }
}

impl ParamRangeParams {
    pub fn quantile(mut self, quantile: f64) -> Self {
        self.0.quantile = quantile;
        self
    }
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.0.threshold = threshold;
        self
    }
    pub fn min_factor(mut self, factor: f64) -> Self {
        self.0.min_factor = factor;
        self
    }
    pub fn min_numeric_share(mut self, share: f64) -> Self {
        self.0.min_numeric_share = share;
        self
    }
    pub fn min_distinct(mut self, n: usize) -> Self {
        self.0.min_distinct = n;
        self
    }
    pub fn sample_size(mut self, n: usize) -> Self {
        self.0.sample_size = n;
        self
    }
}

impl ParamRangeValidParams {
    pub fn quantile(&self) -> f64 {
        self.quantile
    }
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    /// Training values a position needs for its quantile to lie inside the data rather than
    /// at its maximum: 1 / (1 − quantile).
    pub fn min_values(&self) -> u64 {
        crate::detectors::percentile::min_rows_for(self.quantile) as u64
    }
}

impl ParamGuard for ParamRangeParams {
    type Checked = ParamRangeValidParams;
    type Error = ParamRangeError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.quantile.is_nan() || p.quantile <= 0.5 || p.quantile >= 1.0 {
            return Err(ParamRangeError::Quantile(p.quantile));
        }
        if p.threshold.is_nan() || p.threshold <= 0.0 {
            return Err(ParamRangeError::Threshold(p.threshold));
        }
        if p.min_factor.is_nan() || p.min_factor <= 1.0 {
            return Err(ParamRangeError::MinFactor(p.min_factor));
        }
        if p.min_numeric_share.is_nan() || p.min_numeric_share <= 0.0 || p.min_numeric_share > 1.0 {
            return Err(ParamRangeError::NumericShare(p.min_numeric_share));
        }
        Ok(&self.0)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
