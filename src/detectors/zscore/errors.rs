use thiserror::Error;

#[derive(Debug, Error)]
pub enum ZScoreError {
    #[error("z-score threshold must be positive, got {0}")]
    Threshold(f64),
    #[error("count_features has {got} entries for {expected} features")]
    CountFeatures { got: usize, expected: usize },
    #[error("cannot fit a z-score baseline on {0} rows: need at least 2")]
    NotEnoughRows(usize),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
