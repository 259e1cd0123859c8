use thiserror::Error;

#[derive(Debug, Error)]
pub enum LstmAutoencoderError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("learning_rate must be in (0, 1], got {0}")]
    LearningRate(f64),
    #[error("quantile must be in (0, 1], got {0}")]
    Quantile(f64),
    #[error("min_score must be positive, got {0}")]
    MinScore(f64),
    #[error("no session has an event to learn from")]
    NoEvents,
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
