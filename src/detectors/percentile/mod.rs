//! Percentile baselines: is a count outside the range the training rows kept to?
//!
//! Per feature, the training rows give a median and a low and a high quantile (by default the
//! 1st and 99th percentiles). A value is anomalous when it lies beyond the high quantile (or
//! below the low one) by at least the distance from the median to that quantile — the tail's
//! own width — so the band widens for features that swing widely on normal days and stays
//! narrow for steady ones. Counts never get a band narrower than three Poisson deviations at
//! the quantile (`3·√(q + 1)`): where 99 % of windows have no error, one error is chance, a
//! dozen is not.
//!
//! Unlike the z-score, nothing here assumes a shape for the distribution: heavy-tailed and
//! skewed counts (request volumes with daily peaks, error counts that are usually zero) are
//! judged by what actually happened in training, which is also what an operator reads in
//! the reason: "ERROR count 30, above the 99th percentile 3 (median 0) of 2,016 windows".
//! The price is data: a quantile needs enough rows to be more than the maximum, so a group
//! needs at least 1 / (1 − quantile) training rows (100 for the 99th percentile).

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{FeatureRange, PercentileBaseline};
pub use detector::{PercentileDetector, PercentileSettings};
pub use errors::PercentileError;
pub use hyperparams::{PercentileParams, PercentileValidParams, min_rows_for};
