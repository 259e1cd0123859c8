//! Rows of a matrix as distinct vectors with their multiplicity.
//!
//! Log sessions repeat exactly: most HDFS blocks share one of a few dozen template count
//! vectors. The density detectors (`lof`, `dbscan`) compare every training vector with every
//! other, so they keep each distinct vector once with how often it occurs, and score each
//! distinct row once.

use std::collections::HashMap;

use ndarray::{ArrayBase, ArrayView1, Data, Ix2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;

/// A row as the density detectors compare it: ln(1 + value) when `log_counts` (a block read
/// 40 times rather than 4 differs by workload, not by kind), else as it is.
pub fn scaled(row: ArrayView1<f64>, log_counts: bool) -> Vec<f64> {
    if log_counts {
        row.iter().map(|v| v.max(0.0).ln_1p()).collect()
    } else {
        row.to_vec()
    }
}

/// Euclidean distance.
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// The weighted `q` quantile of `values` (value, weight): the training distribution a
/// threshold is drawn from, each distinct row counting as often as it occurs.
pub fn weighted_quantile(mut values: Vec<(f64, f64)>, q: f64) -> f64 {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|v| v.1).sum();
    let mut seen = 0.0;
    for (v, w) in &values {
        seen += w;
        if seen >= q * total {
            return *v;
        }
    }
    values.last().map_or(0.0, |v| v.0)
}

/// The bits of a vector, to find identical rows.
fn key(row: impl IntoIterator<Item = f64>) -> Vec<u64> {
    row.into_iter().map(f64::to_bits).collect()
}

/// Distinct scaled rows and how many rows each stands for, in first-seen order; beyond
/// `max_points` distinct vectors, a sample of them seeded by `seed` (each keeping its count).
pub struct DistinctRows {
    pub points: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
}

impl DistinctRows {
    pub fn of<D: Data<Elem = f64>>(
        x: &ArrayBase<D, Ix2>,
        log_counts: bool,
        max_points: usize,
        seed: u64,
    ) -> Self {
        let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
        let (mut points, mut weights): (Vec<Vec<f64>>, Vec<f64>) = (Vec::new(), Vec::new());
        for row in x.rows() {
            let row = scaled(row, log_counts);
            let slot = *index
                .entry(key(row.iter().copied()))
                .or_insert(points.len());
            if slot == points.len() {
                points.push(row);
                weights.push(0.0);
            }
            weights[slot] += 1.0;
        }
        if points.len() > max_points {
            let mut rng = Xoshiro256Plus::seed_from_u64(seed);
            let mut keep = rand::seq::index::sample(&mut rng, points.len(), max_points).into_vec();
            keep.sort_unstable();
            points = keep
                .iter()
                .map(|&i| std::mem::take(&mut points[i]))
                .collect();
            weights = keep.iter().map(|&i| weights[i]).collect();
        }
        Self { points, weights }
    }
}

/// `place` applied to each distinct row of `x` once (in parallel), handed back per row.
pub fn per_distinct_row<D, T>(
    x: &ArrayBase<D, Ix2>,
    place: impl Fn(ArrayView1<f64>) -> T + Sync,
) -> Vec<T>
where
    D: Data<Elem = f64> + Sync,
    T: Clone + Send,
{
    let mut distinct: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut first_of: Vec<usize> = Vec::new();
    let slot: Vec<usize> = x
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            *distinct.entry(key(r.iter().copied())).or_insert_with(|| {
                first_of.push(i);
                first_of.len() - 1
            })
        })
        .collect();
    let placed: Vec<T> = first_of.par_iter().map(|&i| place(x.row(i))).collect();
    slot.into_iter().map(|s| placed[s].clone()).collect()
}
