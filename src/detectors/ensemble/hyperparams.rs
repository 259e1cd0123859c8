use std::collections::BTreeMap;

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::EnsembleError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleValidParams {
    /// Detector name → weight of its calibrated score. Detectors not named weigh
    /// `default_weight`.
    pub(crate) weights: BTreeMap<String, f64>,
    pub(crate) default_weight: f64,
    /// Detector → the evidence it reads (e.g. `counts`, `order`, `template`). Detectors of
    /// one view are one witness: only the strongest of them counts. A detector not named is
    /// a view of its own.
    #[serde(default)]
    pub(crate) views: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleParams(pub(crate) EnsembleValidParams);

impl Default for EnsembleParams {
    fn default() -> Self {
        Self(EnsembleValidParams {
            weights: BTreeMap::new(),
            default_weight: 1.0,
            views: BTreeMap::new(),
        })
    }
}

impl EnsembleParams {
    pub fn weight(mut self, detector: &str, weight: f64) -> Self {
        self.0.weights.insert(detector.to_string(), weight);
        self
    }
    pub fn weights(mut self, weights: &BTreeMap<String, f64>) -> Self {
        self.0
            .weights
            .extend(weights.iter().map(|(k, v)| (k.clone(), *v)));
        self
    }
    pub fn view(mut self, detector: &str, view: &str) -> Self {
        self.0.views.insert(detector.to_string(), view.to_string());
        self
    }
    pub fn views(mut self, views: &BTreeMap<String, String>) -> Self {
        self.0
            .views
            .extend(views.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }
    pub fn default_weight(mut self, weight: f64) -> Self {
        self.0.default_weight = weight;
        self
    }
}

impl ParamGuard for EnsembleParams {
    type Checked = EnsembleValidParams;
    type Error = EnsembleError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        let named = p.weights.iter().map(|(k, v)| (k.as_str(), *v));
        for (detector, weight) in named.chain([("default_weight", p.default_weight)]) {
            if !weight.is_finite() || weight < 0.0 {
                return Err(EnsembleError::Weight {
                    detector: detector.to_string(),
                    weight,
                });
            }
        }
        if p.default_weight == 0.0 && p.weights.values().all(|w| *w == 0.0) {
            return Err(EnsembleError::AllZero);
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
