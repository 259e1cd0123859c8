//! One verdict per entity from every detector's calibrated score.
//!
//! Each detector's score is calibrated against its own threshold — `score ÷ threshold`, so 1
//! is where that detector alone would raise an alarm, and every threshold is an unsupervised
//! statistic of the training data. The ensemble weighs the calibrated scores of the detectors
//! that flag an entity and raises one anomaly when the weighted evidence reaches the weight of
//! the most trusted detector that scored the entity's granularity.
//!
//! Why weights rather than a vote: detectors differ in what a flag means. A broken count
//! invariant or a template the training data never had is a statement about what normal runs
//! (almost) never do; a z-score, a distance from a cluster centre or an isolation score is a
//! position in the tail of a distribution, and every distribution has a tail — on real HDFS
//! sessions most of their lone flags are blocks that were simply read often. The defaults give
//! the structural detectors weight 1 and the distributional ones (and the transition-order
//! detector, which interleaved threads can mislead) weight ½: such a detector convicts alone
//! only at twice its own threshold, or together with another. With one detector at a
//! granularity the ensemble is that detector.

mod algorithm;
mod errors;
mod hyperparams;

pub use algorithm::{Contribution, Verdict, Vote};
pub use errors::EnsembleError;
pub use hyperparams::{EnsembleParams, EnsembleValidParams};
