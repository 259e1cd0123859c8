//! Local outlier factor (Breunig, Kriegel, Ng & Sander, SIGMOD 2000): a row is an outlier
//! when the region around it is much sparser than the regions around its k nearest training
//! rows. Unlike a distance to a cluster centre it adapts to density: a session a little off a
//! tight, common behaviour is odd, while one as far inside a loose behaviour is not.
//!
//! Log sessions repeat: most HDFS blocks have one of a few dozen count vectors. Classic LOF
//! on such data breaks (k copies of one point make the k-distance 0 and the density infinite),
//! so training rows are kept as distinct vectors with their multiplicity, a neighbourhood
//! counts multiplicities towards k, and a reach distance is never below `resolution` (half an
//! event on the ln(1 + count) scale by default): rows closer than that are one behaviour. The
//! training rows are bounded by `max_points` distinct vectors (a seeded sample beyond it).
//!
//! The threshold is the larger of `min_score` and the `quantile` of the training rows' own
//! LOF (each computed without its own copy), so a training range with many loosely spread
//! behaviours raises its own bar.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{LocalOutlierFactor, Neighbourhood};
pub use detector::{LofDetector, LofSettings};
pub use errors::LofError;
pub use hyperparams::{LofParams, LofValidParams};
