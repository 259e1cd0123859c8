//! One verdict per entity from every detector's calibrated score.
//!
//! Each detector's score is calibrated against its own threshold — `score ÷ threshold`, so 1
//! is where that detector alone would raise an alarm, and every threshold is an unsupervised
//! statistic of the training data. The ensemble weighs the calibrated scores of the detectors
//! that flag an entity and raises one anomaly when the weighted evidence reaches the weight of
//! the most trusted detector that scored the entity's granularity.
//!
//! Why weights rather than a vote: detectors differ in what a flag means. A broken count
//! invariant, a template the training data never had or a value far beyond any it reported is
//! a statement about what normal runs (almost) never do; a z-score, a distance from a cluster centre or an isolation score is a
//! position in the tail of a distribution, and every distribution has a tail — on real HDFS
//! sessions most of their lone flags are blocks that were simply read often. The defaults give
//! the structural detectors weight 1 and the distributional ones (and the transition-order
//! detector, which interleaved threads can mislead) weight ½: such a detector convicts alone
//! only at twice its own threshold, or together with another. With one detector at a
//! granularity the ensemble is that detector.
//!
//! Support must come from a second witness, not from a second reading of the same evidence.
//! Each detector has a view — what it reads: `counts` (invariants, z-scores, percentiles,
//! clustering, the isolation forest), `order` (transitions), `template` (rarity, severity),
//! `values` (a line's numbers against their usual range) — and of several flags in one view
//! only the strongest counts. Fifteen WARN lines in a block
//! make both the z-score of its warning count and its distance from a cluster centre large;
//! adding the two would count one fact twice (on the HDFS sessions, three of the ensemble's
//! four false positives were exactly that). A transition no normal session makes next to a
//! count vector far from every cluster is two facts, and adds up.

mod algorithm;
mod combine;
mod errors;
mod hyperparams;

pub use algorithm::{Contribution, Verdict, Vote};
pub use combine::{Ballots, combine};
pub use errors::EnsembleError;
pub use hyperparams::{EnsembleParams, EnsembleValidParams};

/// Its name in the `detector` column and its `[detectors.ensemble]` section. It is not
/// trained: `05-detect` combines the other detectors' scores.
pub const NAME: &str = "ensemble";
