use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, Predict, PredictInplace};
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use super::ClusteringError;
use super::hyperparams::{ClusteringParams, ClusteringValidParams};
use crate::detectors::robust::median_and_spread;

/// A fitted clustering: centroids, each cluster's share of training rows, and the robust
/// spread of training distances to their centroid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clustering {
    pub centroids: Vec<Vec<f64>>,
    pub shares: Vec<f64>,
    pub distance_center: f64,
    pub distance_scale: f64,
    /// Rows operators marked normal (on the scale distances are measured on), each a usual
    /// cluster of its own: a behaviour too rare to have a cluster that an operator vouched
    /// for, and rows near it, are no longer rare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<Vec<f64>>,
    params: ClusteringValidParams,
}

/// Where a row falls: its nearest cluster, that cluster's share, its distance and its z.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub cluster: usize,
    pub share: f64,
    pub distance: f64,
    pub distance_z: f64,
    /// max(rarity / its limit, distance z / its limit); ≥ 1 is anomalous.
    pub score: f64,
}

/// At most this many rows fit the centroids.
const MAX_FIT_ROWS: usize = 10_000;

fn distance(a: ArrayView1<f64>, b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

impl Clustering {
    pub fn params() -> ClusteringParams {
        ClusteringParams::default()
    }

    pub fn threshold(&self) -> f64 {
        1.0
    }

    pub fn min_cluster_share(&self) -> f64 {
        self.params.min_cluster_share
    }

    /// Whether distances are measured on ln(1 + count).
    pub fn log_counts(&self) -> bool {
        self.params.log_counts
    }

    /// A row as the model compares it: counts on the log scale when `log_counts` is on.
    fn scaled(&self, row: ArrayView1<f64>) -> Array1<f64> {
        if self.params.log_counts {
            row.mapv(|v| v.max(0.0).ln_1p())
        } else {
            row.to_owned()
        }
    }

    /// Learn an operator's "normal" verdict on `row`: if it scores as anomalous, it becomes
    /// an accepted point ([`Clustering::accepted`]). Whether anything changed.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        if self.place(row).score < self.threshold() {
            return false;
        }
        self.accepted.push(self.scaled(row).to_vec());
        true
    }

    /// The nearest cluster — accepted points come after the centroids, each counting as a
    /// whole share — its share and the distance to it.
    pub fn place(&self, row: ArrayView1<f64>) -> Placement {
        let row = self.scaled(row);
        let (cluster, dist) = self
            .centroids
            .iter()
            .chain(&self.accepted)
            .enumerate()
            .map(|(i, c)| (i, distance(row.view(), c)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .unwrap_or((0, 0.0));
        let share = match self.shares.get(cluster) {
            Some(s) => *s,
            None if cluster >= self.centroids.len() => 1.0,
            None => 0.0,
        };
        let z = (dist - self.distance_center) / self.distance_scale;
        let rarity = -share.max(1e-12).log10() / -self.params.min_cluster_share.log10();
        let far = z / self.params.distance_threshold;
        Placement {
            cluster,
            share,
            distance: dist,
            distance_z: z,
            score: rarity.max(far),
        }
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, ClusteringError> for ClusteringValidParams {
    type Object = Clustering;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<Clustering, ClusteringError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < 2 {
            return Err(ClusteringError::NotEnoughRows(n));
        }
        // Why the log scale: count vectors of sessions scale with workload (a block read forty
        // times has ten times the reads of one read four times) while what makes a session
        // odd is its shape — a step missing, a step that never happens, a loop. ln(1 + c)
        // keeps 0 → 1 a full step and turns proportional differences into equal distances.
        let x: Array2<f64> = if self.log_counts {
            x.mapv(|v| v.max(0.0).ln_1p())
        } else {
            x.to_owned()
        };
        let k = self.n_clusters.min(n);
        let mut rng = Xoshiro256Plus::seed_from_u64(self.seed);
        // Centroids from a seeded sample bound the cost on large training ranges; shares and
        // distances then come from every row. A behaviour too rare to be sampled ends up far
        // from every centroid, which is what should flag it.
        let sample: Array2<f64> = if n > MAX_FIT_ROWS {
            let rows = rand::seq::index::sample(&mut rng, n, MAX_FIT_ROWS).into_vec();
            x.select(ndarray::Axis(0), &rows)
        } else {
            x.clone()
        };
        let model = KMeans::params_with_rng(k.min(sample.nrows()), rng)
            .n_runs(3)
            .max_n_iterations(self.max_iterations)
            .tolerance(1e-6)
            .fit(&DatasetBase::from(sample))
            .map_err(|e| ClusteringError::KMeans(e.to_string()))?;
        let assigned: Array1<usize> = model.predict(&x);
        let centroids: Vec<Vec<f64>> = model
            .centroids()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        let mut counts = vec![0usize; centroids.len()];
        let mut distances = Vec::with_capacity(n);
        for (i, &c) in assigned.iter().enumerate() {
            counts[c] += 1;
            distances.push(distance(x.row(i), &centroids[c]));
        }
        let (center, spread) = median_and_spread(&mut distances);
        // Counts are whole events: never call a session far for being less than one event
        // away from what its cluster usually looks like (on the log scale, the step from 0 to
        // 1 event, ln 2).
        let one_event = if self.log_counts { 2f64.ln() } else { 1.0 };
        let scale = spread.max(one_event / self.distance_threshold);
        Ok(Clustering {
            centroids,
            shares: counts.iter().map(|&c| c as f64 / n as f64).collect(),
            distance_center: center,
            distance_scale: scale,
            accepted: Vec::new(),
            params: self.clone(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for Clustering {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        *y = x.rows().into_iter().map(|r| self.place(r).score).collect();
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl ClusteringParams {
    pub fn fit_matrix(&self, x: &Array2<f64>) -> Result<Clustering, ClusteringError> {
        use linfa::ParamGuard;
        self.check_ref()?.fit(&DatasetBase::from(x.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;

    /// 3,000 sessions in three behaviours (count vectors), plus one that loops on a step and
    /// one that stops after its first step.
    fn sessions() -> Array2<f64> {
        let mut rows: Vec<[f64; 4]> = Vec::new();
        for i in 0..3000 {
            rows.push(match i % 3 {
                0 => [1.0, 1.0, 1.0, 0.0],
                1 => [1.0, 0.0, 1.0, 1.0],
                _ => [1.0, 1.0, 1.0, 1.0],
            });
        }
        rows.push([1.0, 5.0, 1.0, 0.0]);
        rows.push([1.0, 0.0, 0.0, 0.0]);
        Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap()
    }

    #[test]
    fn odd_sessions_score_above_one_and_normal_ones_below() {
        let x = sessions();
        // k at least the number of normal behaviours (the default is 16).
        for k in [3, 8, 16] {
            let model = Clustering::params().n_clusters(k).fit_matrix(&x).unwrap();
            let scores = model.predict(&x);
            assert!(
                scores[3000] >= 1.0 && scores[3001] >= 1.0,
                "k={k}: {} {}",
                scores[3000],
                scores[3001]
            );
            let flagged = (0..3000).filter(|&i| scores[i] >= 1.0).count();
            assert_eq!(flagged, 0, "k={k}");
        }
    }

    #[test]
    fn a_session_marked_normal_becomes_a_usual_cluster_of_its_own() {
        let x = sessions();
        let mut model = Clustering::params().n_clusters(3).fit_matrix(&x).unwrap();
        assert!(model.place(x.row(3000)).score >= 1.0);
        assert!(model.accept_row(x.row(3000)), "the loop is accepted");
        assert!(!model.accept_row(x.row(3000)), "once");
        let scores = model.predict(&x);
        assert!(scores[3000] < 1.0, "the marked session: {}", scores[3000]);
        // A session like it (one more loop) is usual too; the session that stops early, and
        // every normal one, are judged as before.
        assert!(
            model
                .place(ndarray::array![1.0, 6.0, 1.0, 0.0].view())
                .score
                < 1.0
        );
        assert!(scores[3001] >= 1.0, "{}", scores[3001]);
        assert_eq!((0..3000).filter(|&i| scores[i] >= 1.0).count(), 0);
        // The accepted point survives saving.
        let saved: Clustering =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
    }

    #[test]
    fn on_the_log_scale_workload_is_not_shape() {
        // Two behaviours in varying volume: reads scale from 1 to 40 per session.
        let mut rows: Vec<[f64; 4]> = Vec::new();
        for i in 0..3000u32 {
            let reads = f64::from(1 + (i * 7919) % 40);
            rows.push(if i % 2 == 0 {
                [1.0, reads, 0.0, 0.0]
            } else {
                [1.0, reads, 1.0, 0.0]
            });
        }
        rows.push([1.0, 60.0, 0.0, 0.0]); // busier than any, same shape
        rows.push([1.0, 3.0, 1.0, 2.0]); // a step no training session had, twice
        let x = Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap();
        let scores = |log: bool| {
            Clustering::params()
                .n_clusters(8)
                .log_counts(log)
                .fit_matrix(&x)
                .unwrap()
                .predict(&x)
        };
        let (log, raw) = (scores(true), scores(false));
        eprintln!(
            "log {} {} raw {} {}",
            log[3000], log[3001], raw[3000], raw[3001]
        );
        assert!(
            log[3001] >= 1.0,
            "a new step is far on the log scale: {}",
            log[3001]
        );
        assert!(log[3000] < 1.0, "more of the same is not: {}", log[3000]);
        // On raw counts the busy session is the farthest of all.
        assert!(
            raw[3000] >= 1.0 && raw[3000] > raw[3001],
            "{} {}",
            raw[3000],
            raw[3001]
        );
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(Clustering::params().n_clusters(0).check().is_err());
        assert!(Clustering::params().min_cluster_share(1.5).check().is_err());
        assert!(
            Clustering::params()
                .distance_threshold(0.0)
                .check()
                .is_err()
        );
    }
}
