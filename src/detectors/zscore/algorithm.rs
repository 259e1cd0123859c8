use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array2, ArrayBase, Data, Ix2};
use serde::{Deserialize, Serialize};

use super::ZScoreError;
use super::hyperparams::{ZScoreParams, ZScoreValidParams};
use crate::detectors::baseline::{FeatureBaseline, anscombe};
use crate::detectors::robust::{median_and_mad, median_and_spread};

/// Fitted baselines; `predict` gives the z matrix (rows × features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    pub baselines: Vec<FeatureBaseline>,
    params: ZScoreValidParams,
}

impl ZScore {
    pub fn params() -> ZScoreParams {
        ZScoreParams::default()
    }

    pub fn threshold(&self) -> f64 {
        self.params.threshold
    }

    pub fn hyperparams(&self) -> &ZScoreValidParams {
        &self.params
    }
}

impl crate::detectors::grouped::AcceptsRow for ZScore {
    /// Every feature of `row` at or beyond the threshold widens its baseline (see
    /// [`FeatureBaseline::accept`]).
    fn accept_row(&mut self, row: &[f64]) -> bool {
        let threshold = self.params.threshold;
        let mut changed = false;
        for (b, x) in self.baselines.iter_mut().zip(row) {
            changed |= b.accept(*x, threshold);
        }
        changed
    }
}

impl ZScoreValidParams {
    /// Median and 1.4826·MAD when robust, else mean and sample standard deviation, of a
    /// non-empty column (reordered in place by the median).
    fn center_and_scale(&self, values: &mut [f64]) -> (f64, f64) {
        if self.robust {
            return median_and_spread(values);
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / (values.len() - 1).max(1) as f64;
        (mean, var.sqrt())
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, ZScoreError> for ZScoreValidParams {
    type Object = ZScore;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<ZScore, ZScoreError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < 2 {
            return Err(ZScoreError::NotEnoughRows(n));
        }
        if !self.count_features.is_empty() && self.count_features.len() != x.ncols() {
            return Err(ZScoreError::CountFeatures {
                got: self.count_features.len(),
                expected: x.ncols(),
            });
        }
        let baselines = x
            .columns()
            .into_iter()
            .enumerate()
            .map(|(j, col)| {
                let mut values: Vec<f64> = col.iter().copied().filter(|v| v.is_finite()).collect();
                let is_count = self.count_features.get(j).copied().unwrap_or(false);
                // Counts have a noise floor of their own (Poisson: √mean, or 1 on Anscombe's
                // scale). For them a zero MAD — a count that is almost always the same — keeps
                // that floor: the mean-deviation fallback would let the few windows that
                // differ, the bursts to be found, set the spread.
                let robust_count = is_count && self.robust;
                let (center, mut scale) = if values.is_empty() {
                    (0.0, 1.0)
                } else if robust_count {
                    median_and_mad(&mut values)
                } else {
                    self.center_and_scale(&mut values)
                };
                let stabilized = if is_count && !values.is_empty() {
                    scale = scale.max(center.max(1.0).sqrt());
                    let mut a: Vec<f64> = values.iter().map(|v| anscombe(*v)).collect();
                    let (ca, sa) = if robust_count {
                        median_and_mad(&mut a)
                    } else {
                        self.center_and_scale(&mut a)
                    };
                    // Poisson noise alone has spread 1 on this scale.
                    Some((ca, if sa.is_nan() { 1.0 } else { sa.max(1.0) }))
                } else {
                    None
                };
                // A constant feature: any change is notable, but not infinitely so.
                if scale.is_nan() || scale <= 1e-9 {
                    scale = (center.abs() * 1e-3).max(1e-6);
                }
                FeatureBaseline {
                    center,
                    scale,
                    stabilized,
                }
            })
            .collect();
        Ok(ZScore {
            baselines,
            params: self.clone(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for ZScore {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        assert_eq!(
            x.ncols(),
            self.baselines.len(),
            "z-score fitted on {} features, got {}",
            self.baselines.len(),
            x.ncols()
        );
        *y = Array2::from_shape_fn(x.dim(), |(i, j)| self.baselines[j].z(x[[i, j]]));
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros(x.dim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;
    use linfa::traits::Predict;
    use ndarray::array;

    #[test]
    fn a_value_marked_normal_widens_its_baseline_just_enough() {
        use crate::detectors::grouped::AcceptsRow as _;
        let x = array![
            [100.0, 5.0],
            [104.0, 5.0],
            [96.0, 6.0],
            [100.0, 4.0],
            [108.0, 5.0],
            [92.0, 5.0]
        ];
        let mut counts = ZScore::params()
            .count_features(vec![true, false])
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let t = counts.threshold();
        // A burst (300 lines where 100 are usual), a drop to none, and a plain-scale outlier.
        for (j, v) in [(0, 300.0), (0, 0.0), (1, 40.0)] {
            let mut m = counts.clone();
            assert!(m.baselines[j].z(v).abs() >= t);
            let mut row = vec![100.0, 5.0];
            row[j] = v;
            assert!(
                m.accept_row(&row),
                "{v} was flagged, so the baseline changes"
            );
            let z = m.baselines[j].z(v);
            assert!(z.abs() < t && z.abs() > 0.99 * t, "just inside: z = {z}");
            // Further out than the marked value is still anomalous; the other feature is as
            // it was; accepting again changes nothing.
            if v > 0.0 {
                assert!(m.baselines[j].z(v * 1.5).abs() >= t);
            }
            assert_eq!(m.baselines[1 - j], counts.baselines[1 - j]);
            assert!(!m.accept_row(&row));
        }
        // A row inside every baseline teaches nothing.
        assert!(!counts.accept_row(&[100.0, 5.0]));
    }

    #[test]
    fn robust_baseline_ignores_a_burst_in_training() {
        // 9 normal windows and one burst: the median/MAD baseline stays at the normal level,
        // so the burst keeps a large z, while mean/std is dragged towards it.
        let x = array![
            [10.0],
            [11.0],
            [9.0],
            [10.0],
            [12.0],
            [8.0],
            [10.0],
            [11.0],
            [9.0],
            [200.0]
        ];
        let robust = ZScore::params().fit(&DatasetBase::from(x.clone())).unwrap();
        assert_eq!(robust.baselines[0].center, 10.0);
        // MAD of |x − 10| = [0,1,1,0,2,2,0,1,1,190] → median 1 → scale 1.4826.
        assert!((robust.baselines[0].scale - 1.4826).abs() < 1e-12);
        let z = robust.predict(&x);
        assert!(z[[9, 0]] > 100.0);

        let classic = ZScore::params()
            .robust(false)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let zc = classic.predict(&x);
        assert!(
            zc[[9, 0]] < 3.0,
            "mean/std hides the burst: z = {}",
            zc[[9, 0]]
        );
    }

    #[test]
    fn drops_to_zero_are_judged_by_the_exact_poisson_tail() {
        let baseline = |mean: f64, spread: f64| FeatureBaseline {
            center: mean,
            scale: mean.sqrt(),
            stabilized: Some((anscombe(mean), spread)),
        };
        // Ten a window, none: e⁻¹⁰, 3.9 sd — not the 5.2 of Anscombe's scale.
        let z = baseline(10.0, 1.0).z(0.0);
        assert!((z + 3.91).abs() < 0.01, "{z}");
        // Forty lines in clumps of four (ten requests), none: the same 3.9, not 5.7.
        let z = baseline(40.0, 2.0).z(0.0);
        assert!((z + 3.91).abs() < 0.01, "{z}");
        // A thousand, none: an outage, far past any threshold.
        assert!(baseline(1000.0, 1.0).z(0.0) < -50.0);
        // Above the baseline nothing changes.
        let b = baseline(10.0, 1.0);
        assert_eq!(b.z(30.0), (anscombe(30.0) - anscombe(10.0)) / 1.0);
    }

    #[test]
    fn count_features_get_a_poisson_floor() {
        // Errors per window: almost always 0. Without the floor, 2 errors would be z ≈ 20.
        let mut rows = vec![0.0; 99];
        rows.push(2.0);
        let x = Array2::from_shape_vec((100, 1), rows).unwrap();
        let model = ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let z = model.predict(&array![[2.0], [40.0]]);
        assert!(z[[0, 0]] < model.threshold());
        assert!(z[[1, 0]] > model.threshold());
    }

    #[test]
    fn small_counts_are_judged_by_their_skewed_noise() {
        // Usually 1 (Poisson-like 0–3): 6 is a 1-in-1,700 chance event, not a 5σ one; 30 is.
        let rows: Vec<f64> = (0..200).map(|i| [0.0, 1.0, 1.0, 2.0, 1.0][i % 5]).collect();
        let x = Array2::from_shape_vec((200, 1), rows).unwrap();
        let model = ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x))
            .unwrap();
        let z = model.predict(&array![[6.0], [30.0]]);
        assert!(z[[0, 0]] < 3.0, "z = {}", z[[0, 0]]);
        assert!(z[[1, 0]] > model.threshold(), "z = {}", z[[1, 0]]);
    }

    #[test]
    fn a_burst_in_a_third_of_a_small_training_group_still_stands_out() {
        // One day of history for one hour of one service: 8 quiet windows and the 4 windows
        // of the burst itself. The MAD is 0; the count's Poisson floor, not the burst, sets
        // the spread.
        let mut rows = vec![0.0; 8];
        rows.extend([30.0; 4]);
        let x = Array2::from_shape_vec((12, 1), rows).unwrap();
        let model = ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x))
            .unwrap();
        assert_eq!(
            model.baselines[0].scale, 1.0,
            "raw spread: the Poisson floor √1"
        );
        let z = model.predict(&array![[30.0], [2.0]]);
        assert!(z[[0, 0]] > model.threshold(), "z = {}", z[[0, 0]]);
        assert!(z[[1, 0]] < model.threshold(), "z = {}", z[[1, 0]]);
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(ZScore::params().threshold(0.0).check().is_err());
        let x = array![[1.0, 2.0], [2.0, 3.0]];
        let r: Result<ZScore, ZScoreError> = ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x));
        assert!(matches!(r, Err(ZScoreError::CountFeatures { .. })));
    }
}
