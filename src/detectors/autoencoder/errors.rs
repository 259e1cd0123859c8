use thiserror::Error;

#[derive(Debug, Error)]
pub enum AutoencoderError {
    #[error("bottleneck must be at least 1, got {0}")]
    Bottleneck(usize),
    #[error("epochs must be between 1 and 100000, got {0}")]
    Epochs(usize),
    #[error("learning_rate must be in (0, 1], got {0}")]
    LearningRate(f64),
    #[error("max_points must be at least 2, got {0}")]
    MaxPoints(usize),
    #[error("quantile must be in (0, 1], got {0}")]
    Quantile(f64),
    #[error("min_error must be positive, got {0}")]
    MinError(f64),
    #[error("min_scale must be positive, got {0}")]
    MinScale(f64),
    #[error("count_weight must be in [0, 1], got {0}")]
    CountWeight(f64),
    #[error("cannot train an autoencoder on {0} rows: need at least 2")]
    NotEnoughRows(usize),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}
