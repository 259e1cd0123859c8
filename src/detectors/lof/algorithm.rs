use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, ArrayView1, Data, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::LofError;
use super::hyperparams::{LofParams, LofValidParams};
use crate::detectors::distinct_rows::{DistinctRows, distance, scaled, weighted_quantile};

/// A fitted local outlier factor: the distinct training vectors (on the scale distances are
/// measured on) with their multiplicity, each one's k-distance and local reachability
/// density, and the threshold drawn from the training rows' own factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalOutlierFactor {
    points: Vec<Vec<f64>>,
    weights: Vec<f64>,
    k_distance: Vec<f64>,
    density: Vec<f64>,
    threshold: f64,
    params: LofValidParams,
}

/// How a row sits among the training rows: its factor (≥ the threshold is anomalous), the
/// distance to the nearest training vector and the mean density of its neighbourhood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbourhood {
    pub score: f64,
    pub nearest: f64,
    pub density: f64,
}

impl LocalOutlierFactor {
    pub fn params() -> LofParams {
        LofParams::default()
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn n_neighbors(&self) -> usize {
        self.params.n_neighbors
    }

    pub fn log_counts(&self) -> bool {
        self.params.log_counts
    }

    fn scaled(&self, row: ArrayView1<f64>) -> Vec<f64> {
        scaled(row, self.params.log_counts)
    }

    /// The k nearest training vectors of `q` (multiplicities counting towards k; `own`, a
    /// training vector's index, lends one copy less), as (index, weight, distance).
    fn neighbours(&self, q: &[f64], own: Option<usize>) -> Vec<(usize, f64, f64)> {
        let mut by_distance: Vec<(usize, f64)> = self
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (i, distance(q, p)))
            .collect();
        by_distance.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let k = self.params.n_neighbors as f64;
        let mut taken = 0.0;
        let mut out = Vec::new();
        for (i, d) in by_distance {
            let w = self.weights[i] - if own == Some(i) { 1.0 } else { 0.0 };
            if w <= 0.0 {
                continue;
            }
            out.push((i, w, d));
            taken += w;
            if taken >= k {
                break;
            }
        }
        out
    }

    /// Local reachability density of a point with these neighbours: the inverse of its mean
    /// reach distance, a reach distance never below the resolution.
    fn reach_density(&self, neighbours: &[(usize, f64, f64)]) -> f64 {
        let (mut weight, mut reach) = (0.0, 0.0);
        for &(o, w, d) in neighbours {
            weight += w;
            reach += w * d.max(self.k_distance[o]).max(self.params.resolution);
        }
        if reach > 0.0 { weight / reach } else { 0.0 }
    }

    fn factor(&self, q: &[f64], own: Option<usize>) -> Neighbourhood {
        let neighbours = self.neighbours(q, own);
        let own_density = self.reach_density(&neighbours);
        let (mut weight, mut density) = (0.0, 0.0);
        for &(o, w, _) in &neighbours {
            weight += w;
            density += w * self.density[o];
        }
        let density = if weight > 0.0 { density / weight } else { 0.0 };
        Neighbourhood {
            score: if own_density > 0.0 {
                density / own_density
            } else {
                0.0
            },
            nearest: neighbours.first().map_or(f64::INFINITY, |n| n.2),
            density,
        }
    }

    /// Where `row` sits among the training rows.
    pub fn place(&self, row: ArrayView1<f64>) -> Neighbourhood {
        self.factor(&self.scaled(row), None)
    }

    /// Learn an operator's "normal" verdict on `row`: if it scores as anomalous, it becomes a
    /// training vector dense enough to be its own neighbourhood, so it and rows like it score
    /// as usual. Whether anything changed.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        if self.place(row).score < self.threshold {
            return false;
        }
        let resolution = self.params.resolution;
        self.points.push(self.scaled(row));
        self.weights.push(self.params.n_neighbors as f64);
        self.k_distance.push(resolution);
        self.density.push(1.0 / resolution);
        true
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, LofError> for LofValidParams {
    type Object = LocalOutlierFactor;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<LocalOutlierFactor, LofError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n <= self.n_neighbors {
            return Err(LofError::NotEnoughRows(n));
        }
        let DistinctRows { points, weights } =
            DistinctRows::of(x, self.log_counts, self.max_points, self.seed);
        let mut model = LocalOutlierFactor {
            k_distance: vec![0.0; points.len()],
            density: vec![0.0; points.len()],
            points,
            weights,
            threshold: f64::INFINITY,
            params: self.clone(),
        };
        let neighbourhoods: Vec<Vec<(usize, f64, f64)>> = (0..model.points.len())
            .into_par_iter()
            .map(|i| model.neighbours(&model.points[i], Some(i)))
            .collect();
        model.k_distance = neighbourhoods
            .iter()
            .map(|n| n.last().map_or(0.0, |last| last.2))
            .collect();
        model.density = neighbourhoods
            .iter()
            .map(|n| model.reach_density(n))
            .collect();
        let own: Vec<(f64, f64)> = (0..model.points.len())
            .into_par_iter()
            .map(|i| {
                (
                    model.factor(&model.points[i], Some(i)).score,
                    model.weights[i],
                )
            })
            .collect();
        model.threshold = weighted_quantile(own, self.quantile).max(self.min_score);
        Ok(model)
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for LocalOutlierFactor {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        *y = x.rows().into_iter().map(|r| self.place(r).score).collect();
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl LofParams {
    pub fn fit_matrix(&self, x: &ndarray::Array2<f64>) -> Result<LocalOutlierFactor, LofError> {
        use linfa::ParamGuard;
        self.check_ref()?.fit(&DatasetBase::from(x.view()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;
    use linfa::traits::Predict;
    use ndarray::Array2;

    /// 3,000 sessions: a tight behaviour repeated exactly, a loose one whose read count
    /// varies from 1 to 40; then a session one step off the tight behaviour and one inside
    /// the loose one's range.
    fn sessions() -> Array2<f64> {
        let mut rows: Vec<[f64; 4]> = Vec::new();
        for i in 0..3000u32 {
            rows.push(if i % 2 == 0 {
                [1.0, 1.0, 1.0, 0.0]
            } else {
                [1.0, f64::from(1 + (i * 7919) % 40), 0.0, 1.0]
            });
        }
        rows.push([1.0, 1.0, 1.0, 3.0]); // the tight behaviour with a step it never has
        rows.push([1.0, 23.5, 0.0, 1.0]); // between two usual read counts of the loose one
        Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap()
    }

    #[test]
    fn a_row_off_a_tight_behaviour_is_an_outlier_and_one_inside_a_loose_one_is_not() {
        let x = sessions();
        let model = LocalOutlierFactor::params().fit_matrix(&x).unwrap();
        let scores = model.predict(&x);
        assert!(
            scores[3000] >= model.threshold(),
            "{} vs {}",
            scores[3000],
            model.threshold()
        );
        assert!(
            scores[3001] < model.threshold(),
            "{} vs {}",
            scores[3001],
            model.threshold()
        );
        let flagged = (0..3000)
            .filter(|&i| scores[i] >= model.threshold())
            .count();
        assert_eq!(flagged, 0);
        // Exact repeats of a training behaviour are exactly as dense as it.
        assert!((scores[0] - 1.0).abs() < 1e-9, "{}", scores[0]);
    }

    #[test]
    fn a_row_marked_normal_scores_as_usual_and_survives_saving() {
        let x = sessions();
        let mut model = LocalOutlierFactor::params().fit_matrix(&x).unwrap();
        assert!(model.accept_row(x.row(3000)));
        assert!(!model.accept_row(x.row(3000)), "once");
        assert!(model.place(x.row(3000)).score < model.threshold());
        let saved: LocalOutlierFactor =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
    }

    #[test]
    fn a_sample_of_distinct_vectors_bounds_the_model() {
        let x = Array2::from_shape_fn((500, 2), |(i, j)| (i * (j + 1)) as f64);
        let model = LocalOutlierFactor::params()
            .max_points(100)
            .n_neighbors(5)
            .fit_matrix(&x)
            .unwrap();
        assert_eq!(model.points.len(), 100);
        let again = LocalOutlierFactor::params()
            .max_points(100)
            .n_neighbors(5)
            .fit_matrix(&x)
            .unwrap();
        assert_eq!(model, again, "seeded");
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(LocalOutlierFactor::params().n_neighbors(0).check().is_err());
        assert!(LocalOutlierFactor::params().quantile(0.0).check().is_err());
        assert!(LocalOutlierFactor::params().min_score(0.5).check().is_err());
        assert!(
            LocalOutlierFactor::params()
                .resolution(0.0)
                .check()
                .is_err()
        );
        assert!(LocalOutlierFactor::params().max_points(1).check().is_err());
        let tiny = Array2::zeros((3, 2));
        assert!(matches!(
            LocalOutlierFactor::params().fit_matrix(&tiny),
            Err(LofError::NotEnoughRows(3))
        ));
    }
}
