use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::OneClassSvmError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvmValidParams {
    pub(crate) nu: f64,
    /// k(x, y) = exp(−gamma·‖x − y‖²); 0: 1 / (features × the sample's variance), as
    /// scikit-learn's `gamma = "scale"`.
    pub(crate) gamma: f64,
    pub(crate) max_samples: usize,
    pub(crate) log_counts: bool,
    pub(crate) seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OneClassSvmParams(pub(crate) OneClassSvmValidParams);

impl Default for OneClassSvmParams {
    fn default() -> Self {
        Self(OneClassSvmValidParams {
            nu: 0.05,
            gamma: 0.0,
            max_samples: 2000,
            log_counts: true,
            seed: 42,
        })
    }
}

impl OneClassSvmParams {
    pub fn nu(mut self, nu: f64) -> Self {
        self.0.nu = nu;
        self
    }
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.0.gamma = gamma;
        self
    }
    pub fn max_samples(mut self, n: usize) -> Self {
        self.0.max_samples = n;
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

impl ParamGuard for OneClassSvmParams {
    type Checked = OneClassSvmValidParams;
    type Error = OneClassSvmError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        if !(p.nu > 0.0 && p.nu < 1.0) {
            return Err(OneClassSvmError::Nu(p.nu));
        }
        if p.gamma.is_nan() || p.gamma < 0.0 {
            return Err(OneClassSvmError::Gamma(p.gamma));
        }
        // The solver's kernel matrix is max_samples² numbers.
        if !(2..=20_000).contains(&p.max_samples) {
            return Err(OneClassSvmError::MaxSamples(p.max_samples));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}
