//! Clustering detector (in the spirit of LogClustering, Lin et al., ICSE 2016): k-means
//! (linfa-clustering) groups the training sessions by their template count vectors; a session
//! is anomalous when the cluster it falls into is rare (holds less than `min_cluster_share` of
//! the training sessions) or when it lies far from that cluster's centre (robust z of its
//! distance ≥ `distance_threshold`).
//!
//! The two rules cover the two ways k-means meets an odd session: with more clusters than
//! behaviours, an odd behaviour gets a tiny cluster of its own; with fewer, it is pulled into
//! a cluster it does not fit. The score is the larger of the two criteria, each divided by its
//! limit, so 1.0 is the threshold.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{Clustering, Placement};
pub use detector::{ClusteringDetector, ClusteringSettings};
pub use errors::ClusteringError;
pub use hyperparams::{ClusteringParams, ClusteringValidParams};
