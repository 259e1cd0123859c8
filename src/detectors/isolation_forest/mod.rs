//! Isolation forest (Liu, Ting & Zhou, ICDM 2008) with scikit-learn's exact scoring, on
//! linfa's traits.
//!
//! Each tree isolates a random sub-sample of ψ rows by random axis-parallel splits, down to a
//! depth limit of ⌈log₂ ψ⌉. Anomalies are isolated in fewer splits, so their path length h(x)
//! is short. A row's score is s = 2^(−E[h(x)] / c(ψ)), where E[h] averages over trees the
//! depth of the leaf reached plus c(n_leaf) for the rows the leaf still held, and c(n) is the
//! average path length of an unsuccessful binary-search-tree lookup, c(n) = 2H(n−1) − 2(n−1)/n.
//! That is scikit-learn's `-score_samples`, so thresholds carry over: `contamination = auto`
//! flags s > 0.5, a fraction flags the top fraction of training scores.
//!
//! ```no_run
//! use linfa::prelude::*;
//! use loglake::detectors::isolation_forest::IsolationForest;
//! # let x = ndarray::Array2::<f64>::zeros((10, 2));
//! let model = IsolationForest::params().n_trees(100).seed(7).fit(&DatasetBase::from(x.clone())).unwrap();
//! let scores = model.predict(&x);
//! ```

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{IsolationForest, average_path_length};
pub use detector::{IsolationForestDetector, IsolationForestSettings};
pub use errors::IsolationForestError;
pub use hyperparams::{Contamination, IsolationForestParams, IsolationForestValidParams};
