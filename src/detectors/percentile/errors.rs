use thiserror::Error;

#[derive(Debug, Error)]
pub enum PercentileError {
    #[error("percentile quantile must be in (0.5, 1), got {0}")]
    Quantile(f64),
    #[error("percentile threshold must be positive, got {0}")]
    Threshold(f64),
    #[error("count_features has {got} entries for {expected} features")]
    CountFeatures { got: usize, expected: usize },
    #[error(
        "a percentile baseline needs at least {need} training rows for its quantile, got {got}"
    )]
    TooFewRows { got: usize, need: usize },
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
