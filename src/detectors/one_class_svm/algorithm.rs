use linfa::ParamGuard;
use linfa::dataset::{DatasetBase, Pr, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use super::OneClassSvmError;
use super::hyperparams::{OneClassSvmParams, OneClassSvmValidParams};
use crate::detectors::distinct_rows::scaled;

/// How far past the boundary a row must be to be outside: the SMO solver's default stopping
/// tolerance.
const BOUNDARY_TOLERANCE: f64 = 1e-3;

/// The score given to a row no support vector reaches (its kernel sum is 0).
const FAR: f64 = 1e6;

/// A fitted one-class SVM: its support vectors (on the scale it compares rows on), their
/// weights, the offset ρ and the kernel's gamma, and the rows operators marked normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    support: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    rho: f64,
    gamma: f64,
    /// Rows operators marked normal: each counts as a support vector weighing 2ρ, so that it
    /// scores ½ and rows near it inside the boundary.
    accepted: Vec<Vec<f64>>,
    /// Training rows the solver saw.
    trained_on: usize,
    params: OneClassSvmValidParams,
}

impl OneClassSvm {
    pub fn params() -> OneClassSvmParams {
        OneClassSvmParams::default()
    }

    /// Where the SVM draws the line: the score is 1 on the boundary, where its margin
    /// support vectors lie (repeated rows put whole groups of training rows there), so the
    /// line is drawn just past it, at the solver's tolerance.
    pub fn threshold(&self) -> f64 {
        1.0 + BOUNDARY_TOLERANCE
    }

    pub fn support_vectors(&self) -> usize {
        self.support.len()
    }

    pub fn trained_on(&self) -> usize {
        self.trained_on
    }

    fn kernel(&self, a: &[f64], b: &[f64]) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        (-self.gamma * d).exp()
    }

    /// ρ / Σᵢ αᵢ·k(xᵢ, row): at most 1 inside the region, more outside it.
    pub fn score(&self, row: ArrayView1<f64>) -> f64 {
        let x = scaled(row, self.params.log_counts);
        let mut sum: f64 = self
            .support
            .iter()
            .zip(&self.alpha)
            .map(|(s, a)| a * self.kernel(s, &x))
            .sum();
        sum += self
            .accepted
            .iter()
            .map(|a| 2.0 * self.rho * self.kernel(a, &x))
            .sum::<f64>();
        if sum > self.rho / FAR {
            self.rho / sum
        } else {
            FAR
        }
    }

    /// Learn an operator's "normal" verdict on `row` (see [`OneClassSvm::accepted`]).
    /// Whether anything changed.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        if self.score(row) < self.threshold() {
            return false;
        }
        self.accepted.push(scaled(row, self.params.log_counts));
        true
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, OneClassSvmError>
    for OneClassSvmValidParams
{
    type Object = OneClassSvm;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<OneClassSvm, OneClassSvmError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < 2 {
            return Err(OneClassSvmError::NotEnoughRows(n));
        }
        // A seeded sample of rows, repeats kept, in their order.
        let mut rows: Vec<usize> = if n > self.max_samples {
            let mut rng = Xoshiro256Plus::seed_from_u64(self.seed);
            rand::seq::index::sample(&mut rng, n, self.max_samples).into_vec()
        } else {
            (0..n).collect()
        };
        rows.sort_unstable();
        let d = x.ncols();
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|&i| scaled(x.row(i), self.log_counts))
            .collect();
        let gamma = if self.gamma > 0.0 {
            self.gamma
        } else {
            let m = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / m;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
            1.0 / (d.max(1) as f64 * if var > 0.0 { var } else { 1.0 })
        };
        let records = Array2::from_shape_vec((rows.len(), d), values).expect("rows of d features");
        let svm = linfa_svm::Svm::<f64, Pr>::params()
            .nu_weight(self.nu)
            .gaussian_kernel(1.0 / gamma)
            .check()?
            .fit(&DatasetBase::from(records.clone()))?;
        // linfa-svm keeps the support vectors in training order, the rows whose weight is
        // not zero (as its `nsupport` counts them).
        let (mut support, mut alpha) = (Vec::new(), Vec::new());
        for (i, a) in svm.alpha.iter().enumerate() {
            if a.abs() > 100.0 * f64::EPSILON {
                support.push(records.row(i).to_vec());
                alpha.push(*a);
            }
        }
        Ok(OneClassSvm {
            support,
            alpha,
            rho: svm.rho,
            gamma,
            accepted: Vec::new(),
            trained_on: rows.len(),
            params: self.clone(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for OneClassSvm {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        *y = x.rows().into_iter().map(|r| self.score(r)).collect();
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl OneClassSvmParams {
    pub fn fit_matrix(&self, x: &Array2<f64>) -> Result<OneClassSvm, OneClassSvmError> {
        self.check_ref()?.fit(&DatasetBase::from(x.view()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::traits::Predict;

    /// 1,500 sessions of two behaviours with a little spread, then one far from both and one
    /// inside the first.
    fn sessions() -> Array2<f64> {
        let mut rows: Vec<[f64; 3]> = Vec::new();
        for i in 0..1500u32 {
            let k = f64::from(1 + i % 3);
            rows.push(if i % 2 == 0 {
                [1.0, k, 0.0]
            } else {
                [1.0, 0.0, 2.0 * k]
            });
        }
        rows.push([1.0, 20.0, 30.0]);
        rows.push([1.0, 2.0, 0.0]);
        Array2::from_shape_vec((rows.len(), 3), rows.concat()).unwrap()
    }

    #[test]
    fn a_row_outside_the_training_region_scores_past_the_boundary() {
        let x = sessions();
        let model = OneClassSvm::params().fit_matrix(&x).unwrap();
        let scores = model.predict(&x);
        assert!(scores[1500] > 2.0, "{}", scores[1500]);
        assert!(scores[1501] < 1.0, "{}", scores[1501]);
        // About nu of the training rows lie outside (at most a few times nu).
        let outside = (0..1500)
            .filter(|&i| scores[i] >= model.threshold())
            .count();
        assert!(outside <= 1500 / 20 * 3, "{outside}");
        assert!(model.support_vectors() > 0);
    }

    #[test]
    fn a_sample_bounds_training_and_the_model_survives_saving() {
        let x = sessions();
        let mut model = OneClassSvm::params()
            .max_samples(300)
            .fit_matrix(&x)
            .unwrap();
        assert_eq!(model.trained_on(), 300);
        assert!(model.accept_row(x.row(1500)));
        assert!(!model.accept_row(x.row(1500)), "once");
        assert!(model.score(x.row(1500)) < model.threshold());
        let saved: OneClassSvm =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
        let again = OneClassSvm::params()
            .max_samples(300)
            .fit_matrix(&x)
            .unwrap();
        assert_eq!(again.support, model.support, "seeded");
    }

    #[test]
    fn invalid_params_are_rejected() {
        let p = OneClassSvm::params;
        assert!(p().nu(0.0).check().is_err());
        assert!(p().nu(1.0).check().is_err());
        assert!(p().gamma(-1.0).check().is_err());
        assert!(p().max_samples(1).check().is_err());
        assert!(p().max_samples(50_000).check().is_err());
        assert!(p().check().is_ok());
        assert!(matches!(
            p().fit_matrix(&Array2::zeros((1, 3))),
            Err(OneClassSvmError::NotEnoughRows(1))
        ));
    }
}
