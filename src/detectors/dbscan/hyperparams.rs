use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::DbscanError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbscanValidParams {
    pub(crate) min_points: usize,
    pub(crate) eps: f64,
    pub(crate) min_cluster_share: f64,
    pub(crate) max_points: usize,
    pub(crate) log_counts: bool,
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DbscanParams(pub(crate) DbscanValidParams);

impl Default for DbscanParams {
    fn default() -> Self {
        Self(DbscanValidParams {
            min_points: 20,
            eps: 1.0,
            min_cluster_share: 1e-3,
            max_points: 4000,
            log_counts: true,
            seed: 42,
        })
    }
}

impl DbscanParams {
    pub fn min_points(mut self, n: usize) -> Self {
        self.0.min_points = n;
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.0.eps = eps;
        self
    }
    pub fn min_cluster_share(mut self, share: f64) -> Self {
        self.0.min_cluster_share = share;
        self
    }
    pub fn max_points(mut self, n: usize) -> Self {
        self.0.max_points = n;
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

impl ParamGuard for DbscanParams {
    type Checked = DbscanValidParams;
    type Error = DbscanError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.min_points < 2 {
            return Err(DbscanError::MinPoints(p.min_points));
        }
        if p.eps.is_nan() || p.eps <= 0.0 {
            return Err(DbscanError::Eps(p.eps));
        }
        if !(p.min_cluster_share > 0.0 && p.min_cluster_share < 1.0) {
            return Err(DbscanError::Share(p.min_cluster_share));
        }
        if p.max_points < 2 {
            return Err(DbscanError::MaxPoints(p.max_points));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
