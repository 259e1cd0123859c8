use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};
use serde::{Deserialize, Serialize};

use super::AutoencoderError;
use super::hyperparams::{AutoencoderParams, AutoencoderValidParams};
use super::network::Network;
use crate::detectors::distinct_rows::{DistinctRows, distance, scaled, weighted_quantile};

/// A trained autoencoder: how rows are put on its scale (per-feature centre and spread after
/// the log), the network, the threshold, and the rows operators marked normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoencoder {
    centre: Vec<f64>,
    spread: Vec<f64>,
    network: Network,
    threshold: f64,
    /// Rows operators marked normal, on the network's scale: a row near one is rebuilt as
    /// well as its distance to it.
    accepted: Vec<Vec<f64>>,
    /// The weighted mean squared error the training ended at.
    training_error: f64,
    params: AutoencoderValidParams,
}

/// How well a row was rebuilt: its error (the mean squared difference on the network's
/// scale), and per feature the value the network rebuilt, in the row's own units.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub error: f64,
    pub expected: Vec<f64>,
}

impl Autoencoder {
    pub fn params() -> AutoencoderParams {
        AutoencoderParams::default()
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn training_error(&self) -> f64 {
        self.training_error
    }

    /// A row (scaled as the density detectors scale it) standardised per feature.
    fn standardised(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.centre.iter().zip(&self.spread))
            .map(|(v, (c, s))| (v - c) / s)
            .collect()
    }

    fn on_scale(&self, row: ArrayView1<f64>) -> Vec<f64> {
        self.standardised(&scaled(row, self.params.log_counts))
    }

    /// How well the network rebuilds `row`.
    pub fn rebuild(&self, row: ArrayView1<f64>) -> Rebuilt {
        let z = self.on_scale(row);
        let d = z.len().max(1) as f64;
        let input = Array2::from_shape_vec((1, z.len()), z.clone()).expect("one row");
        let out = self.network.rebuild(input.view());
        let out = out.row(0);
        let mut error = z
            .iter()
            .zip(out.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            / d;
        for accepted in &self.accepted {
            error = error.min(distance(&z, accepted).powi(2) / d);
        }
        let expected = out
            .iter()
            .zip(self.centre.iter().zip(&self.spread))
            .map(|(v, (c, s))| {
                let v = v * s + c;
                if self.params.log_counts {
                    v.exp_m1().max(0.0)
                } else {
                    v
                }
            })
            .collect();
        Rebuilt { error, expected }
    }

    /// Learn an operator's "normal" verdict on `row`: if it is rebuilt worse than the
    /// threshold, it is remembered, and it and rows near it score as well as their distance
    /// to it. Whether anything changed.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        if self.rebuild(row).error < self.threshold {
            return false;
        }
        self.accepted.push(self.on_scale(row));
        true
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, AutoencoderError>
    for AutoencoderValidParams
{
    type Object = Autoencoder;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<Autoencoder, AutoencoderError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < 2 {
            return Err(AutoencoderError::NotEnoughRows(n));
        }
        let DistinctRows { points, weights } =
            DistinctRows::of(x, self.log_counts, self.max_points, self.seed);
        let d = x.ncols();
        // Centre and spread of each feature over all training rows (repeats counting).
        let total: f64 = weights.iter().sum();
        let mut centre = vec![0.0; d];
        for (p, w) in points.iter().zip(&weights) {
            for j in 0..d {
                centre[j] += w * p[j] / total;
            }
        }
        let mut spread = vec![0.0; d];
        for (p, w) in points.iter().zip(&weights) {
            for j in 0..d {
                spread[j] += w * (p[j] - centre[j]).powi(2) / total;
            }
        }
        let spread: Vec<f64> = spread
            .into_iter()
            .map(|v| v.sqrt().max(self.min_scale))
            .collect();
        let mut sizes = vec![d];
        if self.hidden > 0 {
            sizes.push(self.hidden);
        }
        // A middle layer as wide as the input could pass every row through unchanged and
        // rebuild anything: it is at most half the features.
        sizes.push(self.bottleneck.min((d / 2).max(1)));
        if self.hidden > 0 {
            sizes.push(self.hidden);
        }
        sizes.push(d);
        let mut model = Autoencoder {
            centre,
            spread,
            network: Network::new(&sizes, self.seed),
            threshold: f64::INFINITY,
            accepted: Vec::new(),
            training_error: f64::NAN,
            params: self.clone(),
        };
        let rows: Vec<f64> = points.iter().flat_map(|p| model.standardised(p)).collect();
        let z = Array2::from_shape_vec((points.len(), d), rows).expect("rows of d features");
        let mut train_weights =
            Array1::from_iter(weights.iter().map(|w| w.powf(self.count_weight)));
        train_weights /= train_weights.sum();
        model.training_error =
            model
                .network
                .train(z.view(), &train_weights, self.epochs, self.learning_rate);
        let rebuilt = model.network.rebuild(z.view());
        let own: Vec<(f64, f64)> = (0..points.len())
            .map(|i| {
                let diff = &rebuilt.row(i) - &z.row(i);
                (diff.dot(&diff) / d.max(1) as f64, weights[i])
            })
            .collect();
        model.threshold = weighted_quantile(own, self.quantile).max(self.min_error);
        Ok(model)
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for Autoencoder {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        *y = x
            .rows()
            .into_iter()
            .map(|r| self.rebuild(r).error)
            .collect();
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl AutoencoderParams {
    pub fn fit_matrix(&self, x: &Array2<f64>) -> Result<Autoencoder, AutoencoderError> {
        use linfa::ParamGuard;
        self.check_ref()?.fit(&DatasetBase::from(x.view()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;
    use linfa::traits::Predict;

    /// 2,000 sessions of three behaviours whose counts go together (a write is followed by
    /// as many acknowledgements; a read has none), then one that breaks the relation and one
    /// new mix of the usual counts.
    fn sessions() -> Array2<f64> {
        let mut rows: Vec<[f64; 4]> = Vec::new();
        for i in 0..2000u32 {
            let k = f64::from(1 + i % 5);
            rows.push(match i % 3 {
                0 => [1.0, k, k, 0.0],
                1 => [1.0, 0.0, 0.0, k],
                _ => [1.0, 1.0, 1.0, 1.0],
            });
        }
        rows.push([1.0, 5.0, 0.0, 0.0]); // writes never acknowledged
        rows.push([1.0, 3.0, 3.0, 0.0]); // a usual write session
        Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap()
    }

    #[test]
    fn a_session_that_breaks_how_counts_go_together_is_rebuilt_badly() {
        let x = sessions();
        let model = Autoencoder::params().fit_matrix(&x).unwrap();
        let errors = model.predict(&x);
        let t = model.threshold();
        assert!(errors[2000] >= t, "{} vs {t}", errors[2000]);
        assert!(errors[2001] < t, "{} vs {t}", errors[2001]);
        let flagged = (0..2000).filter(|&i| errors[i] >= t).count();
        assert!(flagged <= 20, "{flagged} training rows flagged");
        // The explanation: the network expects acknowledgements where there were none.
        let rebuilt = model.rebuild(x.row(2000));
        assert!(rebuilt.expected[2] > 1.0, "{:?}", rebuilt.expected);
    }

    #[test]
    fn a_row_marked_normal_scores_as_usual_and_the_model_survives_saving() {
        let x = sessions();
        let mut model = Autoencoder::params().epochs(200).fit_matrix(&x).unwrap();
        assert!(model.accept_row(x.row(2000)));
        assert!(!model.accept_row(x.row(2000)), "once");
        assert!(model.rebuild(x.row(2000)).error < model.threshold());
        let saved: Autoencoder =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
        let again = Autoencoder::params().epochs(200).fit_matrix(&x).unwrap();
        assert_eq!(again.network, model.network, "seeded");
    }

    #[test]
    fn invalid_params_are_rejected() {
        let p = Autoencoder::params;
        assert!(p().bottleneck(0).check().is_err());
        assert!(p().epochs(0).check().is_err());
        assert!(p().learning_rate(0.0).check().is_err());
        assert!(p().learning_rate(2.0).check().is_err());
        assert!(p().max_points(1).check().is_err());
        assert!(p().quantile(0.0).check().is_err());
        assert!(p().min_error(0.0).check().is_err());
        assert!(p().min_scale(-1.0).check().is_err());
        assert!(p().count_weight(1.5).check().is_err());
        assert!(p().check().is_ok());
        assert!(matches!(
            p().fit_matrix(&Array2::zeros((1, 3))),
            Err(AutoencoderError::NotEnoughRows(1))
        ));
    }
}
