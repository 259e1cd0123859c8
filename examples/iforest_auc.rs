//! ROC-AUC of loglake's isolation forest on a labelled matrix, for comparing it with
//! scikit-learn's (`scripts/iforest_vs_sklearn.sh` runs both on the same matrix).
//!
//! Usage: `cargo run --release --example iforest_auc -- matrix.csv SEED...`
//! The CSV has a header; the last column is the label (0/1), the others are features.
//! Prints one line per seed: `seed <s> roc_auc <v>`.

use std::error::Error;

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use loglake::detectors::isolation_forest::IsolationForest;
use loglake::evaluate::metrics;
use ndarray::Array2;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: iforest_auc matrix.csv SEED...")?;
    let seeds: Vec<u64> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let text = std::fs::read_to_string(&path)?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        rows.push(
            line.split(',')
                .map(|v| v.trim().parse())
                .collect::<Result<_, _>>()?,
        );
    }
    let cols = rows.first().map(Vec::len).ok_or("empty matrix")?;
    let labels: Vec<bool> = rows.iter().map(|r| r[cols - 1] > 0.5).collect();
    let x = Array2::from_shape_fn((rows.len(), cols - 1), |(i, j)| rows[i][j]);
    for seed in seeds {
        // scikit-learn's defaults: 100 trees, 256 samples per tree.
        let forest = IsolationForest::params()
            .n_trees(100)
            .max_samples(256)
            .seed(seed)
            .fit(&DatasetBase::from(x.clone()))?;
        let scores = forest.predict(&x);
        let scored: Vec<(f64, bool, bool)> = scores
            .iter()
            .zip(&labels)
            .map(|(s, y)| (*s, false, *y))
            .collect();
        let auc = metrics(&scored).roc_auc.ok_or("labels are all one class")?;
        println!("seed {seed} roc_auc {auc:.4}");
    }
    Ok(())
}
