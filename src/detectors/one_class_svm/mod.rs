//! One-class SVM (Schölkopf et al., Neural Computation 2001) with a Gaussian kernel, fitted by
//! linfa-svm's SMO solver: the smallest region of the (log-scaled) count space that holds all
//! but about a share `nu` of the training rows; a row outside it is anomalous. The support
//! vector baseline of the log-anomaly toolkits (LogAI, loglizer's comparisons).
//!
//! The solver holds a kernel matrix of its training rows, so it trains on a bounded, seeded
//! sample of `max_samples` rows (repeats kept, so common behaviours weigh as they occur). Only
//! the support vectors, their weights and the offset are saved (linfa-svm's model is built
//! here without serde): scoring needs nothing else.
//!
//! The score is ρ / Σᵢ αᵢ·k(xᵢ, x): 1 on the region's boundary, above 1 outside it, so the
//! threshold is 1 (and the solver's tolerance), where the SVM itself draws the line.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::OneClassSvm;
pub use detector::{OneClassSvmDetector, OneClassSvmSettings};
pub use errors::OneClassSvmError;
pub use hyperparams::{OneClassSvmParams, OneClassSvmValidParams};
