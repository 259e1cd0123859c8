use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array2, ArrayBase, Data, Ix2};
use serde::{Deserialize, Serialize};

use super::PercentileError;
use super::hyperparams::{PercentileParams, PercentileValidParams};
use crate::detectors::robust::{median, quantile_sorted};

/// A count's narrowest tail width, in Poisson deviations at the quantile.
const POISSON_DEVIATIONS: f64 = 3.0;

/// One feature's usual range in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRange {
    pub median: f64,
    /// The `1 − quantile` and `quantile` quantiles.
    pub low: f64,
    pub high: f64,
    /// Tail widths: median → quantile, floored (see the module documentation).
    pub low_span: f64,
    pub high_span: f64,
    /// The lowest and highest values operators marked normal: the range's edges move out to
    /// them and its tail widths stay as trained, as `param_range`'s do. Kept apart from
    /// `low` and `high`, which reasons quote as the training quantiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<(f64, f64)>,
}

impl FeatureRange {
    fn fit(sorted: &[f64], quantile: f64, is_count: bool) -> Self {
        let med = median(sorted);
        let low = quantile_sorted(sorted, 1.0 - quantile);
        let high = quantile_sorted(sorted, quantile);
        let floor = |level: f64| {
            if is_count {
                POISSON_DEVIATIONS * (level.max(0.0) + 1.0).sqrt()
            } else {
                // A feature constant in training: any change is notable, not infinitely so.
                (med.abs() * 1e-3).max(1e-6)
            }
        };
        FeatureRange {
            median: med,
            low,
            high,
            low_span: (med - low).max(floor(low)),
            high_span: (high - med).max(floor(high)),
            accepted: None,
        }
    }

    /// Learn an operator's "normal" verdict on a row with value `x` scoring `threshold` or
    /// more: the range's edge moves out to `x` ([`FeatureRange::accepted`]). Whether anything
    /// changed.
    pub fn accept(&mut self, x: f64, threshold: f64) -> bool {
        if !x.is_finite() || self.score(x) < threshold {
            return false;
        }
        let (a, b) = self.accepted.unwrap_or((x, x));
        self.accepted = Some((a.min(x), b.max(x)));
        true
    }

    /// How far outside the range `x` lies, in tail widths: positive above the high quantile
    /// or below the low one (or beyond the values accepted past them), zero or negative
    /// inside.
    pub fn score(&self, x: f64) -> f64 {
        let (low, high) = match self.accepted {
            Some((a, b)) => (self.low.min(a), self.high.max(b)),
            None => (self.low, self.high),
        };
        ((x - high) / self.high_span).max((low - x) / self.low_span)
    }
}

/// Fitted ranges; `predict` gives the per-feature score matrix (rows × features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileBaseline {
    pub ranges: Vec<FeatureRange>,
    /// Training rows the ranges come from (for reasons: "… of 2,016 windows").
    pub rows: u64,
    params: PercentileValidParams,
}

impl PercentileBaseline {
    pub fn params() -> PercentileParams {
        PercentileParams::default()
    }

    pub fn threshold(&self) -> f64 {
        self.params.threshold
    }

    pub fn hyperparams(&self) -> &PercentileValidParams {
        &self.params
    }

    /// The row's score (its largest feature score) and each feature's.
    pub fn score_row(&self, row: &[f64]) -> (f64, Vec<f64>) {
        let scores: Vec<f64> = row
            .iter()
            .zip(&self.ranges)
            .map(|(x, r)| r.score(*x))
            .collect();
        let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (top, scores)
    }
}

impl crate::detectors::grouped::AcceptsRow for PercentileBaseline {
    /// Every feature of `row` at or beyond the threshold moves its range's edge out to it.
    fn accept_row(&mut self, row: &[f64]) -> bool {
        let threshold = self.params.threshold();
        let mut changed = false;
        for (r, x) in self.ranges.iter_mut().zip(row) {
            changed |= r.accept(*x, threshold);
        }
        changed
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, PercentileError> for PercentileValidParams {
    type Object = PercentileBaseline;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<PercentileBaseline, PercentileError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < self.min_rows() {
            return Err(PercentileError::TooFewRows {
                got: n,
                need: self.min_rows(),
            });
        }
        if !self.count_features.is_empty() && self.count_features.len() != x.ncols() {
            return Err(PercentileError::CountFeatures {
                got: self.count_features.len(),
                expected: x.ncols(),
            });
        }
        let ranges = x
            .columns()
            .into_iter()
            .enumerate()
            .map(|(j, col)| {
                let mut values: Vec<f64> = col.iter().copied().filter(|v| v.is_finite()).collect();
                values.sort_unstable_by(f64::total_cmp);
                let is_count = self.count_features.get(j).copied().unwrap_or(false);
                if values.is_empty() {
                    values.push(0.0);
                }
                FeatureRange::fit(&values, self.quantile, is_count)
            })
            .collect();
        Ok(PercentileBaseline {
            ranges,
            rows: n as u64,
            params: self.clone(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>> for PercentileBaseline {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        assert_eq!(
            x.ncols(),
            self.ranges.len(),
            "percentile baseline fitted on {} features, got {}",
            self.ranges.len(),
            x.ncols()
        );
        *y = Array2::from_shape_fn(x.dim(), |(i, j)| self.ranges[j].score(x[[i, j]]));
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

    /// `n` rows of one count feature cycling through `values`.
    fn column(values: &[f64], n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, 1), |(i, _)| values[i % values.len()])
    }

    fn fit_counts(x: Array2<f64>) -> PercentileBaseline {
        PercentileBaseline::params()
            .count_features(vec![true])
            .check()
            .unwrap()
            .fit(&DatasetBase::from(x))
            .unwrap()
    }

    #[test]
    fn the_band_follows_the_training_spread() {
        // A volume swinging 800–1,200 over the day: 1,300 is a busy window, 2,000 is not
        // usual, and 300 (a service going quiet) is below anything seen.
        let values: Vec<f64> = (0..200).map(|i| 800.0 + 2.0 * i as f64).collect();
        let model = fit_counts(column(&values, 400));
        let r = &model.ranges[0];
        assert!((r.median - 1000.0).abs() < 2.0, "median {}", r.median);
        assert!(r.high > 1190.0 && r.high <= 1198.0, "p99 {}", r.high);
        let s = model.predict(&array![[1300.0], [2000.0], [300.0], [1000.0]]);
        assert!(s[[0, 0]] < model.threshold(), "busy window: {}", s[[0, 0]]);
        assert!(s[[1, 0]] > model.threshold(), "spike: {}", s[[1, 0]]);
        assert!(s[[2, 0]] > model.threshold(), "drop: {}", s[[2, 0]]);
        assert!(s[[3, 0]] < 0.0, "typical: {}", s[[3, 0]]);
    }

    #[test]
    fn a_value_marked_normal_moves_the_ranges_edge_out_to_it() {
        use crate::detectors::grouped::AcceptsRow as _;
        let values: Vec<f64> = (0..200).map(|i| 800.0 + 2.0 * i as f64).collect();
        let trained = fit_counts(column(&values, 400));
        let t = trained.threshold();
        for v in [2000.0, 300.0] {
            let mut m = trained.clone();
            assert!(m.score_row(&[v]).0 >= t);
            assert!(m.accept_row(&[v]));
            assert!(m.score_row(&[v]).0 <= 0.0, "{v} is now inside the range");
            // Another tail width beyond it is anomalous again; the median is untouched.
            let r = &m.ranges[0];
            let beyond = if v > 1000.0 {
                v + (t + 0.5) * r.high_span
            } else {
                v - (t + 0.5) * r.low_span
            };
            assert!(m.score_row(&[beyond]).0 >= t, "{beyond}");
            assert_eq!(r.median, trained.ranges[0].median);
            assert!(!m.accept_row(&[v]));
        }
    }

    #[test]
    fn a_count_that_is_usually_zero_needs_more_than_chance() {
        // 1 window in 100 has one error: 2 errors is chance, a dozen is a burst. With no
        // Poisson floor the band would be 0 wide and one error would alarm.
        let mut values = vec![0.0; 99];
        values.push(1.0);
        let model = fit_counts(column(&values, 500));
        let s = model.predict(&array![[2.0], [12.0]]);
        assert!(s[[0, 0]] < model.threshold(), "z {}", s[[0, 0]]);
        assert!(s[[1, 0]] > model.threshold(), "z {}", s[[1, 0]]);
        // Nothing is below a low quantile of 0.
        assert!(model.predict(&array![[0.0]])[[0, 0]] <= 0.0);
    }

    #[test]
    fn a_skewed_count_is_judged_by_its_own_tail() {
        // Heavy-tailed: mostly 1–5, sometimes 40. The z-score's MAD would call 40 extreme;
        // here it is within what training saw, while 200 is far beyond.
        let mut values: Vec<f64> = (0..97).map(|i| (1 + i % 5) as f64).collect();
        values.extend([40.0, 40.0, 40.0]);
        let model = fit_counts(column(&values, 300));
        let s = model.predict(&array![[40.0], [200.0]]);
        assert!(s[[0, 0]] < model.threshold(), "{}", s[[0, 0]]);
        assert!(s[[1, 0]] > model.threshold(), "{}", s[[1, 0]]);
    }

    #[test]
    fn score_row_reports_the_worst_feature() {
        let x = Array2::from_shape_fn(
            (200, 2),
            |(i, j)| if j == 0 { 10.0 } else { (i % 3) as f64 },
        );
        let model = PercentileBaseline::params()
            .count_features(vec![true, true])
            .check()
            .unwrap()
            .fit(&DatasetBase::from(x))
            .unwrap();
        let (top, each) = model.score_row(&[10.0, 50.0]);
        assert_eq!(top, each[1]);
        assert!(each[0] <= 0.0 && each[1] > model.threshold());
    }

    #[test]
    fn too_few_rows_and_bad_params_are_refused() {
        let r = PercentileBaseline::params()
            .check()
            .unwrap()
            .fit(&DatasetBase::from(column(&[1.0], 50)));
        assert!(matches!(
            r,
            Err(PercentileError::TooFewRows { got: 50, need: 100 })
        ));
        for q in [0.5, 1.0, f64::NAN] {
            assert!(PercentileBaseline::params().quantile(q).check().is_err());
        }
        assert!(PercentileBaseline::params().threshold(0.0).check().is_err());
        let r = PercentileBaseline::params()
            .count_features(vec![true, false])
            .check()
            .unwrap()
            .fit(&DatasetBase::from(column(&[1.0], 200)));
        assert!(matches!(r, Err(PercentileError::CountFeatures { .. })));
    }
}
