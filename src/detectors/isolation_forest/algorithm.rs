use linfa::dataset::{DatasetBase, Records};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, ArrayView1, Data, Ix2};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::IsolationForestError;
use super::hyperparams::{Contamination, IsolationForestParams, IsolationForestValidParams};
use crate::detectors::robust::quantile_sorted;

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// c(n): the average path length of an unsuccessful search in a binary search tree of n
/// nodes, used to normalise path lengths (scikit-learn's `_average_path_length`).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Node {
    /// Rows with `x[feature] <= threshold` go left.
    Split {
        feature: usize,
        threshold: f64,
        left: u32,
        right: u32,
    },
    /// A leaf and how many training rows reached it.
    Leaf { size: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn fit(
        x: &ArrayBase<impl Data<Elem = f64>, Ix2>,
        rows: Vec<usize>,
        max_depth: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Self {
        let mut tree = Tree {
            nodes: Vec::with_capacity(2 * rows.len()),
        };
        tree.grow(x, rows, 0, max_depth, rng);
        tree
    }

    /// Grow the subtree for `rows` and return its index.
    fn grow(
        &mut self,
        x: &ArrayBase<impl Data<Elem = f64>, Ix2>,
        rows: Vec<usize>,
        depth: usize,
        max_depth: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> u32 {
        let index = self.nodes.len() as u32;
        self.nodes.push(Node::Leaf { size: rows.len() });
        if depth >= max_depth || rows.len() <= 1 {
            return index;
        }
        // Like scikit-learn's random splitter: draw features without replacement until one
        // is not constant on these rows; if all are constant, this is a leaf.
        let n_features = x.ncols();
        let mut candidates: Vec<usize> = (0..n_features).collect();
        while !candidates.is_empty() {
            let pick = rng.gen_range(0..candidates.len());
            let feature = candidates.swap_remove(pick);
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in &rows {
                let v = x[[r, feature]];
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if hi <= lo {
                continue;
            }
            let mut threshold = rng.gen_range(lo..hi);
            if threshold >= hi {
                threshold = lo;
            }
            let (left_rows, right_rows): (Vec<usize>, Vec<usize>) =
                rows.iter().partition(|&&r| x[[r, feature]] <= threshold);
            let left = self.grow(x, left_rows, depth + 1, max_depth, rng);
            let right = self.grow(x, right_rows, depth + 1, max_depth, rng);
            self.nodes[index as usize] = Node::Split {
                feature,
                threshold,
                left,
                right,
            };
            return index;
        }
        index
    }

    /// Depth of the leaf `row` reaches plus c(rows left in that leaf).
    fn path_length(&self, row: ArrayView1<f64>) -> f64 {
        let (_, depth, size) = self.leaf_of(row);
        depth as f64 + average_path_length(size)
    }

    /// The leaf `row` reaches: its index, depth and training rows.
    fn leaf_of(&self, row: ArrayView1<f64>) -> (usize, usize, usize) {
        let mut i = 0usize;
        let mut depth = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if row[*feature] <= *threshold {
                        *left as usize
                    } else {
                        *right as usize
                    };
                    depth += 1;
                }
                Node::Leaf { size } => return (i, depth, *size),
            }
        }
    }
}

/// A fitted isolation forest. Scores are in (0, 1]; higher is more anomalous.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IsolationForest {
    trees: Vec<Tree>,
    /// ψ actually used: min(max_samples, training rows).
    sub_sample: usize,
    n_features: usize,
    threshold: f64,
    params: IsolationForestValidParams,
}

impl IsolationForest {
    pub fn params() -> IsolationForestParams {
        IsolationForestParams::default()
    }

    /// Rows scoring above this are anomalous.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn hyperparams(&self) -> &IsolationForestValidParams {
        &self.params
    }

    /// Learn an operator's "normal" verdict on `row`: in every tree, the leaf it reaches
    /// counts `extra` more training rows, the fewest that bring its score to the threshold —
    /// as if the trees had seen that many rows like it there. Rows that share its leaves
    /// score lower too; a row isolated elsewhere is judged as before. Whether anything
    /// changed.
    pub fn accept_row(&mut self, row: ArrayView1<f64>) -> bool {
        let norm = average_path_length(self.sub_sample);
        let reached: Vec<(usize, usize, usize)> =
            self.trees.iter().map(|t| t.leaf_of(row)).collect();
        let score = |extra: usize| {
            let mean = reached
                .iter()
                .map(|&(_, depth, size)| depth as f64 + average_path_length(size + extra))
                .sum::<f64>()
                / reached.len() as f64;
            2f64.powf(-mean / norm)
        };
        if score(0) <= self.threshold {
            return false;
        }
        // c(n) grows like 2·ln n: 2^40 more rows add about 55 to every path, past any
        // threshold in (0, 1) that a fitted forest has.
        let (mut lo, mut hi) = (0usize, 1usize);
        while score(hi) > self.threshold {
            if hi >= 1 << 40 {
                return false;
            }
            lo = hi;
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if score(mid) > self.threshold {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        for (tree, &(leaf, _, _)) in self.trees.iter_mut().zip(&reached) {
            if let Node::Leaf { size } = &mut tree.nodes[leaf] {
                *size += hi;
            }
        }
        true
    }

    fn score_rows(&self, x: &ArrayBase<impl Data<Elem = f64> + Sync, Ix2>) -> Array1<f64> {
        let norm = average_path_length(self.sub_sample);
        let scores: Vec<f64> = (0..x.nrows())
            .into_par_iter()
            .map(|r| {
                let row = x.row(r);
                let mean_depth = self.trees.iter().map(|t| t.path_length(row)).sum::<f64>()
                    / self.trees.len() as f64;
                2f64.powf(-mean_depth / norm)
            })
            .collect();
        Array1::from(scores)
    }
}

impl<D: Data<Elem = f64> + Sync, T> Fit<ArrayBase<D, Ix2>, T, IsolationForestError>
    for IsolationForestValidParams
{
    type Object = IsolationForest;

    fn fit(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
    ) -> Result<IsolationForest, IsolationForestError> {
        let x = dataset.records();
        let n = x.nsamples();
        if n < 2 {
            return Err(IsolationForestError::NotEnoughRows(n));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(IsolationForestError::NonFinite);
        }
        let sub_sample = self.max_samples.min(n);
        let max_depth = (sub_sample.max(2) as f64).log2().ceil() as usize;
        // One independent, seeded stream per tree: the forest is the same whatever the thread
        // count, and trees build in parallel.
        let trees: Vec<Tree> = (0..self.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                    self.seed
                        .wrapping_add((t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                );
                let rows = sample(&mut rng, n, sub_sample).into_vec();
                Tree::fit(x, rows, max_depth, &mut rng)
            })
            .collect();
        let mut forest = IsolationForest {
            trees,
            sub_sample,
            n_features: x.ncols(),
            threshold: 0.5,
            params: self.clone(),
        };
        forest.threshold = match self.contamination {
            Contamination::Auto => 0.5,
            Contamination::Fraction(c) => {
                let mut scores = forest.score_rows(x).to_vec();
                scores.sort_unstable_by(f64::total_cmp);
                quantile_sorted(&scores, 1.0 - c)
            }
        };
        Ok(forest)
    }
}

impl<D: Data<Elem = f64> + Sync> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>>
    for IsolationForest
{
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        assert_eq!(
            x.ncols(),
            self.n_features,
            "isolation forest fitted on {} features, got {}",
            self.n_features,
            x.ncols()
        );
        *y = self.score_rows(x);
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::ParamGuard;
    use linfa::traits::Predict;
    use ndarray::{Array2, Axis, array};

    #[test]
    fn average_path_length_matches_hand_computed_values() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // c(256) = 2(ln 255 + γ) − 2·255/256 = 10.244770...
        let expected = 2.0 * (255f64.ln() + EULER_GAMMA) - 2.0 * 255.0 / 256.0;
        assert!((average_path_length(256) - expected).abs() < 1e-12);
        assert!((average_path_length(256) - 10.244_770_2).abs() < 1e-6);
        // c(3) = 2(ln 2 + γ) − 4/3 = 1.207392...
        assert!((average_path_length(3) - 1.207_392_357_586_27).abs() < 1e-9);
    }

    #[test]
    fn score_formula_is_two_to_minus_mean_depth_over_c() {
        // Two rows, ψ = 2: depth limit 1, every tree splits once, each leaf holds one row, so
        // every path is exactly 1 and s = 2^(−1/c(2)) = 0.5.
        let x = array![[0.0], [1.0]];
        let model = IsolationForest::params()
            .n_trees(10)
            .seed(3)
            .check()
            .unwrap()
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let s = model.predict(&x);
        for v in s.iter() {
            assert!((v - 0.5).abs() < 1e-12, "{v}");
        }
    }

    fn cluster_with_outliers() -> (Array2<f64>, Vec<usize>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        // A roughly normal cloud (sum of three uniforms, σ = 1) and five points far outside it.
        let mut normal = || (0..3).map(|_| rng.gen_range(-1.0..1.0)).sum::<f64>();
        let mut rows: Vec<[f64; 3]> = (0..1000).map(|_| [normal(), normal(), normal()]).collect();
        let outliers = vec![1000, 1001, 1002, 1003, 1004];
        rows.push([8.0, 8.0, 8.0]);
        rows.push([-7.0, -7.0, 0.5]);
        rows.push([0.0, 9.0, -9.0]);
        rows.push([6.0, -6.0, 6.0]);
        rows.push([-6.0, 6.0, -6.0]);
        let x = Array2::from_shape_vec((rows.len(), 3), rows.concat()).unwrap();
        (x, outliers)
    }

    #[test]
    fn known_outliers_score_highest_and_cross_the_threshold() {
        let (x, outliers) = cluster_with_outliers();
        let model = IsolationForest::params()
            .seed(1)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let scores = model.predict(&x);
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut top: Vec<usize> = order[..5].to_vec();
        top.sort();
        assert_eq!(top, outliers);
        // Every outlier scores above every inlier, and well above 0.5. (On this data
        // scikit-learn 1.x scores the outliers 0.70–0.78 and its top inliers about 0.60–0.64.)
        let max_inlier = (0..1000).map(|i| scores[i]).fold(0.0, f64::max);
        for &o in &outliers {
            assert!(scores[o] > 0.68, "outlier {o} scored {}", scores[o]);
            assert!(
                scores[o] > max_inlier,
                "outlier {o} scored {} below an inlier's {max_inlier}",
                scores[o]
            );
        }
    }

    #[test]
    fn a_row_marked_normal_scores_at_the_threshold_and_others_far_away_do_not_move() {
        let (x, outliers) = cluster_with_outliers();
        let mut model = IsolationForest::params()
            .seed(1)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let before = model.predict(&x);
        let marked = outliers[0];
        assert!(model.accept_row(x.row(marked)));
        assert!(!model.accept_row(x.row(marked)), "already inside");
        let after = model.predict(&x);
        assert!(
            after[marked] <= model.threshold() && after[marked] > model.threshold() - 0.05,
            "just inside: {}",
            after[marked]
        );
        // A row just beside it is no longer anomalous either; the other outliers, on the far
        // side of the cloud, still are; no score rose.
        let beside = model.predict(&array![[7.9, 8.1, 8.0]]);
        assert!(beside[0] <= model.threshold(), "{}", beside[0]);
        for &o in &outliers[1..] {
            assert!(after[o] > model.threshold(), "outlier {o}: {}", after[o]);
        }
        assert!((0..x.nrows()).all(|i| after[i] <= before[i] + 1e-12));
    }

    #[test]
    fn contamination_sets_the_threshold_at_that_quantile() {
        let (x, _) = cluster_with_outliers();
        let model = IsolationForest::params()
            .contamination(Contamination::Fraction(0.05))
            .seed(2)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let scores = model.predict(&x);
        let flagged = scores.iter().filter(|&&s| s > model.threshold()).count() as f64;
        let expected = 0.05 * x.len_of(Axis(0)) as f64;
        assert!(
            (flagged - expected).abs() <= 2.0,
            "{flagged} flagged, expected about {expected}"
        );
    }

    #[test]
    fn seeded_fits_are_identical_and_serializable() {
        let (x, _) = cluster_with_outliers();
        let a = IsolationForest::params()
            .seed(9)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        let b = IsolationForest::params()
            .seed(9)
            .fit(&DatasetBase::from(x.clone()))
            .unwrap();
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(a.predict(&x), back.predict(&x));
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(IsolationForest::params().n_trees(0).check().is_err());
        assert!(
            IsolationForest::params()
                .contamination(Contamination::Fraction(0.7))
                .check()
                .is_err()
        );
        assert!(matches!(
            IsolationForest::params().fit(&DatasetBase::from(array![[1.0]])),
            Err(IsolationForestError::NotEnoughRows(1))
        ));
    }
}
