//! Detectors, each shaped like a linfa algorithm: `hyperparams.rs` (Params → ValidParams behind
//! `ParamGuard::check`), `algorithm.rs` (`Fit`, `Predict`), `errors.rs`.
//!
//! - [`clustering`]: k-means (linfa-clustering) on session count vectors: rare or distant clusters.
//! - [`dbscan`]: DBSCAN (linfa-clustering) on session count vectors: noise and rare dense
//!   clusters (off by default).
//! - [`lof`]: local outlier factor on session or window vectors: rows in a sparser region than
//!   their nearest training rows (off by default).
//! - [`autoencoder`]: a dense autoencoder on session or window vectors: rows the network
//!   rebuilds badly (off by default).
//! - [`one_class_svm`]: a one-class SVM (linfa-svm, Gaussian kernel) on session or window
//!   vectors: rows outside the region it draws around the training rows (off by default).
//! - [`isolation_forest`]: scikit-learn-compatible isolation forest on feature vectors.
//! - [`zscore`]: per-feature z-scores against mean/std or median/MAD baselines; explainable.
//! - [`percentile`]: counts outside the range (low/high quantile) the training rows kept to.
//! - [`param_range`]: events whose numeric values (durations, sizes, counts in the text) lie far
//!   outside the range that message usually reports.
//! - [`rare_template`]: events whose template the training data has (almost) never seen.
//! - [`severity`]: ERROR-or-worse events that are not routine at that level in training.
//! - [`sequence`]: sessions that make a transition between events normal sessions never make.
//! - [`lstm`]: a DeepLog-style next-event LSTM (candle, CPU) over session sequences: a step
//!   outside the g events the model expects after its history (cargo feature `lstm`; off by
//!   default).
//! - [`lstm_autoencoder`]: an LSTM autoencoder over session sequences: sessions whose events
//!   the network cannot rebuild (cargo feature `lstm`; off by default).
//! - [`invariants`]: sessions that break the count relations normal sessions keep, or have an
//!   event almost no session has.
//! - [`ensemble`]: one verdict per entity from the others' scores, each calibrated against its
//!   own threshold and weighted by how much a lone flag from it means.
//!
//! Every detector has the same shape ([`contract::Detector`]): its folder holds the algorithm
//! (`hyperparams.rs`, `algorithm.rs`, `errors.rs`) and its place in the pipeline
//! (`detector.rs`: its `[detectors.<name>]` settings, training from gold, scoring into
//! findings). `04-train` and `05-detect` loop over [`DETECTORS`]; adding a detector is its
//! folder, its `mod` line and one line in [`DETECTORS`].

pub mod baseline;
pub mod contract;
pub mod distinct_rows;
pub mod ensemble;
pub mod explain;
pub mod grouped;
pub mod poisson;
pub mod robust;
pub mod saved_model;
pub mod scoring;
pub mod session_sample;
pub mod settings;
pub mod training;

pub use contract::{
    AnyDetector, Crossing, Detector, EntityScore, Finding, Granularity, SampleQuery, Scored,
    Trained,
};
pub use saved_model::SavedModel;

// The detectors' folders. Declared as plain modules (not by a macro) so that rustfmt, which
// follows only `mod` items it can see, formats them.
pub mod autoencoder;
pub mod clustering;
pub mod dbscan;
pub mod invariants;
pub mod isolation_forest;
pub mod lof;
#[cfg(feature = "lstm")]
pub mod lstm;
#[cfg(feature = "lstm")]
pub mod lstm_autoencoder;
pub mod one_class_svm;
pub mod param_range;
pub mod percentile;
pub mod rare_template;
pub mod sequence;
pub mod severity;
pub mod zscore;

/// Every detector the pipeline knows: adding one is its folder, its `mod` line above and one
/// line here. `04-train` trains and `05-detect` scores in this order within each granularity
/// (window, session, event).
pub static DETECTORS: &[&dyn AnyDetector] = &[
    &zscore::ZScoreDetector,
    &percentile::PercentileDetector,
    &isolation_forest::IsolationForestDetector,
    &sequence::SequenceDetector,
    #[cfg(feature = "lstm")]
    &lstm::LstmDetector,
    #[cfg(feature = "lstm")]
    &lstm_autoencoder::LstmAutoencoderDetector,
    &invariants::InvariantsDetector,
    &clustering::ClusteringDetector,
    &lof::LofDetector,
    &autoencoder::AutoencoderDetector,
    &one_class_svm::OneClassSvmDetector,
    &dbscan::DbscanDetector,
    &rare_template::RareTemplateDetector,
    &severity::SeverityDetector,
    &param_range::ParamRangeDetector,
];

/// The detector called `name`.
pub fn find(name: &str) -> Option<&'static dyn AnyDetector> {
    DETECTORS.iter().copied().find(|d| d.name() == name)
}

/// Every detector's name, in registry order.
pub fn names() -> Vec<&'static str> {
    DETECTORS.iter().map(|d| d.name()).collect()
}

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

/// The severities anomalies and incidents carry, from least to most severe.
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// A severity's place in [`SEVERITIES`]; a word that is not one ranks lowest.
pub fn severity_rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
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
