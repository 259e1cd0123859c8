use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbscanError {
    #[error("min_points must be at least 2, got {0}")]
    MinPoints(usize),
    #[error("eps must be positive, got {0}")]
    Eps(f64),
    #[error("min_cluster_share must be in (0, 1), got {0}")]
    Share(f64),
    #[error("max_points must be at least 2, got {0}")]
    MaxPoints(usize),
    #[error("cannot cluster {0} rows: need at least min_points")]
    NotEnoughRows(usize),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
