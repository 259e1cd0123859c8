//! DBSCAN (Ester, Kriegel, Sander & Xu, KDD 1996; linfa-clustering's implementation) on
//! session template counts, beside k-means: where k-means must put every session in one of k
//! clusters, DBSCAN finds as many dense behaviours as the data has and leaves the rest as
//! noise. A session is anomalous when it is noise — farther than `eps` from every clustered
//! training session — or falls in a cluster holding less than `min_cluster_share` of them.
//!
//! Sessions repeat exactly, so identical vectors are clustered once each — entering linfa's
//! DBSCAN min(count, `min_points`) times, which keeps its core rule exact: a vector is a core
//! when the training rows within `eps` number `min_points`, and one repeated that often is
//! dense on its own.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{DensityClusters, Membership};
pub use detector::{DbscanDetector, DbscanSettings};
pub use errors::DbscanError;
pub use hyperparams::{DbscanParams, DbscanValidParams};
