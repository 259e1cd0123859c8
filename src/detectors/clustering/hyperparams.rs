use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::ClusteringError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringValidParams {
    pub(crate) n_clusters: usize,
    pub(crate) min_cluster_share: f64,
    pub(crate) distance_threshold: f64,
    pub(crate) max_iterations: u64,
    pub(crate) seed: u64,
    /// Rows are compared as ln(1 + count). Models saved before this existed used raw counts.
    #[serde(default)]
    pub(crate) log_counts: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringParams(pub(crate) ClusteringValidParams);

impl Default for ClusteringParams {
    fn default() -> Self {
        Self(ClusteringValidParams {
            n_clusters: 16,
            min_cluster_share: 1e-3,
            distance_threshold: 5.0,
            max_iterations: 100,
            seed: 42,
            log_counts: true,
        })
    }
}

impl ClusteringParams {
    pub fn n_clusters(mut self, k: usize) -> Self {
        self.0.n_clusters = k;
        self
    }
    pub fn min_cluster_share(mut self, share: f64) -> Self {
        self.0.min_cluster_share = share;
        self
    }
    pub fn distance_threshold(mut self, z: f64) -> Self {
        self.0.distance_threshold = z;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    pub fn log_counts(mut self, on: bool) -> Self {
        self.0.log_counts = on;
        self
    }
}

impl ParamGuard for ClusteringParams {
    type Checked = ClusteringValidParams;
    type Error = ClusteringError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.n_clusters == 0 {
            return Err(ClusteringError::NoClusters);
        }
        if !(p.min_cluster_share > 0.0 && p.min_cluster_share < 1.0) {
            return Err(ClusteringError::Share(p.min_cluster_share));
        }
        if p.distance_threshold.is_nan() || p.distance_threshold <= 0.0 {
            return Err(ClusteringError::Threshold(p.distance_threshold));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
