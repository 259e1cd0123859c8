use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::LofError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LofValidParams {
    pub(crate) n_neighbors: usize,
    pub(crate) max_points: usize,
    pub(crate) quantile: f64,
    pub(crate) min_score: f64,
    pub(crate) resolution: f64,
    pub(crate) log_counts: bool,
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LofParams(pub(crate) LofValidParams);

impl Default for LofParams {
    fn default() -> Self {
        Self(LofValidParams {
            n_neighbors: 20,
            max_points: 4000,
            quantile: 0.97,
            min_score: 1.5,
            resolution: 0.5 * std::f64::consts::LN_2,
            log_counts: true,
            seed: 42,
        })
    }
}

impl LofParams {
    pub fn n_neighbors(mut self, k: usize) -> Self {
        self.0.n_neighbors = k;
        self
    }
    pub fn max_points(mut self, n: usize) -> Self {
        self.0.max_points = n;
        self
    }
    pub fn quantile(mut self, q: f64) -> Self {
        self.0.quantile = q;
        self
    }
    pub fn min_score(mut self, s: f64) -> Self {
        self.0.min_score = s;
        self
    }
    pub fn resolution(mut self, r: f64) -> Self {
        self.0.resolution = r;
        self
    }
    pub fn log_counts(mut self, on: bool) -> Self {
        self.0.log_counts = on;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl ParamGuard for LofParams {
    type Checked = LofValidParams;
    type Error = LofError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.n_neighbors == 0 {
            return Err(LofError::Neighbors(p.n_neighbors));
        }
        if p.max_points < 2 {
            return Err(LofError::MaxPoints(p.max_points));
        }
        if !(p.quantile > 0.0 && p.quantile <= 1.0) {
            return Err(LofError::Quantile(p.quantile));
        }
        if p.min_score.is_nan() || p.min_score < 1.0 {
            return Err(LofError::MinScore(p.min_score));
        }
        if p.resolution.is_nan() || p.resolution <= 0.0 {
            return Err(LofError::Resolution(p.resolution));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
