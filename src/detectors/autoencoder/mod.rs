//! A dense autoencoder on count vectors: a small network learns to squeeze the training
//! sessions' (or windows') vectors through a narrow middle layer and rebuild them; a row it
//! rebuilds badly is unlike what it learned. This is the "autoencoder" baseline of the
//! log-anomaly literature (e.g. the deep-loglizer and LogAI toolkits), here on the CPU in
//! plain `ndarray`: the network is a few thousand weights, so it needs no tensor library and
//! adds nothing to the build.
//!
//! Rows are compared on the scale the density detectors use (ln(1 + count)), standardised per
//! feature with a floor on the spread (`min_scale`), so that a template no training row has
//! costs as much to miss as one that varies a little. Training rows are kept as distinct
//! vectors with their multiplicity (`max_points` at most, a seeded sample beyond), each
//! weighted by its multiplicity to the power `count_weight`: 1 lets the common behaviours
//! dominate, 0 counts each behaviour once. Full-batch Adam for `epochs` steps from a seeded
//! start: the same data and settings train the same network.
//!
//! The threshold is the larger of `min_error` and the `quantile` of the training rows' own
//! errors.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;
mod network;

pub use algorithm::{Autoencoder, Rebuilt};
pub use detector::{AutoencoderDetector, AutoencoderSettings};
pub use errors::AutoencoderError;
pub use hyperparams::{AutoencoderParams, AutoencoderValidParams};
