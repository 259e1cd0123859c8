use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace, Transformer};
use linfa_clustering::Dbscan;
use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};
use serde::{Deserialize, Serialize};

use super::DbscanError;
use super::hyperparams::{DbscanParams, DbscanValidParams};
use crate::detectors::distinct_rows::{DistinctRows, distance, scaled};

/// Fitted density clusters: the clustered distinct training vectors (on the scale distances
/// are measured on) with their cluster, and each cluster's share of the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityClusters {
    members: Vec<Vec<f64>>,
    cluster_of: Vec<usize>,
    shares: Vec<f64>,
    /// Training rows that were noise, as a share of all.
    pub noise_share: f64,
    params: DbscanValidParams,
}

/// Where a row falls: the cluster of the nearest clustered training vector within `eps`
/// (`None`: noise), that cluster's share, the distance to the nearest clustered vector, and
/// the score (≥ 1 is anomalous).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Membership {
    pub cluster: Option<usize>,
    pub share: f64,
    pub nearest: f64,
    pub score: f64,
}

impl DensityClusters {
    pub fn params() -> DbscanParams {
        DbscanParams::default()
    }

    pub fn threshold(&self) -> f64 {
        1.0
    }

    pub fn eps(&self) -> f64 {
        self.params.eps
    }

    pub fn min_cluster_share(&self) -> f64 {
        self.params.min_cluster_share
    }

    pub fn log_counts(&self) -> bool {
        self.params.log_counts
    }

    pub fn clusters(&self) -> usize {
        self.shares.len()
    }

    /// The cluster `row` joins and how odd that makes it: noise scores its distance in
    /// units of `eps` (never below 1); a member scores its cluster's rarity, 1 at
    /// `min_cluster_share`, as the k-means detector does.
    pub fn place(&self, row: ArrayView1<f64>) -> Membership {
        let row = scaled(row, self.params.log_counts);
        let nearest = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (i, distance(&row, m)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        match nearest {
            Some((i, d)) if d <= self.params.eps => {
                let cluster = self.cluster_of[i];
                let share = self.shares[cluster];
                Membership {
                    cluster: Some(cluster),
                    share,
                    nearest: d,
                    score: share.max(1e-12).log10() / self.params.min_cluster_share.log10(),
                }
            }
            other => {
                let d = other.map_or(f64::INFINITY, |n| n.1);
                Membership {
                    cluster: None,
                    share: 0.0,
                    nearest: d,
                    score: (d / self.params.eps).max(1.0),
                }
            }
        }
    }

    /// Learn an operator's "normal" verdict on `row`: if it scores as anomalous, it becomes a
    /// cluster of its own holding a whole share, so it and rows within `eps` of it are usual.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        if self.place(row).score < self.threshold() {
            return false;
        }
        self.members.push(scaled(row, self.params.log_counts));
        self.cluster_of.push(self.shares.len());
        self.shares.push(1.0);
        true
    }
}

impl<D: Data<Elem = f64>, T> Fit<ArrayBase<D, Ix2>, T, DbscanError> for DbscanValidParams {
    type Object = DensityClusters;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<DensityClusters, DbscanError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < self.min_points {
            return Err(DbscanError::NotEnoughRows(n));
        }
        let DistinctRows { points, weights } =
            DistinctRows::of(x, self.log_counts, self.max_points, self.seed);
        // Each distinct vector enters min(count, min_points) times: a point's neighbourhood
        // then reaches min_points exactly when its rows' neighbourhood would (a vector with
        // min_points rows of its own reaches it alone), at most min_points copies a vector.
        let copies: Vec<usize> = weights
            .iter()
            .map(|&w| (w as usize).clamp(1, self.min_points))
            .collect();
        let dims = points.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(copies.iter().sum::<usize>() * dims);
        let mut first_copy = Vec::with_capacity(points.len());
        for (point, &n) in points.iter().zip(&copies) {
            first_copy.push(flat.len() / dims.max(1));
            for _ in 0..n {
                flat.extend_from_slice(point);
            }
        }
        let rows = copies.iter().sum::<usize>();
        let matrix = Array2::from_shape_vec((rows, dims), flat).expect("rows of one length");
        let labels = Dbscan::params(self.min_points)
            .tolerance(self.eps)
            .transform(&matrix)
            .map_err(|e| DbscanError::Linfa(linfa::Error::Parameters(e.to_string())))?;
        // Clusters renumbered in order of their first member.
        let mut renumbered: Vec<Option<usize>> = Vec::new();
        let (mut members, mut cluster_of, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        let total: f64 = weights.iter().sum();
        let mut noise = 0.0;
        for ((point, weight), first) in points.into_iter().zip(weights).zip(first_copy) {
            let Some(label) = labels[first] else {
                noise += weight;
                continue;
            };
            if renumbered.len() <= label {
                renumbered.resize(label + 1, None);
            }
            let cluster = *renumbered[label].get_or_insert_with(|| {
                counts.push(0.0);
                counts.len() - 1
            });
            counts[cluster] += weight;
            members.push(point);
            cluster_of.push(cluster);
        }
        Ok(DensityClusters {
            members,
            cluster_of,
            shares: counts.iter().map(|c| c / total).collect(),
            noise_share: noise / total,
            params: self.clone(),
        })
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for DensityClusters {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        *y = x.rows().into_iter().map(|r| self.place(r).score).collect();
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

impl DbscanParams {
    pub fn fit_matrix(&self, x: &Array2<f64>) -> Result<DensityClusters, DbscanError> {
        use linfa::ParamGuard;
        self.check_ref()?.fit(&DatasetBase::from(x.view()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;
    use linfa::traits::Predict;

    /// 3,000 sessions in two behaviours: one repeated exactly (a single distinct vector,
    /// which linfa alone would call noise), one whose read count runs from 1 to 40; then a
    /// session with a step neither has, and a busier session of the second behaviour.
    fn sessions() -> Array2<f64> {
        let mut rows: Vec<[f64; 4]> = Vec::new();
        for i in 0..3000u32 {
            rows.push(if i % 2 == 0 {
                [1.0, 1.0, 1.0, 0.0]
            } else {
                [1.0, f64::from(1 + (i * 7919) % 40), 0.0, 1.0]
            });
        }
        rows.push([1.0, 1.0, 1.0, 6.0]);
        rows.push([1.0, 45.0, 0.0, 1.0]);
        Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap()
    }

    #[test]
    fn noise_is_anomalous_and_both_behaviours_are_clusters() {
        let x = sessions();
        let model = DensityClusters::params()
            .min_points(5)
            .fit_matrix(&x)
            .unwrap();
        // The exactly repeated behaviour is a cluster although it is one distinct vector.
        assert_eq!(model.clusters(), 2);
        let scores = model.predict(&x);
        assert_eq!((0..3000).filter(|&i| scores[i] >= 1.0).count(), 0);
        let odd = model.place(x.row(3000));
        assert!(odd.cluster.is_none() && odd.score >= 1.0, "{odd:?}");
        let busy = model.place(x.row(3001));
        assert!(busy.cluster.is_some() && busy.score < 1.0, "{busy:?}");
        // Of the training rows only the odd one is noise (the busy one borders its behaviour).
        assert!((model.noise_share - 1.0 / 3002.0).abs() < 1e-12);
    }

    #[test]
    fn a_rare_dense_cluster_is_anomalous() {
        let mut x = sessions();
        // Six sessions of a third behaviour, together: dense (min_points 5) but 0.2 % of
        // training sessions, under a min_cluster_share of 0.5 %.
        for _ in 0..6 {
            x.push_row(ndarray::array![0.0, 0.0, 3.0, 3.0].view())
                .unwrap();
        }
        let model = DensityClusters::params()
            .min_points(5)
            .min_cluster_share(0.005)
            .fit_matrix(&x)
            .unwrap();
        let rare = model.place(ndarray::array![0.0, 0.0, 3.0, 3.0].view());
        assert!(rare.cluster.is_some() && rare.score >= 1.0, "{rare:?}");
    }

    #[test]
    fn a_row_marked_normal_scores_as_usual_and_survives_saving() {
        let x = sessions();
        let mut model = DensityClusters::params().fit_matrix(&x).unwrap();
        assert!(model.accept_row(x.row(3000)));
        assert!(!model.accept_row(x.row(3000)), "once");
        assert!(model.place(x.row(3000)).score < 1.0);
        let saved: DensityClusters =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(DensityClusters::params().min_points(1).check().is_err());
        assert!(DensityClusters::params().eps(0.0).check().is_err());
        assert!(
            DensityClusters::params()
                .min_cluster_share(1.0)
                .check()
                .is_err()
        );
        assert!(DensityClusters::params().max_points(1).check().is_err());
    }
}
