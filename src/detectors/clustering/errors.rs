use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusteringError {
    #[error("n_clusters must be at least 1")]
    NoClusters,
    #[error("min_cluster_share must be in (0, 1), got {0}")]
    Share(f64),
    #[error("distance_threshold must be positive, got {0}")]
    Threshold(f64),
    #[error("cannot cluster {0} rows: need at least 2")]
    NotEnoughRows(usize),
    #[error("k-means failed: {0}")]
    KMeans(String),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
