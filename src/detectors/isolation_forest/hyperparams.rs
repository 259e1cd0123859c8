use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::IsolationForestError;

/// How the anomaly threshold is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Contamination {
    /// scikit-learn's `contamination="auto"`: anomalous when the score exceeds 0.5.
    Auto,
    /// The expected fraction of anomalies: the threshold is that upper quantile of the
    /// training scores.
    Fraction(f64),
}

impl std::str::FromStr for Contamination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Contamination::Auto);
        }
        s.trim()
            .parse::<f64>()
            .map(Contamination::Fraction)
            .map_err(|_| {
                format!("contamination must be \"auto\" or a fraction such as 0.01, got {s:?}")
            })
    }
}

/// Checked hyperparameters (what `fit` uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestValidParams {
    pub(crate) n_trees: usize,
    pub(crate) max_samples: usize,
    pub(crate) contamination: Contamination,
    pub(crate) seed: u64,
}

/// Hyperparameters as the user sets them; `check` validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestParams(pub(crate) IsolationForestValidParams);

impl Default for IsolationForestParams {
    fn default() -> Self {
        // scikit-learn's defaults: 100 trees, ψ = min(256, n), contamination "auto".
        Self(IsolationForestValidParams {
            n_trees: 100,
            max_samples: 256,
            contamination: Contamination::Auto,
            // The one default seed: `[detectors.isolation_forest] seed` defaults to this.
            seed: 42,
        })
    }
}

impl IsolationForestParams {
    pub fn n_trees(mut self, n: usize) -> Self {
        self.0.n_trees = n;
        self
    }
    pub fn max_samples(mut self, n: usize) -> Self {
        self.0.max_samples = n;
        self
    }
    pub fn contamination(mut self, c: Contamination) -> Self {
        self.0.contamination = c;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
}

impl IsolationForestValidParams {
    pub fn n_trees(&self) -> usize {
        self.n_trees
    }
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }
    pub fn contamination(&self) -> Contamination {
        self.contamination
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl ParamGuard for IsolationForestParams {
    type Checked = IsolationForestValidParams;
    type Error = IsolationForestError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.n_trees == 0 {
            return Err(IsolationForestError::NoTrees(p.n_trees));
        }
        if p.max_samples < 2 {
            return Err(IsolationForestError::TooFewSamples(p.max_samples));
        }
        if let Contamination::Fraction(c) = p.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(IsolationForestError::Contamination(c));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
