use thiserror::Error;

#[derive(Debug, Error)]
pub enum LofError {
    #[error("n_neighbors must be at least 1, got {0}")]
    Neighbors(usize),
    #[error("max_points must be at least 2, got {0}")]
    MaxPoints(usize),
    #[error("quantile must be in (0, 1], got {0}")]
    Quantile(f64),
    #[error("min_score must be at least 1, got {0}")]
    MinScore(f64),
    #[error("resolution must be positive, got {0}")]
    Resolution(f64),
    #[error("cannot fit a local outlier factor on {0} rows: need more than n_neighbors")]
    NotEnoughRows(usize),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
