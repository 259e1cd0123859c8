//! Detectors, each shaped like a linfa algorithm: `hyperparams.rs` (Params → ValidParams behind
//! `ParamGuard::check`), `algorithm.rs` (`Fit`, `Predict`), `errors.rs`.
//!
//! - [`clustering`]: k-means (linfa-clustering) on session count vectors: rare or distant clusters.
//! - [`isolation_forest`]: scikit-learn-compatible isolation forest on feature vectors.
//! - [`zscore`]: per-feature z-scores against mean/std or median/MAD baselines; explainable.
//! - [`percentile`]: counts outside the range (low/high quantile) the training rows kept to.
//! - [`param_range`]: events whose numeric values (durations, sizes, counts in the text) lie far
//!   outside the range that message usually reports.
//! - [`rare_template`]: events whose template the training data has (almost) never seen.
//! - [`severity`]: ERROR-or-worse events that are not routine at that level in training.
//! - [`sequence`]: sessions that make a transition between events normal sessions never make.
//! - [`invariants`]: sessions that break the count relations normal sessions keep, or have an
//!   event almost no session has.
//! - [`ensemble`]: one verdict per entity from the others' scores, each calibrated against its
//!   own threshold and weighted by how much a lone flag from it means.
//!
//! The stages decide which detector runs on which granularity (`04-train`, `05-detect`); the
//! detectors know only numbers.

pub mod clustering;
pub mod ensemble;
pub mod invariants;
pub mod isolation_forest;
pub mod param_range;
pub mod percentile;
pub mod poisson;
pub mod rare_template;
pub mod robust;
pub mod sequence;
pub mod severity;
pub mod zscore;

/// A score in units of its detector's threshold: 1 is where the detector alone raises an
/// alarm. A zero threshold makes any positive score infinitely far past it.
pub fn calibrated(score: f64, threshold: f64) -> f64 {
    if threshold.abs() > f64::EPSILON {
        score / threshold
    } else if score > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Severity from how far past its threshold a score is (score / threshold).
pub fn severity(score: f64, threshold: f64) -> &'static str {
    let ratio = calibrated(score, threshold);
    if ratio >= 4.0 {
        "critical"
    } else if ratio >= 2.0 {
        "high"
    } else {
        "medium"
    }
}
