use thiserror::Error;

#[derive(Debug, Error)]
pub enum LstmError {
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("max_flagged_share must be in (0, 1), got {0}")]
    Share(f64),
    #[error("learning_rate must be in (0, 1], got {0}")]
    LearningRate(f64),
    #[error("cannot learn next events from {0} training events: need at least {1}")]
    TooFewEvents(usize, usize),
    #[error("the network failed: {0}")]
    Network(#[from] candle_core::Error),
}
