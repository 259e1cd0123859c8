use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::AutoencoderError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderValidParams {
    /// Width of the layers around the middle one (0: none, the input goes straight to it).
    pub(crate) hidden: usize,
    pub(crate) bottleneck: usize,
    pub(crate) epochs: usize,
    pub(crate) learning_rate: f64,
    pub(crate) max_points: usize,
    pub(crate) quantile: f64,
    pub(crate) min_error: f64,
    pub(crate) min_scale: f64,
    pub(crate) count_weight: f64,
    pub(crate) log_counts: bool,
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AutoencoderParams(pub(crate) AutoencoderValidParams);

impl Default for AutoencoderParams {
    fn default() -> Self {
        Self(AutoencoderValidParams {
            hidden: 32,
            bottleneck: 8,
            epochs: 400,
            learning_rate: 0.01,
            max_points: 2000,
            quantile: 0.97,
            min_error: 0.01,
            min_scale: 0.25,
            count_weight: 1.0,
            log_counts: true,
            seed: 42,
        })
    }
}

impl AutoencoderParams {
    pub fn hidden(mut self, n: usize) -> Self {
        self.0.hidden = n;
        self
    }
    pub fn bottleneck(mut self, n: usize) -> Self {
        self.0.bottleneck = n;
        self
    }
    pub fn epochs(mut self, n: usize) -> Self {
        self.0.epochs = n;
        self
    }
    pub fn learning_rate(mut self, r: f64) -> Self {
        self.0.learning_rate = r;
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
    pub fn min_error(mut self, e: f64) -> Self {
        self.0.min_error = e;
        self
    }
    pub fn min_scale(mut self, s: f64) -> Self {
        self.0.min_scale = s;
        self
    }
    pub fn count_weight(mut self, w: f64) -> Self {
        self.0.count_weight = w;
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

impl ParamGuard for AutoencoderParams {
    type Checked = AutoencoderValidParams;
    type Error = AutoencoderError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if p.bottleneck == 0 {
            return Err(AutoencoderError::Bottleneck(p.bottleneck));
        }
        if !(1..=100_000).contains(&p.epochs) {
            return Err(AutoencoderError::Epochs(p.epochs));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(AutoencoderError::LearningRate(p.learning_rate));
        }
        if p.max_points < 2 {
            return Err(AutoencoderError::MaxPoints(p.max_points));
        }
        if !(p.quantile > 0.0 && p.quantile <= 1.0) {
            return Err(AutoencoderError::Quantile(p.quantile));
        }
        if p.min_error.is_nan() || p.min_error <= 0.0 {
            return Err(AutoencoderError::MinError(p.min_error));
        }
        if p.min_scale.is_nan() || p.min_scale <= 0.0 {
            return Err(AutoencoderError::MinScale(p.min_scale));
        }
        if !(0.0..=1.0).contains(&p.count_weight) {
            return Err(AutoencoderError::CountWeight(p.count_weight));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
