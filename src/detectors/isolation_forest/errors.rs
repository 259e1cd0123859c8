use thiserror::Error;

#[derive(Debug, Error)]
pub enum IsolationForestError {
    #[error("n_trees must be at least 1, got {0}")]
    NoTrees(usize),
    #[error("max_samples must be at least 2, got {0}")]
    TooFewSamples(usize),
    #[error("contamination must be in (0, 0.5], got {0}")]
    Contamination(f64),
    #[error("cannot fit an isolation forest on {0} rows: need at least 2")]
    NotEnoughRows(usize),
    #[error("the training data contains NaN or infinite values")]
    NonFinite,
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
